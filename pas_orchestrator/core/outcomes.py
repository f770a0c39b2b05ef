"""What an executor says of one job, in pas's words (SLURM's vocabulary stays in ``executors/``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Phase(enum.Enum):
    QUEUED = "queued"  # waiting for resources (reason: the scheduler's why)
    RUNNING = "running"
    REQUEUED = "requeued"  # put back in the queue by the scheduler (time limit, preemption, node failure)
    SUCCEEDED = "succeeded"  # the job ended well (its result.json decides whether the training did)
    FAILED = "failed"  # ended badly (reason: the scheduler's and the job's own last words)
    INTERRUPTED = "interrupted"  # stopped by a person or a signal (Ctrl-C, SIGTERM, scancel): not a failure
    UNKNOWN = "unknown"  # the scheduler does not know it (yet): wait, never guess


@dataclass(frozen=True)
class JobOutcome:
    phase: Phase
    reason: str | None = None
    node: str | None = None  # where it runs / ran
    requeues: int = 0  # how many times the scheduler requeued it so far
    requeue_why: str | None = None  # the last requeue's cause ("NODE_FAIL on node2")
    label: str | None = None  # the scheduler's own word, shown by `pas status` (PENDING, COMPLETING, NODE_FAIL)
    compute_hours: float | None = None  # used so far, every run of the job (None: not known)
    compute_unit: str | None = None  # GPU-h (hours x GPUs) | CPU-h (hours x processes or CPUs)

    @property
    def active(self) -> bool:
        return self.phase in (Phase.QUEUED, Phase.RUNNING, Phase.REQUEUED)

    @property
    def shown(self) -> str:
        """What `pas status` shows in its scheduler column."""
        return self.label or self.phase.value.upper()
