"""A fast decoding library's reader, guarded: the files it reads wrongly go to the exact PyAV reader.

decord and torchcodec are faster than pas's PyAV reader and exact on most files, not on all (measured in
benchmarks/bench_frame_exact.py). ``GuardedReader`` looks at the file's packet index first (one demux
pass, cached per process): where the library is not trusted on that kind of file (``trusted``), or where
its frame count differs from the index's, the PyAV reader reads the file (``exact_by`` says why). A decode
error names the first frame asked for that does not decode alone and FFmpeg's root cause.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pas_models.data.errors import VideoUnreadable, check_file, check_indices, failing_frames, first_failing
from pas_models.data.pyav_reader import PyAVReader, StreamIndex, diagnose, stream_index


class GuardedReader:
    """Subclasses name the library (``name``) and implement ``trusted``, ``_open``, ``_read``, ``_drop`` and
    ``_reason``; ``num_frames``, ``fps``, ``frames(indices)`` and ``close()`` are the reader's."""

    name = ""
    num_frames: int
    fps: float

    def __init__(self, path: str) -> None:
        check_file(path)
        self.path = path
        self._exact: PyAVReader | None = None
        index = stream_index(path)  # FFmpeg cannot demux it: unreadable whichever library asks
        self.exact_by = self.trusted(index)
        if self.exact_by is None:
            try:
                self._open(index)  # sets num_frames and fps
            except Exception as exc:
                raise VideoUnreadable(path, f"{self.name} cannot open it ({self._reason(exc)})") from exc
            if self.num_frames <= 0:
                raise VideoUnreadable(path, "no video frames")
            if self.num_frames != index.num_frames:
                self.exact_by = f"{self.name} counts {self.num_frames} frames, the packets {index.num_frames}"
                self._drop()
        if self.exact_by is not None:
            self._exact = PyAVReader(path)
            self.num_frames, self.fps = self._exact.num_frames, self._exact.fps

    def trusted(self, index: StreamIndex) -> str | None:
        """None where the library returns exact frames for this kind of file, else why not."""
        raise NotImplementedError

    def _open(self, index: StreamIndex) -> None:
        raise NotImplementedError

    def _read(self, idx: list[int]) -> np.ndarray:
        raise NotImplementedError

    def _drop(self) -> None:
        raise NotImplementedError

    def _reason(self, exc: BaseException) -> str:
        raise NotImplementedError

    def _reopened(self) -> GuardedReader:
        raise NotImplementedError

    @property
    def counts_from_start(self) -> bool:
        """True when every read decodes from the start of the file (the PyAV reader in counting mode)."""
        return self._exact is not None and self._exact.counts_from_start

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 RGB (N, H, W, 3), in the order asked (repeats allowed)."""
        if self._exact is not None:
            return self._exact.frames(indices)
        idx = check_indices(self.path, indices, self.num_frames)
        try:
            return self._read(idx)
        except Exception as exc:  # the root cause from FFmpeg's log, not the library's own text
            _, _, cause = diagnose(self.path, max(idx))
            first = first_failing(self._reopened, idx)
            raise VideoUnreadable(self.path, f"{self.name} cannot decode {failing_frames(first, idx, self.num_frames)}"
                                             f" ({cause or self._reason(exc)})") from exc

    def close(self) -> None:
        self._drop()
        if self._exact is not None:
            self._exact.close()
