"""Intermediate-feature distillation (paper Table 6) and the TensorBoard scalars of a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from pas_models.data.formats import load_dataset_config
from pas_models.nets import build_model
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_models.train.checkpoint import load_checkpoint, save_checkpoint
from pas_models.train.features import (
    FeatureStudent,
    StageTap,
    bn_margins,
    feature_mse,
    final_bn,
    margin_relu_loss,
    stage_modules,
    stage_widths,
)
from pas_models.train.run import run
from pas_models.train.task import Distill, EvalConfig, Recipe, TrainTask

RECIPE = Recipe(epochs=2, batch_per_gpu=4, lr=0.05, reference_batch=4, warmup_epochs=0.5, schedule="cosine",
                clips_per_video=1, num_workers=0)


def _forward_features(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    tap = StageTap(model)
    model(x)
    out = tap.take()
    tap.close()
    return out


@pytest.mark.parametrize(("family", "n_stages"), [("r2plus1d_tiny", 4), ("slowfast_tiny", 8), ("x3d_tiny", 4)])
@pytest.mark.parametrize("op", ["s", "t", "f", "c", "l"])
def test_every_operator_gives_a_finite_feature_loss_with_gradients(family: str, n_stages: int, op: str) -> None:
    teacher_spec = preset(family, 4)
    student_spec = apply_op(teacher_spec, op)
    torch.manual_seed(0)
    teacher, student = build_model(teacher_spec).eval(), build_model(student_spec)
    fs = FeatureStudent(student, teacher)
    assert len(stage_modules(student)) == n_stages
    convs = [a for a in fs.adapters if isinstance(a, nn.Conv3d)]
    assert bool(convs) == (op == "c")  # only a width change needs 1x1x1 adapters
    t_shape = (2, *teacher_spec.input_shape(train=True))
    s_shape = (2, *student_spec.input_shape(train=True))
    t_feats = _forward_features(teacher, torch.randn(t_shape))
    logits, feat = fs(torch.randn(s_shape), [f.detach() for f in t_feats])
    assert logits.shape == (2, 4) and feat.ndim == 0 and torch.isfinite(feat) and feat > 0
    feat.backward()
    assert all(p.grad is not None for p in fs.adapters.parameters())
    first = next(m for m in student.modules() if isinstance(m, nn.Conv3d))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_identical_student_and_teacher_have_zero_feature_loss() -> None:
    spec = preset("r2plus1d_tiny", 4)
    torch.manual_seed(0)
    teacher = build_model(spec).eval()
    student = build_model(spec).eval()
    student.load_state_dict(teacher.state_dict())
    fs = FeatureStudent(student, teacher)
    x = torch.randn(2, *spec.input_shape(train=True))
    _, feat = fs(x, _forward_features(teacher, x))
    assert feat.item() == pytest.approx(0.0, abs=1e-12)
    assert stage_widths(student) == stage_widths(teacher)


def test_margin_relu_loss_by_hand() -> None:
    """Heo et al.: target = max(teacher, margin); squared error except where student <= target <= 0; mean."""
    teacher = torch.tensor([-2.0, -0.5, 1.0, -3.0]).view(1, 1, 4, 1, 1)
    student = torch.tensor([-1.0, -2.0, 0.0, -2.5]).view(1, 1, 4, 1, 1)
    margin = torch.tensor([-1.5])
    # targets: max(-2, -1.5) = -1.5, -0.5, 1.0, -1.5
    # kept: s -1 > t -1.5 (0.25); s -2 <= t -0.5 <= 0: left out; t 1 > 0: (0 - 1)^2 = 1; s -2.5 <= t -1.5: left out
    assert margin_relu_loss(student, teacher, margin).item() == pytest.approx((0.25 + 1.0) / 4)


def test_margins_are_the_expected_negative_response_of_the_last_batch_norm() -> None:
    spec = preset("r2plus1d_tiny", 4)
    model = build_model(spec)
    bn = final_bn(list(stage_modules(model)[0].children())[-1])
    assert bn is list(stage_modules(model)[0].children())[-1].conv2[1]
    bn.weight.data[:3] = torch.tensor([1.0, 2.0, 0.5])
    bn.bias.data[:3] = torch.tensor([0.0, -1.0, 10.0])
    m = bn_margins(model)[0][:3]
    # E[x | x < 0], x ~ N(beta, gamma^2): beta - gamma phi(beta/gamma) / Phi(-beta/gamma)
    # N(0, 1): -sqrt(2/pi); N(-1, 4): -1 - 2 phi(0.5) / Phi(0.5); N(10, 0.25): P(x < 0) ~ 0 -> -3 gamma
    phi, cdf = torch.distributions.Normal(0.0, 1.0).log_prob(torch.tensor(0.5)).exp(), 0.691462461
    assert m.tolist() == pytest.approx([-(2 / torch.pi) ** 0.5, -1 - 2 * phi.item() / cdf, -1.5], rel=1e-5)


@pytest.mark.parametrize("family", ["r2plus1d_tiny", "slowfast_tiny", "x3d_tiny"])
def test_the_margin_loss_taps_the_features_before_the_last_relu(family: str) -> None:
    spec = preset(family, 4)
    torch.manual_seed(0)
    teacher = build_model(spec).eval()
    student = build_model(apply_op(spec, "c"))
    fs = FeatureStudent(student, teacher, loss="margin")
    tap, post_tap = StageTap(teacher, pre_relu=True), StageTap(teacher)
    x = torch.randn(2, *spec.input_shape(train=True))
    teacher(x)
    pre, post = tap.take(), post_tap.take()
    tap.close()
    post_tap.close()
    # the stage output is the ReLU of what the pre-ReLU tap kept (a copy the in-place ReLU did not overwrite)
    assert all(torch.equal(torch.relu(a), b) for a, b in zip(pre, post, strict=True))
    if family == "r2plus1d_tiny":  # (SlowFast's last batch norms start at zero: its blocks start as identities)
        assert all((a < 0).any() for a in pre)
    _, feat = fs(torch.randn(2, *apply_op(spec, "c").input_shape(train=True)), pre)
    assert torch.isfinite(feat) and feat > 0
    feat.backward()
    assert all(p.grad is not None for p in fs.adapters.parameters())


def test_feature_mse_pools_to_the_common_size() -> None:
    s = torch.ones(1, 2, 2, 4, 4)
    t = torch.zeros(1, 2, 4, 8, 8)
    t[:, :, :, :4] = 2.0  # pooled to 2x4x4: top half 2, bottom half 0 -> mean squared error vs 1 is 1
    assert feature_mse([s], [t], nn.ModuleList([nn.Identity()])).item() == pytest.approx(1.0)


def test_run_with_feature_distillation_resumes_its_adapters_and_logs_scalars(synth_dir: Path, tmp_path: Path) -> None:
    data = load_dataset_config(synth_dir / "dataset.yaml")
    teacher = preset("r2plus1d_tiny", 4)
    base = run(TrainTask("base", teacher, data, str(tmp_path / "base"), recipe=RECIPE,
                         eval=EvalConfig(clips=1, every_epochs=1)))
    task = TrainTask("c", apply_op(teacher, "c"), data, str(tmp_path / "c"), teacher=teacher,
                     teacher_checkpoint=base.checkpoint, recipe=RECIPE, eval=EvalConfig(clips=1),
                     distill=Distill(feature_weight=10.0))
    result = run(task)
    lines = [json.loads(line) for line in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 3 and all(line["feat"] > 0 for line in lines)
    last = load_checkpoint(tmp_path / "c" / "last.pt")
    assert last["adapters"] and all(k.endswith("weight") for k in last["adapters"])
    assert load_checkpoint(result.checkpoint)["model"].keys() == build_model(task.student).state_dict().keys()
    # back to the end of epoch 1 and rerun: resumes student + adapters + optimizer from last.pt
    for name in ("result.json", "model.pt"):
        (tmp_path / "c" / name).unlink()
    save_checkpoint({**last, "epoch": 1, "step": 0}, tmp_path / "c" / "last.pt")
    again = run(task)
    assert again.epochs == 2
    assert "resuming at epoch 1 step 0" in (tmp_path / "c" / "train.log").read_text()

    events = EventAccumulator(str(tmp_path / "base" / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert len(events.Scalars("train/loss")) == 2 * 3 and len(events.Scalars("train/lr")) == 2 * 3
    assert [e.step for e in events.Scalars("epoch/loss")] == [1, 2]
    assert [e.step for e in events.Scalars("val/top1_1clip")] == [1]  # every epoch but the last (final eval)
    assert events.Scalars("val/top1")[0].value == pytest.approx(base.top1)
    assert {"epoch/clips_per_s", "val/top5"} <= set(tags)
