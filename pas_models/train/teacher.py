"""Loading trained weights, the frozen base network that teaches every hypothesis, and where a training's
distillation targets come from (``TeacherSignal``: none, the live network, or the search's teacher cache)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pas_models.errors import PasError
from pas_models.nets import build_model
from pas_models.nets.x3d_import import from_pytorchvideo, is_pytorchvideo_x3d
from pas_models.spec import ArchSpec
from pas_models.teacher_cache import clips as teacher_cache
from pas_models.train.checkpoint import load_checkpoint
from pas_models.train.features import StageTap
from pas_models.train.task import TrainTask


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict of a ``model.pt`` or ``last.pt`` file, of a bare state dict file (e.g.
    torchvision's ``r2plus1d_18`` weights saved with ``torch.save(model.state_dict())``), or of a PyTorchVideo /
    PySlowFast checkpoint (the state dict under ``model_state``, e.g. the model zoo's ``X3D_M.pyth``). A state
    dict in PyTorchVideo's X3D layout comes back under pas's X3D names (``pas_models.nets.x3d_import``)."""
    if not Path(path).is_file():
        raise PasError(f"{path}: no such weights file")
    ckpt = load_checkpoint(path)
    state = None
    for key in ("model", "model_state"):
        if isinstance(ckpt.get(key), dict):
            state = ckpt[key]
            break
    if state is None and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state = ckpt
    if state is None:
        raise PasError(f"{path}: neither a pas checkpoint (with a 'model' entry), a PyTorchVideo checkpoint (with "
                       "'model_state') nor a state dict of tensors")
    return from_pytorchvideo(state, str(path)) if is_pytorchvideo_x3d(state) else state


def build_teacher(task: TrainTask, device: torch.device) -> nn.Module | None:
    """The frozen base network (None when training the base); see ``frozen_teacher``."""
    if task.teacher is None:
        return None
    if task.teacher_checkpoint is None:
        raise PasError(f"{task.hypothesis}: a teacher spec needs teacher_checkpoint")
    return frozen_teacher(task.teacher, task.teacher_checkpoint, task.distill.teacher_bn, device,
                          task.distill.teacher_dropout)


def frozen_teacher(spec: ArchSpec, checkpoint: str, teacher_bn: str, device: torch.device,
                   dropout: bool = False) -> nn.Module:
    """B with its weights, frozen. In "train" BN mode it normalises with batch statistics (paper Table 7) but
    never updates its stored running statistics (track_running_stats off); it has no gradients and no
    optimizer state. Its dropout layers are active only with ``dropout`` (``distill.teacher_dropout``):
    ``train()`` alone would switch them on with the batch norms and make the soft labels random."""
    teacher = build_model(spec)
    teacher.load_state_dict(load_weights(checkpoint), strict=True)
    return freeze(teacher, teacher_bn, dropout).to(device)


def freeze(teacher: nn.Module, teacher_bn: str = "train", dropout: bool = False) -> nn.Module:
    """``teacher`` frozen as ``frozen_teacher`` freezes B (in place)."""
    for p in teacher.parameters():
        p.requires_grad_(False)
    if teacher_bn == "train":
        teacher.train()
        for m in teacher.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.track_running_stats = False
    else:
        teacher.eval()
    for m in teacher.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.train(dropout)
    return teacher


log = logging.getLogger(__name__)


class TeacherSignal:
    """Where the distillation targets come from: nothing (B itself, a baseline), or the live teacher
    network on the batch's full view. A teacher cache (soft labels read from a file) is another
    implementation of ``logits``; feature distillation needs the live network (``tap``)."""

    source = "none"
    tap: StageTap | None = None
    network: nn.Module | None = None

    def logits(self, batch: dict[str, Any], device: torch.device, fmt: torch.memory_format) -> torch.Tensor | None:
        return None

    def close(self) -> None:
        pass


class LiveTeacher(TeacherSignal):
    source = "live"

    def __init__(self, network: nn.Module, features: bool, fmt: torch.memory_format, pre_relu: bool = False) -> None:
        self.network = network.to(memory_format=fmt)
        self.tap = StageTap(network, pre_relu) if features else None

    def logits(self, batch: dict[str, Any], device: torch.device, fmt: torch.memory_format) -> torch.Tensor:
        with torch.no_grad():
            return self.network(batch["teacher"].to(device, non_blocking=True, memory_format=fmt))

    def close(self) -> None:
        if self.tap is not None:
            self.tap.close()


class CachedTeacher(TeacherSignal):
    """B's logits stored once per search (pas_models.teacher_cache), carried by each batch (``soft``)."""

    source = "cache"

    def logits(self, batch: dict[str, Any], device: torch.device, fmt: torch.memory_format) -> torch.Tensor:
        return batch["soft"].to(device, non_blocking=True)


def teacher_cache_for(task: TrainTask, samples: Any) -> Any:
    """The search's teacher cache for this task, checked against its B and training list."""
    assert task.teacher is not None and task.distill.cache is not None
    if task.teacher_cache is None or task.teacher_checkpoint is None:
        raise PasError(f"{task.hypothesis}: distill.cache is set but the task names no cache folder and B's "
                       "weights (teacher_cache, teacher_checkpoint)")
    expected = teacher_cache.manifest_for(samples, task.data, task.teacher, task.teacher_checkpoint,
                                          task.distill.cache,
                                          task.seed if task.teacher_cache_seed is None else task.teacher_cache_seed,
                                          task.distill.teacher_bn,
                                          task.distill.teacher_dropout)
    cache = teacher_cache.load(task.teacher_cache, expected)
    log.info("%s: distilling from the teacher cache %s (%d recipes per video, %s logits): no teacher network",
             task.hypothesis, task.teacher_cache, cache.k, "all" if cache.indices is None else
             f"top {cache.logits.shape[1]}")
    return cache
