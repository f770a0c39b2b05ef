"""Parsing ``sacct -P -n -X -D`` output (pure: tests feed it captured text).

Rows are ``JobID|JobName|State|ExitCode|Reason|NodeList`` (the last field optional). Array tasks are
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


SACCT_FORMAT = "JobID,JobName,State,ExitCode,Reason,NodeList"
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
    runs: dict[str, list[tuple[str, str, str | None, str | None]]] = {}  # rows of each job, in order
    waiting: dict[str, tuple[str, str, str | None, str | None]] = {}
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
        if "[" in job_id:  # the array's pending remainder: for tasks that have no row of their own
            for jid in _expand(job_id):
                waiting[jid] = (name, state, reason, node)
        else:
            runs.setdefault(job_id, []).append((name, state, reason, node))
    for jid, row in waiting.items():
        if jid not in runs:
            runs[jid] = [row]
    out: dict[str, tuple[str, JobStatus]] = {}
    for jid, rows in runs.items():
        name, state, reason, node = rows[-1]
        history = tuple(run_label(s, n) for _, s, _, n in rows[:-1])
        out[jid] = (name, JobStatus(state, reason, node=node, history=history))
    return out


def array_index(job_id: str) -> int | None:
    """``123_4`` -> 4; a plain job id -> None."""
    _, sep, idx = job_id.partition("_")
    return int(idx) if sep and idx.isdigit() else None
