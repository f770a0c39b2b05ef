"""The callable submitit runs for a supernet job: ``SupernetJob()(task)`` is ``search.run(task)``; requeued
on a time limit or a preemption like a training (``pas_models.train.job``): it resumes from ``last.pt``."""

from __future__ import annotations

import logging

import submitit

from pas_models.layout import HypFiles
from pas_models.nas.result import SupernetResult, SupernetTask
from pas_models.train.checkpoint import read_json, write_json

log = logging.getLogger(__name__)


class SupernetJob(submitit.helpers.Checkpointable):
    def __call__(self, task: SupernetTask) -> SupernetResult:
        from pas_models.nas.search import run  # torch: on the node only

        return run(task)

    def checkpoint(self, task: SupernetTask) -> submitit.helpers.DelayedSubmission:
        log.warning("%s: time limit or preemption signal: requeueing; the search resumes from %s/last.pt",
                    task.hypothesis, task.out_dir)
        marker = HypFiles.of(task.out_dir).requeued
        count = read_json(marker)["requeues"] + 1 if marker.exists() else 1
        write_json({"requeues": count}, marker)
        return submitit.helpers.DelayedSubmission(SupernetJob(), task)
