"""The Tucker-2 form of a convolution as a network layer (operator k's structure, not its decomposition).

``build_model`` builds the convolutions listed in ``spec.tucker`` in this form, with fresh weights:
``first`` 1x1x1 (C_in -> r_in), ``core`` (r_in -> r_out, the original's geometry), ``last`` 1x1x1
(r_out -> C_out). Computing ranks and decomposing trained kernels is ``pas_models.tucker``, a layer
above: building a network never imports it.
"""

from __future__ import annotations

import re

from torch import nn

from pas_models.errors import SpecError
from pas_models.nets.init import kaiming_normal_fan_out
from pas_models.spec import ArchSpec

# residual-block convolutions of each family: module path -> (stage index from 1, block index)
SITE_PATTERNS: dict[str, re.Pattern[str]] = {
    "r2plus1d": re.compile(r"^layer(\d+)\.(\d+)\.conv[12]\.0\.[03]$"),
    "slowfast": re.compile(r"^stages\.(\d+)\.\d+\.(\d+)\.branch\.[036]$"),
    # X3D: the two 1x1x1 convs of each block; its channel-wise conv (groups = channels) has no input-channel
    # mode for Tucker-2 to reduce
    "x3d": re.compile(r"^stages\.(\d+)\.(\d+)\.conv_[ac]$"),
}
_STAGE_BASE = {"r2plus1d": 0, "slowfast": 1, "x3d": 1}  # slowfast's and x3d's stage modules count from 0


class TuckerConv3d(nn.Sequential):
    """``first`` 1x1x1 (C_in -> r_in), ``core`` (r_in -> r_out, the original's geometry), ``last``
    1x1x1 (r_out -> C_out, with the original's bias if it had one)."""

    def __init__(self, conv: nn.Conv3d, rank_in: int, rank_out: int) -> None:
        if conv.groups != 1:
            raise SpecError(f"Tucker-2 needs an ungrouped convolution (groups={conv.groups})")
        super().__init__()
        self.first = nn.Conv3d(conv.in_channels, rank_in, 1, bias=False, device=conv.weight.device)
        self.core = nn.Conv3d(rank_in, rank_out, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                              dilation=conv.dilation, bias=False, device=conv.weight.device)
        self.last = nn.Conv3d(rank_out, conv.out_channels, 1, bias=conv.bias is not None,
                              device=conv.weight.device)
        for m in (self.first, self.core, self.last):
            kaiming_normal_fan_out(m.weight)
        if self.last.bias is not None:
            nn.init.zeros_(self.last.bias)


def site_of(spec: ArchSpec, name: str) -> tuple[int, int] | None:
    """(stage from 1, block) of a residual-block convolution of ``spec``'s family, else None."""
    m = SITE_PATTERNS[spec.family].match(name)
    return None if m is None else (int(m.group(1)) + _STAGE_BASE[spec.family], int(m.group(2)))


def apply_tucker(model: nn.Module, spec: ArchSpec) -> nn.Module:
    """Replace each convolution listed in ``spec.tucker`` by its TuckerConv3d (fresh weights)."""
    for i, t in enumerate(spec.tucker):
        where = f"spec.tucker[{i}] ({t.conv})"
        if site_of(spec, t.conv) is None:
            raise SpecError(f"{where}: not a residual-block convolution of a {spec.family} network")
        try:
            conv = model.get_submodule(t.conv)
        except AttributeError as exc:
            raise SpecError(f"{where}: no such convolution in this network") from exc
        if not isinstance(conv, nn.Conv3d):
            raise SpecError(f"{where}: is a {type(conv).__name__}, not a Conv3d")
        if t.rank_in > conv.in_channels or t.rank_out > conv.out_channels:
            raise SpecError(f"{where}: ranks ({t.rank_in}, {t.rank_out}) exceed the channels "
                            f"({conv.in_channels}, {conv.out_channels})")
        parent_name, _, child = t.conv.rpartition(".")
        setattr(model.get_submodule(parent_name), child, TuckerConv3d(conv, t.rank_in, t.rank_out))
    return model
