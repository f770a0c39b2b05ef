"""Video decoding backends: torchcodec, decord and PyAV; ``auto`` (the default) picks the first that loads here.

Each exposes the same small reader: ``num_frames``, ``fps``, ``frames(indices)``
returning uint8 RGB ``(N, H, W, 3)`` in the order asked, and ``close()``. Any
failure to open or decode a file becomes ``VideoUnreadable(path, reason)``.

Frame i is the same for every backend: the i-th frame of a sequential decode from the start,
rotation applied (see ``pyav_reader``). decord is fast but returns other frames than
that on some valid files (AVI with B-frames, open-GOP H.264); ``DecordReader`` looks
at the file's packet index first (one demux pass, cached per process) and hands such
files to the exact PyAV reader (``exact_by``: why). A frame count that differs
between decord and the index does the same.

torchcodec (``torchcodec_reader``) is guarded the same way, for the files it reads wrongly (AVI with
B-frames).

The environment variable ``PAS_VIDEO_BACKEND=pyav`` makes every dataset use PyAV,
whatever its config says: how the test suite runs the Power9 path where decord exists.

decord keeps decoding ahead in a background thread after ``get_batch`` and its
memory grows over long runs (dmlc/decord#197, #208); the reader therefore
seeks back to frame 0 after every batch (the workaround from those issues) and
is closed after each clip (one reader per clip, never cached).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from pas_models.data.errors import (
    BackendMissing,
    VideoUnreadable,
    first_line,
)
from pas_models.data.formats import BACKENDS, READERS
from pas_models.data.guarded import GuardedReader
from pas_models.data.pyav_reader import PyAVReader, StreamIndex, decord_trusted
from pas_models.data.torchcodec_reader import TorchcodecReader
from pas_models.errors import UnknownNameError

__all__ = ["BACKENDS", "READERS", "BackendMissing", "DecordReader", "PyAVReader", "TorchcodecReader", "VideoReader",
           "VideoUnreadable",
           "effective_backend", "open_video", "read_frames"]

FORCE_ENV = "PAS_VIDEO_BACKEND"


class VideoReader(Protocol):
    num_frames: int
    fps: float

    def frames(self, indices: Sequence[int]) -> np.ndarray: ...

    def close(self) -> None: ...


def decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


class DecordReader(GuardedReader):
    """decord where it is exact; otherwise (``exact_by`` says why) the PyAV reader."""

    name = "decord"

    def __init__(self, path: str, num_threads: int = 1) -> None:
        try:
            import decord
        except ImportError as exc:
            raise BackendMissing("decord is not installed (it has no wheels for this platform, e.g. "
                                 "Power9); set `backend: pyav` in the dataset config") from exc
        decord.logging.set_level(decord.logging.QUIET)  # its FFmpeg's log; failures carry their root cause
        self._decord, self._threads, self._vr = decord, num_threads, None
        super().__init__(path)

    def trusted(self, index: StreamIndex) -> str | None:
        return decord_trusted(index)

    def _open(self, index: StreamIndex) -> None:
        self._vr = self._decord.VideoReader(self.path, ctx=self._decord.cpu(0), num_threads=self._threads)
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps())

    def _read(self, idx: list[int]) -> np.ndarray:
        batch = self._vr.get_batch(idx).asnumpy()  # type: ignore[attr-defined]
        self._vr.seek(0)  # type: ignore[attr-defined]  # stop read-ahead (dmlc/decord#197, #208)
        return batch  # type: ignore[no-any-return]

    def _drop(self) -> None:
        self._vr = None

    def _reason(self, exc: BaseException) -> str:
        return decord_reason(exc)  # decord raises DECORDError/RuntimeError with FFmpeg's text in its assertion

    def _reopened(self) -> DecordReader:
        return DecordReader(self.path, self._threads)


_DECORD_ERROR = re.compile(r"ERROR was (.+?)(?:\s*$|\n)")


def decord_reason(exc: BaseException) -> str:
    """The root cause in a decord error: FFmpeg's message ("ERROR was ..."), not its assertion text."""
    text = str(exc)
    m = _DECORD_ERROR.search(text)
    if m:
        return m.group(1).strip()
    for line in text.splitlines():  # "[12:00:00] /src/...cc:123: Check failed: ..." -> the check
        line = re.sub(r"^\[[0-9:]+\]\s*\S+:\d+:\s*", "", line.strip())
        if line and not line.startswith("Stack trace"):
            return line[:200]
    return first_line(exc)


def effective_backend(backend: str) -> str:
    """The reader that decodes for ``backend`` here: PAS_VIDEO_BACKEND's when set (for every dataset), and auto
    resolved (``auto_backend``)."""
    forced = os.environ.get(FORCE_ENV, "").strip()
    if forced:
        if forced not in BACKENDS:
            raise UnknownNameError(f"video backend (from ${FORCE_ENV})", forced, BACKENDS)
        backend = forced
    elif backend not in BACKENDS:
        raise UnknownNameError("video backend", backend, BACKENDS)
    return auto_backend() if backend == "auto" else backend


_auto: list[str] = []


def auto_backend() -> str:
    """torchcodec where it loads (the fastest here, exact where it reads), else decord, else PyAV (Power9)."""
    if not _auto:
        from pas_models.data.torchcodec_reader import torchcodec_status

        _auto.append("torchcodec" if torchcodec_status()[0] is not None else
                     "decord" if decord_available() else "pyav")
    return _auto[0]


def open_video(path: str | os.PathLike[str], backend: str = "auto", device: str = "cpu") -> VideoReader:
    """A reader for ``path``; raises VideoUnreadable if it cannot be opened. ``device``: where torchcodec
    decodes (a CUDA device: its frames come back as a tensor there); the other readers decode on the CPU."""
    backend = effective_backend(backend)
    if backend == "decord":
        return DecordReader(os.fspath(path))
    if backend == "torchcodec":
        return TorchcodecReader(os.fspath(path), device)
    return PyAVReader(os.fspath(path))


def read_frames(path: str | os.PathLike[str], indices: Sequence[int], backend: str = "auto") -> np.ndarray:
    """Open, decode ``indices`` (uint8 RGB, (N, H, W, 3)) and close."""
    reader = open_video(path, backend)
    try:
        return reader.frames(indices)
    finally:
        reader.close()
