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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pas_models.data.errors import BackendMissing, first_line
from pas_models.data.guarded import GuardedReader
from pas_models.data.pyav_reader import COUNTING, StreamIndex

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


class TorchcodecReader(GuardedReader):
    """torchcodec where it is exact; otherwise (``exact_by`` says why) the PyAV reader."""

    name = "torchcodec"

    def __init__(self, path: str, device: str = "cpu") -> None:
        self._decoder_class, self.device, self._dec = _decoder_class(), device, None
        super().__init__(path)

    def trusted(self, index: StreamIndex) -> str | None:
        return torchcodec_trusted(index)

    def _open(self, index: StreamIndex) -> None:
        self._dec = self._decoder_class(self.path, seek_mode="exact", dimension_order="NHWC", num_ffmpeg_threads=1,
                                        device=self.device)
        self.num_frames = int(self._dec.metadata.num_frames or 0)
        # the stream's average rate, as the other readers (torchcodec's average_fps is frames / duration:
        # 30.001 for a 30 fps file)
        self.fps = index.fps

    def _read(self, idx: list[int]) -> np.ndarray:
        """uint8 RGB on the CPU: the distinct frames asked once, in increasing order, then reordered."""
        wanted = sorted(set(idx))
        batch = self._dec.get_frames_at(indices=wanted).data  # type: ignore[attr-defined]
        where = {i: k for k, i in enumerate(wanted)}
        out: np.ndarray = batch.cpu().numpy()
        return out[[where[i] for i in idx]]

    def _drop(self) -> None:
        self._dec = None

    def _reason(self, exc: BaseException) -> str:
        return first_line(exc)

    def _reopened(self) -> TorchcodecReader:
        return TorchcodecReader(self.path, self.device)
