"""The executor interface the controller uses, and the scheduler states it understands."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pas_models.train.task import TrainTask

# normalised job states (SLURM's names); the controller decides what each one means
ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING")
# TIMEOUT / PREEMPTED normally never show: submitit requeues the checkpointable job (REQUEUED, then
# PENDING); they end an attempt only when requeueing failed (too many timeouts)
FAILURE_STATES = ("FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "CANCELLED", "BOOT_FAIL", "DEADLINE", "TIMEOUT",
                  "PREEMPTED", "LOST")


@dataclass(frozen=True)
class JobRef:
    batch: str  # the submission (SLURM job name of the array)
    job_id: str


@dataclass(frozen=True)
class JobStatus:
    state: str  # one of ACTIVE, COMPLETED, FAILURE_STATES, or UNKNOWN (not found yet)
    reason: str | None = None
    node: str | None = None  # where it runs / ran (SLURM NodeList)
    history: tuple[str, ...] = ()  # earlier runs of a requeued job, oldest first ("NODE_FAIL on node2")


class Executor(Protocol):
    def submit(self, batch: str, tasks: Sequence[TrainTask]) -> list[str]:
        """Submit one batch (an array on SLURM); the job ids in task order."""

    def states(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        """The state of every job, in one batched query."""

    def find(self, batch: str, keys: Sequence[tuple[int, str]], since: float) -> dict[int, str]:
        """Reconciliation: which of ``batch``'s tasks (array index, output folder) the scheduler knows,
        among jobs submitted after ``since`` (epoch seconds), as array index -> job id."""

    def cancel(self, jobs: Sequence[JobRef]) -> None: ...


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
