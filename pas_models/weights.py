"""Can a child network start from its parent's weights? (paper Sec. 3.4)

Adaptive fine-tuning initialises a hypothesis from the previous winner when
*every* weight shape matches: true for the input operators s, t, f, false for
c and l. The answer is computed from the built networks' state dicts (on the
meta device: no memory, no compute), never from a list of operator names.
Operator k has a path of its own: its child differs from the parent only in
decomposed convolutions, whose weights are computed from the parent's by a
Tucker-2 decomposition (``pas_models.tucker``; both paths: ``pas_models.inherit``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
from torch import nn

from pas_models.errors import WeightsIncompatible
from pas_models.nets import build_model
from pas_models.spec import ArchSpec


@functools.lru_cache(maxsize=512)
def weight_shapes(spec: ArchSpec) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(name, shape) of every state-dict entry (parameters and buffers) of ``spec``'s network."""
    with torch.device("meta"):
        model = build_model(spec)
    return tuple((name, tuple(t.shape)) for name, t in model.state_dict().items())


def shape_mismatches(parent: ArchSpec, child: ArchSpec) -> list[str]:
    """Human-readable differences between the two state dicts (empty when compatible)."""
    a, b = dict(weight_shapes(parent)), dict(weight_shapes(child))
    out = [f"{k}: only in the parent" for k in a if k not in b]
    out += [f"{k}: only in the child" for k in b if k not in a]
    out += [f"{k}: {list(a[k])} -> {list(b[k])}" for k in a if k in b and a[k] != b[k]]
    return out


def weights_compatible(parent: ArchSpec, child: ArchSpec) -> bool:
    """True exactly when every weight shape of ``child`` equals the parent's."""
    return weight_shapes(parent) == weight_shapes(child)


def load_parent_weights(model: nn.Module, parent_state: Mapping[str, torch.Tensor],
                        parent: ArchSpec, child: ArchSpec) -> None:
    """Load the parent's state dict into the child's ``model`` strictly, or explain why not."""
    diffs = shape_mismatches(parent, child)
    if diffs:
        shown = "; ".join(diffs[:3]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > 3 else "")
        raise WeightsIncompatible(
            f"cannot initialise {child.label} from {parent.label}: weight shapes differ ({shown}). "
            "Operators that change widths or depths (c, l) need a fresh initialisation (paper Sec. 3.4)."
        )
    model.load_state_dict(parent_state, strict=True)
