"""Dataset maintenance: find unreadable videos, re-encode videos to a short side. Both parallel."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from pas_models.data.backends import VideoUnreadable, open_video
from pas_models.data.formats import VIDEO_EXTENSIONS
from pas_models.data.pyav_reader import diagnose


@dataclass(frozen=True)
class Probe:
    """What checking one video found: ``error`` (None: usable) and notes (read by another reader,
    damaged but decodable, ...)."""

    path: str
    error: str | None = None
    notes: tuple[str, ...] = ()


def probe(path: str, backend: str = "decord", deep: bool = False) -> Probe:
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
            bad = _first_bad_frame(reader, n)
        finally:
            reader.close()
    except VideoUnreadable as exc:
        return Probe(path, exc.reason, tuple(notes))
    decoded, first_error, cause = diagnose(path)
    if bad is not None:
        frame, reason = bad
        root = cause if cause and first_error >= 0 else reason
        return Probe(path, f"frame {frame} of {n} does not decode ({root}); frames 0-{frame - 1} do",
                     tuple(notes))
    if decoded != n:
        return Probe(path, f"a sequential decode gives {decoded} frames, the reader counts {n}", tuple(notes))
    if cause:
        notes.append(f"damaged but decodable: decoder errors from frame {first_error} ({cause})")
    return Probe(path, None, tuple(notes))


def _first_bad_frame(reader, n: int, chunk: int = 32) -> tuple[int, str] | None:  # type: ignore[no-untyped-def]
    """The first frame that does not decode through ``reader`` and why, or None."""
    for start in range(0, n, chunk):
        span = list(range(start, min(start + chunk, n)))
        try:
            reader.frames(span)
        except VideoUnreadable:
            for i in span:
                try:
                    reader.frames([i])
                except VideoUnreadable as exc:
                    return i, exc.reason
    return None


def _probe_job(args: tuple[str, str, bool]) -> Probe:
    return probe(*args)


def scan(paths: Iterable[str], backend: str = "decord", workers: int | None = None,
         progress: Callable[[int], None] | None = None, deep: bool = False) -> list[Probe]:
    """Check ``paths`` with ``workers`` processes; one Probe per path, in order."""
    jobs = [(p, backend, deep) for p in paths]
    out: list[Probe] = []
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for result in pool.map(_probe_job, jobs, chunksize=1 if deep else 8):
            out.append(result)
            if progress:
                progress(1)
    return out


@dataclass(frozen=True)
class PrepareJob:
    src: str
    dst: str
    short_side: int
    keyint: int


def even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def reencode(job: PrepareJob) -> str | None:
    """Re-encode one video to H.264 with its short side = job.short_side (never upscaled);
    None on success, else the reason. Written to ``dst.part`` and renamed when complete."""
    import av

    dst = Path(job.dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    try:
        with av.open(job.src) as src:
            stream = src.streams.video[0]
            stream.thread_type = "AUTO"
            h, w = stream.codec_context.height, stream.codec_context.width
            scale = min(1.0, job.short_side / min(h, w))
            out_h, out_w = even(h * scale), even(w * scale)
            rate = stream.average_rate or stream.guessed_rate or 30
            with av.open(str(tmp), "w", format="mp4") as out:
                enc = out.add_stream("libx264", rate=rate)
                enc.width, enc.height, enc.pix_fmt = out_w, out_h, "yuv420p"
                enc.options = {"crf": "20", "preset": "veryfast", "g": str(job.keyint)}
                time_base = Fraction(1) / Fraction(rate)
                for i, frame in enumerate(src.decode(stream)):
                    frame = frame.reformat(width=out_w, height=out_h, format="yuv420p")
                    frame.pts, frame.time_base = i, time_base  # constant frame rate, renumbered
                    out.mux(enc.encode(frame))
                out.mux(enc.encode())
    except Exception as exc:  # any decode/encode failure is a per-file result, not a crash
        tmp.unlink(missing_ok=True)
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    tmp.replace(dst)
    return None


def plan_prepare(src_root: Path, dst_root: Path, short_side: int, keyint: int) -> tuple[list[PrepareJob], int]:
    """Jobs for every video under src_root whose output is missing; also the count already done."""
    jobs, done = [], 0
    for dirpath, _, files in os.walk(src_root):
        for f in sorted(files):
            if not f.lower().endswith(VIDEO_EXTENSIONS):
                continue
            src = Path(dirpath) / f
            dst = (dst_root / src.relative_to(src_root)).with_suffix(".mp4")
            if dst.exists():
                done += 1
            else:
                jobs.append(PrepareJob(str(src), str(dst), short_side, keyint))
    return jobs, done


def prepare(jobs: list[PrepareJob], workers: int | None = None,
            progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """Run the re-encoding jobs in parallel; returns failures: source path -> reason."""
    failed: dict[str, str] = {}
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for job, reason in zip(jobs, pool.map(reencode, jobs), strict=True):
            if reason is not None:
                failed[job.src] = reason
            if progress:
                progress(1)
    return failed
