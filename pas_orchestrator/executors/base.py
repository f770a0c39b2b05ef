"""The executor interface the controller uses, and the scheduler states it understands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


class Executor(Protocol):
    def submit(self, batch: str, tasks: Sequence[TrainTask]) -> list[str]:
        """Submit one batch (an array on SLURM); the job ids in task order."""

    def states(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        """The state of every job, in one batched query."""

    def find(self, batch: str, keys: Sequence[tuple[int, str]], since: float) -> dict[int, str]:
        """Reconciliation: which of ``batch``'s tasks (array index, output folder) the scheduler knows,
        among jobs submitted after ``since`` (epoch seconds), as array index -> job id."""

    def cancel(self, jobs: Sequence[JobRef]) -> None: ...
