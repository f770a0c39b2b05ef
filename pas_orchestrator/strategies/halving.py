"""Successive halving inside each iteration (search key ``halving``), around the paper's coordinate descent.

Every hypothesis of an iteration starts at rung 1 (pas_models.halving: rung k ends after
ceil(S / eta^(rungs - k)) of its S optimizer steps; each rung a prefix of the full schedule). Once
every hypothesis of the iteration that is still in the race has its rung-k score (the job's cheap
evaluation), they are ranked by the rule the winner is chosen by (coordinate descent's ``rank``: Eq. 3
/ Eq. 1 against B, ties by top-5, GFLOPs, operator order) and the best ceil(n / eta) (at least one)
are promoted to rung k + 1 (``PromoteRung``: a new attempt each, resuming from ``last.pt``, submitted
together); the others are STOPPED at rung k with their rank and score. The last rung is the whole
schedule with the full evaluation, and the iteration's winner is chosen among those only. B and the
"without PAS" baselines train to the end. Everything else is the coordinate descent's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pas_models.halving import promoted_count
from pas_orchestrator.core.actions import Action, PromoteRung
from pas_orchestrator.ledger.records import Snapshot
from pas_orchestrator.ledger.states import TERMINAL_HYP, HypState
from pas_orchestrator.strategies.coordinate_descent import CoordinateDescent


@dataclass(frozen=True)
class SuccessiveHalving:
    inner: CoordinateDescent
    eta: int
    rungs: int
    name: str = "coordinate-descent, successive halving"

    def advance(self, snap: Snapshot) -> list[Action]:
        last = snap.last_iteration
        if last >= 1:
            hyps = [h for h in snap.iteration(last) if h.rung is not None]
            for k in range(1, self.rungs):
                waiting = [h for h in hyps if h.state == HypState.RUNNING and h.rung == k and h.waiting]
                if not waiting:
                    continue
                # everyone still in the race must have reached rung k (a retry may still be on its way)
                if any(h.state not in TERMINAL_HYP and not h.waiting for h in hyps if (h.rung or 0) <= k):
                    return []
                return [self._decide(snap, last, k, waiting)]
        return self.inner.advance(snap)

    def _decide(self, snap: Snapshot, i: int, k: int, at_k: list) -> PromoteRung:
        scores = {h.id: h.score(k) for h in at_k}
        ordered, rule = self.inner.rank(snap, i, [(h, scores[h.id].top1, scores[h.id].top5) for h in at_k])
        n, up = len(ordered), promoted_count(len(ordered), self.eta)
        stopped = []
        for r, h in enumerate(ordered[up:], start=up + 1):
            sc = scores[h.id]
            stopped.append((h.id, f"stopped at rung {k}/{self.rungs}: rank {r} of {n} by {rule} (top-1 "
                                  f"{sc.top1:.2f}%, top-5 {sc.top5:.2f}% after {sc.steps} of {sc.total_steps} "
                                  f"steps); the best {up} went on"))
        return PromoteRung(i, k, tuple(h.id for h in ordered[:up]), tuple(stopped))
