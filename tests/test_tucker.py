"""Operator k (Tucker-2): exact at full ranks, about half the GFLOPs, spec round trip, strict loading of
decomposed weights, the parent's weights as the child's start, and how c, l and k compose after it."""

from __future__ import annotations

import json

import pytest
import torch

from pas_models.errors import NotApplicable, SpecError, WeightsIncompatible
from pas_models.flops import count_cost
from pas_models.inherit import can_init_from_parent, init_from_parent
from pas_models.nets import build_model
from pas_models.presets import preset
from pas_models.reductions import apply_op, apply_sequence
from pas_models.spec import ArchSpec, TuckerConv
from pas_models.tucker import TuckerConv3d, TuckerOptions, decomposed_state, kernel_of, sites
from pas_models.weights import weights_compatible


def _full_rank(spec: ArchSpec) -> ArchSpec:
    return spec.replace(tucker=tuple(TuckerConv(s.name, s.c_in, s.c_out) for s in sites(spec)))


def _logits(model: torch.nn.Module, spec: ArchSpec, seed: int = 0) -> torch.Tensor:
    x = torch.randn(2, *spec.input_shape(), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("name", ["r2plus1d_tiny", "slowfast_tiny", "x3d_tiny"])
def test_full_ranks_reproduce_every_kernel_and_the_logits(name: str) -> None:
    parent = preset(name)
    torch.manual_seed(0)
    parent_model = build_model(parent)
    full = _full_rank(parent)
    assert len(full.tucker) == len(sites(parent)) > 0
    model = build_model(full)
    assert init_from_parent(model, parent_model.state_dict(), parent, full) == "decomposed"
    for t in full.tucker:
        decomposed = model.get_submodule(t.conv)
        assert isinstance(decomposed, TuckerConv3d)
        torch.testing.assert_close(kernel_of(decomposed), parent_model.get_submodule(t.conv).weight,
                                   rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_logits(model, full), _logits(parent_model, parent), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "low", "high"), [("r2plus1d_18", 0.45, 0.5), ("slowfast_4x16_r50", 0.45, 0.5)])
def test_k_halves_the_gflops(name: str, low: float, high: float) -> None:
    parent = preset(name)
    child = apply_op(parent, "k")
    ratio = count_cost(child).gflops / count_cost(parent).gflops
    assert low <= ratio <= high, ratio  # the rank rule: the largest shared rank fraction within 1/2
    assert [t.conv for t in child.tucker] == [s.name for s in sites(parent)]
    first = child.tucker[0]
    assert 1 <= first.rank_in < 64 and 1 <= first.rank_out  # a real reduction, not full rank


def test_k_is_not_applicable_when_rank_one_cannot_reach_the_target() -> None:
    once = apply_op(preset("r2plus1d_tiny"), "k")
    with pytest.raises(NotApplicable, match="rank 1 in every decomposed convolution still costs"):
        apply_op(once, "k")  # after one halving, the stem and the shortcuts are most of this tiny network
    child = apply_op(preset("r2plus1d_tiny"), "k", {"k": 1.25})
    ratio = count_cost(child).gflops / count_cost(preset("r2plus1d_tiny")).gflops
    assert 0.75 <= ratio <= 0.8


def test_spec_json_round_trip_and_validation() -> None:
    child = apply_sequence(preset("r2plus1d_tiny"), ["k", "f"], {"k": 1.25})[-1]
    again = ArchSpec.from_json(child.to_json())
    assert again == child and again.tucker and again.ops == "k,f"
    old = json.loads(preset("r2plus1d_tiny").to_json())
    old.pop("tucker")  # a spec written before k existed
    assert ArchSpec.from_dict(old).tucker == ()
    bad = child.to_dict()
    bad["tucker"][0]["rank_in"] = 0
    with pytest.raises(SpecError, match=r"spec.tucker\[0\]: every value must be an integer >= 1"):
        ArchSpec.from_dict(bad)
    with pytest.raises(SpecError, match=r"spec.tucker\[0\] \(stem.0\): not a residual-block convolution"):
        build_model(child.replace(tucker=(TuckerConv("stem.0", 1, 1),)))
    with pytest.raises(SpecError, match=r"ranks \(99, 1\) exceed the channels"):
        build_model(child.replace(tucker=(TuckerConv(child.tucker[0].conv, 99, 1),)))


