"""The seam every search strategy plugs into."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pas_orchestrator.ledger.records import Snapshot

if TYPE_CHECKING:
    from pas_orchestrator.core.actions import Action


class Strategy(Protocol):
    @property
    def name(self) -> str:
        """What ``pas status`` and the events call it."""
        ...

    def advance(self, snap: Snapshot) -> list[Action]:
        """What to do now that some jobs have ended: plan hypotheses (``PlanBase``, ``PlanIteration``,
        ``AddHypotheses``), choose (``MarkWinner``), stop (``EndSearch``); [] while waiting for jobs.
        Pure: called with a snapshot in which no job outcome is pending ingestion."""
        ...
