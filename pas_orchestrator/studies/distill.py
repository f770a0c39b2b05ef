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
from pas_orchestrator.studies import SearchTask, StudyError, StudyTable, fmt, source_row, trained_to_the_end

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
        variants = [v for v in HEADINGS if not (v == "logits" and self._reused(src))]
        return [NewHypothesis(self.iteration, self.variant_op(v), self.kind, src.path,
                              str(layout.hyp_dir(self.iteration, self.variant_op(v), self.kind)), gflops=src.gflops,
                              params=src.params, spec=src.spec) for v in variants]

    def task(self, snap: Snapshot, h: HypRec, search_task: SearchTask) -> TrainTask:
        variant = h.op.split(".", 1)[1].split("@", 1)[0]
        t = search_task(source_row(snap, h))
        weight = 0.0 if variant == "logits" else self.weight
        return replace(t, hypothesis=h.label, out_dir=h.out_dir, teacher_cache=None,
                       distill=replace(t.distill, cache=None, feature_weight=weight,
                                       feature_loss="margin" if variant == "margin" else "mse"))

    def table(self, snap: Snapshot) -> StudyTable:
        mine = {h.op: h for h in snap.hypotheses if self.owns(h)}
        src = next((h for h in snap.iteration(self.iteration) if h.op == self.op), None)
        cells = []
        for v in HEADINGS:
            h = mine.get(self.variant_op(v))
            if h is None and v == "logits" and src is not None and self._reused(src):
                h = src
            cells.append(fmt(h.top1) if h is not None and h.state == HypState.DONE else
                         "-" if h is None else h.state.value.lower())
        rows = ((self.op, src.path if src else "-", f"{(src.gflops or 0) if src else 0:.4g}", *cells),)
        return StudyTable(
            f"Feature distillation, {self.op} at iteration {self.iteration} (paper Table 6): top-1 %",
            ("reduction", "path", "GFLOPs/view", *HEADINGS.values()), rows,
            (f"Feature losses after every residual stage, weight {self.weight:g} beside the logits' KD (CE + alpha "
             "t^2 KL); MSE on the stage outputs, margin ReLU (Heo et al., ICCV 2019) before the last ReLU. "
             "Logits only is the search's own training where it is a whole one with a live teacher.",))