def test_decomposed_weights_load_strictly() -> None:
    parent = preset("r2plus1d_tiny")
    child = apply_op(parent, "k", {"k": 1.25})
    torch.manual_seed(0)
    trained = build_model(child)
    state = trained.state_dict()
    name = child.tucker[0].conv
    assert {f"{name}.first.weight", f"{name}.core.weight", f"{name}.last.weight"} <= set(state)
    again = build_model(child)
    again.load_state_dict(state, strict=True)
    torch.testing.assert_close(_logits(again, child), _logits(trained, child))
    with pytest.raises(RuntimeError, match="size mismatch"):  # the same names at other ranks
        build_model(child.replace(tucker=(TuckerConv(name, 1, 1), *child.tucker[1:]))).load_state_dict(state)
    with pytest.raises(RuntimeError, match="Missing key"):  # a plain network cannot take it
        build_model(parent).load_state_dict(state)


def test_the_child_starts_from_its_parent_and_k_applies_again() -> None:
    parent = preset("r2plus1d_tiny")
    child = apply_op(parent, "k", {"k": 1.25})
    assert not weights_compatible(parent, child) and can_init_from_parent(parent, child)
    torch.manual_seed(0)
    parent_model = build_model(parent)
    model = build_model(child)
    init_from_parent(model, parent_model.state_dict(), parent, child)
    untouched = [k for k in parent_model.state_dict() if not any(k.startswith(t.conv + ".") for t in child.tucker)]
    for k in untouched:  # stem, BN, shortcuts, classifier: the parent's own
        assert torch.equal(model.state_dict()[k], parent_model.state_dict()[k]), k
    # closer to the parent than a fresh network of the same spec
    fresh = build_model(child)
    ref = _logits(parent_model, parent)
    assert (_logits(model, child) - ref).norm() < (_logits(fresh, child) - ref).norm()
    again = apply_op(child, "k", {"k": 1.25})  # the core decomposed again, folded into first / last
    assert can_init_from_parent(child, again)
    model2 = build_model(again)
    init_from_parent(model2, model.state_dict(), child, again)
    assert all(a.rank_in <= b.rank_in for a, b in zip(again.tucker, child.tucker, strict=True))


def test_c_and_l_after_k_keep_the_decomposition_consistent() -> None:
    k = apply_op(preset("r2plus1d_18"), "k")
    c = apply_op(k, "c")
    assert len(c.tucker) == len(k.tucker)
    assert all(b.rank_in <= max(1, int(a.rank_in / 1.4 + 1e-9)) for a, b in zip(k.tucker, c.tucker, strict=True))
    build_model(c)  # every rank within the new widths
    layers = apply_op(k, "l")
    assert {t.conv for t in layers.tucker} == {s.name for s in sites(layers.replace(tucker=()))}
    assert not can_init_from_parent(k, c) and not can_init_from_parent(k, layers)
    with torch.device("meta"):
        parent_state = build_model(k).state_dict()
    with pytest.raises(WeightsIncompatible, match="cannot decompose"):
        decomposed_state(parent_state, k, apply_op(c, "k"))


def _low_rank(shape: torch.Size, r_in: int, r_out: int, g: torch.Generator) -> torch.Tensor:
    c_out, c_in, *k = shape
    core = torch.randn(r_out, r_in, *k, generator=g)
    u_out = torch.linalg.qr(torch.randn(c_out, r_out, generator=g))[0]
    u_in = torch.linalg.qr(torch.randn(c_in, r_in, generator=g))[0]
    kernel = torch.einsum("oa,ab...,ib->oi...", u_out, core, u_in)
    return (kernel + 1e-3 * torch.randn(kernel.shape, generator=g)) * 0.1


