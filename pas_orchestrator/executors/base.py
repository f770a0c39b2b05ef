"""The executor interface the controller shell uses: submit, observe (typed ``JobOutcome``s: the
scheduler's own vocabulary stays in the executor), find again, cancel, and what it takes at once."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pas_models.measure import MeasureTask
from pas_models.teacher_cache import CacheShardTask
from pas_models.train.task import TrainTask
from pas_orchestrator.core.decide import Capacity
from pas_orchestrator.core.outcomes import JobOutcome


@dataclass(frozen=True)
class JobRef:
    batch: str  # the submission (SLURM job name of the array)
    job_id: str


class Executor(Protocol):
    capacity: Capacity
    stops_with_controller: bool  # its jobs are this host's processes: stopped when the controller is interrupted

    def submit(self, batch: str, tasks: Sequence[TrainTask | MeasureTask | CacheShardTask]) -> list[str]:
        """Submit one batch (an array on SLURM) of trainings, of latency measurements (each alone on one
        node: ``config.cluster.measure_resources``) or of teacher cache shards (one process and GPU each:
        ``single_gpu_resources``); the job ids in task order. Raises SubmissionError
        (``permanent`` when the request itself is wrong)."""

    def outcomes(self, jobs: Sequence[JobRef]) -> dict[str, JobOutcome]:
        """The outcome of every job, in one batched query (job id -> outcome)."""

    def find(self, batch: str, keys: Sequence[tuple[int, str]], since: float) -> dict[int, str]:
        """Reconciliation: which of ``batch``'s tasks (array index, output folder) the scheduler knows,
        among jobs submitted after ``since`` (epoch seconds), as array index -> job id. Raises
        SubmissionError when the scheduler cannot tell."""

    def cancel(self, jobs: Sequence[JobRef]) -> list[str]:
        """Stop these jobs; the ids of those that could not be stopped (with the reason logged)."""


def job_error(folder: Path, job_id: str) -> str | None:
    """The last line of a submitit job's Python error (``<job_id>_0_result.pkl`` holds ("error",
    traceback)), else the last line of its stderr; None when it left neither."""
    result = folder / f"{job_id}_0_result.pkl"
    if result.is_file():
        try:
            outcome, value = pickle.loads(result.read_bytes())
        except Exception as exc:  # a torn file: the job died while writing it
            return f"unreadable result pickle {result}: {exc}"
        if outcome != "success" and str(value).strip():
            return str(value).strip().splitlines()[-1][:500]
    err = folder / f"{job_id}_0_log.err"
    if err.is_file():
        lines = [line for line in err.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return f"{lines[-1].strip()[:400]} (log: {err})"
    return None
