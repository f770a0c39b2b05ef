"""A child network's start from its parent's trained weights (paper Sec. 3.4): copied when every weight
shape matches (s, t, f), decomposed when the child only decomposes (further) some of its parent's
convolutions (k), else a fresh initialisation (c, l)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pas_models.spec import ArchSpec
from pas_models.tucker import decomposable_from, decomposed_state
from pas_models.weights import load_parent_weights, weights_compatible


def can_init_from_parent(parent: ArchSpec, child: ArchSpec) -> bool:
    """Equal weight shapes, or a child that only decomposes (further) some of its parent's convolutions."""
    return weights_compatible(parent, child) or decomposable_from(parent, child)


def init_from_parent(model: nn.Module, parent_state: Mapping[str, torch.Tensor], parent: ArchSpec,
                     child: ArchSpec) -> str:
    """Load the child's ``model`` from its parent's weights, strictly: as they are ("copied") or
    decomposed ("decomposed", operator k); WeightsIncompatible explains a child that cannot."""
    if decomposable_from(parent, child):
        model.load_state_dict(decomposed_state(parent_state, parent, child), strict=True)
        return "decomposed"
    load_parent_weights(model, parent_state, parent, child)
    return "copied"
