"""The distillation loss equals the paper's Eq. 7 computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from pas_models.train.loss import distillation_loss


def softmax(xs: list[float], t: float = 1.0) -> list[float]:
    e = [math.exp(x / t) for x in xs]
    return [v / sum(e) for v in e]


def test_matches_hand_computed_value() -> None:
    student = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]
    teacher = [[1.0, 1.5, 0.0], [-2.0, 0.5, 2.5]]
    labels = [0, 2]
    t, alpha = 5.0, 500.0
    ce = sum(-math.log(softmax(s)[y]) for s, y in zip(student, labels, strict=True)) / 2
    kl = 0.0
    for s, q in zip(student, teacher, strict=True):
        z, zt = softmax(s, t), softmax(q, t)
        kl += -sum(a * math.log(b / a) for a, b in zip(zt, z, strict=True))  # Eq. 5
    kl /= 2
    expected = ce + alpha * t * t * kl  # Eq. 7
    f64 = torch.float64
    parts = distillation_loss(torch.tensor(student, dtype=f64), torch.tensor(labels),
                              torch.tensor(teacher, dtype=f64), t, alpha, kl_reduction="batchmean")
    assert parts.total.item() == pytest.approx(expected, rel=1e-12)
    assert parts.ce.item() == pytest.approx(ce, rel=1e-12)
    assert parts.kl.item() == pytest.approx(kl, rel=1e-12)
    mean = distillation_loss(torch.tensor(student, dtype=f64), torch.tensor(labels),
                             torch.tensor(teacher, dtype=f64), t, alpha)  # default: KLDivLoss's mean over B x K
    assert mean.kl.item() == pytest.approx(kl / 3, rel=1e-12)
    assert mean.total.item() == pytest.approx(ce + alpha * t * t * kl / 3, rel=1e-12)
    f32 = distillation_loss(torch.tensor(student), torch.tensor(labels), torch.tensor(teacher), t, alpha, "batchmean")
    assert f32.total.item() == pytest.approx(expected, rel=1e-5)  # float32 rounding, amplified by 12,500
    half = distillation_loss(torch.tensor(student).bfloat16(), torch.tensor(labels), torch.tensor(teacher).bfloat16(),
                             t, alpha)
    assert half.total.dtype == torch.float32


def test_alpha_zero_and_no_teacher_are_plain_cross_entropy() -> None:
    torch.manual_seed(0)
    s, y, q = torch.randn(4, 5), torch.tensor([0, 1, 2, 3]), torch.randn(4, 5)
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.equal(distillation_loss(s, y, q, 5.0, 0.0).total, ce)
    assert torch.equal(distillation_loss(s, y, None, 5.0, 500.0).total, ce)


def test_gradients_reach_the_student_only() -> None:
    s = torch.randn(3, 4, requires_grad=True)
    q = torch.randn(3, 4, requires_grad=True)
    distillation_loss(s, torch.tensor([1, 2, 3]), q, 5.0, 500.0).total.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert q.grad is None


def test_identical_logits_have_zero_kl() -> None:
    s = torch.randn(2, 6)
    assert distillation_loss(s, torch.tensor([0, 1]), s.clone(), 5.0, 500.0).kl.abs().item() < 1e-6


@pytest.mark.parametrize("teacher_bn", ["train", "eval"])
def test_teacher_dropout_is_off_unless_asked(tmp_path, teacher_bn: str) -> None:
    """SlowFast's head has dropout 0.5: B in BN train mode must still give the same soft labels for the same
    batch (batch statistics, no dropout) unless ``distill.teacher_dropout`` asks for it."""
    from pas_models.nets import build_model
    from pas_models.presets import preset
    from pas_models.train.teacher import frozen_teacher

    spec = preset("slowfast_tiny", 5)
    assert spec.head_dropout == 0.5
    torch.manual_seed(0)
    path = tmp_path / "b.pt"
    torch.save({"model": build_model(spec).state_dict()}, path)
    x = torch.randn(4, *spec.input_shape(True))
    calm = frozen_teacher(spec, str(path), teacher_bn, torch.device("cpu"))
    with torch.no_grad():
        assert torch.equal(calm(x), calm(x))
    noisy = frozen_teacher(spec, str(path), teacher_bn, torch.device("cpu"), dropout=True)
    with torch.no_grad():
        assert not torch.equal(noisy(x), noisy(x))
    assert all(m.training == (teacher_bn == "train") for m in calm.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
