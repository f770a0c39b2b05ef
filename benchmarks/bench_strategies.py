"""Which search strategies keep the full search's quality, for what compute? Each strategy over several seeds on one
definition, one search at a time on this machine, every figure with its interval.

For each seed S (default 0, 1, 2) it runs ``full`` (the definition as it is, seed S: it trains B) and, importing
that B (``base.checkpoint``: evaluated only; compute is compared on the iterations alone), seed S each:

- ``eta2``, ``eta3``: ``halving: {eta: 2 or 3, rungs: 3}`` (rung 1 after 1/4 or 1/9 of the steps);
- ``eta3r2``, ``eta2r2``: ``halving: {eta: 3 or 2, rungs: 2}`` (rung 1 after 1/3 or 1/2: the shortest informative
  rung);
- ``cache8``, ``cache32``: ``distill.cache: {clips_per_video: 8 or 32}``;
- ``halving_cache``: eta3 and cache8 together;
- ``gradient``: jobs/demo_gradient.yaml's strategy on the same B, its targets the GFLOPs of the full search's
  winners (its network for target j is compared with the full search's winner of iteration j);
- on request, the gradient strategy's ablations (``ABLATIONS``: ``gradient_supernet``, ``gradient_one``,
  ``gradient_half``), one of its parts changed each.

Per variant and iteration: the winner's top-1 over seeds (mean +- sd, each run with its Wilson interval), its
GFLOPs, the paired difference from the full search's winner on the same test videos pooled over seeds (videos x
seeds; Newcombe's interval, exact McNemar p: are these networks different), the mean of the seeds' differences
with its t interval (the seed the unit: is the strategy different, training's own variation included) and
P(better than full) (the share of seeds, ties 1/2); per variant the compute of iterations >= 1 and of the teacher
cache (CPU-h here, B left out) and its share of full's. Verdicts at the last iteration, on the seeds' interval:
``not worse`` when its lower end is above -MARGIN points, ``worse`` when its upper end is below 0, else
``unresolved``. Rung study: Kendall's tau between each halving
variant's rung-k scores (every rung before the end) and the full search's final top-1 of the same hypotheses
(iterations whose parent is the full search's), with a bootstrap interval over (seed, iteration) groups, and how
often the rung's best is the end's best. A search already DONE under ``--work`` is reused.

    python benchmarks/bench_strategies.py [--work DIR] [--job jobs/demo.yaml] [--backbone NAME] [--seeds 0,1,2]
        [--variants full,eta2,eta3,eta3r2,eta2r2,cache8,cache32,halving_cache,gradient]

Writes DIR/bench_strategies-NAME.json, the trade-off figure DIR/bench_strategies-NAME.png (compute share against the
final difference from the full search's, with intervals) and prints the tables (markdown); with an ablation among
the variants, DIR/bench_strategies-NAME-ablations.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gradient import compute_of, gradient_targets
from bench_search_cost import kendall_tau_b, path_of, run_search

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pas_models.intervals import mean_interval, paired, percent_interval  # noqa: E402
from pas_models.predictions import PerVideo  # noqa: E402

GRADIENT_EPOCHS = 6  # supernet epochs per target: with its candidates, about a PAS iteration's compute (measured)
MARGIN = 5.0  # points: "not worse" means the pooled paired interval's lower end is above -MARGIN
HALVING = {"eta2": {"eta": 2, "rungs": 3}, "eta3": {"eta": 3, "rungs": 3}, "eta3r2": {"eta": 3, "rungs": 2},
           "eta2r2": {"eta": 2, "rungs": 2}}
VARIANTS = ("full", "eta2", "eta3", "eta3r2", "eta2r2", "cache8", "cache32", "halving_cache", "gradient")
# the gradient strategy's ablations, one part each: the candidates start from the supernet's weights, one candidate
# per target (no restarts: the distribution's most likely network, no short-training choice among several), the
# candidates' short training twice as long (1/2 of the schedule instead of 1/4)
ABLATIONS = {"gradient_supernet": {"candidate_init": "supernet"}, "gradient_one": {"cycles": 1},
             "gradient_half": {"candidate_fraction": 0.5}}


def variant_definition(name: str, definition: dict[str, Any], b: str, targets: list[float]) -> dict[str, Any]:
    d = {**definition, "base": {"checkpoint": b}}
    if name in HALVING:
        d["halving"] = HALVING[name]
    if name.startswith("cache"):
        d["distill"] = {**d["distill"], "cache": {"clips_per_video": int(name[5:])}}
    if name == "halving_cache":
        d["halving"] = HALVING["eta3"]
        d["distill"] = {**d["distill"], "cache": {"clips_per_video": 8}}
    if name.startswith("gradient"):  # the same data, recipe, distillation and evaluation as PAS; its own keys
        g = yaml.safe_load((ROOT / "jobs" / "demo_gradient.yaml").read_text())
        d = {**d, "strategy": "gradient", "gradient": {**g["gradient"], "targets_gflops": targets,
                                                       "epochs": GRADIENT_EPOCHS, **ABLATIONS.get(name, {})}}
    return d


def search_compute(status: dict[str, Any]) -> float:
    """Compute of iterations >= 1 and of the teacher cache's shards (B's training left out: the searches share it)."""
    cache = sum(a["compute_hours"] or 0.0 for s in status.get("teacher_cache", []) for a in s["attempts"])
    return compute_of(status) + cache


def record(h: dict[str, Any]) -> PerVideo:
    result = json.loads((Path(h["out_dir"]) / "result.json").read_text())
    return PerVideo.from_dict(result["per_video"], h["out_dir"])


def winners(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The network each iteration (PAS) or target (gradient) hands over, in order."""
    rows = [h for h in status["hypotheses"] if h["winner"] and h["kind"] == "pas" and h["iteration"] >= 1]
    return sorted(rows, key=lambda h: h["iteration"])


