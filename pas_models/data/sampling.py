"""Which source frames a clip uses: pure functions, no decoding.

A clip starts at source frame ``start``; a spec's input tensor uses source
frames ``start + spec.source_frame_offsets()``. With a teacher, both views share
the start (the paper: the teacher sees the full clip, the student its reduced
view of the same clip), the union of their frames is decoded once and each
view is cut from it.

Short videos (fewer frames than the clip spans): indices past the end repeat
the last frame (PySlowFast's rule); a clip never indexes out of range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pas_models.spec import ArchSpec

if TYPE_CHECKING:  # only a type here: the rng is the caller's
    import numpy as np


def clip_span(spec: ArchSpec) -> int:
    """Source frames from the first to the last frame the spec's input uses, inclusive."""
    return spec.source_frame_offsets()[-1] + 1


def random_starts(num_frames: int, span: int, clips: int, rng: np.random.Generator) -> list[int]:
    """``clips`` random start frames (temporal jitter), each clip inside the video when it fits."""
    return [int(s) for s in rng.integers(0, max(num_frames - span, 0) + 1, size=clips)]


def uniform_starts(num_frames: int, span: int, clips: int) -> list[int]:
    """``clips`` start frames spread uniformly from the first to the last position (one clip: centred)."""
    room = max(num_frames - span, 0)
    if clips == 1:
        return [room // 2]
    return [round(room * i / (clips - 1)) for i in range(clips)]


@dataclass(frozen=True)
class ViewPlan:
    """decode: sorted unique source frames (one get_batch); teacher / student: positions into decode."""

    decode: tuple[int, ...]
    student: tuple[int, ...]
    teacher: tuple[int, ...] | None


def plan_views(student: ArchSpec, teacher: ArchSpec | None, start: int, num_frames: int) -> ViewPlan:
    """Frames to decode for one clip starting at ``start`` of a ``num_frames``-frame video."""
    def sources(spec: ArchSpec) -> list[int]:
        return [min(start + off, num_frames - 1) for off in spec.source_frame_offsets()]

    s_src = sources(student)
    t_src = sources(teacher) if teacher is not None else []
    decode = tuple(sorted(set(s_src) | set(t_src)))
    pos = {frame: i for i, frame in enumerate(decode)}
    return ViewPlan(decode=decode, student=tuple(pos[f] for f in s_src),
                    teacher=tuple(pos[f] for f in t_src) if teacher is not None else None)


def views_span(student: ArchSpec, teacher: ArchSpec | None) -> int:
    """Span that the clip start must leave room for (the longer of the two views)."""
    return max(clip_span(student), clip_span(teacher) if teacher is not None else 0)
