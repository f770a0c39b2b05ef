"""Dataset checks: find unreadable videos, quickly or frame by frame, in parallel (re-encoding: prepare.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from pas_models.data.backends import VideoUnreadable, effective_backend, open_video
from pas_models.data.pyav_reader import diagnose


@dataclass(frozen=True)
class Probe:
    """What checking one video found: ``error`` (None: usable) and notes (read by another reader,
    damaged but decodable, ...)."""

    path: str
    error: str | None = None
    notes: tuple[str, ...] = ()


def probe(path: str, backend: str = "auto", deep: bool = False) -> Probe:
    """Check one video. Quick: the first, middle and last frame decode. Deep: every frame decodes
    through the dataset's reader (the first bad frame is named, with FFmpeg's root cause), and a
    sequential decode gives as many frames, without decoder errors (else a note: damaged, used)."""
    notes: list[str] = []
    try:
        reader = open_video(path, backend)
        try:
            exact_by = getattr(reader, "exact_by", None)
            if exact_by:
                notes.append(f"read by the exact PyAV reader: {exact_by}")
            n = reader.num_frames
            if not deep:
                reader.frames(sorted({0, n // 2, n - 1}))
                return Probe(path, None, tuple(notes))
            # a reader that decodes from the start (AVI with B-frames) is the sequential decode below
            counting = bool(getattr(reader, "counts_from_start", False))
            bad = None if counting else _first_bad_frame(reader, n, lambda: open_video(path, backend))
        finally:
            reader.close()
    except VideoUnreadable as exc:
        return Probe(path, exc.reason, tuple(notes))
    decoded, first_error, cause = diagnose(path)
    if bad is not None:
        frame, reason = bad
        if decoded < n:  # frame i is the i-th of a sequential PyAV decode (single-threaded, deterministic): where
            frame = decoded  # that stops is the first bad frame (decord named 135 or 138 of the same file)
        root = cause if cause and first_error >= 0 else reason
        return Probe(path, f"frame {frame} of {n} does not decode ({root}); frames 0-{frame - 1} do",
                     tuple(notes))
    if decoded < n and counting:
        return Probe(path, f"frame {decoded} of {n} does not decode ({cause or 'the decoder stops'}); "
                           f"frames 0-{decoded - 1} do", tuple(notes))
    if decoded != n:
        return Probe(path, f"a sequential decode gives {decoded} frames, the reader counts {n}", tuple(notes))
    if cause:
        notes.append(f"damaged but decodable: decoder errors from about frame {first_error} ({cause})")
    return Probe(path, None, tuple(notes))


def _first_bad_frame(reader, n: int, reopen, chunk: int = 32) -> tuple[int, str] | None:  # type: ignore[no-untyped-def]
    """The first frame that does not decode through ``reader`` and why, or None. Within a chunk that
    failed, each frame is read by a fresh reader (``reopen()``): a decoder that has just failed may be
    left in a state that fails earlier frames too (seen with decord: frame 135 or 138 of the same file)."""
    for start in range(0, n, chunk):
        span = list(range(start, min(start + chunk, n)))
        try:
            reader.frames(span)
        except VideoUnreadable:
            for i in span:
                fresh = reopen()
                try:
                    fresh.frames([i])
                except VideoUnreadable as exc:
                    return i, exc.reason
                finally:
                    fresh.close()
    return None


def _probe_job(args: tuple[str, str, bool]) -> Probe:
    return probe(*args)


def scan(paths: Iterable[str], backend: str = "auto", workers: int | None = None,
         progress: Callable[[int], None] | None = None, deep: bool = False) -> list[Probe]:
    """Check ``paths`` with ``workers`` processes; one Probe per path, in order."""
    backend = effective_backend(backend)  # auto resolved once here, not in every pool worker
    jobs = [(p, backend, deep) for p in paths]
    out: list[Probe] = []
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for result in pool.map(_probe_job, jobs, chunksize=1 if deep else 8):
            out.append(result)
            if progress:
                progress(1)
    return out


def _count_job(args: tuple[str, str]) -> int | None:
    path, backend = args
    try:
        reader = open_video(path, backend)
    except VideoUnreadable:
        return None
    try:
        return int(reader.num_frames)
    finally:
        reader.close()


def frame_counts(paths: Iterable[str], backend: str = "auto", workers: int | None = None,
                 progress: Callable[[int], None] | None = None) -> list[int | None]:
    """The frame count of each video (its reader's, from the container: nothing is decoded); None for one that
    does not open. ``workers`` processes, in order."""
    backend = effective_backend(backend)
    jobs = [(p, backend) for p in paths]
    out: list[int | None] = []
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for n in pool.map(_count_job, jobs, chunksize=16):
            out.append(n)
            if progress:
                progress(1)
    return out
