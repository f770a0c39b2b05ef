"""TrainTasks for the base network, the hypotheses of a search, and the "without PAS" baselines.

Pure: given a search definition, the specs and checkpoint paths, returns what one training job
is told. Used by ``pas train`` (specs from ``spec_chain``) and by the controller (the specs it
planned, from the ledger) alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from pas_models.data.formats import DatasetConfig
from pas_models.reductions import apply_sequence
from pas_models.spec import ArchSpec
from pas_models.train.task import TrainTask
from pas_orchestrator.config.search import SearchDef

if TYPE_CHECKING:  # the controller plans without torch until a network is built
    import torch


def base_task(search: SearchDef, data: DatasetConfig, out_dir: str, attempt: int = 1) -> TrainTask:
    """Train B from scratch with cross-entropy (iteration 0)."""
    return TrainTask(hypothesis="base", student=search.base_spec(), data=data, out_dir=out_dir,
                     recipe=search.base_recipe, distill=replace(search.distill, cache=None), eval=search.eval,
                     lr_divisor=search.finetune.lr_divisor, attempt=attempt, seed=search.seed)


def spec_chain(search: SearchDef, ops: list[str],
               weights_of: Callable[[int, ArchSpec], Mapping[str, torch.Tensor]] | None = None) -> list[ArchSpec]:
    """[B, ops[0](B), ...]: the search's operators, gammas and Tucker options applied in order.
    ``weights_of(i, spec)``: the trained weights step i reduces (read by k with vbmf ranks only)."""
    return apply_sequence(search.base_spec(), ops, search.operators, search.tucker, weights_of)


def hypothesis_task(search: SearchDef, data: DatasetConfig, student: ArchSpec, parent: ArchSpec, out_dir: str,
                    teacher_checkpoint: str, parent_checkpoint: str | None, hypothesis: str,
                    attempt: int = 1, teacher_cache: str | None = None) -> TrainTask:
    """``student`` distilled from B (``teacher_checkpoint``) and, when fine-tuning is on and
    shapes allow, initialised from ``parent`` (the network it was reduced from). With ``distill.cache``, B's
    soft labels are read from ``teacher_cache`` (the search's cache folder); without one, B runs live."""
    distill = search.distill if teacher_cache is not None else replace(search.distill, cache=None)
    use_parent = search.finetune.enabled and parent_checkpoint is not None
    return TrainTask(hypothesis=hypothesis, student=student, data=data, out_dir=out_dir,
                     teacher=search.base_spec(), teacher_checkpoint=teacher_checkpoint,
                     parent=parent if use_parent else None,
                     parent_checkpoint=parent_checkpoint if use_parent else None,
                     recipe=search.recipe, distill=distill, eval=search.eval,
                     lr_divisor=search.finetune.lr_divisor, attempt=attempt, seed=search.seed,
                     teacher_cache=teacher_cache if distill.cache is not None else None)


def baseline_task(search: SearchDef, data: DatasetConfig, student: ArchSpec, out_dir: str, hypothesis: str,
                  attempt: int = 1) -> TrainTask:
    """"Without PAS" (paper Table 2): ``student`` from random init with CE only, base recipe."""
    return TrainTask(hypothesis=hypothesis, student=student, data=data, out_dir=out_dir,
                     recipe=search.base_recipe, distill=replace(search.distill, feature_weight=0.0, cache=None),
                     eval=search.eval, attempt=attempt, seed=search.seed)
