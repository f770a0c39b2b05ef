"""``pas study ablation``: the paper's Table 4. For one iteration, the operators whose child takes its parent's
weights (s, t, f: the search fine-tuned them from the previous winner), the child trained three ways:

- KD + fine-tuning: the search's own training (reused when it is a whole one; else trained: ``OP.kd-ft``);
- fine-tuning without KD (``OP.ft-nokd``): the parent's weights at lr / lr_divisor, cross-entropy only
  (no teacher runs);
- KD without fine-tuning (``OP.kd-scratch``): random initialisation at the recipe's lr, distilled from B.

c and l are left out as in the paper: their children cannot take the parent's weights, so "KD without
fine-tuning" is what the search already did. So is k (Tucker-2: its start is a decomposition, not a copy).
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

OPERATORS = ("s", "t", "f")
VARIANTS = ("kd-ft", "ft-nokd", "kd-scratch")
HEADINGS = {"kd-ft": "KD + fine-tuning", "ft-nokd": "fine-tuning, no KD", "kd-scratch": "KD, no fine-tuning"}


def _finetuned(h: HypRec) -> bool:
    return bool(json.loads(h.result or "{}").get("finetuned_from_parent"))


def _op(src: HypRec, variant: str) -> str:
    return f"{src.op}.{variant}"


def _searched(src: HypRec, variant: str) -> bool:
    """The search's own row is this variant's figure (KD + fine-tuning, trained to the end)."""
    return variant == "kd-ft" and trained_to_the_end(src) and _finetuned(src)


@dataclass(frozen=True)
class Ablation(PerIteration):
    iteration: int
    name: str = "ablation"
    kind: str = "study-ablation"

    def plan(self, snap: Snapshot, layout: RunLayout) -> list[NewHypothesis]:
        if self.iteration < 1 or not snap.iteration(self.iteration):
            raise StudyError(f"study {self.slug}: the search has no iteration {self.iteration} (its iterations: 1 to "
                             f"{max(snap.last_iteration, 0)}); choose another --iteration")
        rows = [h for h in snap.iteration(self.iteration) if h.op in OPERATORS and h.spec
                and h.state in (HypState.DONE, HypState.STOPPED)]
        if self.iteration > 1 and snap.winner(self.iteration - 1) is None:
            raise StudyError(f"study {self.slug}: iteration {self.iteration - 1} has no winner to fine-tune from")
        if not rows:
            raise StudyError(f"study {self.slug}: none of {', '.join(OPERATORS)} was trained at iteration "
                             f"{self.iteration} (only their children take the parent's weights)")
        return plan_variants(rows, VARIANTS, _op, _searched, self.kind, layout)

    def task(self, snap: Snapshot, h: HypRec, search_task: SearchTask) -> TrainTask:
        variant = h.op.split(".", 1)[1]
        t = search_task(source_row(snap, h))
        t = replace(t, hypothesis=h.label, out_dir=h.out_dir)
        if t.parent_checkpoint is None and variant != "kd-scratch":
            raise StudyError(f"{h.label}: the search's training of {source_row(snap, h).label} does not fine-tune "
                             "(finetune.enabled is false): nothing to ablate")
        if variant == "ft-nokd":
            return replace(t, teacher=None, teacher_checkpoint=None, teacher_cache=None,
                           distill=replace(t.distill, alpha=0.0, feature_weight=0.0, cache=None))
        if variant == "kd-scratch":
            return replace(t, parent=None, parent_checkpoint=None)
        return t

    def table(self, snap: Snapshot) -> StudyTable:
        rows = variant_rows(snap, self.iteration, self.owns, VARIANTS, _op, _searched,
                            include=lambda src: src.op in OPERATORS)
        return StudyTable(
            f"KD and fine-tuning, iteration {self.iteration} (paper Table 4): top-1 %",
            ("reduction", "path", "GFLOPs/view", *(HEADINGS[v] for v in VARIANTS)), rows,
            ("KD + fine-tuning is the search's own training where it is a whole one. Fine-tuning starts from the "
             f"winner of iteration {self.iteration - 1} at lr / lr_divisor; without it, from random weights at the "
             "recipe's lr.",))
