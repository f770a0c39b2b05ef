"""The executor interface the controller shell uses: submit, observe (typed ``JobOutcome``s: the
scheduler's own vocabulary stays in the executor), find again, cancel, and what it takes at once."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pas_models.measure import MeasureJob, MeasureTask
from pas_models.nas.result import SupernetTask
from pas_models.teacher_cache import CacheJob, CacheShardTask
from pas_models.train.task import TrainTask
from pas_orchestrator.config.cluster import Resources, measure_resources, single_gpu_resources
from pas_orchestrator.core.decide import Capacity
from pas_orchestrator.core.outcomes import JobOutcome


@dataclass(frozen=True)
class JobRef:
    batch: str  # the submission (SLURM job name of the array)
    job_id: str


Task = TrainTask | MeasureTask | CacheShardTask | SupernetTask


def job_for(task: Task, resources: Resources) -> tuple[Any, Resources]:
    """The callable submitit runs for a batch of tasks like ``task``, and the resources it gets: a
    latency measurement alone on one node (``measure_resources``), a teacher cache shard on one process and
    GPU (``single_gpu_resources``), a training or a supernet with the backbone's (multi-node DDP)."""
    if isinstance(task, MeasureTask):
        return MeasureJob(), measure_resources(resources)
    if isinstance(task, CacheShardTask):  # B in inference over one shard of the videos
        return CacheJob(), single_gpu_resources(resources)
    if isinstance(task, SupernetTask):
        from pas_models.nas.job import SupernetJob

        return SupernetJob(), resources
    from pas_models.train.job import TrainJob  # the training code (torch): only to submit

    return TrainJob(), resources


class Executor(Protocol):
    capacity: Capacity
    stops_with_controller: bool  # its jobs are this host's processes: stopped when the controller is interrupted

    def submit(self, batch: str, tasks: Sequence[Task]) -> list[str]:
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
