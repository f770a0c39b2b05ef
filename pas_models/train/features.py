"""Intermediate-feature distillation (paper Table 6, off by default): MSE between the student's and
the teacher's residual-stage outputs.

    student stage i --1x1x1 conv (when widths differ)--> pooled to the common T x H x W --+
    teacher stage i -------------------------------------> pooled to the common T x H x W --+--> MSE
    loss = mean over stages (and SlowFast pathways) of the MSEs

The student can see a smaller or shorter view than the teacher (s, t, f), so both maps are
average-pooled to the element-wise smaller size. The adapters are trained with the student and
wrapped with it (``FeatureStudent``) so DDP all-reduces their gradients too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pas_models.nets.r2plus1d import R2Plus1D
from pas_models.nets.slowfast import SlowFast


def stage_modules(model: nn.Module) -> list[nn.Module]:
    """The residual stages whose outputs are distilled, in forward order (SlowFast: both pathways)."""
    if isinstance(model, R2Plus1D):
        return model.stages()
    if isinstance(model, SlowFast):
        return [pathway for stage in model.stages for pathway in stage]
    raise TypeError(f"no stage list for {type(model).__name__}")


def stage_widths(model: nn.Module) -> list[int]:
    """Output channels of each stage (the last BatchNorm's width: every block ends with one)."""
    widths = []
    for stage in stage_modules(model):
        norms = [m for m in stage.modules() if isinstance(m, nn.BatchNorm3d)]
        widths.append(norms[-1].num_features)
    return widths


class StageTap:
    """Forward hooks that keep the latest output of every stage of ``model``."""

    def __init__(self, model: nn.Module) -> None:
        self.outputs: list[torch.Tensor | None] = [None] * len(stage_modules(model))
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(stage_modules(model))]

    def _hook(self, i: int):  # type: ignore[no-untyped-def]
        def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            self.outputs[i] = output
        return keep

    def take(self) -> list[torch.Tensor]:
        out = [o for o in self.outputs if o is not None]
        if len(out) != len(self.outputs):
            raise RuntimeError("a stage did not run in the last forward pass")
        self.outputs = [None] * len(self.outputs)
        return out

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _adapter(c_in: int, c_out: int) -> nn.Module:
    return nn.Identity() if c_in == c_out else nn.Conv3d(c_in, c_out, kernel_size=1, bias=False)


def feature_mse(student: list[torch.Tensor], teacher: list[torch.Tensor], adapters: nn.ModuleList) -> torch.Tensor:
    """Mean over stages of MSE(pool(adapter(student_i)), pool(teacher_i)), in fp32."""
    losses = []
    for s, t, adapt in zip(student, teacher, adapters, strict=True):
        s = adapt(s)
        size = tuple(min(a, b) for a, b in zip(s.shape[2:], t.shape[2:], strict=True))
        s = s if tuple(s.shape[2:]) == size else F.adaptive_avg_pool3d(s, size)
        t = t if tuple(t.shape[2:]) == size else F.adaptive_avg_pool3d(t, size)
        losses.append(F.mse_loss(s.float(), t.detach().float()))
    return torch.stack(losses).mean()


class FeatureStudent(nn.Module):
    """The student plus one adapter per stage; ``forward(x, teacher_features)`` returns
    (logits, feature MSE) so a DDP wrapper sees every trainable parameter."""

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.adapters = nn.ModuleList(_adapter(a, b) for a, b in
                                      zip(stage_widths(student), stage_widths(teacher), strict=True))
        self._tap = StageTap(student)

    def forward(self, x: torch.Tensor, teacher_features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.student(x)
        return logits, feature_mse(self._tap.take(), teacher_features, self.adapters)
