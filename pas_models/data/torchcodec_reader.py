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

from collections.abc import Sequence
from typing import Any

import numpy as np

from pas_models.data.errors import (
    BackendMissing,
    VideoUnreadable,
    check_file,
    check_indices,
    failing_frames,
    first_failing,
    first_line,
)
from pas_models.data.pyav_reader import COUNTING, PyAVReader, StreamIndex, diagnose, stream_index

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


class TorchcodecReader:
    """torchcodec where it is exact; otherwise (``exact_by`` says why) the PyAV reader."""

    def __init__(self, path: str, device: str = "cpu") -> None:
        check_file(path)
        decoder_class = _decoder_class()
        self.path, self.device = path, device
        self._exact: PyAVReader | None = None
        self._dec: Any = None
        index = stream_index(path)  # FFmpeg cannot demux it: unreadable whichever library asks
        self.exact_by = torchcodec_trusted(index)
        if self.exact_by is None:
            try:
                self._dec = decoder_class(path, seek_mode="exact", dimension_order="NHWC", num_ffmpeg_threads=1,
                                          device=device)
                self.num_frames = int(self._dec.metadata.num_frames or 0)
                self.fps = index.fps  # the stream's average rate, as the other readers (torchcodec's own
                # average_fps is frames / duration: 30.001 for a 30 fps file)
            except Exception as exc:
                raise VideoUnreadable(path, f"torchcodec cannot open it ({first_line(exc)})") from exc
            if self.num_frames != index.num_frames:
                self.exact_by = f"torchcodec counts {self.num_frames} frames, the packets {index.num_frames}"
                self._dec = None
        if self.exact_by is not None:
            self._exact = PyAVReader(path)
            self.num_frames, self.fps = self._exact.num_frames, self._exact.fps

    @property
    def counts_from_start(self) -> bool:
        return self._exact is not None and self._exact.counts_from_start

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 RGB (N, H, W, 3) on the CPU, in the order asked (repeats allowed)."""
        if self._exact is not None:
            return self._exact.frames(indices)
        idx = check_indices(self.path, indices, self.num_frames)
        wanted = sorted(set(idx))
        try:
            batch = self._dec.get_frames_at(indices=wanted).data
        except Exception as exc:  # the root cause from FFmpeg's log
            _, _, cause = diagnose(self.path, max(idx))
            first = first_failing(lambda: TorchcodecReader(self.path, self.device), idx)
            raise VideoUnreadable(self.path, f"torchcodec cannot decode {failing_frames(first, idx, self.num_frames)}"
                                             f" ({cause or first_line(exc)})") from exc
        where = {i: k for k, i in enumerate(wanted)}
        out: np.ndarray = batch.cpu().numpy()
        return out[[where[i] for i in idx]]

    def close(self) -> None:
        self._dec = None
        if self._exact is not None:
            self._exact.close()
