"""The weight-sharing supernet: every network of a ``SearchSpace`` is a slice of the base network.

A derived network (``SearchSpace.derive``) is built by ``pas_models.nets`` like any other; its every
state-dict entry is a slice of the base's entry of the same name (``weight_plan``):

- output channels: the first C (channel prefixes; the base's channels are not reordered);
- input channels: the first C, or, where the input is a concatenation (SlowFast's slow pathway after a
  fusion, and its classifier), the first C of each part;
- temporal kernel 1 of a 3-tap kernel: its centre tap;
- a dropped block or a shortcut the derived network does not have: not taken.

``derive_state`` applies the plan to a state dict (a candidate's starting weights); ``Supernet.forward``
applies it to the live parameters and runs the derived network's own module structure (built once per
architecture on the meta device) with ``torch.func.functional_call``: a step on a sampled architecture
trains exactly the slices that network has, batch-norm running statistics included (prefix slices are
views, updated in place).

Gates (the straight-through Gumbel-softmax estimator, ``pas_models.nas.search``): a gate vector
multiplies a batch norm's scale and shift (per channel) or a kernel's side taps; each gate's value is
1 on the sampled architecture, its gradient is what reaches the architecture parameters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from pas_models.errors import SpecError
from pas_models.nets import build_model
from pas_models.spec import ArchSpec
from pas_models.weights import weight_shapes

Selector = slice | torch.Tensor


@dataclass(frozen=True)
class Slice:
    """How one entry of a derived network is cut from the base's entry of the same name."""

    key: str
    dims: tuple[Selector, ...]

    def take(self, t: torch.Tensor) -> torch.Tensor:
        for d, sel in enumerate(self.dims):
            if isinstance(sel, slice):
                if sel != slice(None):
                    t = t[(slice(None),) * d + (sel,)]
            else:
                t = t.index_select(d, sel.to(t.device))
        return t


def concat_parts(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """Entries whose input channels are a concatenation, and the parts' sizes (SlowFast only)."""
    if spec.family != "slowfast" or spec.fusion is None:
        return {}
    slow, fast = spec.pathways
    ratio = spec.fusion.conv_channel_ratio
    out: dict[str, tuple[int, ...]] = {}
    prev_slow, prev_fast = slow.stem_width, fast.stem_width
    for i in range(len(spec.stage_blocks)):
        parts = (prev_slow, prev_fast * ratio)
        out[f"stages.{i}.0.0.branch.0.weight"] = parts
        out[f"stages.{i}.0.0.shortcut.0.weight"] = parts
        prev_slow, prev_fast = slow.stage_out_widths[i], fast.stage_out_widths[i]
    out["fc.weight"] = (prev_slow, prev_fast)
    return out


def weight_plan(base: ArchSpec, child: ArchSpec) -> dict[str, Slice]:
    """For every state-dict entry of ``child``'s network, how it is cut from ``base``'s (see module doc)."""
    b_shapes, c_shapes = dict(weight_shapes(base)), dict(weight_shapes(child))  # cached: the base's built once
    b_parts, c_parts = concat_parts(base), concat_parts(child)
    plan: dict[str, Slice] = {}
    for key, shape in c_shapes.items():
        if key not in b_shapes:
            raise SpecError(f"{child.label}: {key} is not in the base network {base.label}: not a slice of it")
        full = b_shapes[key]
        if len(full) != len(shape):
            raise SpecError(f"{child.label}: {key} has shape {list(shape)}, the base's {list(full)}")
        dims: list[Selector] = []
        for d, (n_base, n) in enumerate(zip(full, shape, strict=True)):
            if n > n_base:
                raise SpecError(f"{child.label}: {key} dim {d} is {n}, more than the base's {n_base}")
            if n == n_base and not (d == 1 and key in c_parts and c_parts[key] != b_parts[key]):
                dims.append(slice(None))
            elif d == 1 and key in c_parts:
                (b0, _), (c0, c1) = b_parts[key], c_parts[key]
                dims.append(torch.cat([torch.arange(c0), b0 + torch.arange(c1)]))
            elif d == 2 and len(full) == 5:  # a temporal kernel: its centre taps
                start = (n_base - n) // 2
                dims.append(slice(start, start + n))
            elif d >= 3:
                raise SpecError(f"{child.label}: {key}: spatial kernels are not searched ({full} -> {shape})")
            else:
                dims.append(slice(0, n))
        plan[key] = Slice(key, tuple(dims))
    return plan


def derive_state(base_state: Mapping[str, torch.Tensor], base: ArchSpec, child: ArchSpec) -> dict[str, torch.Tensor]:
    """The child's state dict, cut from the base's (contiguous copies: a file of its own)."""
    return {k: s.take(base_state[k]).detach().clone().contiguous() for k, s in weight_plan(base, child).items()}


class Supernet(nn.Module):
    """The base network's parameters and buffers, and a forward for any derived network."""

    def __init__(self, base: ArchSpec, model: nn.Module, cache_size: int = 64) -> None:
        super().__init__()
        self.base = base
        self.net = model
        self._cache: OrderedDict[ArchSpec, tuple[nn.Module, dict[str, Slice]]] = OrderedDict()
        self._cache_size = cache_size

    def _derived(self, child: ArchSpec) -> tuple[nn.Module, dict[str, Slice]]:
        hit = self._cache.get(child)
        if hit is not None:
            self._cache.move_to_end(child)
            return hit
        with torch.device("meta"):
            skeleton = build_model(child)
        entry = (skeleton, weight_plan(self.base, child))
        self._cache[child] = entry
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    def tensors(self, child: ArchSpec,
                gates: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The child's parameters and buffers as slices of the live ones (autograd reaches the base's),
        each multiplied by its gate where ``gates`` has one (broadcast along dim 0, or a kernel gate)."""
        own = dict(self.net.named_parameters())
        own.update(self.net.named_buffers())
        _, plan = self._derived(child)
        out = {}
        for key, s in plan.items():
            t = s.take(own[key])
            g = None if gates is None else gates.get(key)
            if g is not None:
                t = t * (g if g.dim() == t.dim() else g.view(-1, *([1] * (t.dim() - 1))))
            out[key] = t
        return out

    def forward(self, x: torch.Tensor, child: ArchSpec,
                gates: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        skeleton, _ = self._derived(child)
        skeleton.train(self.training)
        return functional_call(skeleton, self.tensors(child, gates), (x,), strict=True)

    def state_of(self, child: ArchSpec) -> dict[str, torch.Tensor]:
        """The child's weights as they are now (what a candidate starts from)."""
        return derive_state(self.net.state_dict(), self.base, child)
