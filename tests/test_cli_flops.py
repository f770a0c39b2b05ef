"""``pas flops`` as a user runs it: a real subprocess, its output and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys


def pas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pas_orchestrator", *args], capture_output=True, text=True,
                          timeout=300)


def test_table_lists_every_step_with_the_convention() -> None:
    res = pas("flops", "--backbone", "slowfast_tiny", "--ops", "c,f")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["step", "op", "view"]
    steps = [line.split()[1] for line in lines[2:5]]
    assert steps == ["base", "c", "f"]
    assert "slow 2x32x32, fast 8x32x32" in lines[2]
    assert "batch norm in train mode" in res.stdout
    assert res.stderr.strip() == ""


def test_json_output() -> None:
    res = pas("flops", "--backbone", "r2plus1d_tiny", "--ops", "t,l", "--gamma", "t=4", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [s["op"] for s in out["steps"]] == ["base", "t", "l"]
    assert out["steps"][1]["view"] == {"main": [3, 2, 32, 32]}
    assert out["steps"][1]["gamma"] == 4.0
    assert out["steps"][0]["ratio"] is None
    assert 0.2 < out["steps"][1]["ratio"] < 0.4
    assert out["steps"][2]["params"] < out["steps"][1]["params"]
    assert out["not_applicable"] is None
    assert "fvcore total" in out["convention"]


def test_unknown_backbone_exits_2_with_valid_names() -> None:
    res = pas("flops", "--backbone", "resnet50", "--ops", "c")
    assert res.returncode == 2
    assert "invalid choice: 'resnet50'" in res.stderr
    assert "r2plus1d_18" in res.stderr and "slowfast_4x16_r50" in res.stderr


def test_unknown_operator_exits_2_with_valid_names() -> None:
    res = pas("flops", "--backbone", "r2plus1d_tiny", "--ops", "c,q")
    assert res.returncode == 2
    assert "unknown operator 'q'; valid operators: s, t, f, c, l" in res.stderr


def test_bad_gamma_exits_2() -> None:
    res = pas("flops", "--backbone", "r2plus1d_tiny", "--ops", "f", "--gamma", "f=1.5")
    assert res.returncode == 2
    assert "must be an integer" in res.stderr


def test_not_applicable_step_exits_1_with_reason() -> None:
    res = pas("flops", "--backbone", "r2plus1d_tiny", "--ops", "l,l", "--json")
    assert res.returncode == 1
    out = json.loads(res.stdout)
    assert [s["op"] for s in out["steps"]] == ["base", "l"]
    assert out["not_applicable"]["step"] == 2
    assert "step 2: operator 'l' is not applicable" in res.stderr


def test_bench_model_measures_latency_next_to_gflops() -> None:
    import json
    import subprocess
    import sys

    import pytest

    out = subprocess.run([sys.executable, "-m", "pas_orchestrator", "bench-model", "--backbone", "r2plus1d_tiny",
                          "--ops", "k,f", "--batch", "1,2", "--passes", "3", "--rounds", "2", "--warmup", "1",
                          "--threads", "1", "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    steps = data["steps"]
    assert [s["op"] for s in steps] == ["base", "k", "f"]
    assert steps[1]["flops_reduction"] == pytest.approx(2.0, rel=0.05)  # k: about half the GFLOPs
    for s in steps:
        assert set(s["latency"]) == {"cpu_b1", "cpu_b2"}
        assert all(v["ms_per_view"] > 0 and v["device"] == "cpu (1 threads)" and v["passes"] >= 3
                   and len(v["round_medians"]) == 2 and v["spread"] >= 0 for v in s["latency"].values())
        assert set(s["trusted"]) == {"cpu_b1", "cpu_b2"}
        assert s["speedup"]["cpu_b1"] == pytest.approx(
            steps[0]["latency"]["cpu_b1"]["ms_per_view"] / s["latency"]["cpu_b1"]["ms_per_view"])
        assert s["speedup_per_flops"]["cpu_b2"] == pytest.approx(s["speedup"]["cpu_b2"] / s["flops_reduction"])
    bad = subprocess.run([sys.executable, "-m", "pas_orchestrator", "bench-model", "--backbone", "r2plus1d_tiny",
                          "--batch", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "batch sizes are integers >= 1" in bad.stderr


def test_bench_model_says_not_trusted_where_a_step_or_the_base_spread_too_much() -> None:
    import argparse

    from pas_models.measure import Timing
    from pas_orchestrator.commands.bench_model import _relative, _table

    def step(i: int, ms: tuple[float, float], spread: tuple[float, float]) -> dict:  # type: ignore[type-arg]
        lat = {f"cpu_b{b}": Timing(str(i), b, m, m, m, (m, m * (1 + s)), s, 10)
               for b, m, s in zip((1, 8), ms, spread, strict=True)}
        return {"step": i, "op": "base" if i == 0 else "f", "gflops": 8.0 / 2 ** i, "latency": lat}

    # the base spreads 30% at batch 8; step 1 spreads 50% at batch 1; step 2 is quiet
    steps = _relative([step(0, (10.0, 8.0), (0.05, 0.3)), step(1, (5.0, 4.0), (0.5, 0.1)),
                       step(2, (4.0, 2.0), (0.1, 0.1))])
    assert [s["trusted"] for s in steps[1:]] == [{"cpu_b1": False, "cpu_b8": False}, {"cpu_b1": True, "cpu_b8": False}]
    assert steps[2]["speedup"]["cpu_b1"] == 2.5 and steps[2]["speedup_per_flops"]["cpu_b1"] == 2.5 / 4
    rows = [line.split() for line in _table(argparse.Namespace(rounds=2, passes=10, warmup=3), steps,
                                            ["cpu (2 threads)"]).splitlines()[2:5]]
    # step op GFLOPs FLOPs/ | b1: ms spread speedup ratio | b8: ms spread speedup ratio
    assert rows[2][4:8] == ["4", "10%", "2.50x", "0.62"] and rows[2][8:] == ["2", "10%", "not", "trusted", "-"]
    assert rows[1][4:9] == ["5", "50%", "not", "trusted", "-"]


def test_vbmf_ranks_read_from_weights_that_follow_the_steps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from pas_models.nets import build_model
    from pas_models.presets import preset
    from pas_models.vbmf import tucker2_ranks

    torch.manual_seed(0)
    weights = build_model(preset("r2plus1d_tiny")).state_dict()
    torch.save(weights, tmp_path / "b.pt")
    res = pas("flops", "--backbone", "r2plus1d_tiny", "--ops", "f,k", "--k-ranks", "vbmf", "--k-stages", "4",
              "--weights", str(tmp_path / "b.pt"), "--json")
    assert res.returncode == 0, res.stderr
    steps = json.loads(res.stdout)["steps"]
    tucker = steps[2]["spec"]["tucker"]
    assert tucker and all(t["conv"].startswith("layer4.") for t in tucker)
    assert all([t["rank_in"], t["rank_out"]] == list(tucker2_ranks(weights[t["conv"] + ".weight"])) for t in tucker)
    assert steps[2]["gflops"] < steps[1]["gflops"]

    no_weights = pas("flops", "--backbone", "r2plus1d_tiny", "--ops", "k", "--k-ranks", "vbmf")
    assert no_weights.returncode == 1 and "give the base network's with --weights MODEL.pt" in no_weights.stderr
    after_c = pas("flops", "--backbone", "r2plus1d_tiny", "--ops", "c,k", "--k-ranks", "vbmf",
                  "--weights", str(tmp_path / "b.pt"))
    assert after_c.returncode == 1 and "cannot follow the c step(s)" in after_c.stderr
    other = pas("flops", "--backbone", "slowfast_tiny", "--ops", "k", "--weights", str(tmp_path / "b.pt"))
    assert other.returncode == 1 and "are not weights of slowfast_tiny" in other.stderr


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    """`pas flops ... | head -1` where the reader has gone before pas writes: no traceback, exit 141."""
    proc = subprocess.Popen([sys.executable, "-m", "pas_orchestrator", "flops", "--backbone", "r2plus1d_tiny",
                             "--ops", "t,s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader leaves before pas has counted anything
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141 and err == "", err
