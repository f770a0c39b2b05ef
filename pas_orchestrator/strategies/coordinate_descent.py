"""The paper's search (Sec. 3.2): coordinate descent over the reduction operators.

Iteration 0 trains (or imports) B. Iteration i applies every operator to the winner of i-1 (B for
i = 1); once all of its hypotheses have ended, the winner is chosen (selection.py: Eq. 3 / Eq. 1,
ties by top-5) and, with ``baselines``, the winner's architecture is queued again from scratch
("without PAS"). The search stops after ``iterations`` or when a winner reaches ``target_gflops``
(and every baseline has ended); it fails when B fails or when an iteration trained nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from pas_models.layout import RunLayout
from pas_models.spec import ArchSpec
from pas_orchestrator.comparisons import describe, tie_break
from pas_orchestrator.core.actions import Action, AddHypotheses, EndSearch, MarkWinner, PlanBase, PlanIteration
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import TERMINAL_HYP, HypState, SearchState
from pas_orchestrator.selection import Candidate, rank, select, should_stop


def base_stage(snap: Snapshot) -> list[Action] | None:
    """Iteration 0 of every strategy: plan B, wait for it, fail with it; None once B is DONE."""
    if not snap.hypotheses:
        return [PlanBase()]
    base = snap.iteration(0)[0]
    if base.state not in TERMINAL_HYP:
        return []
    if base.state != HypState.DONE:
        return [EndSearch(SearchState.FAILED, f"the base network failed: {base.reason}")]
    return None


def candidate(h: HypRec, top1: float, top5: float, paper: bool = False) -> Candidate:
    """What the selection rules see of a hypothesis (its scores, cost, and for ``selection: paper`` whether
    its frames are below its network's temporal stride, from the spec the ledger holds)."""
    below = "; ".join(ArchSpec.from_json(h.spec).frames_below_temporal_stride()) if paper and h.spec else ""
    return Candidate(h.op, top1, top5, h.gflops or 0.0, below)


@dataclass(frozen=True)
class CoordinateDescent:
    iterations: int
    target_gflops: float | None
    selection: str  # auto | paper | eq1 | eq3
    ratio_tolerance: float
    baselines: bool
    layout: RunLayout
    ties_level: float | None = None  # noise-aware selection (``ties``): the McNemar level of a tie; None: off
    name: str = "coordinate-descent"

    def advance(self, snap: Snapshot) -> list[Action]:
        if (waiting := base_stage(snap)) is not None:
            return waiting
        base = snap.iteration(0)[0]
        last = snap.last_iteration
        if last == 0:
            return [PlanIteration(1, base.id)]
        hyps = snap.iteration(last)
        if any(h.state not in TERMINAL_HYP for h in hyps):
            return []
        winner = snap.winner(last)
        if winner is None:
            return self._choose(snap, last, hyps, base)
        stop = should_stop(last, self.iterations, winner.gflops or 0.0, self.target_gflops)
        if stop is None:
            return [PlanIteration(last + 1, winner.id)]
        baselines = [h for h in snap.hypotheses if h.kind == "baseline"]
        if all(h.state in TERMINAL_HYP for h in baselines):
            return [EndSearch(SearchState.DONE, f"stopping: {stop}")]
        return []

    @staticmethod
    def _parent(snap: Snapshot, i: int) -> HypRec | None:
        return snap.winner(i - 1) if i > 1 else snap.iteration(0)[0]

    def rank(self, snap: Snapshot, i: int, scored: list[tuple[HypRec, float, float]]) -> tuple[list[HypRec], str]:
        """Hypotheses of iteration ``i`` with (top-1, top-5) scores (a rung's), best first, by the rule the
        winner is chosen by (Eq. 3 / Eq. 1 against B, ties by top-5, GFLOPs, operator order), and that rule."""
        base, parent = snap.iteration(0)[0], self._parent(snap, i)
        by_op = {h.op: h for h, _, _ in scored}
        ordered, rule = rank([candidate(h, t1, t5, self.selection == "paper") for h, t1, t5 in scored],
                             selection=self.selection, base_top1=base.top1 or 0.0, base_gflops=base.gflops or 0.0,
                             parent_gflops=(parent.gflops if parent is not None else None) or 1.0,
                             tolerance=self.ratio_tolerance)
        return [by_op[c.op] for c in ordered], rule

    def _choose(self, snap: Snapshot, last: int, hyps: list[HypRec], base: HypRec) -> list[Action]:
        done = [h for h in hyps if h.state == HypState.DONE]
        if not done:
            if all(h.state == HypState.NOT_APPLICABLE for h in hyps):
                # nothing left to reduce: the last winner is the search's result (B alone is not one)
                if any(h.state not in TERMINAL_HYP for h in snap.hypotheses if h.kind == "baseline"):
                    return []
                state = SearchState.DONE if last > 1 else SearchState.FAILED
                return [EndSearch(state, f"iteration {last}: no operator applies any more")]
            return [EndSearch(SearchState.FAILED, f"iteration {last}: no hypothesis was trained ("
                              + "; ".join(f"{h.op}: {h.state.value} {h.reason or ''}".strip() for h in hyps) + ")")]
        parent = self._parent(snap, last)
        if parent is None or parent.gflops is None:  # a ledger edited by hand: refuse to guess
            return [EndSearch(SearchState.FAILED, f"iteration {last}: the ledger has no winner of iteration "
                                                  f"{last - 1} with a cost to compare against")]
        choice = select([candidate(h, h.top1 or 0.0, h.top5 or 0.0, self.selection == "paper") for h in done],
                        selection=self.selection, base_top1=base.top1 or 0.0, base_gflops=base.gflops or 0.0,
                        parent_gflops=parent.gflops, tolerance=self.ratio_tolerance)
        winner = next(h for h in done if h.op == choice.winner.op)
        why = choice.why
        if self.ties_level is not None:
            ordered, _ = self.rank(snap, last, [(h, h.top1 or 0.0, h.top5 or 0.0) for h in done])
            winner, tie = tie_break(ordered, self.ties_level)
            why += f"; {tie}"
        versus = describe(winner, [h for h in done if h is not winner])
        out: list[Action] = [MarkWinner(winner.id, why + (f"; {versus}" if versus else ""))]
        if self.baselines:
            out.append(AddHypotheses((NewHypothesis(
                last, winner.op, "baseline", winner.path, str(self.layout.hyp_dir(last, winner.op, "baseline")),
                gflops=winner.gflops, params=winner.params, spec=winner.spec),)))
        return out
