"""The rung decision, shared by successive halving (``halving.py``) and the gradient strategy's candidates
(``gradient.py``): once every hypothesis still in the race has its rung-k score, rank them and promote the
best (``PromoteRung``), stopping the others with their rank and score. With noise-aware selection (``ties``),
a hypothesis the exact McNemar test cannot tell from the last one promoted (the same videos at the rung's
evaluation, p >= the ties level) goes on too: the cut between them would be the noise's."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pas_orchestrator.comparisons import at_rung
from pas_orchestrator.core.actions import PromoteRung
from pas_orchestrator.ledger.records import HypRec
from pas_orchestrator.ledger.states import TERMINAL_HYP, HypState

# the hypotheses at a rung with their (top-1, top-5) there -> best first, and the rule's name
Ranking = Callable[[list[tuple[HypRec, float, float]]], tuple[list[HypRec], str]]
WAIT = "wait"  # a rung's decision is due, but a hypothesis still in the race has not reached the rung yet


def rung_decision(iteration: int, hyps: Sequence[HypRec], rungs: int, rank: Ranking,
                  promoted: Callable[[int], int], tie_level: float | None = None) -> PromoteRung | str | None:
    """The decision of the lowest rung whose hypotheses wait for one: ``PromoteRung``; ``WAIT`` while a
    hypothesis still in the race (a retry on its way) has not reached it; None when none is due.
    ``promoted(n)``: how many of n go on (more with ``tie_level``: those tied with the last of them)."""
    raced = [h for h in hyps if h.rung is not None]
    for k in range(1, rungs):
        waiting = [h for h in raced if h.state == HypState.RUNNING and h.rung == k and h.waiting]
        if not waiting:
            continue
        if any(h.state not in TERMINAL_HYP and not h.waiting for h in raced if (h.rung or 0) <= k):
            return WAIT
        scores = {h.id: h.score(k) for h in waiting}
        ordered, rule = rank([(h, scores[h.id].top1, scores[h.id].top5) for h in waiting])  # type: ignore[union-attr]
        n, up = len(ordered), promoted(len(ordered))
        place = {h.id: r for r, h in enumerate(ordered, start=1)}
        tied = []
        if tie_level is not None:
            tied = [h for h in ordered[up:] if (c := at_rung(ordered[up - 1], h, k)) is not None
                    and c.p_value >= tie_level]
            ordered = ordered[:up] + tied + [h for h in ordered[up:] if h not in tied]
        ties = "" if not tied else (f", and {', '.join(h.op for h in tied)} tied with {ordered[up - 1].op} "
                                    f"(paired, level {tie_level:g})")
        up += len(tied)
        stopped = []
        for h in ordered[up:]:
            sc = scores[h.id]
            assert sc is not None
            ci = sc.top1_interval
            c = at_rung(ordered[0], h, k)
            against = "" if c is None else (
                f"; against {ordered[0].op}, paired on the same {c.n} videos: {c.difference:+.2f} "
                f"[{c.low:+.2f}, {c.high:+.2f}]" + ("" if c.distinguishable else ", not distinguishable"))
            stopped.append((h.id, f"stopped at rung {k}/{rungs}: rank {place[h.id]} of {n} by {rule} "
                                  f"(top-1 {sc.top1:.2f}%"
                                  + ("" if ci is None else f" [{ci[0]:.1f}-{ci[1]:.1f}]")
                                  + f", top-5 {sc.top5:.2f}% after {sc.steps} of {sc.total_steps} steps{against}); "
                                  f"the best {up - len(tied)} went on{ties}"))
        return PromoteRung(iteration, k, tuple(h.id for h in ordered[:up]), tuple(stopped))
    return None
