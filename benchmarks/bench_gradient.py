"""The gradient strategy (``strategy: gradient``) against PAS's coordinate descent on the same B, the same
data and the same distillation: for a target cost, which gives the better network, for what compute?

For each backbone (default: the demo's r2plus1d_tiny and slowfast_tiny) it runs:

- ``pas``: jobs/demo.yaml with that backbone (it trains B; the same search, under the same name, as
  bench_search_cost.py's ``full``, which is reused when it is DONE under ``--work``);
- the gradient strategy (jobs/demo_gradient.yaml with that backbone), B imported from the PAS search
  (evaluated only), its targets the GFLOPs of the PAS winners of iterations 1-3, as variants:
  ``s0c3`` (seed 0, 3 cycles: the definition), ``s1c3`` (seed 1: a second seed), ``s0c1`` (seed 0,
  1 cycle: the ablation of the diversity mechanism).

Reported per target: each variant's network (its code and what it cuts), its GFLOPs against the target, its
top-1 after the final training, beside the PAS winner at that cost; per search the compute of iterations
>= 1 (B's training left out of every total: the searches share it), split into supernets, candidates and
latency measurement jobs for the gradient strategy; per variant and target the candidates (one per cycle),
how many are distinct, their top-1 after the short training and the winner's at the end. Searches run one
at a time; a search already DONE under ``--work`` is reused (a rerun reports again without training).

    python benchmarks/bench_gradient.py [--work DIR] [--backbones r2plus1d_tiny,slowfast_tiny]
                                        [--variants s0c3,s1c3,s0c1]

Writes DIR/bench_gradient.json and prints the tables (markdown).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search_cost import path_of, run_search

ROOT = Path(__file__).resolve().parents[1]


def parse_variant(v: str) -> tuple[int, int]:
    """``s0c3`` -> (seed 0, 3 cycles)."""
    if not (v.startswith("s") and "c" in v):
        raise SystemExit(f"--variants: {v!r} is not sSEEDcCYCLES (e.g. s0c3)")
    seed, cycles = v[1:].split("c", 1)
    return int(seed), int(cycles)


def compute_of(status: dict[str, Any], kinds: set[str] | None = None, measurements: bool = True) -> float:
    """Compute of iterations >= 1 (rows of ``kinds`` when given; the latency jobs when ``measurements``)."""
    rows = [h for h in status["hypotheses"] if h["iteration"] >= 1 and (kinds is None or h["kind"] in kinds)]
    if measurements:
        rows += [m for m in status["measurements"] if m["iteration"] >= 1]
    return sum(a["compute_hours"] or 0.0 for h in rows for a in h["attempts"])


def pas_winners(status: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((h for h in status["hypotheses"] if h["winner"] and h["iteration"] >= 1),
                  key=lambda h: h["iteration"])


def gradient_targets(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Per target (iteration): its supernet's candidates, the candidate rows and the winner."""
    out = []
    for sn in sorted((h for h in status["hypotheses"] if h["kind"] == "supernet"), key=lambda h: h["iteration"]):
        j = sn["iteration"]
        if sn["state"] != "DONE":  # the supernet failed for good: no candidate, no network for this target
            out.append({"target_gflops": None, "candidates": [], "distinct": 0, "winner": None,
                        "supernet_state": sn["state"], "supernet_reason": sn["reason"]})
            continue
        result = json.loads((Path(sn["out_dir"]) / "supernet.json").read_text())
        rows = {h["op"]: h for h in status["hypotheses"] if h["iteration"] == j and h["kind"] == "pas"}
        cands = [{"cycle": c["cycle"], "code": c["code"], "description": c["description"], "gflops": c["gflops"],
                  "probability": c["probability"],
                  "rung1_top1": (rows.get(f"c{c['cycle']}") or {}).get("rung_top1", [None])[0]}
                 for c in result["candidates"]]
        winner = next((h for h in rows.values() if h["winner"]), None)
        out.append({"target_gflops": result["target_gflops"], "candidates": cands,
                    "distinct": len({c["code"] for c in cands}),
                    "winner": None if winner is None else {
                        "op": winner["op"], "code": winner["path"], "gflops": winner["gflops"], "top1": winner["top1"],
                        "description": next(c["description"] for c in result["candidates"]
                                            if c["code"] == winner["path"])},
                    "supernet_train_seconds": result["train_seconds"], "cost_error": result["cost_error"]})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "search_cost")
    ap.add_argument("--backbones", default="r2plus1d_tiny,slowfast_tiny")
    ap.add_argument("--variants", default="s0c3,s1c3,s0c1")
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    variants = [(v, *parse_variant(v)) for v in args.variants.split(",")]
    pas_def = yaml.safe_load((ROOT / "jobs" / "demo.yaml").read_text())
    grad_def = yaml.safe_load((ROOT / "jobs" / "demo_gradient.yaml").read_text())
    report: dict[str, Any] = {"backbones": []}
    for backbone in args.backbones.split(","):
        synthetic = {**pas_def.get("synthetic", {}), "root": str(work / "data" / "synth")}
        stem = f"demo-{backbone}".replace("_", "-")
        print(f"== {stem} pas", flush=True)
        pas = run_search(work, {**pas_def, "backbone": backbone, "synthetic": synthetic}, f"{stem}-full")
        winners = pas_winners(pas)
        b_ckpt = str(Path(pas["hypotheses"][0]["out_dir"]) / "model.pt")
        targets = [float(f"{w['gflops']:.4g}") for w in winners]
        pas_cum, total = [], 0.0
        for w in winners:
            total += compute_of({"hypotheses": [h for h in pas["hypotheses"] if h["iteration"] == w["iteration"]],
                                 "measurements": [m for m in pas["measurements"]
                                                  if m["iteration"] == w["iteration"]]})
            pas_cum.append(total)
        entry: dict[str, Any] = {
            "backbone": backbone, "targets_gflops": targets, "base_top1": pas["hypotheses"][0]["top1"],
            "pas": {"path": path_of(pas), "compute_hours": compute_of(pas), "compute_to_target": pas_cum,
                    "compute_unit": "/".join(sorted(pas["compute_hours_by_unit"])),
                    "winners": [{"iteration": w["iteration"], "path": ",".join(path_of(pas)[:w["iteration"]]),
                                 "gflops": w["gflops"], "top1": w["top1"]} for w in winners]},
            "gradient": []}
        for name, seed, cycles in variants:
            d = {**grad_def, "backbone": backbone, "synthetic": synthetic, "seed": seed,
                 "base": {"checkpoint": b_ckpt},
                 "gradient": {**grad_def["gradient"], "targets_gflops": targets, "cycles": cycles}}
            print(f"== {stem} gradient {name}", flush=True)
            st = run_search(work, d, f"{stem}-gradient-{name}")
            entry["gradient"].append({
                "variant": name, "seed": seed, "cycles": cycles, "state": st["state"],
                "compute_hours": compute_of(st), "supernets": compute_of(st, {"supernet"}, False),
                "candidates": compute_of(st, {"pas"}, False),
                "measurements": compute_of({"hypotheses": [], "measurements": st["measurements"]}),
                "wall_s": st["wall_s"], "targets": gradient_targets(st)})
        report["backbones"].append(entry)
        print_tables(entry)
    out = work / "bench_gradient.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def print_tables(e: dict[str, Any]) -> None:
    unit = e["pas"]["compute_unit"]
    print(f"\n### {e['backbone']} (B {_pct(e['base_top1'])}% top-1; PAS path {','.join(e['pas']['path'])})\n")
    print("| target GFLOPs | search | network | GFLOPs | top-1 % | PAS winner: path, GFLOPs, top-1 % |")
    print("|---|---|---|---|---|---|")
    for j, (t, w) in enumerate(zip(e["targets_gflops"], e["pas"]["winners"], strict=True)):
        for g in e["gradient"]:
            tg = g["targets"][j] if j < len(g["targets"]) else None
            win = tg and tg["winner"]
            net = f"`{win['code']}` ({win['description']})" if win else "none"
            print(f"| {t:g} | gradient {g['variant']} | {net} | {win['gflops']:.4g} | {_pct(win['top1'])} | "
                  f"`{w['path']}`: {w['gflops']:.4g}, {_pct(w['top1'])} |" if win else
                  f"| {t:g} | gradient {g['variant']} | {net} | - | - | `{w['path']}`: {w['gflops']:.4g}, "
                  f"{_pct(w['top1'])} |")
    print(f"\n| search | compute of iterations >= 1 ({unit}) | supernets | candidates | latency jobs | wall |")
    print("|---|---|---|---|---|---|")
    pas = e["pas"]
    print(f"| PAS (to targets 1, 2, 3: {', '.join(f'{c:.3g}' for c in pas['compute_to_target'])}) | "
          f"{pas['compute_hours']:.3g} | - | - | - | - |")
    for g in e["gradient"]:
        print(f"| gradient {g['variant']} | {g['compute_hours']:.3g} | {g['supernets']:.3g} | "
              f"{g['candidates']:.3g} | {g['measurements']:.3g} | {g['wall_s'] / 60:.1f} min |")
    print("\n| search | target | candidates (cycle: code, GFLOPs, top-1 after the short training) | distinct | "
          "final top-1 |")
    print("|---|---|---|---|---|")
    for g in e["gradient"]:
        for t in g["targets"]:
            cands = "; ".join(f"{c['cycle']}: `{c['code']}` {c['gflops']:.4g} {_pct(c['rung1_top1'])}"
                              for c in t["candidates"])
            if t["target_gflops"] is None:
                print(f"| {g['variant']} | - | supernet {t['supernet_state']}: {t['supernet_reason']} | 0 | - |")
                continue
            print(f"| {g['variant']} | {t['target_gflops']:g} | {cands} | {t['distinct']} | "
                  f"{_pct(t['winner']['top1']) if t['winner'] else '-'} |")


if __name__ == "__main__":
    sys.exit(main())
