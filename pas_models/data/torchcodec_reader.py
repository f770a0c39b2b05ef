"""torchcodec (PyTorch's decoder, FFmpeg from the system) as a backend, where it is frame-exact.

Measured (benchmarks/bench_frame_exact.py, torchcodec 0.17 on FFmpeg 5.1): with ``seek_mode="exact"``
torchcodec returns the same pixels as a sequential PyAV decode for every frame read alone and for random
sets of frames on MP4/Matroska/QuickTime H.264 with B-frames, open GOPs, variable frame rate and rotation,
and on AVI without B-frames. On AVI with B-frames (MPEG-4 Part 2 as UCF101 and HMDB51 ship it, or H.264)
it fails on the last frame and returns other frames for sets of frames: there AVI stores no presentation
timestamps (pas's index reads such files by counting, ``pyav_reader``), and ``TorchcodecReader`` hands
every file the index reads by counting to the exact PyAV reader (``exact_by``: why), as does a frame
count that differs from the index's.

Access pattern: each read asks torchcodec for its distinct frames in increasing order and reorders them
here (one ``get_frames_at`` per clip, on a decoder opened for the clip and closed after it), so no
decoder is reused after an unordered request.

On a GPU (``device="cuda"``) frames are decoded by NVDEC through torchcodec's NVDEC interface and returned
as a uint8 tensor on that GPU; a file NVDEC does not open (a codec it lacks, a torchcodec built without
CUDA) is decoded on the CPU instead (``cpu_by``: why), and the frames are moved to the GPU.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np
import torch

from pas_models.data.errors import BackendMissing, first_line
from pas_models.data.guarded import GuardedReader
from pas_models.data.pyav_reader import COUNTING, StreamIndex

log = logging.getLogger(__name__)
INSTALL = ("pip install torchcodec, with FFmpeg 4-8 where it can load it (apt-get install ffmpeg, or conda "
           "install ffmpeg)")


def torchcodec_trusted(index: StreamIndex) -> str | None:
    """None when torchcodec returns exact frames for this kind of file, else why not."""
    if index.mode == COUNTING:
        return f"torchcodec seeks by guessed timestamps here ({index.why})"
    return None


def torchcodec_status() -> tuple[str | None, str | None]:
    """(torchcodec's version, None) where it loads with an FFmpeg, else (None, why not)."""
    try:
        import torchcodec
    except ImportError as exc:
        return None, f"not installed ({first_line(exc)})"
    except Exception as exc:  # RuntimeError/OSError: it found no FFmpeg libraries it can load
        return None, f"installed, but it loads no FFmpeg ({first_line(exc)[:160]})"
    return str(getattr(torchcodec, "__version__", "?")), None


def _decoder_class() -> Any:
    version, why = torchcodec_status()
    if version is None:
        raise BackendMissing(f"torchcodec is {why}: {INSTALL}; or set `backend: pyav` in the dataset config")
    from torchcodec.decoders import VideoDecoder

    return VideoDecoder


def _cuda_interface() -> Any:
    """torchcodec's NVDEC interface (NVDEC driven directly, no FFmpeg built with CUDA needed): named "beta" in
    the torchcodec releases that introduced it, still accepted under that name by those that made it the
    default ("nvdec")."""
    from torchcodec import decoders

    if hasattr(decoders, "set_cuda_backend"):
        return decoders.set_cuda_backend("beta")
    return contextlib.nullcontext()


_cpu_reasons: set[str] = set()


class TorchcodecReader(GuardedReader):
    """torchcodec where it is exact; otherwise (``exact_by`` says why) the PyAV reader. ``device``: where
    torchcodec decodes ("cpu", or a CUDA device: frames come back as a tensor there)."""

    name = "torchcodec"

    def __init__(self, path: str, device: str = "cpu") -> None:
        self._decoder_class, self.device, self._dec = _decoder_class(), str(device), None
        self._asked = self.device
        # why a file asked on a GPU is decoded on the CPU: device is then "cpu" where NVDEC could not open it, and
        # stays the GPU where torchcodec falls back by itself (its frames still come back there)
        self.cpu_by: str | None = None
        super().__init__(path)

    def trusted(self, index: StreamIndex) -> str | None:
        return torchcodec_trusted(index)

    def _open(self, index: StreamIndex) -> None:
        if self.device != "cpu":
            try:
                with _cuda_interface():
                    self._dec = self._decoder_class(self.path, seek_mode="exact", dimension_order="NHWC",
                                                    device=self.device)
            except Exception as exc:  # NVDEC lacks the codec, or this torchcodec has no CUDA: decode on the CPU
                self.cpu_by = f"NVDEC cannot open it ({first_line(exc)[:160]})"
            else:  # torchcodec's own fallback: its CPU decodes, the frames still come back on the GPU
                fallback = getattr(self._dec, "cpu_fallback", None)
                if fallback:
                    self.cpu_by = f"torchcodec decodes it on the CPU ({str(fallback).strip()[:160]})"
            if self.cpu_by is not None and self.cpu_by not in _cpu_reasons:
                _cpu_reasons.add(self.cpu_by)
                log.warning("%s: decoded on the CPU: %s", self.path, self.cpu_by)
        if self._dec is None:
            self.device = "cpu"  # frames come back as an array; the caller moves them
            self._dec = self._decoder_class(self.path, seek_mode="exact", dimension_order="NHWC",
                                            num_ffmpeg_threads=1, device="cpu")
        self.num_frames = int(self._dec.metadata.num_frames or 0)
        # the stream's average rate, as the other readers (torchcodec's average_fps is frames / duration:
        # 30.001 for a 30 fps file)
        self.fps = index.fps

    def _read(self, idx: list[int]) -> Any:
        """uint8 RGB: the distinct frames asked once, in increasing order, then reordered; a numpy array when
        the reader decodes for the CPU, a tensor on the reader's GPU otherwise."""
        wanted = sorted(set(idx))
        batch = self._dec.get_frames_at(indices=wanted).data  # type: ignore[attr-defined]
        where = {i: k for k, i in enumerate(wanted)}
        order = [where[i] for i in idx]
        if self.device == "cpu":
            out: np.ndarray = batch.numpy()
            return out[order]
        return batch.to(self.device, non_blocking=True)[torch.tensor(order, device=self.device)]

    def _drop(self) -> None:
        self._dec = None

    def _reason(self, exc: BaseException) -> str:
        return first_line(exc)

    def _reopened(self) -> TorchcodecReader:
        return TorchcodecReader(self.path, self._asked)
