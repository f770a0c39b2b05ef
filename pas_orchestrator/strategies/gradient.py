"""The gradient strategy (``strategy: gradient``, the PV-NAS family; pas_models.nas does the compute).

Iteration 0 trains (or imports) B, as in PAS. Then one supernet job per target GFLOPs (rows of kind
``supernet``, iteration j for target j, submitted together as one array): each trains a weight-sharing
supernet initialised from B and its architecture distribution, and records one candidate per learning-rate
cycle (``supernet.json``). The distinct candidates of target j become iteration j's hypotheses (kind
``pas``, op ``cC`` for cycle C, path = the architecture's code), each initialised from its weights cut
from the supernet and distilled from B. They train as successive halving's rungs (``halving`` when the
definition sets it; else two rungs, the first after ``gradient.candidate_fraction`` of the schedule,
and only the best one goes on): ranked by top-1 (ties: top-5, fewer GFLOPs). The one trained to the end
(the best of them where several are) is target j's network (``MarkWinner``). The search ends when every
target has one, or has failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pas_models.halving import promoted_count
from pas_models.layout import RunLayout
from pas_models.nas.result import SupernetResult
from pas_orchestrator.core.actions import Action, AddHypotheses, EndSearch, MarkWinner, PromoteRung
from pas_orchestrator.kinds import SUPERNET, candidate_op
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import TERMINAL_HYP, HypState, SearchState
from pas_orchestrator.strategies.coordinate_descent import base_stage
from pas_orchestrator.strategies.rungs import rung_decision


def _order(h: HypRec, top1: float, top5: float) -> tuple[float, float, float, str]:
    return (-top1, -top5, h.gflops or 0.0, h.op)


@dataclass(frozen=True)
class GradientSearch:
    targets: tuple[float, ...]
    eta: int
    rungs: int
    promote_one: bool  # no halving section: only the best candidate goes on after the first rung
    layout: RunLayout
    name: str = "gradient (a supernet per target)"

    def advance(self, snap: Snapshot) -> list[Action]:
        if (waiting := base_stage(snap)) is not None:
            return waiting
        sn_kind = SUPERNET.name  # its op is its kind
        supernets = sorted((h for h in snap.hypotheses if h.kind == sn_kind), key=lambda h: h.iteration)
        if not supernets:
            return [AddHypotheses(tuple(NewHypothesis(j, sn_kind, sn_kind, f"{t:g} GFLOPs",
                                                      str(self.layout.hyp_dir(j, sn_kind, sn_kind)))
                                        for j, t in enumerate(self.targets, start=1)))]
        out: list[Action] = []
        ended: list[str] = []
        for sn in supernets:
            j = sn.iteration
            cands = snap.iteration(j)
            if sn.state in TERMINAL_HYP and sn.state != HypState.DONE:
                ended.append(f"target {j} ({self.targets[j - 1]:g} GFLOPs): its supernet {sn.state.value.lower()}"
                             + (f" ({sn.reason})" if sn.reason else ""))
                continue
            if sn.state != HypState.DONE:
                continue
            if not cands:
                out.append(self._candidates(j, sn))
                continue
            rung = self._rung_decision(j, cands)
            if isinstance(rung, PromoteRung):
                out.append(rung)
                continue
            if any(h.state not in TERMINAL_HYP for h in cands):
                continue
            if snap.winner(j) is None:
                done = [h for h in cands if h.state == HypState.DONE and h.top1 is not None]
                if not done:
                    ended.append(f"target {j}: no candidate was trained ("
                                 + "; ".join(f"{h.op}: {h.state.value} {h.reason or ''}".strip() for h in cands) + ")")
                    continue
                best = min(done, key=lambda h: _order(h, h.top1 or 0.0, h.top5 or 0.0))
                out.append(MarkWinner(best.id, f"target {j} ({self.targets[j - 1]:g} GFLOPs): {best.op} "
                                               f"{best.path} trained to the end, top-1 {best.top1:.2f}% "
                                               f"at {best.gflops or 0:.4g} GFLOPs"))
                continue
            ended.append(f"target {j}: {snap.winner(j).path}")  # type: ignore[union-attr]
        if out:
            return out
        if len(ended) == len(supernets):
            winners = [snap.winner(sn.iteration) for sn in supernets]
            state = SearchState.DONE if any(w is not None for w in winners) else SearchState.FAILED
            return [EndSearch(state, f"every target ended: {'; '.join(ended)}")]
        return []

    def _candidates(self, j: int, sn: HypRec) -> AddHypotheses:
        """Target j's distinct candidates, each a hypothesis of iteration j at rung 1."""
        result = SupernetResult.from_dict(json.loads(sn.result or "{}"), f"{sn.label} supernet.json")
        return AddHypotheses(tuple(
            NewHypothesis(j, candidate_op(c.cycle), "pas", c.code,
                          str(self.layout.hyp_dir(j, candidate_op(c.cycle), "pas")), gflops=c.gflops,
                          spec=json.dumps(c.spec, sort_keys=True), rung=1)
            for c in result.distinct))

    def _rung_decision(self, j: int, cands: list[HypRec]) -> PromoteRung | str | None:
        def by_top1(scored: list[tuple[HypRec, float, float]]) -> tuple[list[HypRec], str]:
            return [h for h, _, _ in sorted(scored, key=lambda x: _order(*x))], "top-1"

        return rung_decision(j, cands, self.rungs, by_top1,
                             lambda n: 1 if self.promote_one else promoted_count(n, self.eta))
