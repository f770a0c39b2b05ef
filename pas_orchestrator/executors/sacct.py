"""Parsing ``sacct -P -n -X -D`` output (pure: tests feed it captured text).

Rows are ``JobID|JobName|State|ExitCode|Reason|NodeList|ElapsedRaw|AllocTRES`` (the fields after State
optional). Array tasks are
``123_4``; job steps (``123_4.batch``, ``123_4.extern``, ``123_4.0``) are skipped; a pending array shows
as ``123_[0-3,5%2]`` and is expanded to one entry per task. ``CANCELLED by 1000`` is CANCELLED.

``-D`` lists every run of a requeued job in order (a NODE_FAIL row, then the run on another node; a
REQUEUED row per submitit requeue): the last row is the job's state, the earlier ones its history. A
pending range row only stands for the tasks that have no row of their own (a task that started is
listed both in the range and alone for a moment; that is not a second run).
``Reason`` is kept for pending jobs only (sacct keeps the last pending reason on finished jobs, e.g.
FAILED with JobArrayTaskLimit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class JobStatus:
    """One job as SLURM reports it (its own vocabulary; ``slurm.to_outcome`` translates it for pas)."""

    state: str  # SLURM's state name, or UNKNOWN (not found yet)
    reason: str | None = None
    node: str | None = None  # where it runs / ran (SLURM NodeList)
    history: tuple[str, ...] = ()  # earlier runs of a requeued job, oldest first ("NODE_FAIL on node2")
    # what it used, every run of it together: hours x allocated GPUs (GPU-h), or x CPUs when it has no GPU
    compute_hours: float | None = None
    compute_unit: str | None = None  # GPU-h | CPU-h


def tres_count(tres: str, kind: str) -> int:
    """How many ``kind`` (``gres/gpu``, ``cpu``) an AllocTRES string allocates: ``cpu=8,gres/gpu=4,node=1``,
    ``gres/gpu:v100=4`` (typed GPUs are counted once: the untyped total when SLURM lists both)."""
    total, typed = None, 0
    for part in tres.split(","):
        key, _, value = part.partition("=")
        if not value.isdigit():
            continue
        if key == kind:
            total = int(value)
        elif key.startswith(kind + ":"):
            typed += int(value)
    return total if total is not None else typed


def _compute(rows: list[tuple[float, str]]) -> tuple[float | None, str | None]:
    """(hours, unit) of a job's runs, each (elapsed seconds, AllocTRES)."""
    if not rows or all(not tres for _, tres in rows):
        return None, None
    gpus = [tres_count(t, "gres/gpu") for _, t in rows]
    if any(gpus):
        return sum(e * g for (e, _), g in zip(rows, gpus, strict=True)) / 3600, "GPU-h"
    return sum(e * tres_count(t, "cpu") for e, t in rows) / 3600, "CPU-h"


SACCT_FORMAT = "JobID,JobName,State,ExitCode,Reason,NodeList,ElapsedRaw,AllocTRES"
_RANGE = re.compile(r"^(\d+)_\[([^\]]+)\]$")
_NO_NODE = ("", "None assigned", "(null)")


def _expand(job_id: str) -> list[str]:
    m = _RANGE.match(job_id)
    if not m:
        return [job_id]
    base, spec = m.group(1), m.group(2).split("%")[0]
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += [f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def run_label(state: str, node: str | None) -> str:
    """One earlier run of a requeued job: ``NODE_FAIL on node2``."""
    return f"{state} on {node}" if node else state


def parse_sacct(text: str) -> dict[str, tuple[str, JobStatus]]:
    """job id -> (job name, status) for every job and array task in ``text``."""
    runs: dict[str, list[tuple[str, str, str | None, str | None, float, str]]] = {}  # rows of each job, in order
    waiting: dict[str, tuple[str, str, str | None, str | None, float, str]] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 3 or not fields[0] or "." in fields[0]:
            continue
        job_id, name, state = fields[0], fields[1], fields[2].split()[0] if fields[2].strip() else "UNKNOWN"
        exit_code = fields[3] if len(fields) > 3 else ""
        # sacct's Reason is the last *pending* reason: it means something only while pending
        reason = fields[4] if state == "PENDING" and len(fields) > 4 and fields[4] not in ("", "None") else None
        if state in ("FAILED", "OUT_OF_MEMORY", "NODE_FAIL") and exit_code:
            reason = f"exit code {exit_code}"
        node = fields[5] if len(fields) > 5 and fields[5] not in _NO_NODE else None
        elapsed = float(fields[6]) if len(fields) > 6 and fields[6].strip().isdigit() else 0.0
        tres = fields[7].strip() if len(fields) > 7 else ""
        if "[" in job_id:  # the array's pending remainder: for tasks that have no row of their own
            for jid in _expand(job_id):
                waiting[jid] = (name, state, reason, node, 0.0, "")
        else:
            runs.setdefault(job_id, []).append((name, state, reason, node, elapsed, tres))
    for jid, row in waiting.items():
        if jid not in runs:
            runs[jid] = [row]
    out: dict[str, tuple[str, JobStatus]] = {}
    for jid, rows in runs.items():
        name, state, reason, node, _, _ = rows[-1]
        history = tuple(run_label(s, n) for _, s, _, n, _, _ in rows[:-1])
        hours, unit = _compute([(e, t) for *_, e, t in rows])
        out[jid] = (name, JobStatus(state, reason, node=node, history=history, compute_hours=hours,
                                    compute_unit=unit))
    return out


def array_index(job_id: str) -> int | None:
    """``123_4`` -> 4; a plain job id -> None."""
    _, sep, idx = job_id.partition("_")
    return int(idx) if sep and idx.isdigit() else None
