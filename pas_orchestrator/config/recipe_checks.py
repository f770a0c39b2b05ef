"""Checks of a recipe and of distillation settings, shared by search and transfer-study definitions: each
failure a ConfigError naming the file and key (``jobs/demo.yaml: recipe.lr``) and the fix."""

from __future__ import annotations

import math

from pas_models.data.formats import DatasetConfig
from pas_models.train.task import AMP_MODES, COMPILE_MODES, KL_REDUCTIONS, SCHEDULES, TEACHER_BN_MODES, Distill, Recipe
from pas_orchestrator.config.yamlfile import one_of, require


def check_gpu_decode(data: DatasetConfig, where: str) -> None:
    """GPU decode is torchcodec's (NVDEC): the dataset's backend must be torchcodec, or auto where it loads."""
    require(data.backend in ("auto", "torchcodec"), where,
            f"decoding on the GPU is torchcodec's, and the dataset sets backend: {data.backend}; set backend: "
            "torchcodec (or auto) or gpu_decode: false")


def check_recipe(rc: Recipe, where: str) -> None:
    for key in ("epochs", "batch_per_gpu", "reference_batch", "step_epochs", "clips_per_video"):
        require(getattr(rc, key) >= 1, f"{where}.{key}", f"must be >= 1, got {getattr(rc, key)}")
    require(math.isfinite(rc.lr) and rc.lr > 0, f"{where}.lr", f"must be > 0, got {rc.lr}")
    require(rc.warmup_epochs >= 0, f"{where}.warmup_epochs", "must be >= 0")
    one_of(rc.schedule, SCHEDULES, f"{where}.schedule")
    require(0 < rc.step_gamma <= 1, f"{where}.step_gamma", "must be in (0, 1] (the lr is multiplied by it)")
    require(0 <= rc.momentum < 1, f"{where}.momentum", "must be in [0, 1)")
    require(rc.weight_decay >= 0, f"{where}.weight_decay", "must be >= 0")
    if rc.dropout is not None:
        require(0 <= rc.dropout < 1, f"{where}.dropout", "must be in [0, 1) or null")
    one_of(rc.amp, AMP_MODES, f"{where}.amp")
    require(rc.num_workers >= 0, f"{where}.num_workers", "must be >= 0")
    require(rc.checkpoint_minutes > 0, f"{where}.checkpoint_minutes", "must be > 0")
    one_of(rc.compile, COMPILE_MODES, f"{where}.compile")


def check_distill(d: Distill, where: str) -> None:
    require(d.temperature > 0, f"{where}.temperature", "must be > 0")
    require(d.alpha >= 0, f"{where}.alpha", "must be >= 0 (0: plain cross-entropy)")
    one_of(d.teacher_bn, TEACHER_BN_MODES, f"{where}.teacher_bn")
    one_of(d.kl_reduction, KL_REDUCTIONS, f"{where}.kl_reduction")
    require(d.feature_weight >= 0, f"{where}.feature_weight", "must be >= 0 (0: logits only)")
    one_of(d.feature_loss, ("mse", "margin"), f"{where}.feature_loss")
    if d.cache is not None:
        c = d.cache
        require(c.clips_per_video >= 1, f"{where}.cache.clips_per_video",
                f"must be >= 1 (recipes stored per training video), got {c.clips_per_video}")
        require(c.top_k is None or c.top_k >= 1, f"{where}.cache.top_k",
                f"must be >= 1 (logits kept per clip) or null (all of them), got {c.top_k}")
        require(c.shards >= 1, f"{where}.cache.shards", f"must be >= 1 (jobs that make the cache), got {c.shards}")
        require(d.feature_weight == 0, f"{where}.cache",
                f"feature distillation (feature_weight {d.feature_weight:g}) needs B's stage outputs at every step, "
                "which the cache does not hold: set feature_weight: 0 or remove distill.cache")
