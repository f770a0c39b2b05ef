"""Operator k: Tucker-2 decomposition of the residual stages' 3D convolutions.

Kim et al. 2016 ("Compression of deep convolutional neural networks for fast and low power mobile
applications") for 2D kernels; Rasmussen et al. 2022 ("Compressing CNN kernels for videos using
Tucker decompositions") for video kernels. A convolution with kernel W (C_out, C_in, kt, kh, kw)
becomes three::

    1x1x1 (C_in -> r_in)  ->  kt x kh x kw, stride and padding of W (r_in -> r_out)  ->  1x1x1 (r_out -> C_out)

initialised from the Tucker-2 decomposition of W over its two channel modes,
``W ~ core x_0 U_out x_1 U_in`` (tensorly's ``partial_tucker``): first = U_in^T, core, last = U_out.
At full ranks the three reproduce W. Unlike c and l, the child starts from its parent's weights.

Which convolutions: every convolution inside a residual block of the chosen stages (R(2+1)D: the
spatial and the temporal part of each (2+1)D conv; SlowFast: the three of each bottleneck, both
pathways; X3D: the two 1x1x1 convs of each block, where Tucker-2 is a rank factorisation of a matrix
and a 1x1x1 core; not its channel-wise kt x3x3 conv, whose kernel (C, 1, kt, 3, 3) has no input-channel
mode to reduce and costs C*kt*9 multiply-adds per position already); stems, shortcuts, fusions,
squeeze-excitations, heads and the classifier stay as they are.

Rank rule (``tucker_child``): one fraction rho for every decomposed convolution, r = max(1,
floor(rho * C)) per channel mode (C_in, C_out; or the current ranks when the convolution is
already decomposed, so k can apply again), the largest rho whose network costs at most
parent GFLOPs / gamma (gamma_k = 2: about half, like the other operators). The cost of each
candidate is exact arithmetic on the layer shapes (fvcore's convention: one multiply-add per
weight and output position); the child's recorded GFLOPs are then counted by fvcore as for
every spec.

Rank rule ``vbmf`` (search key ``tucker.ranks: vbmf``), the choice of Kim et al.: the ranks of each
convolution are what EVBMF keeps of its kernel's C_in and C_out unfoldings (``pas_models.vbmf``;
of the core's when already decomposed); gamma plays no part, and the GFLOPs are whatever those
ranks cost. It needs the parent's trained weights. A convolution whose EVBMF ranks would not
make it cheaper stays as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from pas_models.errors import NotApplicable, SpecError, WeightsIncompatible
from pas_models.flops import count_cost
from pas_models.nets import build_model
from pas_models.nets.tucker_layers import SITE_PATTERNS, TuckerConv3d, apply_tucker, site_of
from pas_models.spec import ArchSpec, TuckerConv
from pas_models.tucker_options import RANK_RULES, TuckerOptions
from pas_models.vbmf import tucker2_ranks
from pas_models.weights import shape_mismatches, weight_shapes

__all__ = ["RANK_RULES", "SITE_PATTERNS", "TuckerConv3d", "TuckerOptions", "apply_tucker", "site_of"]  # re-exported

# ---- shapes and costs ---------------------------------------------------------------------
@dataclass(frozen=True)
class Site:
    """A decomposable convolution of a built network, with the shapes its cost depends on."""

    name: str
    stage: int
    block: int
    c_in: int
    c_out: int
    kernel: int  # kt * kh * kw
    positions_in: int  # T x H x W of its input (the first 1x1x1 runs there)
    positions_out: int
    ranks: tuple[int, int] | None  # (r_in, r_out) when already decomposed

    def macs(self, ranks: tuple[int, int] | None) -> int:
        """Multiply-adds per view: plain, or decomposed at ``ranks``."""
        if ranks is None:
            return self.positions_out * self.kernel * self.c_in * self.c_out
        r_in, r_out = ranks
        return (self.positions_in * self.c_in * r_in + self.positions_out * self.kernel * r_in * r_out
                + self.positions_out * r_out * self.c_out)


def sites(spec: ArchSpec) -> list[Site]:
    """Every residual-block convolution of ``spec``'s network, in module order (a shape-only
    forward pass on the meta device)."""
    with torch.device("meta"):
        model = build_model(spec)
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    handles = []
    found = []
    for name, module in model.named_modules():
        where = site_of(spec, name)
        if where is None or not isinstance(module, (nn.Conv3d, TuckerConv3d)):
            continue
        found.append((name, where, module))

        def hook(mod: nn.Module, args: tuple, out: torch.Tensor, name: str = name) -> None:
            shapes[name] = (tuple(args[0].shape), tuple(out.shape))
        handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.empty(1, *spec.input_shape(train=False), device="meta"))
    for h in handles:
        h.remove()
    out = []
    for name, (stage, block), module in found:
        (_, c_in, *pin), (_, c_out, *pout) = shapes[name]
        conv = module.core if isinstance(module, TuckerConv3d) else module
        ranks = (module.core.in_channels, module.core.out_channels) if isinstance(module, TuckerConv3d) else None
        out.append(Site(name, stage, block, c_in, c_out, math.prod(conv.kernel_size), math.prod(pin),
                        math.prod(pout), ranks))
    return out


def _ranks(site: Site, rho: float) -> tuple[int, int]:
    base_in, base_out = site.ranks or (site.c_in, site.c_out)
    return max(1, math.floor(rho * base_in + 1e-9)), max(1, math.floor(rho * base_out + 1e-9))


def tucker_child(spec: ArchSpec, gamma: float, options: TuckerOptions | None = None,
                 weights: Mapping[str, torch.Tensor] | None = None) -> ArchSpec:
    """``spec`` with the residual convolutions of ``options.stages`` (default: all) decomposed at
    the ranks of ``options.ranks`` (module docstring). ``weights``: the state dict of ``spec``'s
    trained network, needed by ``vbmf``. NotApplicable when no convolution can get cheaper."""
    options = options or TuckerOptions()
    every = sites(spec)  # module order; a decomposed conv keeps its plain conv's path
    chosen = [s for s in every if options.stages is None or s.stage in options.stages]
    if not chosen:
        raise NotApplicable("k", f"no residual-block convolution in stage(s) {list(options.stages or [])}")
    if options.ranks == "flops":
        new = {s.name: TuckerConv(s.name, *r) for s, r in zip(chosen, _flops_ranks(spec, chosen, gamma), strict=True)}
    elif options.ranks == "vbmf":
        new = _vbmf_entries(spec, chosen, weights)
    else:
        raise SpecError(f"unknown Tucker rank rule {options.ranks!r} (choose from {', '.join(RANK_RULES)})")
    kept = [t for t in spec.tucker if t.conv not in new]
    order = {s.name: i for i, s in enumerate(every)}
    entries = sorted([*kept, *new.values()], key=lambda t: order[t.conv])
    return spec.replace(tucker=tuple(entries))


def _flops_ranks(spec: ArchSpec, chosen: list[Site], gamma: float) -> list[tuple[int, int]]:
    total = count_cost(spec).gflops * 1e9
    fixed = total - sum(s.macs(s.ranks) for s in chosen)
    target = total / gamma

    def cost(rho: float) -> float:
        return fixed + sum(s.macs(_ranks(s, rho)) for s in chosen)

    if cost(0.0) > target:
        raise NotApplicable("k", f"rank 1 in every decomposed convolution still costs "
                                 f"{cost(0.0) / 1e9:.4g} GFLOPs, more than 1/{gamma:g} of {total / 1e9:.4g}")
    lo, hi = 0.0, 1.0
    for _ in range(50):  # the largest rho within budget (cost is monotone in rho)
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cost(mid) <= target else (lo, mid)
    return [_ranks(s, lo) for s in chosen]


def _vbmf_entries(spec: ArchSpec, chosen: list[Site],
                  weights: Mapping[str, torch.Tensor] | None) -> dict[str, TuckerConv]:
    if weights is None:
        raise WeightsIncompatible(f"operator k with tucker.ranks vbmf needs the trained weights of {spec.label} "
                                  "(its ranks come from the kernels)")
    new = {}
    for s in chosen:
        key = f"{s.name}.core.weight" if s.ranks else f"{s.name}.weight"
        want = s.ranks[::-1] if s.ranks else (s.c_out, s.c_in)
        if key not in weights or tuple(weights[key].shape[:2]) != want:
            got = "no such tensor" if key not in weights else f"shape {list(weights[key].shape)}"
            raise WeightsIncompatible(f"weights given for {spec.label}: {key}: {got}, expected (out, in) = "
                                      f"{want}; not this network's weights")
        ranks = tucker2_ranks(weights[key])
        if s.ranks:  # the core's own ranks: never more than it has
            ranks = (min(ranks[0], s.ranks[0]), min(ranks[1], s.ranks[1]))
        if s.macs(ranks) < s.macs(s.ranks):
            new[s.name] = TuckerConv(s.name, *ranks)
    if not new:
        raise NotApplicable("k", "EVBMF keeps so much of every kernel that no decomposition is cheaper")
    return new


def refit(spec: ArchSpec) -> ArchSpec:
    """After an operator that changes widths or depths (c, l): drop the entries whose convolution
    is gone and cap ranks at the channels left."""
    if not spec.tucker:
        return spec
    plain = {s.name: s for s in sites(spec.replace(tucker=()))}
    entries = tuple(TuckerConv(t.conv, min(t.rank_in, plain[t.conv].c_in), min(t.rank_out, plain[t.conv].c_out))
                    for t in spec.tucker if t.conv in plain)
    return spec.replace(tucker=entries)


# ---- weights -------------------------------------------------------------------------------
def _tucker2(kernel: torch.Tensor, rank_in: int, rank_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(U_in^T (r_in, C_in), core (r_out, r_in, k...), U_out (C_out, r_out)) of a kernel
    (C_out, C_in, k...), by tensorly's partial Tucker in float64: the truncated HOSVD, then one HOOI sweep
    (more sweeps cost minutes on R(2+1)D-18 for a start that training refines anyway)."""
    import numpy as np
    from tensorly.decomposition import partial_tucker

    w = kernel.detach().to("cpu", torch.float64).numpy()
    if rank_out == w.shape[0] and rank_in == w.shape[1]:  # full ranks: exact, no iteration needed
        eye_out, eye_in = np.eye(w.shape[0]), np.eye(w.shape[1])
        core, (u_out, u_in) = w, (eye_out, eye_in)
    else:
        (core, (u_out, u_in)), _ = partial_tucker(w, rank=[rank_out, rank_in], modes=[0, 1], init="svd",
                                                  n_iter_max=2, tol=1e-4, random_state=0)
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(kernel.dtype)  # noqa: E731
    return as_t(u_in.T), as_t(core), as_t(u_out)


