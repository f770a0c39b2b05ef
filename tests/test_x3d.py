"""X3D against PyTorchVideo's ``create_x3d`` (the reference, built with random weights: the model zoo's files
cannot be downloaded here): parameters, logits at the training and the three-crop test view, the model zoo's
checkpoint layout as ``base.checkpoint``, GFLOPs against the zoo's figures, and the operators on X3D."""

from __future__ import annotations

import pytest
import torch

from pas_models.errors import NotApplicable, PasError
from pas_models.flops import count_cost
from pas_models.inherit import can_init_from_parent, init_from_parent
from pas_models.nets import build_model
from pas_models.nets.x3d import X3DBlock
from pas_models.nets.x3d_import import from_pytorchvideo
from pas_models.presets import preset
from pas_models.reductions import apply_op, apply_sequence
from pas_models.train.teacher import load_weights
from pas_models.tucker import sites

x3d_hub = pytest.importorskip("pytorchvideo.models.hub.x3d")


def _reference(name: str) -> torch.nn.Module:
    """PyTorchVideo's network with random weights and non-trivial BN statistics. PyTorchVideo 0.1.5's
    ``create_x3d`` ends in a softmax by default (no weights): logits are compared without it."""
    torch.manual_seed(0)
    model = getattr(x3d_hub, name)(pretrained=False, head_activation=None).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model


def test_x3d_loads_pytorchvideo_weights_and_matches_its_logits() -> None:
    # X3D-S and X3D-M are one network (the same weights) on two views: S's two views test both
    reference = _reference("x3d_s")
    spec = preset("x3d_s")
    ours = build_model(spec).eval()
    ours.load_state_dict(from_pytorchvideo(reference.state_dict()), strict=True)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters()) == 3_794_274
    for side in (spec.view.crop_train, spec.view.crop_test):  # the test crop slides the head's pooling window
        x = torch.randn(1, 3, spec.view.frames, side, side)
        with torch.no_grad():
            diff = (ours(x) - reference(x)).abs().max().item()
        assert diff <= 1e-5, (side, diff)


def test_model_zoo_checkpoint_and_bare_state_dict_load_as_base(tmp_path) -> None:
    reference = _reference("x3d_s")
    zoo = tmp_path / "X3D_S.pyth"  # PySlowFast's checkpoint layout
    torch.save({"epoch": 300, "model_state": reference.state_dict(), "cfg": "MODEL:\n  ARCH: x3d\n"}, zoo)
    bare = tmp_path / "x3d_s_state.pt"
    torch.save(reference.state_dict(), bare)
    for path in (zoo, bare):
        ours = build_model(preset("x3d_s"))
        ours.load_state_dict(load_weights(path), strict=True)
        assert torch.equal(ours.stem.conv_xy.weight, reference.blocks[0].conv.conv_t.weight)


def test_a_key_outside_the_x3d_layout_is_named() -> None:
    state = dict(_reference("x3d_s").state_dict())
    state["blocks.5.pool.post_norm.weight"] = torch.ones(2048)  # a head built with bn_lin5_on
    with pytest.raises(PasError, match=r"ckpt.pyth: key 'blocks.5.pool.post_norm.weight'"):
        from_pytorchvideo(state, "ckpt.pyth")


def test_gflops_per_view_match_the_pytorchvideo_model_zoo() -> None:
    # the zoo's table: X3D-S 2.96 and X3D-M 6.72 GFLOPs per view at the three-crop test view
    # (13x182x182 and 16x256x256); pas's convention (fvcore, batch norm in train mode) reproduces them
    assert count_cost(preset("x3d_s")).gflops == pytest.approx(2.96, abs=0.01)
    base = count_cost(preset("x3d_m"))
    assert base.gflops == pytest.approx(6.72, abs=0.01)
    # each operator at its own view (the counts the dry run below plans with): t and f halve exactly (no
    # temporal stride anywhere), c less than on the other families (channel-wise convs are linear in the width)
    ratios = {op: count_cost(apply_op(preset("x3d_m"), op)).gflops / base.gflops for op in "stfcl"}
    assert ratios["t"] == ratios["f"] == pytest.approx(0.5, abs=0.001)
    assert 0.5 < ratios["s"] < 0.56 and 0.5 < ratios["l"] < 0.52 and 0.55 < ratios["c"] < 0.56, ratios


def _blocks(model: torch.nn.Module) -> list[X3DBlock]:
    return [m for m in model.modules() if isinstance(m, X3DBlock)]


