"""Video decoding backends: decord (default) and PyAV (where decord has no wheels, e.g. Power9).

Both expose the same small reader: ``num_frames``, ``fps``, ``frames(indices)``
returning uint8 RGB ``(N, H, W, 3)`` in the order asked, and ``close()``. Any
failure to open or decode a file becomes ``VideoUnreadable(path, reason)``.

decord keeps decoding ahead in a background thread after ``get_batch`` and its
memory grows over long runs (dmlc/decord#197, #208); the reader therefore
seeks back to frame 0 after every batch (the workaround from those issues) and
is closed after each clip (one reader per clip, never cached).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from pas_models.errors import PasError, UnknownNameError


class VideoUnreadable(PasError):
    """A video file cannot be opened or decoded; ``reason`` says why."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


class VideoReader(Protocol):
    num_frames: int
    fps: float

    def frames(self, indices: Sequence[int]) -> np.ndarray: ...

    def close(self) -> None: ...


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoUnreadable(path, "file not found")
    if not os.path.isfile(path):
        raise VideoUnreadable(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoUnreadable(path, "empty file (0 bytes)")


def _check_indices(path: str, indices: Sequence[int], num_frames: int) -> list[int]:
    out = [int(i) for i in indices]
    bad = [i for i in out if not 0 <= i < num_frames]
    if bad:  # sampling never asks for these; a reader must not silently clamp
        raise IndexError(f"{path}: frame indices {bad[:5]} outside [0, {num_frames})")
    return out


class BackendMissing(PasError):
    """The configured decoding backend is not installed here."""


class DecordReader:
    def __init__(self, path: str, num_threads: int = 1) -> None:
        _check_file(path)
        try:
            import decord
        except ImportError as exc:
            raise BackendMissing("decord is not installed (it has no wheels for this platform, e.g. "
                                 "Power9); set `backend: pyav` in the dataset config") from exc

        self.path = path
        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
            self.num_frames = len(self._vr)
            self.fps = float(self._vr.get_avg_fps())
        except Exception as exc:  # decord raises DECORDError/RuntimeError with ffmpeg's text
            raise VideoUnreadable(path, f"decord cannot open it ({_first_line(exc)})") from exc
        if self.num_frames <= 0:
            raise VideoUnreadable(path, "no video frames")

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        idx = _check_indices(self.path, indices, self.num_frames)
        try:
            batch = self._vr.get_batch(idx).asnumpy()
            self._vr.seek(0)  # stop read-ahead: keeps RSS flat (dmlc/decord#197, #208)
        except Exception as exc:
            raise VideoUnreadable(self.path, f"decord cannot decode frames ({_first_line(exc)})") from exc
        return batch

    def close(self) -> None:
        self._vr = None


class PyAVReader:
    """Decodes sequentially from the last keyframe before the first wanted frame.

    Frame i is the i-th decoded frame in presentation order (as decord counts);
    seeking is by timestamp, then frames are counted from their pts.
    """

    def __init__(self, path: str) -> None:
        _check_file(path)
        import av

        self.path = path
        try:
            self._container = av.open(path)
            self._stream = self._container.streams.video[0]
        except Exception as exc:
            raise VideoUnreadable(path, f"PyAV cannot open it ({_first_line(exc)})") from exc
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self._pts = self._frame_pts()
        self.num_frames = len(self._pts)
        if self.num_frames == 0:
            raise VideoUnreadable(path, "no decodable video frames")

    def _frame_pts(self) -> list[int]:
        """Presentation timestamps of every frame, from the packets (no decoding)."""
        try:
            pts = [p.pts for p in self._container.demux(self._stream) if p.pts is not None and p.size > 0]
            self._container.seek(0, stream=self._stream)
        except Exception as exc:
            raise VideoUnreadable(self.path, f"PyAV cannot read packets ({_first_line(exc)})") from exc
        return sorted(pts)

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        idx = _check_indices(self.path, indices, self.num_frames)
        wanted = {self._pts[i]: i for i in set(idx)}
        got: dict[int, np.ndarray] = {}
        last = max(wanted)
        try:
            self._container.seek(self._pts[min(idx)], stream=self._stream, backward=True, any_frame=False)
            for frame in self._container.decode(self._stream):
                if frame.pts in wanted:
                    got[wanted[frame.pts]] = frame.to_ndarray(format="rgb24")
                if frame.pts is not None and frame.pts >= last:
                    break
        except Exception as exc:
            raise VideoUnreadable(self.path, f"PyAV cannot decode frames ({_first_line(exc)})") from exc
        missing = sorted(set(idx) - set(got))
        if missing:
            raise VideoUnreadable(self.path, f"PyAV could not decode frames {missing[:5]} (truncated file?)")
        return np.stack([got[i] for i in idx])

    def close(self) -> None:
        self._container.close()


BACKENDS = ("decord", "pyav")


def open_video(path: str | os.PathLike[str], backend: str = "decord") -> VideoReader:
    """A reader for ``path``; raises VideoUnreadable if it cannot be opened."""
    if backend == "decord":
        return DecordReader(os.fspath(path))
    if backend == "pyav":
        return PyAVReader(os.fspath(path))
    raise UnknownNameError("video backend", backend, BACKENDS)


def read_frames(path: str | os.PathLike[str], indices: Sequence[int], backend: str = "decord") -> np.ndarray:
    """Open, decode ``indices`` (uint8 RGB, (N, H, W, 3)) and close."""
    reader = open_video(path, backend)
    try:
        return reader.frames(indices)
    finally:
        reader.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
