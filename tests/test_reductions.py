"""The five operators: exact sizes after rounding, SlowFast's raw-clip semantics, not-applicable reasons."""

from __future__ import annotations

import pytest

from pas_models.errors import NotApplicable, SpecError, UnknownNameError
from pas_models.presets import preset
from pas_models.reductions import (
    DEFAULT_GAMMAS,
    apply_op,
    apply_sequence,
    check_gamma,
    cut_frames,
    parse_ops,
    shrink,
    stride_frames,
)


def test_defaults_are_the_papers() -> None:
    assert DEFAULT_GAMMAS == {"s": 1.4, "t": 2.0, "f": 2.0, "c": 1.4, "l": 2.0}


def test_rounding_rules() -> None:
    assert [shrink(w, 1.4) for w in (45, 64, 128, 256, 512, 2048, 8, 1)] == [32, 45, 91, 182, 365, 1462, 5, 1]
    assert [shrink(b, 2) for b in (3, 4, 6, 3, 2, 1)] == [1, 2, 3, 1, 1, 1]
    assert [shrink(p, 1.4) for p in (112, 128, 171, 224, 256, 320)] == [80, 91, 122, 160, 182, 228]
    assert shrink(14, 1.4) == 10 and shrink(7, 1.4) == 5  # exact quotients are not truncated one below
    assert [cut_frames(t, 2) for t in (16, 5, 1)] == [8, 2, 0]
    assert [stride_frames(t, 2) for t in (16, 5, 1)] == [8, 3, 1]


def test_spatial_scales_crop_and_resize() -> None:
    child = apply_op(preset("r2plus1d_18"), "s")
    v = child.view
    assert (v.crop_train, v.crop_test, v.resize_train, v.resize_test) == (80, 80, (91, 122), (91, 122))
    sf = apply_op(preset("slowfast_4x16_r50"), "s").view
    assert (sf.crop_train, sf.crop_test, sf.resize_train, sf.resize_test) == (160, 182, (182, 228), (182, 182))


def test_temporal_length_keeps_first_frames_and_frame_rate_strides() -> None:
    base = preset("r2plus1d_18")
    t = apply_op(base, "t")
    assert (t.view.frames, t.view.frame_stride, t.source_frame_offsets()) == (8, 1, tuple(range(8)))
    f = apply_op(base, "f")
    assert (f.view.frames, f.view.frame_stride, f.source_frame_offsets()) == (8, 2, tuple(range(0, 16, 2)))


def test_slowfast_input_operators_act_on_the_raw_clip() -> None:
    base = preset("slowfast_4x16_r50")
    t = apply_op(base, "t")
    assert t.pathway_shapes()["slow"][1] == 2 and t.pathway_shapes()["fast"][1] == 16
    assert t.source_frame_offsets() == tuple(range(0, 32, 2))
    f = apply_op(base, "f")
    assert f.pathway_shapes()["slow"][1] == 2 and f.pathway_shapes()["fast"][1] == 16
    assert f.source_frame_offsets() == tuple(range(0, 64, 4))  # same span, half the frames


def test_channels_divide_every_width_of_both_pathways() -> None:
    child = apply_op(preset("slowfast_4x16_r50"), "c")
    slow, fast = child.pathways
    assert slow.stem_width == 45 and fast.stem_width == 5
    assert slow.stage_widths == (45, 91, 182, 365) and slow.stage_out_widths == (182, 365, 731, 1462)
    assert fast.stage_widths == (5, 11, 22, 45) and fast.stage_out_widths == (22, 45, 91, 182)
    r = apply_op(preset("r2plus1d_18"), "c").pathways[0]
    assert (r.stem_mid_width, r.stem_width, r.stage_widths) == (32, 45, (45, 91, 182, 365))


def test_layers_halve_blocks_per_stage() -> None:
    assert apply_op(preset("slowfast_4x16_r50"), "l").stage_blocks == (1, 2, 3, 1)
    assert apply_op(preset("r2plus1d_18"), "l").stage_blocks == (1, 1, 1, 1)


def test_custom_gammas() -> None:
    child = apply_op(preset("r2plus1d_18"), "s", {"s": 2})
    assert child.view.crop_test == 56
    assert child.applied[-1].gamma == 2.0
    assert apply_op(preset("r2plus1d_18"), "f", {"f": 4}).view.frame_stride == 4


@pytest.mark.parametrize(
    ("ops", "reason"),
    [
        ("t,t,t,t", "keeping the first 1/2 leaves none"),
        ("f,f,f,f", "changes nothing at this size"),
        ("l,l", "changes nothing at this size"),
        ("s,s", "the test crop would be 15 px, smaller than the network's total spatial stride of 16 px"),
    ],
)
def test_not_applicable_reports_a_reason(ops: str, reason: str) -> None:
    keys = parse_ops(ops)
    chain = apply_sequence(preset("r2plus1d_tiny"), keys[:-1])
    with pytest.raises(NotApplicable) as err:
        apply_op(chain[-1], keys[-1])
    assert err.value.op == keys[-1]
    assert reason in err.value.reason


def test_channels_not_applicable_at_width_one() -> None:
    spec = preset("r2plus1d_tiny")
    with pytest.raises(NotApplicable, match="changes nothing"):
        for _ in range(20):
            spec = apply_op(spec, "c")
    assert all(w == 1 for w in spec.pathways[0].stage_widths)


def test_slowfast_t_stops_when_no_pathway_loses_a_frame() -> None:
    spec = apply_sequence(preset("slowfast_tiny"), ["t", "t", "t"])[-1]  # raw 16 -> 2 frames: slow 1, fast 1
    assert spec.view.frames == 2 and set(s[1] for s in spec.pathway_shapes().values()) == {1}
    with pytest.raises(NotApplicable, match="changes nothing"):
        apply_op(spec, "t")


def test_gamma_validation() -> None:
    with pytest.raises(SpecError, match="must be an integer"):
        check_gamma("f", 1.5)
    for bad in (1, 0.5, float("nan"), "2", True):
        with pytest.raises(SpecError, match="must be a number > 1"):
            check_gamma("s", bad)
    assert check_gamma("f", 3) == 3.0


def test_parse_ops() -> None:
    assert parse_ops("c, f,t ,") == ["c", "f", "t"]
    with pytest.raises(UnknownNameError, match="valid operators: s, t, f, c, l"):
        parse_ops("c,x")
    with pytest.raises(UnknownNameError, match="valid backbones"):
        preset("resnet_9000")


def test_parent_is_unchanged() -> None:
    base = preset("r2plus1d_18")
    before = base.to_json()
    apply_sequence(base, ["s", "t", "f", "c", "l"])
    assert base.to_json() == before
