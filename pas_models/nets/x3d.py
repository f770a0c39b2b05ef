"""X3D (Feichtenhofer 2020, "X3D: Expanding Architectures for Efficient Video Recognition") built from an
ArchSpec, as PyTorchVideo's ``create_x3d`` builds it; every width, depth, kernel and stride comes from the spec::

    x (B, 3, T, H, W)
      -> stem: conv 1x3x3 /2 (stem_width) -> channel-wise conv kt x1x1 -> BN -> ReLU
      -> stage 1..N, blocks of (the first with the stage's spatial stride):
           conv_a 1x1x1 (inner) -> BN -> ReLU
           -> conv_b channel-wise kt x3x3 (groups = inner) -> BN -> [SE on blocks 0, 2, 4, ...] -> Swish
           -> conv_c 1x1x1 (out) -> BN
           + shortcut (identity; conv 1x1x1 with the block's stride where the shape changes, and BN where the
             width changes) -> ReLU
      -> head: conv 1x1x1 (the last stage's inner width) -> BN -> ReLU
           -> average pool over the training view's map (window: frames x ceil(crop_train / stride)^2, stride 1)
           -> conv 1x1x1 (head_width) -> ReLU -> mean over the pooled positions -> [dropout] -> fc

The SE block's width is ``round_width(inner, 1/16)`` (``pas_models.widths``: PyTorchVideo's rounding to a
multiple of 8, at least 8), derived from the inner width as R(2+1)D's midplanes are. At the training crop the
head's window covers the whole map (global average pooling); at a larger test crop (X3D's three-crop testing:
182 for X3D-S, 256 for X3D-M) it slides over the map and the positions' outputs are averaged, as PyTorchVideo's
head (built for the training crop) and PySlowFast's fully convolutional test do. The mean comes before dropout
and the classifier (PyTorchVideo: after; the same logits, the classifier being linear and dropout off in
evaluation).

Module names are pas's own; ``pas_models.nets.x3d_import`` maps PyTorchVideo's state-dict layout onto them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pas_models.nets.init import init_weights
from pas_models.spec import ArchSpec, PathwaySpec
from pas_models.widths import se_width

BLOCK_SPATIAL_KERNEL = 3


class SqueezeExcite(nn.Module):
    """Mean over (T, H, W) -> conv 1x1x1 (reduced, bias) -> ReLU -> conv 1x1x1 (bias) -> sigmoid -> scale."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv3d(channels, reduced, 1, bias=True)
        self.fc2 = nn.Conv3d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class X3DBlock(nn.Module):
    """One residual bottleneck block (see the module doc)."""

    def __init__(self, c_in: int, inner: int, c_out: int, temporal_kernel: int, spatial_stride: int,
                 temporal_stride: int, se: bool) -> None:
        super().__init__()
        ks, kt = BLOCK_SPATIAL_KERNEL, temporal_kernel
        stride = (temporal_stride, spatial_stride, spatial_stride)
        self.conv_a = nn.Conv3d(c_in, inner, 1, bias=False)
        self.bn_a = nn.BatchNorm3d(inner)
        self.conv_b = nn.Conv3d(inner, inner, (kt, ks, ks), stride=stride, padding=(kt // 2, ks // 2, ks // 2),
                                groups=inner, bias=False)
        self.bn_b = nn.BatchNorm3d(inner)
        self.se = SqueezeExcite(inner, se_width(inner)) if se else None
        self.conv_c = nn.Conv3d(inner, c_out, 1, bias=False)
        self.bn_c = nn.BatchNorm3d(c_out)
        self.bn_c.is_final_bn = True  # zero-initialised: each block starts as its shortcut
        strided = stride != (1, 1, 1)
        self.shortcut_conv = nn.Conv3d(c_in, c_out, 1, stride=stride, bias=False) if c_in != c_out or strided \
            else None
        self.shortcut_bn = nn.BatchNorm3d(c_out) if c_in != c_out else None
        self.relu = nn.ReLU(inplace=True)  # a module: feature distillation hooks the input of a block's last ReLU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn_a(self.conv_a(x)))
        y = self.bn_b(self.conv_b(y))
        if self.se is not None:
            y = self.se(y)
        y = self.bn_c(self.conv_c(nn.functional.silu(y)))
        shortcut = x
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_conv(x)
        if self.shortcut_bn is not None:
            shortcut = self.shortcut_bn(shortcut)
        return self.relu(y + shortcut)


class X3DStem(nn.Module):
    """conv 1 x k x k, spatial stride 2 -> channel-wise conv kt x 1 x 1 -> BN -> ReLU."""

    def __init__(self, p: PathwaySpec) -> None:
        super().__init__()
        k, kt, w = p.stem_spatial_kernel, p.stem_temporal_kernel, p.stem_width
        self.conv_xy = nn.Conv3d(3, w, (1, k, k), stride=(1, 2, 2), padding=(0, k // 2, k // 2), bias=False)
        self.conv_t = nn.Conv3d(w, w, (kt, 1, 1), padding=(kt // 2, 0, 0), groups=w, bias=False)
        self.bn = nn.BatchNorm3d(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv_t(self.conv_xy(x))))


class X3DHead(nn.Module):
    """conv 1x1x1 -> BN -> ReLU -> average pool (the training view's window) -> conv 1x1x1 -> ReLU -> mean."""

    def __init__(self, c_in: int, inner: int, width: int, window: tuple[int, int, int]) -> None:
        super().__init__()
        self.window = window
        self.conv = nn.Conv3d(c_in, inner, 1, bias=False)
        self.bn = nn.BatchNorm3d(inner)
        self.proj = nn.Conv3d(inner, width, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        kernel = tuple(min(w, s) for w, s in zip(self.window, x.shape[2:], strict=True))
        x = nn.functional.avg_pool3d(x, kernel, stride=1)
        return torch.relu(self.proj(x)).mean(dim=(2, 3, 4))


class X3D(nn.Module):
    """Stem, residual stages, head, dropout and classifier (see the module doc)."""

    def __init__(self, stem: nn.Module, stages: list[nn.Module], head: nn.Module, head_dropout: float,
                 fc: nn.Linear) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.dropout = nn.Dropout(head_dropout) if head_dropout > 0 else nn.Identity()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(self.dropout(self.head(x)))


def head_window(spec: ArchSpec) -> tuple[int, int, int]:
    """The head's pooling window: the last map of the training view (frames, then ceil(crop / stride) twice)."""
    (p,) = spec.pathways
    side = math.ceil(spec.view.crop_train / spec.spatial_stride)
    return (-(-spec.pathway_frames(p) // spec.temporal_stride(p)), side, side)


def build_x3d(spec: ArchSpec) -> X3D:
    """Build the network described by ``spec`` (family "x3d")."""
    (p,) = spec.pathways
    assert spec.head_width is not None  # validated by ArchSpec
    stages: list[nn.Module] = []
    c_in = p.stem_width
    for i, blocks in enumerate(spec.stage_blocks):
        seq = []
        for b in range(blocks):
            first = b == 0
            seq.append(X3DBlock(c_in, p.stage_widths[i], p.stage_out_widths[i], p.stage_temporal_kernels[i],
                                spec.stage_spatial_strides[i] if first else 1,
                                p.stage_temporal_strides[i] if first else 1, se=b % 2 == 0))
            c_in = p.stage_out_widths[i]
        stages.append(nn.Sequential(*seq))
    head = X3DHead(c_in, p.stage_widths[-1], spec.head_width, head_window(spec))
    model = X3D(X3DStem(p), stages, head, spec.head_dropout, nn.Linear(spec.head_width, spec.num_classes))
    init_weights(model)
    return model