def test_vbmf_ranks_are_the_kernels_own_and_start_close_to_the_parent() -> None:
    """tucker.ranks vbmf: each kernel of stages 2-4 made of rank (c_in/3, c_out/2) plus a little noise;
    EVBMF finds those ranks, the child costs what they cost, and starts with the parent's logits."""
    parent = preset("r2plus1d_tiny")
    torch.manual_seed(0)
    model = build_model(parent)
    g = torch.Generator().manual_seed(1)
    want = {}
    with torch.no_grad():
        for s in sites(parent):
            if s.stage >= 2:
                want[s.name] = (max(1, s.c_in // 3), max(1, s.c_out // 2))
                model.get_submodule(s.name).weight.copy_(_low_rank(torch.Size(
                    model.get_submodule(s.name).weight.shape), *want[s.name], g))
    opts = TuckerOptions(stages=(2, 3, 4), ranks="vbmf")
    child = apply_op(parent, "k", {"k": 2.0}, opts, model.state_dict())
    assert {t.conv: (t.rank_in, t.rank_out) for t in child.tucker} == want
    assert count_cost(child).gflops < count_cost(parent).gflops
    start = build_model(child)
    init_from_parent(start, model.state_dict(), parent, child)
    ref = _logits(model, parent)
    assert ((_logits(start, child) - ref).norm() / ref.norm()) < 0.02
    with pytest.raises(WeightsIncompatible, match="needs the trained weights"):
        apply_op(parent, "k", None, opts)
    with pytest.raises(WeightsIncompatible, match="not this network's weights"):
        apply_op(parent, "k", None, opts, build_model(apply_op(parent, "l")).state_dict())
    with pytest.raises(WeightsIncompatible, match=r"shape \[.*expected \(out, in\)"):
        apply_op(parent, "k", None, opts, build_model(apply_op(parent, "c")).state_dict())
    # again on the decomposed network: EVBMF on the cores, which can only shrink (it always leaves
    # part of a matrix to noise: at most ceil(L / (1 + L / M)) - 1 of L components)
    again = apply_op(child, "k", None, opts, start.state_dict())
    assert can_init_from_parent(child, again)
    before = {t.conv: t for t in child.tucker}
    assert all(t.rank_in <= before[t.conv].rank_in and t.rank_out <= before[t.conv].rank_out for t in again.tucker)
    assert count_cost(again).gflops < count_cost(child).gflops


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["flops", "vbmf"])
def test_a_tiny_search_with_k_runs_to_the_end(tmp_path, rule: str) -> None:  # type: ignore[no-untyped-def]
    import yaml
    from tinyjob import pas, tiny_job

    from pas_models.train.teacher import load_weights
    from pas_models.vbmf import tucker2_ranks

    job = tiny_job("tiny-k", iterations=1, operators={"k": 1.25, "f": 2}, tucker={"stages": [2, 3, 4], "ranks": rule})
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    run = pas(tmp_path, "search", "--job", "job.yaml", "--poll", "0.3")
    assert run.returncode == 0, run.stderr[-3000:]
    status = json.loads(pas(tmp_path, "status", "--json").stdout)
    assert status["state"] == "DONE"
    k = [h for h in status["hypotheses"] if h["op"] == "k"]
    assert k and all(h["state"] in ("DONE", "NOT_APPLICABLE") for h in k) and k[0]["state"] == "DONE"
    out = tmp_path / "runs" / "tiny-k" / "hyp" / "1-k"
    spec = ArchSpec.from_json(torch.load(out / "model.pt", weights_only=True)["spec"])
    assert spec.tucker and not any(t.conv.startswith("layer1.") for t in spec.tucker)  # tucker.stages: 2-4
    result = json.loads((out / "result.json").read_text())
    assert result["finetuned_from_parent"] is True  # from the decomposed B
    assert "(weights decomposed)" in (out / "train.log").read_text()
    assert k[0]["gflops"] < status["hypotheses"][0]["gflops"]
    if rule == "vbmf":  # the ranks EVBMF reads from the trained B's kernels
        b = load_weights(tmp_path / "runs" / "tiny-k" / "hyp" / "0-base" / "model.pt")
        assert all((t.rank_in, t.rank_out) == tucker2_ranks(b[f"{t.conv}.weight"]) for t in spec.tucker)
