"""Adaptive fine-tuning: strict parent -> child loading for s, t, f; a clear refusal for c, l."""

from __future__ import annotations

import pytest
import torch

from pas_models.errors import WeightsIncompatible
from pas_models.nets import build_model
from pas_models.presets import preset
from pas_models.reductions import apply_op, apply_sequence
from pas_models.weights import load_parent_weights, shape_mismatches, weights_compatible


@pytest.mark.parametrize("name", ["r2plus1d_tiny", "slowfast_tiny"])
@pytest.mark.parametrize("op", ["s", "t", "f"])
def test_input_operators_load_the_parent_strictly(name: str, op: str) -> None:
    parent = apply_op(preset(name), "c")  # a reduced parent, as in a later iteration
    child = apply_op(parent, op)
    assert weights_compatible(parent, child)
    torch.manual_seed(0)
    parent_model = build_model(parent)
    torch.manual_seed(1)
    child_model = build_model(child)
    load_parent_weights(child_model, parent_model.state_dict(), parent, child)
    for (k, a), b in zip(parent_model.state_dict().items(), child_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    child_model.eval()
    with torch.no_grad():
        assert child_model(torch.randn(1, *child.input_shape())).shape == (1, child.num_classes)


@pytest.mark.parametrize("name", ["r2plus1d_tiny", "slowfast_tiny", "r2plus1d_18"])
@pytest.mark.parametrize("op", ["c", "l"])
def test_architecture_operators_are_refused_with_a_reason(name: str, op: str) -> None:
    parent = preset(name)
    child = apply_op(parent, op)
    assert not weights_compatible(parent, child)
    assert shape_mismatches(parent, child)
    with torch.device("meta"):
        child_model = build_model(child)
        parent_state = build_model(parent).state_dict()
    with pytest.raises(WeightsIncompatible) as err:
        load_parent_weights(child_model, parent_state, parent, child)
    message = str(err.value)
    assert f"cannot initialise {child.label} from {parent.label}" in message
    assert "(c, l) need a fresh initialisation" in message
    assert "->" in message or "only in the" in message


def test_compatibility_is_about_shapes_not_history() -> None:
    base = preset("r2plus1d_18")
    chain = apply_sequence(base, ["s", "t", "f"])
    assert all(weights_compatible(base, s) for s in chain)
    assert not weights_compatible(base, preset("r2plus1d_18", num_classes=10))
    assert "fc.weight: [400, 512] -> [10, 512]" in shape_mismatches(base, preset("r2plus1d_18", num_classes=10))
