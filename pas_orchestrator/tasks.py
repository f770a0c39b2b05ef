"""TrainTasks for the base network, the hypotheses of a search, and the "without PAS" baselines.

Pure: given a search definition, the operator path and checkpoint paths, returns what one
training job is told. Used by ``pas train`` and by the controller alike.
"""

from __future__ import annotations

from dataclasses import replace

from pas_models.data.formats import DatasetConfig
from pas_models.reductions import apply_sequence
from pas_models.train.task import TrainTask
from pas_orchestrator.config.search import SearchDef


def base_task(search: SearchDef, data: DatasetConfig, out_dir: str, attempt: int = 1) -> TrainTask:
    """Train B from scratch with cross-entropy (iteration 0)."""
    return TrainTask(hypothesis="base", student=search.base_spec(), data=data, out_dir=out_dir,
                     recipe=search.base_recipe, distill=search.distill, eval=search.eval,
                     lr_divisor=search.finetune.lr_divisor, attempt=attempt, seed=search.seed)


def hypothesis_task(search: SearchDef, data: DatasetConfig, ops: list[str], out_dir: str, teacher_checkpoint: str,
                    parent_checkpoint: str | None, hypothesis: str, attempt: int = 1) -> TrainTask:
    """The network ``ops`` applied to B, distilled from B (``teacher_checkpoint``) and, when
    fine-tuning is on and shapes allow, initialised from the parent ``ops[:-1]``."""
    chain = apply_sequence(search.base_spec(), ops, search.operators, search.tucker.stages)
    use_parent = search.finetune.enabled and parent_checkpoint is not None
    return TrainTask(hypothesis=hypothesis, student=chain[-1], data=data, out_dir=out_dir,
                     teacher=chain[0], teacher_checkpoint=teacher_checkpoint,
                     parent=chain[-2] if use_parent else None,
                     parent_checkpoint=parent_checkpoint if use_parent else None,
                     recipe=search.recipe, distill=search.distill, eval=search.eval,
                     lr_divisor=search.finetune.lr_divisor, attempt=attempt, seed=search.seed)


def baseline_task(search: SearchDef, data: DatasetConfig, ops: list[str], out_dir: str, hypothesis: str,
                  attempt: int = 1) -> TrainTask:
    """"Without PAS" (paper Table 2): the same architecture from random init with CE only, base recipe."""
    chain = apply_sequence(search.base_spec(), ops, search.operators, search.tucker.stages)
    return TrainTask(hypothesis=hypothesis, student=chain[-1], data=data, out_dir=out_dir,
                     recipe=search.base_recipe, distill=replace(search.distill, feature_weight=0.0),
                     eval=search.eval, attempt=attempt, seed=search.seed)
