"""``pas study distill``: the paper's Table 6. One hypothesis of one iteration (default: ``l`` of iteration 1)
distilled from B's logits only (the paper's PAS, the search's own training where it is that), and with a
feature loss after every residual stage added (weight ``--feature-weight``): MSE, and Heo et al.'s
margin-ReLU loss (pas_models.train.features). The rest of the search's training is unchanged; the teacher
runs live (a feature loss needs its stage outputs at every step).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from pas_models.layout import RunLayout
from pas_models.train.task import TrainTask
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import HypState
from pas_orchestrator.studies import (
    SearchTask,
    StudyError,
    StudyTable,
    plan_variants,
    source_row,
    trained_to_the_end,
    variant_rows,
)

HEADINGS = {"logits": "logits only", "mse": "+ MSE", "margin": "+ margin ReLU"}


@dataclass(frozen=True)
class FeatureDistill:
    iteration: int
    op: str = "l"
    weight: float = 1.0
    searched_weight: float = 0.0  # the search's distill.feature_weight
    name: str = "distill"
    kind: str = "study-distill"

    @property
    def slug(self) -> str:
        return f"{self.name}-{self.iteration}-{self.op}"

    def variant_op(self, variant: str) -> str:
        return f"{self.op}.{variant}" + (f"@{self.weight:g}" if variant != "logits" else "")

    def owns(self, h: HypRec) -> bool:
        return h.kind == self.kind and h.iteration == self.iteration and h.op.split(".", 1)[0] == self.op

    def _reused(self, h: HypRec) -> bool:
        live = json.loads(h.result or "{}").get("teacher_source") == "live"
        return trained_to_the_end(h) and live and self.searched_weight == 0

    def plan(self, snap: Snapshot, layout: RunLayout) -> list[NewHypothesis]:
        src = next((h for h in snap.iteration(self.iteration) if h.op == self.op), None)
        if src is None or src.spec is None or src.state not in (HypState.DONE, HypState.STOPPED):
            trained = [h.op for h in snap.iteration(self.iteration) if h.state in (HypState.DONE, HypState.STOPPED)]
            raise StudyError(f"study {self.slug}: the search trained no hypothesis {self.op} at iteration "
                             f"{self.iteration} (trained there: {', '.join(trained) or 'none'}); choose --op or "
                             "--iteration")
        return plan_variants([src], tuple(HEADINGS), self._op, self._searched, self.kind, layout)

    def _op(self, _src: HypRec, variant: str) -> str:
        return self.variant_op(variant)

    def _searched(self, src: HypRec, variant: str) -> bool:
        return variant == "logits" and self._reused(src)

    def task(self, snap: Snapshot, h: HypRec, search_task: SearchTask) -> TrainTask:
        variant = h.op.split(".", 1)[1].split("@", 1)[0]
        t = search_task(source_row(snap, h))
        weight = 0.0 if variant == "logits" else self.weight
        return replace(t, hypothesis=h.label, out_dir=h.out_dir, teacher_cache=None,
                       distill=replace(t.distill, cache=None, feature_weight=weight,
                                       feature_loss="margin" if variant == "margin" else "mse"))

    def table(self, snap: Snapshot) -> StudyTable:
        rows = variant_rows(snap, self.iteration, self.owns, tuple(HEADINGS), self._op, self._searched,
                            include=lambda src: src.op == self.op)
        return StudyTable(
            f"Feature distillation, {self.op} at iteration {self.iteration} (paper Table 6): top-1 %",
            ("reduction", "path", "GFLOPs/view", *HEADINGS.values()), rows,
            (f"Feature losses after every residual stage, weight {self.weight:g} beside the logits' KD (CE + alpha "
             "t^2 KL); MSE on the stage outputs, margin ReLU (Heo et al., ICCV 2019) before the last ReLU. "
             "Logits only is the search's own training where it is a whole one with a live teacher.",))
