"""``pas study baselines``: the "without PAS" column of the paper's Table 2 and Table 8. Every winner of the
search trained again as a plain network: random weights, cross-entropy only, B's recipe (tasks.baseline_task);
beside it the winner's PAS figure and the difference. A search run with ``baselines: true`` already has these
trainings (kind ``baseline``): they are reused, and only the missing ones are trained.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pas_models.layout import RunLayout
from pas_models.train.task import TrainTask
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import HypState
from pas_orchestrator.studies import SearchTask, StudyError, StudyTable, fmt


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
            gain = None if top is None or w.top1 is None else w.top1 - top
            rows.append((str(w.iteration), w.path, f"{w.gflops or 0:.4g}", fmt(w.top1),
                         fmt(top) if b is None or top is not None else b.state.value.lower(),
                         "-" if gain is None else f"{gain:+.2f}"))
        return StudyTable("PAS against the same networks without PAS (paper Tables 2 and 8): top-1 %",
                          ("iteration", "path", "GFLOPs/view", "PAS", "without PAS", "PAS gain"), tuple(rows),
                          ("Without PAS: the winner's network from random weights, cross-entropy only, B's recipe.",))
