"""Successive halving inside each iteration (search key ``halving``), around the paper's coordinate descent.

Every hypothesis of an iteration starts at rung 1 (pas_models.halving: rung k ends after
ceil(S / eta^(rungs - k)) of its S optimizer steps; each rung a prefix of the full schedule). Once
every hypothesis of the iteration that is still in the race has its rung-k score (the job's cheap
evaluation), they are ranked by the rule the winner is chosen by (coordinate descent's ``rank``: Eq. 3
/ Eq. 1 against B, ties by top-5, GFLOPs, operator order) and the best ceil(n / eta) (at least one)
are promoted to rung k + 1 (``PromoteRung``: a new attempt each, resuming from ``last.pt``, submitted
together), with ``ties`` also every one the paired test cannot tell from the last of them; the others are
STOPPED at rung k with their rank and score. The last rung is the whole
schedule with the full evaluation, and the iteration's winner is chosen among those only. B and the
"without PAS" baselines train to the end. Everything else is the coordinate descent's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pas_models.halving import promoted_count
from pas_orchestrator.core.actions import Action, PromoteRung
from pas_orchestrator.ledger.records import Snapshot
from pas_orchestrator.strategies.coordinate_descent import CoordinateDescent
from pas_orchestrator.strategies.rungs import WAIT, rung_decision


@dataclass(frozen=True)
class SuccessiveHalving:
    inner: CoordinateDescent
    eta: int
    rungs: int
    name: str = "coordinate-descent, successive halving"

    def advance(self, snap: Snapshot) -> list[Action]:
        last = snap.last_iteration
        if last >= 1:
            decision = rung_decision(last, snap.iteration(last), self.rungs,
                                     lambda scored: self.inner.rank(snap, last, scored),
                                     lambda n: promoted_count(n, self.eta), self.inner.ties_level)
            if decision == WAIT:
                return []
            if isinstance(decision, PromoteRung):
                return [decision]
        return self.inner.advance(snap)
