"""Learning rate as a pure function of training progress (no scheduler state to checkpoint)."""

from __future__ import annotations

import math

from pas_models.train.task import Recipe


def base_lr(recipe: Recipe, total_batch: int, finetune: bool, lr_divisor: float) -> float:
    """The recipe's lr scaled to the real total batch; divided by ``lr_divisor`` when fine-tuning."""
    lr = recipe.lr * total_batch / recipe.reference_batch
    return lr / lr_divisor if finetune else lr


def lr_at(recipe: Recipe, peak: float, epoch_progress: float) -> float:
    """lr after ``epoch_progress`` epochs (fractional): linear warmup, then step or cosine."""
    w = recipe.warmup_epochs
    if w > 0 and epoch_progress < w:
        return peak * epoch_progress / w
    after = epoch_progress - w
    if recipe.schedule == "step":
        return peak * recipe.step_gamma ** math.floor(after / recipe.step_epochs)
    span = max(recipe.epochs - w, 1e-9)
    return peak * 0.5 * (1 + math.cos(math.pi * min(after / span, 1.0)))
