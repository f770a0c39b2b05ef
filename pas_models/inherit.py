"""A child network's start from its parent's trained weights (paper Sec. 3.4): copied when every weight
shape matches (s, t, f), decomposed when the child only decomposes (further) some of its parent's
convolutions (k), centre taps when the child only has temporal kernels of 1 where its parent has 3 (the
gradient strategy's kt choice, pas_models.nas), else a fresh initialisation (c, l)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pas_models.errors import WeightsIncompatible
from pas_models.spec import ArchSpec
from pas_models.tucker import decomposable_from, decomposed_state
from pas_models.weights import load_parent_weights, weights_compatible


def centre_taps_of(parent: ArchSpec, child: ArchSpec) -> bool:
    """The child is its parent with some temporal kernels of 3 cut to 1 (the gradient strategy's kt choice) and
    otherwise its widths and depths (its view may differ): its weights are the parent's with those kernels'
    centre taps (and, in a (2+1)D convolution, whose inner width follows the kernel, the first channels)."""
    if child.family != parent.family or child.stage_blocks != parent.stage_blocks or child.tucker or parent.tucker:
        return False
    cut = False
    for a, b in zip(parent.pathways, child.pathways, strict=True):
        if (a.stem_width, a.stem_mid_width, a.stage_widths, a.stage_out_widths) != \
                (b.stem_width, b.stem_mid_width, b.stage_widths, b.stage_out_widths):
            return False
        for ka, kb in zip(a.stage_temporal_kernels, b.stage_temporal_kernels, strict=True):
            if ka != kb and not (ka == 3 and kb == 1):
                return False
            cut |= ka != kb
    return cut


def new_classifier(parent: ArchSpec, child: ArchSpec) -> bool:
    """The child is its parent for another number of classes (a transfer): every weight but the classifier's."""
    return parent.num_classes != child.num_classes and weights_compatible(parent.replace(num_classes=child.num_classes),
                                                                          child)


def can_init_from_parent(parent: ArchSpec, child: ArchSpec) -> bool:
    """Equal weight shapes, a child that only decomposes (further) some of its parent's convolutions, one
    that only cuts temporal kernels to their centre tap, or the parent with a classifier for other classes."""
    return (weights_compatible(parent, child) or decomposable_from(parent, child) or centre_taps_of(parent, child)
            or new_classifier(parent, child))


def init_from_parent(model: nn.Module, parent_state: Mapping[str, torch.Tensor], parent: ArchSpec,
                     child: ArchSpec) -> str:
    """Load the child's ``model`` from its parent's weights, strictly: as they are ("copied") or
    decomposed ("decomposed", operator k); WeightsIncompatible explains a child that cannot."""
    if decomposable_from(parent, child):
        model.load_state_dict(decomposed_state(parent_state, parent, child), strict=True)
        return "decomposed"
    if new_classifier(parent, child):
        fresh = {k for k, v in model.state_dict().items() if k.startswith("fc.")}
        missing, unexpected = model.load_state_dict({k: v for k, v in parent_state.items() if k not in fresh},
                                                    strict=False)
        if set(missing) != fresh or unexpected:
            raise WeightsIncompatible(f"cannot initialise {child.label} from {parent.label}: keys {missing} missing, "
                                      f"{unexpected} unexpected beside the classifier")
        return "copied, classifier re-initialised"
    if centre_taps_of(parent, child):
        from pas_models.nas.supernet import derive_state

        model.load_state_dict(derive_state(parent_state, parent, child), strict=True)
        return "centre taps"
    load_parent_weights(model, parent_state, parent, child)
    return "copied"