def _as_1x1(m: torch.Tensor) -> torch.Tensor:
    return m.reshape(*m.shape, 1, 1, 1)


def decomposed_state(parent_state: Mapping[str, torch.Tensor], parent: ArchSpec,
                     child: ArchSpec) -> dict[str, torch.Tensor]:
    """The child's state dict from its parent's, for a child that differs from its parent only in
    ``tucker`` (operator k): convolutions newly decomposed are factorised, already decomposed ones
    have their core factorised again (and the factors folded into first and last); every other
    tensor is copied. WeightsIncompatible when the two differ in anything else."""
    if not decomposable_from(parent, child):
        diffs = shape_mismatches(parent.replace(tucker=()), child.replace(tucker=()))
        why = "; ".join(diffs[:3]) if diffs else "its decomposition is not a refinement of the parent's"
        raise WeightsIncompatible(f"cannot decompose {parent.label} into {child.label}: {why}")
    want = dict(weight_shapes(child))
    before = {t.conv: t for t in parent.tucker}
    state: dict[str, torch.Tensor] = {}
    redone = set()
    for t in child.tucker:
        if before.get(t.conv) == t:
            continue
        redone.add(t.conv)
        if t.conv in before:  # decompose the core again; fold its factors into first / last
            first = parent_state[f"{t.conv}.first.weight"].flatten(1)
            last = parent_state[f"{t.conv}.last.weight"].flatten(1)
            a_in_t, core, a_out = _tucker2(parent_state[f"{t.conv}.core.weight"], t.rank_in, t.rank_out)
            state[f"{t.conv}.first.weight"] = _as_1x1(a_in_t @ first)
            state[f"{t.conv}.last.weight"] = _as_1x1(last @ a_out)
            bias = parent_state.get(f"{t.conv}.last.bias")
        else:
            u_in_t, core, u_out = _tucker2(parent_state[f"{t.conv}.weight"], t.rank_in, t.rank_out)
            state[f"{t.conv}.first.weight"] = _as_1x1(u_in_t)
            state[f"{t.conv}.last.weight"] = _as_1x1(u_out)
            bias = parent_state.get(f"{t.conv}.bias")
        state[f"{t.conv}.core.weight"] = core
        if bias is not None:
            state[f"{t.conv}.last.bias"] = bias
    for key, value in parent_state.items():
        if not any(key.startswith(f"{name}.") for name in redone):
            state[key] = value
    problems = [f"{k}: missing" for k in want if k not in state]
    problems += [f"{k}: not in the child" for k in state if k not in want]
    problems += [f"{k}: {list(state[k].shape)} -> {list(want[k])}" for k in want
                 if k in state and tuple(state[k].shape) != want[k]]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; ... ({len(problems)} in all)" if len(problems) > 3 else "")
        raise WeightsIncompatible(f"cannot decompose {parent.label} into {child.label}: {shown}")
    return state


def decomposable_from(parent: ArchSpec, child: ArchSpec) -> bool:
    """True when ``child`` differs from ``parent`` only by (further) decomposed convolutions."""
    if not child.tucker or parent.tucker == child.tucker:
        return False
    if weight_shapes(parent.replace(tucker=())) != weight_shapes(child.replace(tucker=())):
        return False
    before = {t.conv: t for t in parent.tucker}
    after = {t.conv: t for t in child.tucker}
    return set(before) <= set(after) and all(
        after[n].rank_in <= before[n].rank_in and after[n].rank_out <= before[n].rank_out for n in before)


def kernel_of(module: nn.Module) -> torch.Tensor:
    """The full kernel a plain or decomposed convolution applies (for tests and error reports)."""
    if isinstance(module, TuckerConv3d):
        core = module.core.weight
        first, last = module.first.weight.flatten(1), module.last.weight.flatten(1)
        return torch.einsum("oa,abk,bi->oik", last, core.flatten(2), first).reshape(
            last.shape[0], first.shape[1], *core.shape[2:])
    assert isinstance(module, nn.Conv3d)
    return module.weight

