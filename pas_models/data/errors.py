"""What a video reader raises, and the checks every reader makes before decoding."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pas_models.errors import PasError


class VideoUnreadable(PasError):
    """A video file cannot be opened or decoded; ``reason`` says why."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):  # type: ignore[no-untyped-def]  # crosses DataLoader worker processes intact
        return (type(self), (self.path, self.reason))


class BackendMissing(PasError):
    """The configured decoding backend is not installed here."""


def check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoUnreadable(path, "file not found")
    if not os.path.isfile(path):
        raise VideoUnreadable(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoUnreadable(path, "empty file (0 bytes)")


def check_indices(path: str, indices: Sequence[int], num_frames: int) -> list[int]:
    out = [int(i) for i in indices]
    if not out:
        raise IndexError(f"{path}: no frame indices asked for")
    bad = [i for i in out if not 0 <= i < num_frames]
    if bad:  # sampling never asks for these; a reader must not silently clamp
        raise IndexError(f"{path}: frame indices {bad[:5]} outside [0, {num_frames})")
    return out


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
