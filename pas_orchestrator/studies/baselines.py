"""``pas study baselines``: the "without PAS" column of the paper's Table 2 and Table 8. Every winner of the
search trained again as a plain network: random weights, cross-entropy only, B's recipe (tasks.baseline_task);
beside it the winner's PAS figure and the difference. A search run with ``baselines: true`` already has these
trainings (kind ``baseline``): they are reused, and only the missing ones are trained.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pas_models.layout import RunLayout
from pas_models.train.task import TrainTask
from pas_orchestrator.comparisons import against
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import HypState
from pas_orchestrator.studies import SearchTask, StudyError, StudyTable, with_interval


@dataclass(frozen=True)
class Baselines:
    iteration: int = 0  # every iteration (the rows are the winners'); 0 names the instance
    name: str = "baselines"
    kind: str = "study-baselines"

    @property
    def slug(self) -> str:
        return self.name

    def owns(self, h: HypRec) -> bool:
        return h.kind == self.kind

    @staticmethod
    def _winners(snap: Snapshot) -> list[HypRec]:
        return [w for i in range(1, snap.last_iteration + 1) if (w := snap.winner(i)) is not None]

    @staticmethod
    def _searched(snap: Snapshot, w: HypRec) -> HypRec | None:
        return next((h for h in snap.iteration(w.iteration, kind="baseline") if h.op == w.op), None)

    def plan(self, snap: Snapshot, layout: RunLayout) -> list[NewHypothesis]:
        winners = self._winners(snap)
        if not winners:
            raise StudyError("study baselines: the search has no winner")
        out = []
        for w in winners:
            done = self._searched(snap, w)
            if done is not None and done.state == HypState.DONE:
                continue
            op = f"{w.op}.scratch"
            out.append(NewHypothesis(w.iteration, op, self.kind, w.path,
                                     str(layout.hyp_dir(w.iteration, op, self.kind)), gflops=w.gflops,
                                     params=w.params, spec=w.spec))
        if not out:
            raise StudyError("study baselines: the search trained every winner without PAS already (baselines: "
                             "true): `pas report` has them")
        return out

    def task(self, snap: Snapshot, h: HypRec, search_task: SearchTask) -> TrainTask:
        # the search's own baseline training of this winner (kind baseline: scratch, CE only, B's recipe)
        return replace(search_task(replace(h, kind="baseline")), hypothesis=h.label, out_dir=h.out_dir)

    def table(self, snap: Snapshot) -> StudyTable:
        mine = {(h.iteration, h.op.split(".", 1)[0]): h for h in snap.hypotheses if self.owns(h)}
        rows = []
        for w in self._winners(snap):
            b = mine.get((w.iteration, w.op)) or self._searched(snap, w)
            top = b.top1 if b is not None and b.state == HypState.DONE else None
            rows.append((str(w.iteration), w.path, f"{w.gflops or 0:.4g}", with_interval(w),
                         with_interval(b) if b is not None and top is not None else "-" if b is None
                         else b.state.value.lower(), _gain(w, b if top is not None else None)))
        return StudyTable("PAS against the same networks without PAS (paper Tables 2 and 8): top-1 %",
                          ("iteration", "path", "GFLOPs/view", "PAS", "without PAS", "PAS gain"), tuple(rows),
                          ("Without PAS: the winner's network from random weights, cross-entropy only, B's recipe.",
                           "Brackets: 95% intervals; top-1's is Wilson's over the test videos, the gain's is "
                           "Newcombe's paired interval on the same videos ('not distinguishable': it holds 0).",))


def _gain(pas: HypRec, without: HypRec | None) -> str:
    """PAS's top-1 minus the network's without PAS, with its paired interval where both have per-video records."""
    if without is None or pas.top1 is None or without.top1 is None:
        return "-"
    c = against(without, pas)
    if c is None:
        return f"{pas.top1 - without.top1:+.2f}"
    return (f"{c.difference:+.2f} [{c.low:+.1f}, {c.high:+.1f}]"
            + ("" if c.distinguishable else " not distinguishable"))
