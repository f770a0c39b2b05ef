"""The executor interface the controller uses: submit, observe (typed ``JobOutcome``s: the
scheduler's own vocabulary stays in the executor), find again, cancel, and what it takes at once."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pas_orchestrator.config.cluster import Resources
from pas_orchestrator.core.decide import Capacity
from pas_orchestrator.core.outcomes import JobOutcome
from pas_orchestrator.kinds import Task, kind_of_task


@dataclass(frozen=True)
class JobRef:
    batch: str  # the submission (SLURM job name of the array)
    job_id: str


def job_for(task: Task, resources: Resources) -> tuple[Any, Resources]:
    """The callable submitit runs for a batch of tasks like ``task``, and the resources it gets from the
    profile's (``pas_orchestrator.kinds``: a latency measurement alone on one node, a teacher cache shard on one
    process and GPU, a training or a supernet with the backbone's, multi-node DDP)."""
    kind = kind_of_task(task)
    return kind.job(), kind.resources(resources)


class Executor(Protocol):
    capacity: Capacity
    stops_with_controller: bool  # its jobs are this host's processes: stopped when the controller is interrupted

    def submit(self, batch: str, tasks: Sequence[Task]) -> list[str]:
        """Submit one batch (an array on SLURM) of tasks of one kind (``job_for``: the callable and resources of
        each kind); the job ids in task order. Raises SubmissionError
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
