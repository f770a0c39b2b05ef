"""The study controller: the search's controller (observe, ``decide``, ``Ledger.apply``, submit) run with a study's
strategy on the study's part of a finished search's ledger.

``decide`` sees the search as running (a view: the ledger's search row keeps its state) and only the rows
that have ended plus this study's own; so it submits, follows, retries and ingests this study's trainings
and nothing else. The strategy's ``EndSearch`` ends the study's loop and is recorded as an event, never
applied to the search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pas_models.data.formats import DatasetConfig
from pas_models.errors import PasError
from pas_models.layout import RunLayout
from pas_orchestrator.config.cluster import ClusterProfile
from pas_orchestrator.config.search import SearchDef
from pas_orchestrator.controller import Clock, Controller
from pas_orchestrator.core.actions import AbandonAttempt, Action, EndSearch, LogEvent
from pas_orchestrator.core.decide import Policy
from pas_orchestrator.errors import SubmissionError
from pas_orchestrator.executors.base import Executor
from pas_orchestrator.kinds import TaskContext
from pas_orchestrator.ledger.records import Snapshot
from pas_orchestrator.ledger.states import TERMINAL_HYP, SearchState
from pas_orchestrator.ledger.store import Ledger
from pas_orchestrator.studies import Study, StudyStrategy


class StudyController(Controller):
    def __init__(self, search: SearchDef, profile: ClusterProfile, layout: RunLayout, ledger: Ledger,
                 executor: Executor, data: DatasetConfig, study: Study, clock: Clock | None = None) -> None:
        super().__init__(search, profile, layout, ledger, executor, data, clock)
        self.study = study
        self.halving = None  # a study's trainings run their whole schedule
        self.tasks = TaskContext(search, data, layout, None, study)
        self.policy = Policy(StudyStrategy(study, layout), search.max_retries, executor.capacity)
        self.ended: EndSearch | None = None

    def view(self) -> Snapshot:
        snap = self.ledger.snapshot()
        state = SearchState.RUNNING if self.ended is None else self.ended.state
        return replace(snap, search=replace(snap.search, state=state),
                       hypotheses=tuple(h for h in snap.hypotheses if h.state in TERMINAL_HYP or self.study.owns(h)))

    def batch_name(self, iteration: int) -> str:
        return f"pas-{self.search.name}-{self.study.slug}"

    def run(self, poll_seconds: float | None = None, observe: Callable[[Snapshot], None] | None = None) -> Snapshot:
        poll = self.profile.poll_seconds if poll_seconds is None else poll_seconds
        self._poll = poll
        while self.ended is None:
            self.ledger.heartbeat()
            changed = self.step()
            if observe is not None:
                observe(self.view())
            if not changed and self.ended is None:
                self.clock.sleep(poll)
        self._settle(poll)
        return self.ledger.snapshot()

    def execute(self, action: Action, snap: Snapshot) -> bool:
        if isinstance(action, EndSearch):  # the study's end, not the search's
            self.ended = action
            self.ledger.apply(LogEvent("study", action.reason or f"study {self.study.slug} ended"))
            return True
        return super().execute(action, snap)

    def _submission_failed(self, batch: str, attempts: Any, exc: SubmissionError) -> bool:
        if exc.permanent:
            for a in attempts:
                self.ledger.apply(AbandonAttempt(a.id, f"submission refused: {exc}"))
            raise PasError(f"study {self.study.slug}: the scheduler refused the submission: {exc}")
        return super()._submission_failed(batch, attempts, exc)
