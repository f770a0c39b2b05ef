"""SlowFast (Feichtenhofer et al. 2019) with ResNet bottleneck stages, built from an ArchSpec.

Table 9 of the PAS paper (SlowFast-4x16-R50) is the ``slowfast_4x16_r50``
preset; every width, depth, kernel and stride here comes from the spec::

    x (B, 3, T_in, H, W)   T_in = frames of the densest pathway (the fast one)
      -> slow = x[:, :, ::alpha], fast = x          (each pathway's own sampling)
      -> stem per pathway: conv kt x7x7 /2 -> BN -> ReLU -> maxpool 1x3x3 /2
      -> for each stage:  fuse fast -> slow (conv k x1x1, temporal stride alpha,
                          concatenated to the slow channels), then the stage's
                          bottleneck blocks on each pathway
      -> global average pool per pathway -> concat -> [dropout] -> fc
"""

from __future__ import annotations

import torch
from torch import nn

from pas_models.nets.init import init_weights
from pas_models.spec import ArchSpec, FusionSpec, PathwaySpec

BLOCK_SPATIAL_KERNEL = 3


def _conv_bn_relu(c_in: int, c_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int],
                  relu: bool = True) -> list[nn.Module]:
    padding = tuple(k // 2 for k in kernel)
    mods: list[nn.Module] = [nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
                             nn.BatchNorm3d(c_out)]
    return [*mods, nn.ReLU(inplace=True)] if relu else mods


class Bottleneck(nn.Module):
    """kt x1x1 -> 1x3x3 (spatial stride) -> 1x1x1 convs, with a projected shortcut when needed."""

    def __init__(self, c_in: int, inner: int, c_out: int, temporal_kernel: int,
                 spatial_stride: int, temporal_stride: int) -> None:
        super().__init__()
        ks = BLOCK_SPATIAL_KERNEL
        self.branch = nn.Sequential(
            *_conv_bn_relu(c_in, inner, (temporal_kernel, 1, 1), (temporal_stride, 1, 1)),
            *_conv_bn_relu(inner, inner, (1, ks, ks), (1, spatial_stride, spatial_stride)),
            *_conv_bn_relu(inner, c_out, (1, 1, 1), (1, 1, 1), relu=False),
        )
        self.branch[-1].is_final_bn = True  # zero-initialised: each block starts as identity
        self.shortcut: nn.Module | None = None
        if c_in != c_out or spatial_stride != 1 or temporal_stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv3d(c_in, c_out, 1, stride=(temporal_stride, spatial_stride, spatial_stride), bias=False),
                nn.BatchNorm3d(c_out),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.branch(x) + residual)


class FuseFastToSlow(nn.Module):
    """Lateral connection: fast features -> conv k x1x1 (temporal stride alpha) -> concat to slow."""

    def __init__(self, fast_width: int, fusion: FusionSpec, alpha: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(*_conv_bn_relu(fast_width, fast_width * fusion.conv_channel_ratio,
                                                 (fusion.kernel, 1, 1), (alpha, 1, 1)))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        slow, fast = xs
        return [torch.cat([slow, self.conv(fast)], dim=1), fast]


def _stem(p: PathwaySpec) -> nn.Sequential:
    k = p.stem_spatial_kernel
    return nn.Sequential(
        *_conv_bn_relu(3, p.stem_width, (p.stem_temporal_kernel, k, k), (1, 2, 2)),
        nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
    )


class SlowFast(nn.Module):
    """Two pathways with lateral fusion before every stage (see module doc)."""

    def __init__(self, pathway_steps: tuple[int, ...], stems: list[nn.Module], fusions: list[nn.Module],
                 stages: list[list[nn.Module]], head_dropout: float, fc: nn.Linear) -> None:
        super().__init__()
        self.pathway_steps = pathway_steps
        self.stem = nn.ModuleList(stems)
        self.fuse = nn.ModuleList(fusions)
        self.stages = nn.ModuleList(nn.ModuleList(per_pathway) for per_pathway in stages)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.dropout = nn.Dropout(head_dropout) if head_dropout > 0 else nn.Identity()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = [x if step == 1 else x[:, :, ::step] for step in self.pathway_steps]
        xs = [stem(t) for stem, t in zip(self.stem, xs, strict=True)]
        for fuse, stage in zip(self.fuse, self.stages, strict=True):
            xs = fuse(xs)
            xs = [blocks(t) for blocks, t in zip(stage, xs, strict=True)]
        pooled = torch.cat([self.avgpool(t).flatten(1) for t in xs], dim=1)
        return self.fc(self.dropout(pooled))


def build_slowfast(spec: ArchSpec) -> SlowFast:
    """Build the network described by ``spec`` (family "slowfast")."""
    assert spec.fusion is not None and spec.alpha is not None  # validated by ArchSpec
    slow, fast = spec.pathways
    ratio = spec.fusion.conv_channel_ratio
    in_w = [slow.stem_width, fast.stem_width]
    fusions: list[nn.Module] = []
    stages: list[list[nn.Module]] = []
    for i, blocks in enumerate(spec.stage_blocks):
        fusions.append(FuseFastToSlow(in_w[1], spec.fusion, spec.alpha))
        in_w[0] += in_w[1] * ratio
        per_pathway = []
        for j, p in enumerate(spec.pathways):
            seq = []
            for b in range(blocks):
                first = b == 0
                seq.append(Bottleneck(in_w[j], p.stage_widths[i], p.stage_out_widths[i],
                                      p.stage_temporal_kernels[i],
                                      spec.stage_spatial_strides[i] if first else 1,
                                      p.stage_temporal_strides[i] if first else 1))
                in_w[j] = p.stage_out_widths[i]
            per_pathway.append(nn.Sequential(*seq))
        stages.append(per_pathway)
    steps = tuple(p.sample_stride // spec.input_stride for p in spec.pathways)
    model = SlowFast(steps, [_stem(slow), _stem(fast)], fusions, stages, spec.head_dropout,
                     nn.Linear(sum(in_w), spec.num_classes))
    init_weights(model)
    return model
