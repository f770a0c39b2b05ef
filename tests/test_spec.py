"""ArchSpec: validation, derived view quantities and the strict JSON round trip."""

from __future__ import annotations

import json

import pytest

from pas_models.errors import SpecError
from pas_models.presets import PRESETS, preset
from pas_models.reductions import apply_sequence
from pas_models.spec import ArchSpec, PathwaySpec


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip_of_presets_and_reduced_specs(name: str) -> None:
    for spec in apply_sequence(preset(name), ["c", "f", "l"]):
        text = spec.to_json()
        back = ArchSpec.from_json(text)
        assert back == spec
        assert hash(back) == hash(spec)
        assert back.to_json() == text
        assert json.loads(text)["spec_version"] == 1


def test_applied_history_is_recorded_and_survives_json() -> None:
    spec = apply_sequence(preset("r2plus1d_18"), ["c", "f"])[-1]
    assert spec.ops == "c,f"
    assert spec.label == "r2plus1d_18+c+f"
    assert ArchSpec.from_json(spec.to_json()).applied == spec.applied


def test_view_derivations_slowfast() -> None:
    spec = preset("slowfast_4x16_r50")
    assert spec.alpha == 8
    assert spec.input_stride == 2
    assert spec.input_shape() == (3, 32, 256, 256)
    assert spec.input_shape(train=True) == (3, 32, 224, 224)
    assert spec.pathway_shapes() == {"slow": (3, 4, 256, 256), "fast": (3, 32, 256, 256)}
    assert spec.source_frame_offsets() == tuple(range(0, 64, 2))
    assert spec.spatial_stride == 32


def test_view_derivations_r2plus1d() -> None:
    spec = preset("r2plus1d_18", num_classes=101)
    assert spec.num_classes == 101
    assert spec.input_shape() == (3, 16, 112, 112)
    assert spec.source_frame_offsets() == tuple(range(16))
    assert spec.spatial_stride == 16


def _data(**changes: object) -> dict:
    d = preset("r2plus1d_tiny").to_dict()
    d.update(changes)
    return d


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_data(colour=1), "spec: unknown key(s) colour; valid keys: name, family"),
        ({k: v for k, v in _data().items() if k != "view"}, "spec: missing key(s) view"),
        (_data(num_classes="ten"), "spec.num_classes: expected int"),
        (_data(num_classes=True), "spec.num_classes: expected int"),
        (_data(spec_version=99), "spec.spec_version: this pas reads version 1, got 99"),
        (_data(family="x3d_m"), "spec.family: 'x3d_m' is not one of r2plus1d, slowfast, x3d"),
        (_data(family="x3d"), "spec.head_width: an x3d network needs its head width"),
        (_data(family="x3d", head_width=64), "spec.pathways[0].stem_mid_width: x3d's stem keeps its width"),
        (_data(head_width=64), "spec.head_width: only x3d networks have a head projection; remove it for a r2plus1d"),
        (_data(stage_blocks=[2, 2, 2]), "spec.stage_spatial_strides: needs 3 values"),
        (_data(stage_blocks=[2, 0, 2, 2]), "spec.stage_blocks: every value must be an integer >= 1"),
        (_data(head_dropout=1.5), "spec.head_dropout: must be in [0, 1)"),
    ],
)
def test_from_dict_errors_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        ArchSpec.from_dict(data)
    assert message in str(err.value)


def test_x3d_round_trips_and_the_other_families_json_has_no_head_width() -> None:
    spec = preset("x3d_m")
    assert ArchSpec.from_json(spec.to_json()) == spec and spec.to_dict()["head_width"] == 2048
    for name in ("r2plus1d_18", "slowfast_tiny"):
        d = preset(name).to_dict()
        assert "head_width" not in d and ArchSpec.from_dict(d) == preset(name)


def test_nested_errors_name_the_full_path() -> None:
    d = preset("slowfast_tiny").to_dict()
    d["pathways"][1]["stage_widths"] = [4, 4]
    with pytest.raises(SpecError, match=r"spec.pathways\[1\].stage_widths: needs 4 values"):
        ArchSpec.from_dict(d)
    d = preset("slowfast_tiny").to_dict()
    d["view"]["resize_test"] = [36, 40]
    with pytest.raises(SpecError, match=r"spec.view.resize_test: short-side test size must be \(S, S\)"):
        ArchSpec.from_dict(d)


def test_family_rules() -> None:
    sf = preset("slowfast_tiny")
    with pytest.raises(SpecError, match="r2plus1d has exactly one pathway"):
        ArchSpec(**{**sf.__dict__, "family": "r2plus1d"})
    slow, fast = sf.pathways
    bad = PathwaySpec(**{**slow.__dict__, "sample_stride": 3})
    with pytest.raises(SpecError, match="slow stride must be a multiple"):
        sf.replace(pathways=(bad, fast))
    with pytest.raises(SpecError, match="must equal stage_widths"):
        r = preset("r2plus1d_tiny")
        (p,) = r.pathways
        r.replace(pathways=(PathwaySpec(**{**p.__dict__, "stage_out_widths": (1, 2, 3, 4)}),))


def test_from_json_rejects_garbage() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        ArchSpec.from_json("{nope")
    with pytest.raises(SpecError, match="expected a JSON object"):
        ArchSpec.from_json("[1, 2]")
