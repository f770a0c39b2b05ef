"""The five reduction operators of PAS (paper Sec. 3.1; Sec. 4.2 for SlowFast).

====  ===================  =======  ==================================================
key   reduces              gamma    child spec
====  ===================  =======  ==================================================
s     spatial resolution   1.4      crop and resize sizes / gamma
t     temporal length      2        raw clip keeps its first T / gamma frames
f     frame rate           2        every gamma-th raw-clip frame (frame stride x gamma)
c     channels             1.4      filters of every convolution / gamma
l     layers               2        blocks of every stage / gamma
k     kernels (Tucker-2)   2        residual convolutions decomposed, GFLOPs / gamma
====  ===================  =======  ==================================================

k is the one operator beyond the paper (``pas_models.tucker``): it keeps the
parent's weights (decomposed) where c and l start from scratch.

For SlowFast, s, t and f act on the raw clip; each pathway then samples its own
frames from it (slow: every 16th, fast: every 2nd raw frame).

Rounding rule. One rule for every size, applied here and nowhere else:
truncate, keeping at least one: ``x' = max(1, floor(x / gamma))``, as
``int(x / gamma)`` does. It reproduces the GFLOPs column of the paper's Table 1
(R(2+1)D-18 within 1.6% at every step, SlowFast-4x16-R50 within 3.7%; rounding
half up is 3-8% off) and is the closest to halving for ``l``:

- channels: every stored width (stem, stem mid, stage inner and output widths,
  both pathways, X3D's head width); derived widths (R(2+1)D midplanes,
  SlowFast fusion convs, X3D's squeeze-excitation and head convs, the groups of
  its channel-wise convs) follow. 64 -> 45, 45 -> 32, 512 -> 365, 2048 -> 1462,
  8 -> 5.
- blocks: 2 -> 1; SlowFast's 3, 4, 6, 3 -> 1, 2, 3, 1 (0.59x the FLOPs); X3D's
  3, 5, 11, 7 -> 1, 2, 5, 3 (squeeze-excitation stays on blocks 0, 2, 4, ...).
- pixels (crops and resize sizes): 112 -> 80, (128, 171) -> (91, 122), 256 -> 182.
- t: ``T' = floor(T / gamma)``, the first T' frames (16 -> 8, 5 -> 2); no
  minimum: zero frames is "not applicable".
- f: gamma must be an integer; the frames kept are raw frames 0, gamma,
  2 gamma, ... < T, so ``T' = ceil(T / gamma)``; ``frame_stride' = frame_stride * gamma``.

An operator is *not applicable* (``NotApplicable`` with the reason) when:

- t would leave no frame;
- s would make the test crop smaller than the network's total spatial stride
  (the last feature map would be smaller than one cell);
- the result computes exactly what its parent computes: every width is
  already 1 (c), every stage has one block (l), every pathway already sees one
  frame (t, f), or rounding leaves the sizes unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pas_models.errors import NotApplicable, SpecError, UnknownNameError
from pas_models.spec import AppliedOp, ArchSpec, PathwaySpec

if TYPE_CHECKING:
    import torch

    from pas_models.tucker import TuckerOptions

# ---- the rounding rule (the only place where reduced sizes are computed) ----------
_EPS = 1e-9  # 112 / 1.4 is 79.99999999999999 in floating point; it means 80


def shrink(size: int, gamma: float) -> int:
    """Channels, blocks and pixels: ``max(1, floor(size / gamma))``."""
    return max(1, math.floor(size / gamma + _EPS))


def cut_frames(frames: int, gamma: float) -> int:
    """Operator t: the first ``floor(T / gamma)`` frames (may be 0: not applicable)."""
    return math.floor(frames / gamma + _EPS)


def stride_frames(frames: int, gamma: int) -> int:
    """Operator f: frames 0, gamma, 2 gamma, ... < T, i.e. ``ceil(T / gamma)``."""
    return -(-frames // gamma)


# ---- the operators --------------------------------------------------------------
def _spatial(spec: ArchSpec, gamma: float) -> ArchSpec:
    v = spec.view
    view = replace(v, crop_train=shrink(v.crop_train, gamma), crop_test=shrink(v.crop_test, gamma),
                   resize_train=tuple(shrink(x, gamma) for x in v.resize_train),
                   resize_test=tuple(shrink(x, gamma) for x in v.resize_test))
    if view.crop_test < spec.spatial_stride:
        raise NotApplicable("s", f"the test crop would be {view.crop_test} px, smaller than the network's "
                                 f"total spatial stride of {spec.spatial_stride} px")
    return spec.replace(view=view)


def _temporal_length(spec: ArchSpec, gamma: float) -> ArchSpec:
    frames = cut_frames(spec.view.frames, gamma)
    if frames < 1:
        raise NotApplicable("t", f"the raw clip has {spec.view.frames} frame(s); keeping the first "
                                 f"{spec.view.frames}/{gamma:g} leaves none")
    return spec.replace(view=replace(spec.view, frames=frames))


def _frame_rate(spec: ArchSpec, gamma: float) -> ArchSpec:
    g = int(gamma)
    return spec.replace(view=replace(spec.view, frames=stride_frames(spec.view.frames, g),
                                     frame_stride=spec.view.frame_stride * g))


def _channels(spec: ArchSpec, gamma: float) -> ArchSpec:
    def narrower(p: PathwaySpec) -> PathwaySpec:
        return replace(p, stem_width=shrink(p.stem_width, gamma),
                       stem_mid_width=None if p.stem_mid_width is None else shrink(p.stem_mid_width, gamma),
                       stage_widths=tuple(shrink(w, gamma) for w in p.stage_widths),
                       stage_out_widths=tuple(shrink(w, gamma) for w in p.stage_out_widths))
    # decomposed convolutions keep their rank-to-width ratio (refit caps them at the new widths)
    tucker = tuple(replace(t, rank_in=shrink(t.rank_in, gamma), rank_out=shrink(t.rank_out, gamma))
                   for t in spec.tucker)
    head = None if spec.head_width is None else shrink(spec.head_width, gamma)
    return spec.replace(pathways=tuple(narrower(p) for p in spec.pathways), tucker=tucker, head_width=head)


def _layers(spec: ArchSpec, gamma: float) -> ArchSpec:
    return spec.replace(stage_blocks=tuple(shrink(b, gamma) for b in spec.stage_blocks))


def _kernels(spec: ArchSpec, gamma: float) -> ArchSpec:
    from pas_models.tucker import tucker_child

    return tucker_child(spec, gamma)  # default options; apply_op passes the search's


@dataclass(frozen=True)
class Operator:
    """A reduction operator: ``transform(spec, gamma)`` returns the reduced spec."""

    key: str
    reduces: str
    default_gamma: float
    integer_gamma: bool
    transform: Callable[[ArchSpec, float], ArchSpec]


OPERATORS: dict[str, Operator] = {
    op.key: op for op in (
        Operator("s", "spatial resolution", 1.4, False, _spatial),
        Operator("t", "temporal length", 2.0, False, _temporal_length),
        Operator("f", "frame rate", 2.0, True, _frame_rate),
        Operator("c", "channels", 1.4, False, _channels),
        Operator("l", "layers per stage", 2.0, False, _layers),
        Operator("k", "convolution ranks (Tucker-2)", 2.0, False, _kernels),
    )
}
PAPER_OPERATORS = ("s", "t", "f", "c", "l")  # a search's default; k is opt-in
DEFAULT_GAMMAS: dict[str, float] = {k: OPERATORS[k].default_gamma for k in PAPER_OPERATORS}


def get_operator(key: str) -> Operator:
    if key not in OPERATORS:
        raise UnknownNameError("operator", key, list(OPERATORS))
    return OPERATORS[key]


def check_gamma(key: str, gamma: float) -> float:
    """``gamma`` as a float if it is valid for operator ``key``, else SpecError saying why."""
    op = get_operator(key)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma <= 1:
        raise SpecError(f"gamma of operator {key!r} must be a number > 1, got {gamma!r}")
    if op.integer_gamma and float(gamma) != int(gamma):
        raise SpecError(f"gamma of operator {key!r} must be an integer (keep every n-th frame), got {gamma!r}")
    return float(gamma)


def parse_ops(text: str | Iterable[str]) -> list[str]:
    """"c,f,t" (or a list of keys) -> ["c", "f", "t"]; unknown keys raise UnknownNameError."""
    keys = [k.strip() for k in text.split(",")] if isinstance(text, str) else [k.strip() for k in text]
    keys = [k for k in keys if k]
    for k in keys:
        get_operator(k)
    return keys


def _footprint(spec: ArchSpec) -> tuple:
    """What determines the computation: per-pathway input shapes, widths, depths, decompositions."""
    return (spec.pathway_shapes(train=False), spec.pathway_shapes(train=True), spec.pathways, spec.stage_blocks,
            spec.tucker, spec.head_width)


def reads_weights(key: str, tucker: TuckerOptions | None) -> bool:
    """Whether operator ``key`` reads its parent's trained weights (only k with the vbmf rank rule):
    every other reduction is a function of the spec alone."""
    return key == "k" and tucker is not None and tucker.ranks == "vbmf"


def apply_op(spec: ArchSpec, key: str, gammas: Mapping[str, float] | None = None,
             tucker: TuckerOptions | None = None, weights: Mapping[str, torch.Tensor] | None = None) -> ArchSpec:
    """The child spec ``key(spec)``; raises NotApplicable (with a reason) when it cannot be applied.
    ``tucker``: operator k's stages and rank rule; ``weights``: ``spec``'s trained state dict,
    which only k with the vbmf rank rule reads."""
    op = get_operator(key)
    gamma = check_gamma(key, (gammas or {}).get(key, op.default_gamma))
    if key == "k":
        from pas_models.tucker import tucker_child

        child = tucker_child(spec, gamma, tucker, weights)
    else:
        child = op.transform(spec, gamma)
    if key in ("c", "l") and child.tucker:  # decomposed convolutions follow the new widths / depths
        from pas_models.tucker import refit

        child = refit(child)
    if _footprint(child) == _footprint(spec):
        raise NotApplicable(key, f"reducing the {op.reduces} by {gamma:g} changes nothing at this size "
                                 "(already at the minimum after rounding)")
    return child.replace(applied=(*spec.applied, AppliedOp(key, gamma)))


def apply_sequence(spec: ArchSpec, keys: Iterable[str], gammas: Mapping[str, float] | None = None,
                   tucker: TuckerOptions | None = None,
                   weights_of: Callable[[int, ArchSpec], Mapping[str, torch.Tensor]] | None = None) -> list[ArchSpec]:
    """[spec, op1(spec), op2(op1(spec)), ...]; raises NotApplicable at the first step that fails.
    ``weights_of(i, chain[i])``: the trained weights of the network that step i reduces, asked only
    where they are read (k with the vbmf rank rule)."""
    chain = [spec]
    for i, key in enumerate(keys):
        weights = weights_of(i, chain[-1]) if weights_of is not None and reads_weights(key, tucker) else None
        chain.append(apply_op(chain[-1], key, gammas, tucker, weights))
    return chain


__all__ = [
    "DEFAULT_GAMMAS",
    "OPERATORS",
    "Operator",
    "apply_op",
    "apply_sequence",
    "check_gamma",
    "cut_frames",
    "get_operator",
    "parse_ops",
    "reads_weights",
    "shrink",
    "stride_frames",
]
