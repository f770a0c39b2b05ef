"""Parsing ``sacct -P -n`` output (pure: tests feed it captured text).

Rows are ``JobID|JobName|State|ExitCode|Reason``. Array tasks are ``123_4``; job steps
(``123_4.batch``, ``123_4.extern``, ``123_4.0``) are skipped; a pending array shows as
``123_[0-3,5%2]`` and is expanded to one entry per task. ``CANCELLED by 1000`` is CANCELLED.
A requeued job appears several times: the last row wins. ``Reason`` is kept for pending jobs only
(sacct keeps the last pending reason on finished jobs, e.g. FAILED with JobArrayTaskLimit).
"""

from __future__ import annotations

import re

from pas_orchestrator.executors.base import JobStatus

SACCT_FORMAT = "JobID,JobName,State,ExitCode,Reason"
_RANGE = re.compile(r"^(\d+)_\[([^\]]+)\]$")


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


def parse_sacct(text: str) -> dict[str, tuple[str, JobStatus]]:
    """job id -> (job name, status) for every job and array task in ``text``."""
    out: dict[str, tuple[str, JobStatus]] = {}
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
        for jid in _expand(job_id):
            out[jid] = (name, JobStatus(state, reason))
    return out


def array_index(job_id: str) -> int | None:
    """``123_4`` -> 4; a plain job id -> None."""
    _, sep, idx = job_id.partition("_")
    return int(idx) if sep and idx.isdigit() else None
