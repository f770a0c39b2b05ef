"""What the teacher cache (``distill.cache``) saves, what it costs, and whether it changes the search.

Three parts (``--parts step,build,search``), one at a time, nothing else running:

- ``step``: the distillation step of pas_models.train.run (``_step``: student forward and backward, and
  the teacher's logits) with the live teacher (B forward on the full view) vs the cache (logits from the
  batch), the same student and weights, interleaved rounds (median and spread of the round medians). CPU:
  r2plus1d_tiny and slowfast_tiny with a ``c,f,t`` student (batch 8), R(2+1)D-18 (B 40.8 GFLOPs per clip)
  with a ``c,f,t`` student (batch 2); a GPU when one is present (bf16, channels_last, the Kinetics recipe's
  batch 24). Beside it the ratio the FLOPs predict, (3 g_student + g_B) / (3 g_student), and that ratio per
  iteration of the paper's R(2+1)D-18 path (Table 1's GFLOPs per view).
- ``build``: the cache stage's job (pas_models.teacher_cache.shard.run_shard, one shard, this machine) over the
  demo's synthetic set with K = 8, 16, 32: seconds per clip, bytes per video, and K400 extrapolated
  (240,000 videos, 400 classes: bytes per clip measured here scaled to 400 fp16 logits).
- ``search``: jobs/demo.yaml live with seed 0 (it trains B), live with seed 1 and cached with seed 0 (both
  import that B: the same B for all three), and the same pair (live, cached) with the slowfast_tiny backbone:
  the path, every winner's top-1 and the compute of the iterations (B's training left out). The live seed-0
  searches are bench_search_cost.py's full searches (reused when both share ``--work``, the default).

    python benchmarks/bench_teacher_cache.py [--parts step,build,search] [--backbones A,B] [--work DIR]

Writes DIR/bench_teacher_cache.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER_R2PLUS1D = (20.4, 10.2, 5.4, 3.2, 2.5)  # Table 1: GFLOPs per view of PAS-1..5; B 40.8
PAPER_B = 40.8


def _spread(medians: list[float]) -> float:
    m = statistics.median(medians)
    return (max(medians) - min(medians)) / m if m else 0.0


def _interleaved(trs: dict[str, Any], rounds: int, steps: int, fmt: Any, gpu: bool) -> dict[str, list[float]]:
    """ms per step of each training, after a warm-up, in ``rounds`` rounds alternating which goes first."""
    import torch

    from pas_models.train.run import _step

    times: dict[str, list[float]] = {name: [] for name in trs}
    for tr, b in trs.values():  # warm-up
        _step(tr, b, 1e-4, fmt)
    for r in range(rounds):
        for name in (list(trs) if r % 2 == 0 else list(reversed(trs))):
            tr, b = trs[name]
            if gpu:
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(steps):
                _step(tr, b, 1e-4, fmt)
            if gpu:
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - t) / steps * 1e3)
    return times


def bench_step(rounds: int = 5) -> list[dict[str, Any]]:
    import torch

    from pas_models.flops import count_cost
    from pas_models.nets import build_model
    from pas_models.presets import preset
    from pas_models.reductions import apply_sequence
    from pas_models.train.task import Distill
    from pas_models.train.teacher import CachedTeacher, LiveTeacher

    gpu = torch.cuda.is_available()
    cases = [("r2plus1d_tiny", 8, 5), ("slowfast_tiny", 8, 5), ("r2plus1d_18", 2, 1)]
    if gpu:
        cases = [("r2plus1d_18", 24, 10), ("slowfast_4x16_r50", 16, 10)]
    device = torch.device("cuda" if gpu else "cpu")
    amp = torch.bfloat16 if gpu else None
    fmt = torch.channels_last_3d if gpu else torch.contiguous_format
    rows = []
    for backbone, batch, steps in cases:
        base = preset(backbone, 400 if backbone in ("r2plus1d_18", "slowfast_4x16_r50") else 8)
        student_spec = apply_sequence(base, ["c", "f", "t"], {"c": 1.4, "f": 2, "t": 2})[-1]
        g_b, g_s = count_cost(base).gflops, count_cost(student_spec).gflops
        torch.manual_seed(0)
        teacher = build_model(base).to(device, memory_format=fmt).train()
        for p in teacher.parameters():
            p.requires_grad_(False)
        student = build_model(student_spec).to(device, memory_format=fmt).train()
        xs = torch.randn(batch, *student_spec.input_shape(train=True), device=device)
        xt = torch.randn(batch, *base.input_shape(train=True), device=device)
        y = torch.randint(0, base.num_classes, (batch,), device=device)
        with torch.no_grad():
            soft = teacher(xt).float()
        live = {"student": xs, "teacher": xt, "label": y}
        cached = {"student": xs, "soft": soft, "label": y}

        def training(signal: Any, student: Any = student) -> Any:
            opt = torch.optim.SGD(student.parameters(), lr=1e-4, momentum=0.9)
            return types.SimpleNamespace(
                task=types.SimpleNamespace(distill=Distill(5.0, 10.0)), device=device,
                precision=types.SimpleNamespace(amp_dtype=amp), optimizer=opt, teacher=signal, train_model=student,
                scaler=torch.amp.GradScaler("cuda", enabled=False), env=types.SimpleNamespace(world=1))

        trs = {"live": (training(LiveTeacher(teacher, False, fmt)), live),
               "cached": (training(CachedTeacher()), cached)}
        times = _interleaved(trs, rounds, steps, fmt, gpu)
        live_ms, cached_ms = statistics.median(times["live"]), statistics.median(times["cached"])
        row = {"backbone": backbone, "student": "c,f,t", "batch": batch, "device": str(device),
               "g_teacher": g_b, "g_student": g_s, "live_ms": live_ms, "cached_ms": cached_ms,
               "live_spread": _spread(times["live"]), "cached_spread": _spread(times["cached"]),
               "measured_ratio": live_ms / cached_ms, "flops_ratio": (3 * g_s + g_b) / (3 * g_s),
               "rounds": rounds, "steps_per_round": steps}
        rows.append(row)
        print(f"step {backbone}: live {live_ms:.1f} ms, cached {cached_ms:.1f} ms", flush=True)
    return rows


def bench_build(work: Path) -> list[dict[str, Any]]:
    import torch

    from pas_models.data.formats import load_dataset_config
    from pas_models.data.synth import SynthConfig, generate
    from pas_models.nets import build_model
    from pas_models.presets import preset
    from pas_models.teacher_cache.config import CacheConfig, CacheShardTask
    from pas_models.teacher_cache.shard import run_shard
    from pas_models.train.checkpoint import save_checkpoint

    data_root = work / "data" / "synth"  # the demo's (SynthConfig defaults), shared with the searches
    if not (data_root / "dataset.yaml").is_file():
        generate(data_root, SynthConfig())
    data = load_dataset_config(data_root / "dataset.yaml")
    spec = preset("r2plus1d_tiny", data.num_classes)
    torch.manual_seed(0)
    weights = work / "B.pt"
    save_checkpoint({"model": build_model(spec).state_dict(), "spec": spec.to_json()}, weights)
    rows = []
    for k in (8, 16, 32):
        out = work / f"build-K{k}"
        for f in sorted(out.rglob("*"), reverse=True) if out.exists() else []:
            f.unlink() if f.is_file() else f.rmdir()
        cfg = CacheConfig(clips_per_video=k, top_k=None, shards=1)
        r = run_shard(CacheShardTask("0-cache-0", str(out / "job"), str(out / "cache"), 0, spec, str(weights), data,
                                     cfg, "train", batch=16, num_workers=1, seed=0))
        per_clip_bytes = r.bytes / r.clips
        logit_bytes = 2 * data.num_classes
        k400_clip = per_clip_bytes - logit_bytes + 2 * 400  # the same recipe bytes, 400 fp16 logits
        rows.append({"K": k, "videos": r.videos, "clips": r.clips, "seconds": r.seconds,
                     "teacher_seconds": r.teacher_seconds, "ms_per_clip": r.seconds / r.clips * 1e3,
                     "bytes": r.bytes, "bytes_per_video": r.bytes / r.videos,
                     "k400_bytes_per_video": k400_clip * k, "k400_total_gb": k400_clip * k * 240_000 / 1e9})
        print(f"build K={k}: {r.seconds:.1f} s, {r.bytes / 1e3:.1f} kB", flush=True)
    return rows


def _search(work: Path, definition: dict[str, Any], name: str) -> dict[str, Any]:
    """bench_search_cost.run_search: run the search, or reuse it when it is DONE under ``work`` already (its
    full searches, the same definitions and names, when both benchmarks share ``--work``)."""
    from bench_search_cost import run_search  # this folder is on sys.path when a benchmark runs as a script

    return run_search(work, definition, name)


def _summary(st: dict[str, Any]) -> dict[str, Any]:
    winners = sorted((h["iteration"], h["op"], h["top1"]) for h in st["hypotheses"] if h["winner"] and h["iteration"])
    cache = sum(a["compute_hours"] or 0 for s in st.get("teacher_cache", []) for a in s["attempts"])
    iters = sum(a["compute_hours"] or 0 for h in st["hypotheses"] + st["measurements"] if h["iteration"] >= 1
                for a in h["attempts"])
    return {"path": [op for _, op, _ in winners], "winners_top1": [t for _, _, t in winners],
            "base_top1": st["hypotheses"][0]["top1"], "compute_iterations": iters, "compute_cache": cache,
            "wall_s": st["wall_s"]}


def bench_search(work: Path, backbones: list[str]) -> list[dict[str, Any]]:
    rows = []
    for backbone in backbones:
        definition = yaml.safe_load((ROOT / "jobs/demo.yaml").read_text())
        definition["backbone"] = backbone
        definition["synthetic"] = {**definition["synthetic"], "root": str(work / "data" / "synth")}
        stem = f"demo-{backbone}".replace("_", "-")
        live = _search(work, definition, f"{stem}-full")  # bench_search_cost.py's name for it
        b = {"checkpoint": str(Path(live["hypotheses"][0]["out_dir"]) / "model.pt")}
        runs = {"live, seed 0": live,
                "live, seed 1": _search(work, {**definition, "base": b, "seed": 1}, f"{stem}-live-s1")}
        for k in (8, 32) if backbone == "slowfast_tiny" else (8,):  # K = 32 where K = 8 lost accuracy
            cache = {"clips_per_video": k, "top_k": None, "shards": 2}
            runs[f"cache K={k}, seed 0"] = _search(
                work, {**definition, "base": b, "distill": {**definition["distill"], "cache": cache}},
                f"{stem}-cache-s0" if k == 8 else f"{stem}-cache-k{k}-s0")
        for name, st in runs.items():
            rows.append({"definition": f"demo.yaml, {backbone}", "search": name, **_summary(st)})
            print(f"search {backbone} {name}: {rows[-1]['path']}", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "search_cost",
                    help="shared with bench_search_cost.py by default: its full searches are reused")
    ap.add_argument("--parts", default="step,build,search")
    ap.add_argument("--backbones", default="r2plus1d_tiny,slowfast_tiny",
                    help="the search part's definitions (rows of the others are kept from an earlier run)")
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    out_file = work / "bench_teacher_cache.json"
    report: dict[str, Any] = json.loads(out_file.read_text()) if out_file.is_file() else {}
    if "step" in parts:
        report["step"] = bench_step()
        print("\n| backbone (B -> c,f,t student) | batch | device | live ms/step | cached ms/step | measured "
              "live/cached | FLOPs (3 g_s + g_B) / 3 g_s |")
        print("|---|---|---|---|---|---|---|")
        for r in report["step"]:
            print(f"| {r['backbone']} ({r['g_teacher']:.3g} -> {r['g_student']:.3g} GF) | {r['batch']} | {r['device']} "
                  f"| {r['live_ms']:.1f} (spread {r['live_spread']:.0%}) | {r['cached_ms']:.1f} (spread "
                  f"{r['cached_spread']:.0%}) | {r['measured_ratio']:.2f}x | {r['flops_ratio']:.2f}x |")
        print("\nthe paper's R(2+1)D-18 path (Table 1), FLOPs ratio of a live to a cached step per iteration: "
              + ", ".join(f"PAS-{i + 1} ({g} GF) {(3 * g + PAPER_B) / (3 * g):.2f}x"
                          for i, g in enumerate(PAPER_R2PLUS1D)))
    if "build" in parts:
        report["build"] = bench_build(work)
        print("\n| K | clips | s | ms/clip | bytes/video | K400: bytes/video (400 classes) | K400: 240k videos |")
        print("|---|---|---|---|---|---|---|")
        for r in report["build"]:
            print(f"| {r['K']} | {r['clips']} | {r['seconds']:.1f} | {r['ms_per_clip']:.2f} | "
                  f"{r['bytes_per_video']:,.0f} | {r['k400_bytes_per_video']:,.0f} | {r['k400_total_gb']:.2f} GB |")
    if "search" in parts:
        backbones = args.backbones.split(",")
        kept = [r for r in report.get("search", []) if r["definition"].split(", ")[-1] not in backbones]
        report["search"] = kept + bench_search(work, backbones)
        print("\n| definition | search | path | winners' top-1 % | B top-1 % | compute: iterations (+ cache) |")
        print("|---|---|---|---|---|---|")
        for r in report["search"]:
            cache = f" + {r['compute_cache']:.3g}" if r["compute_cache"] else ""
            print(f"| {r['definition']} | {r['search']} | {','.join(r['path'])} | "
                  f"{', '.join(f'{t:.2f}' for t in r['winners_top1'])} | {r['base_top1']:.2f} | "
                  f"{r['compute_iterations']:.3g}{cache} CPU-h |")
    out_file.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
