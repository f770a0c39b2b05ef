"""Network builders: ``build_model(spec)`` dispatches on the spec's family."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from pas_models.nets.r2plus1d import build_r2plus1d
from pas_models.nets.slowfast import build_slowfast
from pas_models.nets.tucker_layers import apply_tucker
from pas_models.nets.x3d import build_x3d
from pas_models.spec import ArchSpec

BUILDERS: dict[str, Callable[[ArchSpec], nn.Module]] = {
    "r2plus1d": build_r2plus1d,
    "slowfast": build_slowfast,
    "x3d": build_x3d,
}


def build_model(spec: ArchSpec) -> nn.Module:
    """A freshly initialised network for ``spec``; input (B, 3, *spec.input_shape()[1:]).
    Convolutions listed in ``spec.tucker`` are built in their Tucker-2 form (``nets.tucker_layers``, fresh
    weights; decomposing trained kernels is ``pas_models.tucker``, a layer above)."""
    model = BUILDERS[spec.family](spec)
    if spec.tucker:
        apply_tucker(model, spec)
    return model
