"""What a video reader raises, and the checks every reader makes before decoding."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

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


def first_failing(reopen: Callable[[], Any], frames: Sequence[int]) -> int | None:
    """The first of ``frames`` that does not decode alone, each read through a fresh reader (``reopen()``: a
    decoder that has just failed may fail frames that decode); None when each decodes alone."""
    asked = sorted(set(frames))
    if len(asked) == 1:
        return asked[0]
    for i in asked:
        fresh = reopen()
        try:
            fresh.frames([i])
        except VideoUnreadable:
            return i
        finally:
            fresh.close()
    return None


def failing_frames(first: int | None, frames: Sequence[int], num_frames: int) -> str:
    """``frame F of N`` (the first asked for that fails), or the frames asked when each decodes alone."""
    if first is not None:
        return f"frame {first} of {num_frames}"
    asked = sorted(set(frames))
    return f"frames {asked[:3]}{'...' if len(asked) > 3 else ''} of {num_frames} together (each decodes alone)"
