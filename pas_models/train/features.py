"""Intermediate-feature distillation (paper Table 6, off by default): the student's residual-stage outputs
against the teacher's, by one of two losses (``distill.feature_loss``):

    student stage i --1x1x1 conv (when widths differ)--> pooled to the common T x H x W --+
    teacher stage i -------------------------------------> pooled to the common T x H x W --+--> loss
    loss = mean over stages (and SlowFast pathways)

- ``mse``: MSE between the stage outputs (after their last ReLU);
- ``margin`` (Heo et al., "A Comprehensive Overhaul of Feature Distillation", ICCV 2019): the features
  *before* the last block's ReLU; the teacher's through a margin ReLU, max(t, m_c), with the per-channel
  margin m_c = E[x | x < 0] of x ~ N(beta_c, gamma_c^2), from the batch norm that ends the last block's
  branch (the expected negative response; -3 |gamma_c| where P(x < 0) < 0.001), and a partial L2 that
  leaves out the positions where the student is at or below a non-positive target (there the ReLU that
  follows makes them agree); the squared errors are averaged over all positions, as the MSE's.

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
from pas_models.nets.x3d import X3D


def stage_modules(model: nn.Module) -> list[nn.Module]:
    """The residual stages whose outputs are distilled, in forward order (SlowFast: both pathways)."""
    if isinstance(model, R2Plus1D):
        return model.stages()
    if isinstance(model, SlowFast):
        return [pathway for stage in model.stages for pathway in stage]
    if isinstance(model, X3D):
        return list(model.stages)
    raise TypeError(f"no stage list for {type(model).__name__}")


def stage_widths(model: nn.Module) -> list[int]:
    """Output channels of each stage (the last BatchNorm's width: every block ends with one)."""
    widths = []
    for stage in stage_modules(model):
        norms = [m for m in stage.modules() if isinstance(m, nn.BatchNorm3d)]
        widths.append(norms[-1].num_features)
    return widths


def _last_block(stage: nn.Module) -> nn.Module:
    blocks = list(stage.children())
    return blocks[-1]


def final_bn(block: nn.Module) -> nn.BatchNorm3d:
    """The batch norm that ends a residual block's branch (not its projection shortcut)."""
    norms = [m for name, m in block.named_modules() if isinstance(m, nn.BatchNorm3d)
             and not name.startswith(("downsample", "shortcut"))]
    return norms[-1]


def bn_margins(model: nn.Module) -> list[torch.Tensor]:
    """Per stage, the margin of each channel (Heo et al.): E[x | x < 0] for x ~ N(beta, gamma^2) of the batch
    norm that ends the stage's last block, -3 |gamma| where P(x < 0) < 0.001."""
    out = []
    for stage in stage_modules(model):
        bn = final_bn(_last_block(stage))
        s = bn.weight.detach().abs().double().clamp_min(1e-12)
        m = bn.bias.detach().double()
        normal = torch.distributions.Normal(0.0, 1.0)
        p_neg = normal.cdf(-m / s)
        pdf = torch.exp(-0.5 * (m / s) ** 2) / (2 * torch.pi) ** 0.5
        margin = torch.where(p_neg > 0.001, m - s * pdf / p_neg.clamp_min(1e-300), -3 * s)
        out.append(margin.float())
    return out


class StageTap:
    """Hooks that keep the latest output of every stage of ``model`` (``pre_relu``: the input of the stage's
    last ReLU, i.e. its last block's sum before it, copied before that in-place ReLU overwrites it)."""

    def __init__(self, model: nn.Module, pre_relu: bool = False) -> None:
        stages = stage_modules(model)
        self.outputs: list[torch.Tensor | None] = [None] * len(stages)
        if pre_relu:
            self._handles = [_last_block(m).relu.register_forward_pre_hook(self._pre(i))
                             for i, m in enumerate(stages)]
        else:
            self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(stages)]

    def _hook(self, i: int):  # type: ignore[no-untyped-def]
        def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            self.outputs[i] = output
        return keep

    def _pre(self, i: int):  # type: ignore[no-untyped-def]
        def keep(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            self.outputs[i] = inputs[0].clone()
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


def _common(s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    size = tuple(min(a, b) for a, b in zip(s.shape[2:], t.shape[2:], strict=True))
    s = s if tuple(s.shape[2:]) == size else F.adaptive_avg_pool3d(s, size)
    t = t if tuple(t.shape[2:]) == size else F.adaptive_avg_pool3d(t, size)
    return s.float(), t.detach().float()


def feature_mse(student: list[torch.Tensor], teacher: list[torch.Tensor], adapters: nn.ModuleList) -> torch.Tensor:
    """Mean over stages of MSE(pool(adapter(student_i)), pool(teacher_i)), in fp32."""
    losses = []
    for s, t, adapt in zip(student, teacher, adapters, strict=True):
        s, t = _common(adapt(s), t)
        losses.append(F.mse_loss(s, t))
    return torch.stack(losses).mean()


def margin_relu_loss(student: torch.Tensor, teacher: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """Heo et al.'s distillation loss on one stage (pre-ReLU maps of equal shape, ``margin`` per channel):
    target = max(teacher, margin); squared error where the student is above the target or the target is
    positive; averaged over all positions."""
    target = torch.maximum(teacher, margin.view(1, -1, *([1] * (teacher.dim() - 2))).to(teacher))
    keep = (student > target) | (target > 0)
    return ((student - target) ** 2 * keep).mean()


def feature_margin(student: list[torch.Tensor], teacher: list[torch.Tensor], adapters: nn.ModuleList,
                   margins: list[torch.Tensor]) -> torch.Tensor:
    """Mean over stages of the margin-ReLU loss of pool(adapter(student_i)) against pool(teacher_i), in fp32."""
    losses = []
    for s, t, adapt, m in zip(student, teacher, adapters, margins, strict=True):
        s, t = _common(adapt(s), t)
        losses.append(margin_relu_loss(s, t, m))
    return torch.stack(losses).mean()


class FeatureStudent(nn.Module):
    """The student plus one adapter per stage; ``forward(x, teacher_features)`` returns
    (logits, feature loss) so a DDP wrapper sees every trainable parameter. ``loss``: mse | margin (then the
    teacher's margins, fixed, are buffers: they move with the module)."""

    def __init__(self, student: nn.Module, teacher: nn.Module, loss: str = "mse") -> None:
        super().__init__()
        self.student = student
        self.loss = loss
        self.adapters = nn.ModuleList(_adapter(a, b) for a, b in
                                      zip(stage_widths(student), stage_widths(teacher), strict=True))
        self._tap = StageTap(student, pre_relu=loss == "margin")
        self._margins = 0
        if loss == "margin":
            for i, m in enumerate(bn_margins(teacher)):
                self.register_buffer(f"margin{i}", m, persistent=False)
                self._margins += 1

    def forward(self, x: torch.Tensor, teacher_features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.student(x)
        if self.loss == "margin":
            margins = [getattr(self, f"margin{i}") for i in range(self._margins)]
            return logits, feature_margin(self._tap.take(), teacher_features, self.adapters, margins)
        return logits, feature_mse(self._tap.take(), teacher_features, self.adapters)
