"""benchmarks/bench_gpu.py on a CPU (--smoke: the tiny networks through every code path but the GPU's), and the
roofline it reads its bounds from (pas_models.roofline) against figures worked out by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pas_models.presets import preset
from pas_models.roofline import Layer, Roofline, device_peak, roofline, step_bound, step_flops

ROOT = Path(__file__).resolve().parents[1]


def test_one_convolution_by_hand() -> None:
    """R(2+1)D-18's stem: 3 -> 45 channels, 1x7x7, stride (1, 2, 2) over 16x112x112: its FLOPs, its bytes."""
    rf = roofline(preset("r2plus1d_18"), batch=8)
    stem = rf.layers[0]
    out = 45 * 16 * 56 * 56
    assert stem.name == "stem.0" and stem.flops == 2 * out * 3 * 7 * 7
    assert stem.bytes == 2 * (3 * 16 * 112 * 112 + out) and stem.weight_bytes == 2 * 45 * 3 * 7 * 7
    assert rf.bytes == pytest.approx(sum(x.bytes + x.weight_bytes / 8 for x in rf.layers))  # weights once a batch
    assert rf.flops == pytest.approx(2 * 40.52e9, rel=0.01)  # torchvision's 40.52 GMACs at 16x112x112, + fc


def test_the_bound_is_each_layer_at_its_roofline() -> None:
    peak, bw = 100.0, 10.0  # ridge at 10 FLOPs per byte
    rf = Roofline((Layer("compute", 1000.0, 6.0, 8.0), Layer("memory", 100.0, 100.0, 0.0),
                   Layer("bn", 0.0, 50.0, 0.0)), batch=2)
    # bytes 10, 100, 50: times 10 + 10 + 5 = 25 s for 1100 FLOPs at 100/s
    assert rf.bound(peak, bw) == pytest.approx(1100 / (100 * 25))
    assert rf.memory_bound_share(peak, bw) == pytest.approx(100 / 1100)
    assert step_flops(rf, rf) == 4 * 1100 and step_bound(rf, None, peak, bw) == pytest.approx(rf.bound(peak, bw))
    assert device_peak("NVIDIA H100 PCIe") == (756e12, 2e12) and device_peak("Intel CPU") is None


@pytest.mark.slow
def test_the_smoke_run_prints_every_table(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--smoke", "--json", str(out), "--plot",
                           str(tmp_path / "roofline.png")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    loaders = {(r["videos"], r["loader"]) for r in got["decode"]}
    assert loaders >= {("original", "CPU, in the process"), ("prepared 128", "CPU, 2 workers")}
    assert all(r["clips_per_s"] > 0 for r in got["decode"])
    if not torch.cuda.is_available():
        assert got["gpu_decode"] == "no CUDA device" and "colour" not in got
    assert set(got["ladder"]) == {"r2plus1d_tiny", "slowfast_tiny", "x3d_tiny"}
    for ladder in got["ladder"].values():  # torch.compile is a GPU option: not on the CPU's ladder
        assert [r["config"] for r in ladder["rows"]][::4] == ["fp32 eager", "+ fused SGD"]
        assert ladder["rows"][0]["speedup"] == 1.0 and all(r["ms"] > 0 for r in ladder["rows"])
    assert [r["config"] for r in got["pas_n"]["x3d_tiny"]][:2] == ["PAS-1 live", "PAS-1 cached"]
    bounds = {r["network"]: r for r in got["roofline"] if r["device"] == "NVIDIA H100 80GB HBM3"}
    assert 0 < bounds["x3d_m PAS-1"]["live_bound"] < bounds["r2plus1d_18 PAS-1"]["live_bound"] < 1
    assert bounds["r2plus1d_18 B (CE)"]["live_bound"] == bounds["r2plus1d_18 B (CE)"]["cached_bound"]
    assert "## Roofline" in proc.stdout and "| PAS-3 cached |" in proc.stdout
    assert (tmp_path / "roofline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