def run_seed(seed: int, definition: dict[str, Any], variants: list[str], work: Path) -> dict[str, dict[str, Any]]:
    stem = f"{definition['name']}-s{seed}"
    print(f"== {stem} full", flush=True)
    full = run_search(work, {**definition, "seed": seed, "name": f"{stem}-full"}, f"{stem}-full")
    b = str(Path(next(h["out_dir"] for h in full["hypotheses"] if h["iteration"] == 0)) / "model.pt")
    targets = [float(f"{w['gflops']:.4g}") for w in winners(full)]
    runs = {"full": full}
    for v in variants:
        if v == "full":
            continue
        print(f"== {stem} {v}", flush=True)
        d = variant_definition(v, {**definition, "seed": seed, "name": f"{stem}-{v}"}, b, targets)
        runs[v] = run_search(work, d, f"{stem}-{v}")
    return runs


def iteration_rows(name: str, runs: dict[int, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per iteration of variant ``name``: each seed's winner, and the pooled paired comparison with full's."""
    out = []
    depth = max(len(winners(r[name])) for r in runs.values())
    for i in range(depth):
        mine, theirs, each = [], [], []
        for seed, r in sorted(runs.items()):
            w, f = winners(r[name]), winners(r["full"])
            if i >= len(w) or i >= len(f):
                continue
            a, b = record(w[i]).shared(record(f[i]))
            mine += a
            theirs += b
            c = paired(a, b)
            each.append({"seed": seed, "op": w[i]["op"], "path": w[i]["path"], "top1": w[i]["top1"],
                         "interval": percent_interval(w[i]["top1"], w[i]["eval_videos"]), "gflops": w[i]["gflops"],
                         "full_top1": f[i]["top1"], "difference": c.difference, "diff_interval": [c.low, c.high]})
        if not each:
            continue
        c = paired(mine, theirs)
        top1 = [e["top1"] for e in each]
        better = [1.0 if e["difference"] > 0 else 0.5 if e["difference"] == 0 else 0.0 for e in each]
        m, lo, hi = mean_interval([e["difference"] for e in each])
        out.append({"iteration": i + 1, "runs": each, "mean": statistics.mean(top1),
                    "sd": statistics.stdev(top1) if len(top1) > 1 else 0.0,
                    "pooled": {"difference": c.difference, "interval": [c.low, c.high], "p": c.p_value, "units": c.n},
                    "over_seeds": {"difference": m, "interval": [lo, hi], "seeds": len(each)},
                    "p_better": statistics.mean(better)})
    return out


def verdict(row: dict[str, Any]) -> str:
    """On the seeds' t interval (the unit a strategy is repeated in: training varies too), not the pooled one."""
    low, high = row["over_seeds"]["interval"]
    if high < 0:
        return "worse"
    return f"not worse (by > {MARGIN:g} points)" if low > -MARGIN else "unresolved"


def same_parent(name: str, runs: dict[int, dict[str, dict[str, Any]]]) -> Iterator[tuple[Any, Any, int]]:
    """(variant's status, full search's status, iteration) for every iteration whose parent is the same network
    in both searches (their paths agree before it): only there do their hypotheses compare one to one."""
    for r in runs.values():
        st, full = r[name], r["full"]
        p, fp = path_of(st), path_of(full)
        for i in range(1, len(p) + 1):
            if p[:i - 1] != fp[:i - 1]:
                break
            yield st, full, i


def rung_study(name: str, runs: dict[int, dict[str, dict[str, Any]]], seed_rng: int = 0) -> list[dict[str, Any]]:
    """Per rung k before the end: Kendall's tau of rung-k scores against the full search's final top-1 of the same
    hypotheses, per (seed, iteration) group with at least 3 of them, and a bootstrap interval over the groups."""
    halving = HALVING["eta3" if name == "halving_cache" else name]
    out = []
    for k in range(1, halving["rungs"]):
        groups = []
        for st, full, i in same_parent(name, runs):
            final = {h["op"]: h["top1"] for h in full["hypotheses"] if h["iteration"] == i
                     and h["kind"] == "pas" and h["top1"] is not None}
            rung = {h["op"]: h["rung_top1"][k - 1] for h in st["hypotheses"] if h["iteration"] == i
                    and len(h["rung_top1"]) >= k}
            ops = sorted(set(final) & set(rung))
            tau = kendall_tau_b([rung[o] for o in ops], [final[o] for o in ops]) if len(ops) >= 3 else None
            if tau is not None:
                best_same = max(ops, key=lambda o: rung[o]) == max(ops, key=lambda o: final[o])
                groups.append({"tau": tau, "best_same": best_same, "hypotheses": len(ops)})
        if not groups:
            continue
        rng = random.Random(seed_rng)
        taus = [g["tau"] for g in groups]
        boot = sorted(statistics.mean(rng.choices(taus, k=len(taus))) for _ in range(2000))
        out.append({"rung": k, "fraction": f"1/{halving['eta'] ** (halving['rungs'] - k)}", "groups": len(groups),
                    "hypotheses": statistics.mean(g["hypotheses"] for g in groups),
                    "tau_mean": statistics.mean(taus), "tau_interval": [boot[49], boot[1949]],
                    "best_same": sum(g["best_same"] for g in groups) / len(groups)})
    return out


def hypothesis_cost(name: str, runs: dict[int, dict[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """The same hypothesis (seed, iteration, operator, on the full search's parent) trained by variant ``name`` and
    by the full search: the ratio of its compute (CPU-h of its attempts) and of its optimizer steps' seconds."""
    compute, steps = [], []
    for st, full, i in same_parent(name, runs):
        mine = {h["op"]: h for h in st["hypotheses"] if h["iteration"] == i and h["kind"] == "pas"}
        for h in full["hypotheses"]:
            o = mine.get(h["op"])
            if h["iteration"] != i or h["kind"] != "pas" or o is None or o["stopped_at_rung"] is not None \
                    or not all((Path(y["out_dir"]) / "result.json").is_file() for y in (o, h)):
                continue  # a hypothesis halving stopped cost less for that reason
            a, b = (sum(x["compute_hours"] or 0.0 for x in y["attempts"]) for y in (o, h))
            ta, tb = (json.loads((Path(y["out_dir"]) / "result.json").read_text())["train_seconds"]
                      for y in (o, h))
            if b > 0 and tb > 0:
                compute.append(a / b)
                steps.append(ta / tb)
    if not compute:
        return None
    shards = [sum(a["compute_hours"] or 0.0 for s in r[name].get("teacher_cache", []) for a in s["attempts"])
              for r in runs.values()]
    return {"pairs": len(compute), "compute_ratio": statistics.median(compute),
            "compute_range": [min(compute), max(compute)], "steps_ratio": statistics.median(steps),
            "steps_range": [min(steps), max(steps)], "shards_cpu_h": shards}


def summarize(runs: dict[int, dict[str, dict[str, Any]]], variants: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    full_compute = [search_compute(r["full"]) for r in runs.values()]
    for v in variants:
        compute = [search_compute(r[v]) for r in runs.values()]
        rows = iteration_rows(v, runs)
        entry = {"iterations": rows, "compute": compute, "compute_mean": statistics.mean(compute),
                 "share_of_full": statistics.mean(c / f for c, f in zip(compute, full_compute, strict=True)),
                 "paths": {seed: path_of(r[v]) for seed, r in runs.items()},
                 "wall_s": [r[v]["wall_s"] for r in runs.values()]}
        if rows and v != "full":
            entry["verdict"] = verdict(rows[-1])
        if v in HALVING or v == "halving_cache":
            entry["rungs"] = rung_study(v, runs)
        if v.startswith("cache") or v == "halving_cache":
            entry["hypothesis_cost"] = hypothesis_cost(v, runs)
        if v.startswith("gradient"):
            entry["targets"] = {seed: gradient_targets(r[v]) for seed, r in runs.items()}
        out[v] = entry
    return out


def print_tables(title: str, summary: dict[str, Any], seeds: list[int]) -> None:
    print(f"\n### {title}: seeds {', '.join(map(str, seeds))}\n")
    print("| strategy | iteration | winner top-1 % mean +- sd | each seed: path, top-1 [95%], GFLOPs | "
          "minus full, pooled over videos x seeds [95%] (p) | minus full, mean over seeds [95% t] | "
          "P(better than full) |")
    print("|---|---|---|---|---|---|---|")
    for v, e in summary.items():
        for row in e["iterations"]:
            each = "; ".join(f"{r['path']} {r['top1']:.1f} [{r['interval'][0]:.1f}-{r['interval'][1]:.1f}] "
                             f"{r['gflops']:.3g}" for r in row["runs"])
            p = row["pooled"]
            diff = "-" if v == "full" else (f"{p['difference']:+.2f} [{p['interval'][0]:+.2f}, "
                                             f"{p['interval'][1]:+.2f}] (p {p['p']:.2g})")
            o = row["over_seeds"]
            seeds = "-" if v == "full" else (f"{o['difference']:+.2f} [{o['interval'][0]:+.2f}, "
                                             f"{o['interval'][1]:+.2f}]")
            better = "-" if v == "full" else f"{row['p_better']:.2f}"
            print(f"| {v} | {row['iteration']} | {row['mean']:.2f} +- {row['sd']:.2f} | {each} | {diff} | {seeds} | "
                  f"{better} |")
    print("\n| strategy | compute of iterations >= 1, CPU-h (each seed) | share of full | wall, min (each seed) | "
          "last iteration against full |")
    print("|---|---|---|---|---|")
    for v, e in summary.items():
        each = ", ".join(f"{c:.3f}" for c in e["compute"])
        wall = ", ".join(f"{w / 60:.1f}" for w in e["wall_s"])
        print(f"| {v} | {e['compute_mean']:.3f} ({each}) | {e['share_of_full']:.0%} | {wall} | "
              f"{e.get('verdict', '-')} |")
    costs = [(v, e["hypothesis_cost"]) for v, e in summary.items() if e.get("hypothesis_cost")]
    if costs:
        print("\n| strategy | same hypotheses | its compute / full's, median [range] | optimizer-step seconds / "
              "full's, median [range] | the cache's shards, CPU-h (each seed) |")
        print("|---|---|---|---|---|")
        for v, c in costs:
            print(f"| {v} | {c['pairs']} | {c['compute_ratio']:.2f} [{c['compute_range'][0]:.2f}-"
                  f"{c['compute_range'][1]:.2f}] | {c['steps_ratio']:.2f} [{c['steps_range'][0]:.2f}-"
                  f"{c['steps_range'][1]:.2f}] | {', '.join(f'{x:.3f}' for x in c['shards_cpu_h'])} |")
    studies = [(v, s) for v, e in summary.items() for s in e.get("rungs", [])]
    if studies:
        print("\n| strategy | rung | after | groups (seed x iteration), hypotheses each | Kendall tau, rung vs the "
              "end, mean [95% bootstrap] | the rung's best is the end's best |")
        print("|---|---|---|---|---|---|")
        for v, s in studies:
            print(f"| {v} | {s['rung']} | {s['fraction']} of the steps | {s['groups']}, {s['hypotheses']:.1f} | "
                  f"{s['tau_mean']:+.2f} [{s['tau_interval'][0]:+.2f}, {s['tau_interval'][1]:+.2f}] | "
                  f"{s['best_same']:.0%} |")


def plot_tradeoff(summary: dict[str, Any], title: str, path: Path) -> None:
    """Compute share of the full search's (x: the mean over seeds, the bar each seed's range) against the last
    iteration's difference from the full search's winner (y: the mean over seeds with its t interval, thin; the
    pooled paired interval over videos x seeds, thick; each seed's difference a grey dot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    full = summary["full"]["compute"]
    for v, e in summary.items():
        if v == "full" or not e["iterations"]:
            continue
        last = e["iterations"][-1]
        shares = [100 * c / f for c, f in zip(e["compute"], full, strict=True)]
        x, y = 100 * e["share_of_full"], last["over_seeds"]["difference"]
        lo, hi = (max(b, -60.0) if i == 0 else min(b, 20.0) for i, b in enumerate(last["over_seeds"]["interval"]))
        plo, phi = last["pooled"]["interval"]
        bars = ax.errorbar([x], [y], xerr=[[x - min(shares)], [max(shares) - x]], yerr=[[y - lo], [hi - y]],
                           fmt="o", capsize=4, lw=0.8)
        ax.plot([x, x], [plo, phi], lw=4, alpha=0.5, color=bars[0].get_color())
        ax.scatter([x] * len(last["runs"]), [r["difference"] for r in last["runs"]], s=10, color="grey", zorder=3)
        ax.annotate(v, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.axhline(-MARGIN, color="red", lw=0.8, ls="--", label=f"-{MARGIN:g} points (the margin)")
    ax.axvline(25, color="green", lw=0.8, ls=":", label="25% of the full search's compute")
    ax.set_xlabel("compute of iterations >= 1, % of the full search's (mean; bar: the seeds' range)")
    ax.set_ylabel("final top-1 minus the full search's, points")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "strategies")
    ap.add_argument("--job", default="jobs/demo.yaml")
    ap.add_argument("--backbone", help="another backbone for the definition (e.g. slowfast_tiny)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    variants = ["full", *(v for v in args.variants.split(",") if v != "full")]
    if unknown := set(variants) - set(VARIANTS) - set(ABLATIONS):
        ap.error(f"--variants: unknown {', '.join(sorted(unknown))} (known: {', '.join((*VARIANTS, *ABLATIONS))})")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    definition = yaml.safe_load((ROOT / args.job).read_text())
    if definition.get("synthetic") is not None:  # one dataset for every search, generated once under --work
        definition["synthetic"] = {**definition["synthetic"], "root": str(work / "data" / definition["name"])}
    if args.backbone:
        definition = {**definition, "backbone": args.backbone,
                      "name": f"{definition['name']}-{args.backbone}".replace("_", "-")}
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {seed: run_seed(seed, definition, variants, work) for seed in seeds}
    summary = summarize(runs, variants)
    print_tables(f"{args.job} ({definition['backbone']})", summary, seeds)
    tag = "-ablations" if set(variants) & set(ABLATIONS) else ""  # its own files: the main table stays
    out = work / f"bench_strategies-{definition['name']}{tag}.json"
    figure = out.with_suffix(".png")
    plot_tradeoff(summary, f"{args.job} ({definition['backbone']}), seeds {args.seeds}\nthin: mean difference [95% t "
                  "over seeds, clipped to -60..20]; thick: pooled over videos x seeds; dots: each seed", figure)
    out.write_text(json.dumps({"job": args.job, "backbone": definition["backbone"], "seeds": seeds,
                               "margin": MARGIN, "strategies": summary}, indent=2) + "\n")
    print(f"\nwrote {out} and {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
