"""The callable submitit runs for a supernet job: ``SupernetJob()(task)`` is ``search.run(task)``; requeued on
a time limit or a preemption exactly as a training (``pas_models.train.job.TrainJob``): it resumes from
``last.pt``."""

from __future__ import annotations

from typing import Any

from pas_models.nas.result import SupernetResult, SupernetTask
from pas_models.train.job import TrainJob


class SupernetJob(TrainJob):
    def __call__(self, task: Any) -> SupernetResult:
        from pas_models.nas.search import run  # torch: on the node only

        assert isinstance(task, SupernetTask)
        return run(task)
