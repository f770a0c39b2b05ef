"""R(2+1)D video ResNet (Tran et al. 2018) built from an ArchSpec.

Module names and initialisation follow torchvision's ``models/video/resnet.py``
so that the base spec loads torchvision's ``r2plus1d_18`` state dict strictly;
unlike torchvision, every width and depth comes from the spec::

    x (B, 3, T, H, W)
      -> stem: conv 1x7x7 /2 (mid) -> BN -> ReLU -> conv kt x1x1 (stem_width) -> BN -> ReLU
      -> layer1 .. layerN: basic blocks of two (2+1)D convs, first block strided
      -> global average pool -> [dropout] -> fc -> logits (B, num_classes)
"""

from __future__ import annotations

import torch
from torch import nn

from pas_models.nets.init import init_weights
from pas_models.spec import ArchSpec, PathwaySpec

BLOCK_SPATIAL_KERNEL = 3


def midplanes(in_planes: int, out_planes: int, temporal_kernel: int, spatial_kernel: int) -> int:
    """Width between the spatial and temporal conv of a (2+1)D conv.

    torchvision's formula (Tran et al. 2018, Sec. 3.5): the (2+1)D pair gets about
    the parameters of the full t x d x d 3D convolution it replaces. It is
    homogeneous in the widths, so the channel operator shrinks it in proportion.
    """
    kt, ks = temporal_kernel, spatial_kernel
    return (in_planes * out_planes * kt * ks * ks) // (in_planes * ks * ks + kt * out_planes)


class Conv2Plus1D(nn.Sequential):
    """Spatial 1 x k x k conv, BN, ReLU, temporal kt x 1 x 1 conv (no bias)."""

    def __init__(self, in_planes: int, out_planes: int, mid: int, temporal_kernel: int,
                 spatial_stride: int = 1, temporal_stride: int = 1) -> None:
        ks = BLOCK_SPATIAL_KERNEL
        super().__init__(
            nn.Conv3d(in_planes, mid, (1, ks, ks), stride=(1, spatial_stride, spatial_stride),
                      padding=(0, ks // 2, ks // 2), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_planes, (temporal_kernel, 1, 1), stride=(temporal_stride, 1, 1),
                      padding=(temporal_kernel // 2, 0, 0), bias=False),
        )


class BasicBlock(nn.Module):
    """Two (2+1)D convs with a residual connection (projected when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, temporal_kernel: int,
                 spatial_stride: int, temporal_stride: int) -> None:
        super().__init__()
        mid = midplanes(in_planes, planes, temporal_kernel, BLOCK_SPATIAL_KERNEL)
        self.conv1 = nn.Sequential(
            Conv2Plus1D(in_planes, planes, mid, temporal_kernel, spatial_stride, temporal_stride),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes, mid, temporal_kernel), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if spatial_stride != 1 or temporal_stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, kernel_size=1,
                          stride=(temporal_stride, spatial_stride, spatial_stride), bias=False),
                nn.BatchNorm3d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + residual)


def _stem(p: PathwaySpec) -> nn.Sequential:
    assert p.stem_mid_width is not None  # validated by ArchSpec
    k, kt = p.stem_spatial_kernel, p.stem_temporal_kernel
    return nn.Sequential(
        nn.Conv3d(3, p.stem_mid_width, (1, k, k), stride=(1, 2, 2), padding=(0, k // 2, k // 2), bias=False),
        nn.BatchNorm3d(p.stem_mid_width),
        nn.ReLU(inplace=True),
        nn.Conv3d(p.stem_mid_width, p.stem_width, (kt, 1, 1), padding=(kt // 2, 0, 0), bias=False),
        nn.BatchNorm3d(p.stem_width),
        nn.ReLU(inplace=True),
    )


class R2Plus1D(nn.Module):
    """Stem, residual stages ``layer1..layerN``, pooling and classifier (see module doc)."""

    def __init__(self, stem: nn.Module, layers: list[nn.Module], head_dropout: float, fc: nn.Linear) -> None:
        super().__init__()
        self.stem = stem
        self.num_stages = len(layers)
        for i, layer in enumerate(layers, start=1):
            self.add_module(f"layer{i}", layer)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.dropout = nn.Dropout(head_dropout) if head_dropout > 0 else nn.Identity()
        self.fc = fc

    def stages(self) -> list[nn.Module]:
        return [getattr(self, f"layer{i}") for i in range(1, self.num_stages + 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.stages():
            x = layer(x)
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


def build_r2plus1d(spec: ArchSpec) -> R2Plus1D:
    """Build the network described by ``spec`` (family "r2plus1d")."""
    (p,) = spec.pathways
    layers: list[nn.Module] = []
    in_planes = p.stem_width
    for i, blocks in enumerate(spec.stage_blocks):
        planes, kt = p.stage_widths[i], p.stage_temporal_kernels[i]
        stage = []
        for b in range(blocks):
            first = b == 0
            stage.append(BasicBlock(in_planes, planes, kt,
                                    spec.stage_spatial_strides[i] if first else 1,
                                    p.stage_temporal_strides[i] if first else 1))
            in_planes = planes
        layers.append(nn.Sequential(*stage))
    model = R2Plus1D(_stem(p), layers, spec.head_dropout, nn.Linear(in_planes, spec.num_classes))
    init_weights(model)
    return model
