"""Networks built from specs: torchvision equivalence and a forward/backward sweep over operator sequences."""

from __future__ import annotations

import itertools

import pytest
import torch
from torchvision.models.video import r2plus1d_18 as tv_r2plus1d_18

from pas_models.errors import NotApplicable
from pas_models.nets import build_model
from pas_models.presets import preset
from pas_models.reductions import OPERATORS, PAPER_OPERATORS, apply_sequence


def test_r2plus1d_18_loads_torchvision_weights_and_matches_its_logits() -> None:
    torch.manual_seed(0)
    reference = tv_r2plus1d_18(num_classes=400).eval()
    with torch.no_grad():  # non-trivial BN statistics, so the comparison covers them too
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    spec = preset("r2plus1d_18")
    ours = build_model(spec).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, *spec.input_shape())
    with torch.no_grad():
        diff = (ours(x) - reference(x)).abs().max().item()
    assert diff <= 1e-5


def test_parameter_counts_of_full_presets() -> None:
    def params(name: str) -> int:
        with torch.device("meta"):
            return sum(p.numel() for p in build_model(preset(name)).parameters())

    assert params("r2plus1d_18") == sum(p.numel() for p in tv_r2plus1d_18().parameters())
    assert abs(params("slowfast_4x16_r50") / 34.5e6 - 1) < 0.02


SEQUENCES = [seq for n in (1, 2, 3) for seq in itertools.product(PAPER_OPERATORS, repeat=n)]
# k (Tucker-2) with every operator before and after it (its own tests: tests/test_tucker.py)
K_SEQUENCES = sorted({("k", op) for op in OPERATORS} | {(op, "k") for op in OPERATORS})


@pytest.mark.parametrize("name", ["r2plus1d_tiny", "slowfast_tiny"])
def test_forward_backward_for_every_sequence_up_to_three(name: str) -> None:
    applied = skipped = 0
    base = preset(name, num_classes=7)
    for seq in SEQUENCES:
        try:
            spec = apply_sequence(base, seq)[-1]
        except NotApplicable as exc:
            assert exc.reason and exc.op in seq
            skipped += 1
            continue
        torch.manual_seed(0)
        model = build_model(spec).train()
        x = torch.randn(2, *spec.input_shape(train=True))
        out = model(x)
        assert out.shape == (2, 7), (seq, out.shape)
        out.square().mean().backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), seq
        with torch.no_grad():
            assert model.eval()(torch.randn(1, *spec.input_shape())).shape == (1, 7)
        applied += 1
    assert applied + skipped == len(SEQUENCES) == 155
    assert applied > 100 and skipped > 0


def test_forward_backward_with_k_before_and_after_every_operator() -> None:
    base = preset("r2plus1d_tiny", num_classes=7)  # SlowFast with k: tests/test_tucker.py
    applied = 0
    for seq in K_SEQUENCES:
        try:
            spec = apply_sequence(base, seq, {"k": 1.25})[-1]
        except NotApplicable as exc:
            assert exc.reason and exc.op in seq
            continue
        assert spec.tucker, seq
        model = build_model(spec).train()
        out = model(torch.randn(2, *spec.input_shape(train=True)))
        assert out.shape == (2, 7), seq
        out.square().mean().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()), seq
        applied += 1
    assert applied >= len(K_SEQUENCES) - 2, applied
