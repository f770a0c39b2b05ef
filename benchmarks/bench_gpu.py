"""One NVIDIA GPU: decode and the training step, every table of docs/gpu.md in one run (within --budget-s).

    python benchmarks/bench_gpu.py [--budget-s 420] [--batch 24] [--rounds 3] [--steps 6] [--json PATH]
                                   [--plot PNG] [--compile r2plus1d_18,x3d_m]
    python benchmarks/bench_gpu.py --smoke     # on a CPU: the tiny networks through every code path

1. decode: clips/s of R(2+1)D-18's training view from the shipped real clips and their copies prepared by
   ``pas data prepare`` (short side 128): torchcodec on the CPU in the training process and with N
   DataLoader workers, against NVDEC in the training process (``recipe.gpu_decode``); then the GPU's decoded
   frames and views against the CPU's, in uint8 levels (the colour conversion's tolerance).
2. the ladder: iteration 1's distillation step (teacher B, student PAS-1 of the paper's path) at 24 clips per
   GPU, in pas's own step (``pas_models.train.run._step``), fp32 eager, then each option added in turn
   (cudnn.benchmark, bf16 autocast, channels_last_3d, fused SGD, torch.compile): ms per step, clips/s, MFU,
   speed-up over fp32 eager, and the first step's time (compilation); per backbone (compile for those named
   by ``--compile``: R(2+1)D-18 unless told).
3. PAS-N: every network of the paper's path (teacher B), live and cached distillation, with every option but
   compile.
4. roofline: the most of the GPU's peak each step can use (``pas_models.roofline``) and the share of its
   FLOPs in memory-bound layers: where a step stays under 20% MFU, how far its kernels are from it.

MFU: model FLOPs (convolutions and linear layers, 2 per multiply-add, the training view; student 3x for
forward and backward, plus the teacher's forward when live) over the device's dense bf16 peak (fp16 on V100;
``pas_models.roofline.DEVICES``), for every row, fp32 rows included. Timings are interleaved rounds: the
median over rounds and the spread (highest - lowest) / median, "not trusted" above 20%. A row that would pass
the budget is listed as skipped. Run with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # pas_models from a checkout with nothing installed

from gpu_decode import colour_rows, decode_rates, decoders_missing, gpu_decode_missing
from gpu_plot import measured_mfu, plot_roofline
from gpu_steps import Step, flag, ladder_recipes, make_step, time_steps

from pas_models.data.prepare import plan_prepare, prepare
from pas_models.presets import preset
from pas_models.reductions import apply_sequence
from pas_models.roofline import device_peak, mfu, roofline, step_bound, step_flops

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT / "tests" / "data" / "videos"
# the paper's paths (Table 1); X3D-M's is pas's Table-1 analogue (docs/networks.md)
PATHS = {"r2plus1d_18": "cfttt", "slowfast_4x16_r50": "cstsf", "x3d_m": "cfttt"}
SMOKE_PATHS = {"r2plus1d_tiny": "cft", "slowfast_tiny": "cst", "x3d_tiny": "cft"}


class Clock:
    def __init__(self, budget_s: float) -> None:
        self.start, self.budget = time.monotonic(), budget_s

    def allows(self, estimate_s: float) -> bool:
        return time.monotonic() - self.start + estimate_s <= self.budget

    @property
    def used(self) -> float:
        return time.monotonic() - self.start


def decode_section(args: argparse.Namespace, out: dict[str, Any]) -> None:
    spec = preset("r2plus1d_tiny" if args.smoke else "r2plus1d_18")
    missing = decoders_missing()
    if missing is not None:  # the step tables need torch alone
        out["decode_skipped"] = missing
        print(f"\n## Decode: skipped: {missing}")
        return
    originals = sorted(VIDEOS.glob("*.*"))
    why = gpu_decode_missing(originals[0])
    out["gpu_decode"] = why or "NVDEC"
    cores = os.cpu_count() or 1
    counts = sorted({1, min(4, cores), cores}) if not args.smoke else [1, 2]
    with tempfile.TemporaryDirectory() as tmp:
        assert not prepare(plan_prepare(VIDEOS, Path(tmp), short_side=128, keyint=16).jobs, workers=min(cores, 4))
        sets = {"original": originals, "prepared 128": sorted(Path(tmp).glob("*.mp4"))}
        out["decode"] = decode_rates(sets, spec, counts, why is None, args.decode_clips, args.rounds)
    print(f"\n## Decode: clips/s of {spec.label}'s training view (GPU decode: {why or 'NVDEC'})\n")
    print("| videos | loader | clips/s (spread) |\n|---|---|---|")
    for r in out["decode"]:
        print(f"| {r['videos']} | {r['loader']} | {r['clips_per_s']:.1f} ({flag(r['spread'])}) |")
    if why is None:
        out["colour"] = colour_rows(originals, spec)
        print("\n| video | GPU against CPU | mean levels | p99 | max |\n|---|---|---|---|---|")
        for r in out["colour"]:
            print(f"| {r['video']} | {r['what']} | {r['mean']:.2f} | {r['p99']:.0f} | {r['max']:.0f} |")


def _row(step: Step, batch: int, flops_per_clip: float, peak: float, base_ms: float | None) -> dict[str, Any]:
    rate = batch / (step.median_ms / 1e3)
    return {"config": step.label, "ms": step.median_ms, "spread": step.spread, "clips_per_s": rate,
            "mfu": mfu(rate, flops_per_clip, peak), "speedup": base_ms / step.median_ms if base_ms else 1.0,
            "first_step_s": step.first_step_s}


def _timed(args: argparse.Namespace, device: torch.device, peak: float, steps: list[Step], flops: list[float],
           versus_first: bool) -> list[dict[str, Any]]:
    """Time ``steps`` interleaved, then free them: one row each (speed-up over the first where asked)."""
    time_steps(steps, device, args.rounds, args.steps, args.warmup)
    base_ms = steps[0].median_ms if versus_first else None
    rows = [_row(s, args.batch, f, peak, base_ms) for s, f in zip(steps, flops, strict=True)]
    steps.clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def _amp(device: torch.device) -> str:
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp16"


def ladder_section(args: argparse.Namespace, device: torch.device, peak: float, clock: Clock,
                   out: dict[str, Any]) -> None:
    gpu = device.type == "cuda"
    for backbone, ops in (SMOKE_PATHS if args.smoke else PATHS).items():
        compiles = gpu and backbone in args.compile
        if not clock.allows((150 if compiles else 60) if gpu else 5):
            out.setdefault("skipped", []).append(f"ladder {backbone}")
            continue
        base = preset(backbone)
        student = apply_sequence(base, [ops[0]])[-1]
        recipes = [(lbl, rc) for lbl, rc in ladder_recipes(_amp(device)) if compiles or rc.compile == "none"]
        steps = [make_step(lbl, base, student, rc, args.batch, device, live=True) for lbl, rc in recipes]
        flops = step_flops(roofline(student), roofline(base))
        rows = _timed(args, device, peak, steps, [flops] * len(steps), versus_first=True)
        out.setdefault("ladder", {})[backbone] = {"student": student.label, "rows": rows}
        print(f"\n## {base.label}: KD step, teacher B, student {student.label}, {args.batch} clips\n")
        print("| step | ms (spread) | clips/s | MFU | vs fp32 eager | first step s |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['config']} | {r['ms']:.1f} ({flag(r['spread'])}) | {r['clips_per_s']:.1f} | "
                  f"{100 * r['mfu']:.1f}% | {r['speedup']:.2f}x | {r['first_step_s']:.1f} |")


def pas_n_section(args: argparse.Namespace, device: torch.device, peak: float, clock: Clock,
                  out: dict[str, Any]) -> None:
    best = [rc for _, rc in ladder_recipes(_amp(device)) if rc.compile == "none"][-1]
    for backbone, ops in (SMOKE_PATHS if args.smoke else PATHS).items():
        if not clock.allows(90 if device.type == "cuda" else 5):
            out.setdefault("skipped", []).append(f"PAS-N {backbone}")
            continue
        base = preset(backbone)
        t_rf = roofline(base)
        steps, flops = [], []
        for n, student in enumerate(apply_sequence(base, list(ops))[1:], 1):
            for live in (True, False):
                steps.append(make_step(f"PAS-{n} {'live' if live else 'cached'}", base, student, best, args.batch,
                                       device, live))
                flops.append(step_flops(roofline(student), t_rf if live else None))
        out.setdefault("pas_n", {})[backbone] = rows = _timed(args, device, peak, steps, flops, versus_first=False)
        print(f"\n## {base.label}: the path {','.join(ops)}, every option but compile, {args.batch} clips\n")
        print("| network, KD | ms (spread) | clips/s | MFU |\n|---|---|---|---|")
        for r in rows:
            print(f"| {r['config']} | {r['ms']:.1f} ({flag(r['spread'])}) | {r['clips_per_s']:.1f} | "
                  f"{100 * r['mfu']:.1f}% |")


def roofline_section(args: argparse.Namespace, device_name: str, out: dict[str, Any]) -> None:
    names = [device_name] if device_peak(device_name) else ["NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-32GB"]
    rows, batch = [], 24 if args.smoke else args.batch
    for backbone, ops in PATHS.items():
        base = preset(backbone)
        t_rf = roofline(base, batch)
        for n, student in enumerate(apply_sequence(base, list(ops))):
            s_rf = roofline(student, batch)
            for name in names:
                peak, bw = device_peak(name)  # type: ignore[misc]
                rows.append({"device": name, "network": f"{backbone} PAS-{n}" if n else f"{backbone} B (CE)",
                             "live_bound": step_bound(s_rf, t_rf if n else None, peak, bw),
                             "cached_bound": step_bound(s_rf, None, peak, bw),
                             "memory_bound_share": s_rf.memory_bound_share(peak, bw)})
    out["roofline"] = rows
    print(f"\n## Roofline: the most of the peak a step of {batch} clips can use (bf16; B trains without a teacher)\n")
    print("| device | network (student) | live KD bound | cached KD bound | FLOPs in memory-bound layers |\n"
          "|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['device']} | {r['network']} | {100 * r['live_bound']:.0f}% | {100 * r['cached_bound']:.0f}% | "
              f"{100 * r['memory_bound_share']:.0f}% |")


def figure(path: Path, device_name: str, out: dict[str, Any]) -> None:
    """The roofline figure on this GPU (with its measured steps), else on an H100 SXM."""
    name = device_name if device_peak(device_name) else "NVIDIA H100 80GB HBM3"
    peak, bw = device_peak(name)  # type: ignore[misc]
    nets = {}
    for backbone, ops in PATHS.items():
        base = preset(backbone)
        nets[backbone] = (roofline(apply_sequence(base, [ops[0]])[-1]), roofline(base))
    plot_roofline(path, name, peak, bw, nets, measured_mfu(out) if name == device_name else {})
    print(f"\nroofline figure: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new tables after this")
    parser.add_argument("--compile", default="r2plus1d_18", type=lambda v: [x for x in v.split(",") if x],
                        help="backbones whose ladder ends with torch.compile (its compilation takes minutes)")
    parser.add_argument("--batch", type=int, default=24, help="clips per GPU (the paper's 24)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (the first one timed apart)")
    parser.add_argument("--decode-clips", type=int, default=48, help="clips per decode measurement")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny networks, 1 round: every code path")
    parser.add_argument("--json", type=Path, help="write every row here too")
    parser.add_argument("--plot", type=Path, help="draw the roofline figure (this GPU's, else an H100's) here")
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.rounds, args.steps, args.warmup, args.decode_clips = 2, 1, 1, 1, 8
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak, _ = device_peak(name) or (0.0, 0.0)
    out: dict[str, Any] = {"device": name, "torch": torch.__version__, "batch": args.batch, "rounds": args.rounds,
                           "steps_per_round": args.steps, "command": " ".join(sys.argv)}
    print(f"device {name}, torch {torch.__version__}" + ("" if peak else " (no known peak: MFU 0)"))
    clock = Clock(args.budget_s)
    decode_section(args, out)
    roofline_section(args, name, out)
    ladder_section(args, device, peak, clock, out)
    pas_n_section(args, device, peak, clock, out)
    if args.plot:
        figure(args.plot, name, out)
    out["seconds"] = clock.used
    if out.get("skipped"):
        print(f"\nskipped (budget {args.budget_s:g} s): {', '.join(out['skipped'])}")
    print(f"\n{clock.used:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
