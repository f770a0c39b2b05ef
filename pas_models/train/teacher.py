"""Loading trained weights, and the frozen base network that teaches every hypothesis."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pas_models.errors import PasError
from pas_models.nets import build_model
from pas_models.spec import ArchSpec
from pas_models.train.checkpoint import load_checkpoint
from pas_models.train.task import TrainTask


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict of a ``model.pt`` or ``last.pt`` file, or of a bare state dict file
    (e.g. torchvision's ``r2plus1d_18`` weights saved with ``torch.save(model.state_dict())``)."""
    if not Path(path).is_file():
        raise PasError(f"{path}: no such weights file")
    ckpt = load_checkpoint(path)
    if isinstance(ckpt.get("model"), dict):
        return ckpt["model"]
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise PasError(f"{path}: neither a pas checkpoint (with a 'model' entry) nor a state dict of tensors")


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
    return teacher.to(device)
