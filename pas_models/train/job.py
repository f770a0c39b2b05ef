"""The callable that submitit runs on compute nodes: ``TrainJob()(task)`` is ``run(task)``.

It is a submitit ``Checkpointable``: when SLURM signals a time limit or a preemption
(USR2, ``signal_delay_s`` before the end), submitit calls ``checkpoint(task)`` on
global rank 0, pickles the returned call and requeues the job (same job id, counted
against ``max_num_timeout``). The requeued job runs ``run(task)`` on the same output
folder, which resumes from ``last.pt``: at most ``recipe.checkpoint_minutes`` of
training are repeated, never lost.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import submitit

from pas_models.layout import HypFiles

if TYPE_CHECKING:
    from pas_models.train.result import JobResult
    from pas_models.train.task import TrainTask

log = logging.getLogger(__name__)


class TrainJob(submitit.helpers.Checkpointable):
    """Imports no torch until it runs: the controller imports it to pickle a submission."""

    def __call__(self, task: TrainTask) -> JobResult:
        from pas_models.train.run import run  # the training code (torch): on the compute node

        return run(task)

    def checkpoint(self, task: TrainTask) -> submitit.helpers.DelayedSubmission:
        """Requeue the same task (the same job class: a subclass requeues itself); a small marker file tells
        the controller it happened."""
        log.warning("%s: time limit or preemption signal: requeueing; it resumes from %s/last.pt",
                    task.hypothesis, task.out_dir)
        from pas_models.train.checkpoint import read_json, write_json

        marker = HypFiles.of(task.out_dir).requeued
        count = read_json(marker)["requeues"] + 1 if marker.exists() else 1
        write_json({"requeues": count}, marker)
        return submitit.helpers.DelayedSubmission(type(self)(), task)