def test_channels_keep_channelwise_convs_and_se_consistent() -> None:
    base = preset("x3d_m")
    child = apply_op(base, "c")
    assert child.head_width == 1462 and child.pathways[0].stage_widths == (38, 77, 154, 308)
    with torch.device("meta"):
        model = build_model(child)
    for block in _blocks(model):
        inner = block.conv_a.out_channels
        assert block.conv_b.groups == block.conv_b.in_channels == block.conv_b.out_channels == inner
        if block.se is not None:
            assert block.se.fc1.in_channels == block.se.fc2.out_channels == inner
    assert model.head.proj.out_channels == model.fc.in_features == 1462


def test_layers_keep_se_on_alternate_blocks() -> None:
    child = apply_op(preset("x3d_m"), "l")
    assert child.stage_blocks == (1, 2, 5, 3)
    with torch.device("meta"):
        stages = build_model(child).stages
    assert [[b.se is not None for b in stage] for stage in stages] == \
        [[True], [True, False], [True, False, True, False, True], [True, False, True]]


@pytest.mark.parametrize("op", ["s", "t", "f"])
def test_input_operators_start_from_the_parents_weights(op: str) -> None:
    base = preset("x3d_tiny", num_classes=5)
    child = apply_op(base, op)
    assert can_init_from_parent(base, child)
    torch.manual_seed(0)
    parent = build_model(base)
    model = build_model(child)
    assert init_from_parent(model, parent.state_dict(), base, child) == "copied"
    x = torch.randn(2, *child.input_shape())
    with torch.no_grad():
        assert torch.equal(model.eval()(x), parent.eval()(x))  # the same network on the child's view


def test_tucker_decomposes_only_the_pointwise_convs() -> None:
    base = preset("x3d_m")
    names = [s.name for s in sites(base)]
    assert len(names) == 2 * sum(base.stage_blocks)
    assert all(n.endswith((".conv_a", ".conv_c")) for n in names)
    child = apply_op(base, "k")
    assert count_cost(child).gflops <= count_cost(base).gflops / 2
    with pytest.raises(NotApplicable, match="rank 1"):  # x3d_tiny's pointwise convs are too narrow to halve
        apply_op(preset("x3d_tiny"), "k")


def test_every_paper_operator_sequence_of_two_runs_forward_and_backward() -> None:
    base = preset("x3d_tiny", num_classes=7)
    ran = 0
    for seq in [(a, b) for a in "stfcl" for b in "stfcl"]:
        try:
            spec = apply_sequence(base, seq)[-1]
        except NotApplicable:
            continue
        model = build_model(spec).train()
        out = model(torch.randn(2, *spec.input_shape(train=True)))
        assert out.shape == (2, 7)
        out.square().mean().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()), seq
        ran += 1
    assert ran >= 20


def test_the_x3d_m_search_definition_dry_runs_on_marconi100(tmp_path, monkeypatch) -> None:
    from pathlib import Path

    from pas_models.layout import RunLayout
    from pas_orchestrator.commands.search import dry_run
    from pas_orchestrator.config.cluster import load_profile
    from pas_orchestrator.config.search import load_search

    (tmp_path / "k400").mkdir()
    torch.save({"model_state": _reference("x3d_m").state_dict()}, tmp_path / "X3D_M.pyth")
    for key, value in {"PAS_DATA": tmp_path, "PAS_WEIGHTS": tmp_path, "PAS_ACCOUNT": "acct"}.items():
        monkeypatch.setenv(key, str(value))
    search = load_search(Path(__file__).resolve().parents[1] / "jobs" / "x3d_m_k400.yaml")
    assert search.backbone == "x3d_m" and search.eval.crops == 3
    out = dry_run(search, load_profile("marconi100"), RunLayout.of(tmp_path / "runs", "x3d"))
    assert "# search x3d-m-k400: x3d_m, 5 iterations x 5 operators (5 applicable to B)" in out
    assert "20,000 videos x 30 views" in out and "#SBATCH --array=0-4%5" in out


def test_tasks_of_the_other_families_keep_their_identity_hash() -> None:
    """A task's hash (which a resumed training's checkpoint must match) does not see X3D's head width where it is
    unset: this hash was computed before specs had the key."""
    from pas_models.data.formats import DatasetConfig
    from pas_models.train.task import TrainTask

    b = preset("slowfast_tiny", 6)
    task = TrainTask(hypothesis="1-s", student=apply_op(b, "s"), out_dir="/o", teacher=b, teacher_checkpoint="/b.pt",
                     parent=b, parent_checkpoint="/b.pt", data=DatasetConfig(
                         format="list", root="/d", num_classes=6, annotations={"train": "a", "val": "b"}))
    assert task.config_hash() == "c82daaf4d4f6c693"
    x3d = preset("x3d_tiny", 6)
    assert TrainTask(hypothesis="1-s", student=apply_op(x3d, "s"), out_dir="/o", data=task.data).config_hash() != \
        TrainTask(hypothesis="1-s", student=apply_op(x3d, "s").replace(head_width=48), out_dir="/o",
                  data=task.data).config_hash()
