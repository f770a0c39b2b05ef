"""``pas study teacher-bn``: the paper's Table 7. Every operator of one iteration trained with the teacher's
batch norms in train mode (batch statistics, as the student's: the paper's choice, after Heo et al.) and in
eval mode (B's running statistics), the rest of the search's training unchanged.

The search's own row is one of the two columns when it is a whole training with a live teacher (not stopped
at a halving rung, not distilled from the teacher cache): the study trains only the other mode then; else
it trains both (``OP.bn-train``, ``OP.bn-eval``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from pas_models.layout import RunLayout
from pas_models.train.task import TrainTask
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import HypState
from pas_orchestrator.studies import (
    PerIteration,
    SearchTask,
    StudyError,
    StudyTable,
    plan_variants,
    source_row,
    trained_to_the_end,
    variant_rows,
)

MODES = ("train", "eval")


def _live(h: HypRec) -> bool:
    return bool(h.result) and json.loads(h.result or "{}").get("teacher_source", "live") == "live"


@dataclass(frozen=True)
class TeacherBN(PerIteration):
    iteration: int
    searched_mode: str  # the search's distill.teacher_bn
    name: str = "teacher-bn"
    kind: str = "study-teacher-bn"

    def _reused(self, h: HypRec) -> bool:
        return trained_to_the_end(h) and _live(h)

    def plan(self, snap: Snapshot, layout: RunLayout) -> list[NewHypothesis]:
        rows = [h for h in snap.iteration(self.iteration) if h.spec and h.state in (HypState.DONE, HypState.STOPPED)]
        if not rows:
            raise StudyError(f"study {self.slug}: the search has no trained hypothesis at iteration {self.iteration} "
                             f"(its iterations: 1 to {max(snap.last_iteration, 0)}); choose another --iteration")
        return plan_variants(rows, MODES, self._op, self._searched, self.kind, layout)

    @staticmethod
    def _op(src: HypRec, mode: str) -> str:
        return f"{src.op}.bn-{mode}"

    def _searched(self, src: HypRec, mode: str) -> bool:
        """The search's own row is this mode's figure."""
        return mode == self.searched_mode and self._reused(src)

    def task(self, snap: Snapshot, h: HypRec, search_task: SearchTask) -> TrainTask:
        mode = h.op.rsplit(".bn-", 1)[1]
        t = search_task(source_row(snap, h))
        return replace(t, hypothesis=h.label, out_dir=h.out_dir, teacher_cache=None,
                       distill=replace(t.distill, teacher_bn=mode, cache=None))

    def table(self, snap: Snapshot) -> StudyTable:
        rows = variant_rows(snap, self.iteration, self.owns, MODES, self._op, self._searched)
        return StudyTable(
            f"Teacher BN mode, iteration {self.iteration} (paper Table 7): top-1 %",
            ("reduction", "path", "GFLOPs/view", "teacher BN train", "teacher BN eval"), rows,
            (f"The search distilled with the teacher in BN {self.searched_mode} mode; its own figure is reused where "
             "it is a whole training with a live teacher. The teacher's dropout is off in both modes.",))
