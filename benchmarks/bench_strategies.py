"""Which search strategies keep the full search's quality, for what compute? Each strategy over several seeds on one
definition, one search at a time on this machine, every figure with its interval.

For each seed S (default 0, 1, 2) it runs ``full`` (the definition as it is, seed S: it trains B) and, importing
that B (``base.checkpoint``: evaluated only; compute is compared on the iterations alone), seed S each:

- ``eta2``, ``eta3``: ``halving: {eta: 2 or 3, rungs: 3}`` (rung 1 after 1/4 or 1/9 of the steps);
- ``eta3r2``, ``eta2r2``: ``halving: {eta: 3 or 2, rungs: 2}`` (rung 1 after 1/3 or 1/2: the shortest informative
  rung);
- ``cache8``, ``cache32``: ``distill.cache: {clips_per_video: 8 or 32}``;
- ``halving_cache``: eta3 and cache8 together;
- ``ties``, ``eta2ties``: ``ties: {rule: paired, level: 0.05}`` (noise-aware selection), alone and with eta2 (where
  a rung's cut is noise-aware too);
- ``gradient_supernet``: jobs/demo_gradient.yaml's strategy as pas ships it (its candidates start from their
  weights cut from the supernet) on the same B, its targets the GFLOPs of the full search's winners (its network
  for target j is compared with the full search's winner of iteration j);
- on request, the gradient strategy's ablations (``ABLATIONS``): ``gradient`` (the candidates start by PAS's
  rule, ``candidate_init: pas``) and, from it, one more part changed each: ``gradient_one`` (one candidate per
  target), ``gradient_half`` (the candidates' short training at 1/2 of the schedule).

Per variant and iteration: the winner's top-1 over seeds (mean +- sd, each run with its Wilson interval), its
GFLOPs, the paired difference from the full search's winner on the same test videos pooled over seeds (videos x
seeds; Newcombe's interval, exact McNemar p: are these networks different), the mean of the seeds' differences
with its t interval (the seed the unit: is the strategy different, training's own variation included) and
P(better than full) (the share of seeds, ties 1/2); per variant the compute of iterations >= 1 and of the teacher
cache (CPU-h here, B left out) and its share of full's. Verdicts at the last iteration, on the seeds' interval:
``not worse`` when its lower end is above -MARGIN points, ``worse`` when its upper end is below 0, else
``unresolved``. Rung study: Kendall's tau between each halving
variant's rung-k scores (every rung before the end) and the full search's final top-1 of the same hypotheses
(iterations whose parent is the full search's), with a bootstrap interval over (seed, iteration) groups, how
often the rung's best is the end's best (all hypotheses; those fine-tuned from their parent alone), and how many
rung scores of hypotheses trained from scratch are at chance. With ``gradient`` among the variants, each other
gradient variant is also compared with it (the same supernets: one part changed). A search already DONE
under ``--work`` is reused.

    python benchmarks/bench_strategies.py [--work DIR] [--job jobs/demo.yaml] [--backbone NAME] [--seeds 0,1,2]
        [--variants full,eta2,eta3,eta3r2,eta2r2,cache8,cache32,halving_cache,ties,eta2ties,gradient_supernet]

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
from strategies_report import plot_tradeoff, print_tables

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pas_models.intervals import mean_interval, paired, percent_interval  # noqa: E402
from pas_models.predictions import PerVideo  # noqa: E402

GRADIENT_EPOCHS = 6  # supernet epochs per target: with its candidates, about a PAS iteration's compute (measured)
MARGIN = 5.0  # points: "not worse" means the seeds' t interval's lower end is above -MARGIN
HALVING = {"eta2": {"eta": 2, "rungs": 3}, "eta3": {"eta": 3, "rungs": 3}, "eta3r2": {"eta": 3, "rungs": 2},
           "eta2r2": {"eta": 2, "rungs": 2}}
# variants that combine: their halving schedule, and whether the teacher cache or noise-aware selection is on
COMBINED = {"halving_cache": "eta3", "eta2ties": "eta2"}
TIES = {"rule": "paired", "level": 0.05}
VARIANTS = ("full", "eta2", "eta3", "eta3r2", "eta2r2", "cache8", "cache32", "halving_cache", "ties", "eta2ties",
            "gradient_supernet")
# the gradient strategy as pas ships it: its candidates start from their weights cut from the supernet
GRADIENT = {"gradient_supernet": {"candidate_init": "supernet"}}
# its ablations: the candidates started by PAS's rule, and from there one part more each: one candidate per target
# (no restarts: the distribution's most likely network, no short-training choice among several), the candidates'
# short training twice as long (1/2 of the schedule instead of 1/4)
ABLATIONS = {"gradient": {"candidate_init": "pas"}, "gradient_one": {"cycles": 1, "candidate_init": "pas"},
             "gradient_half": {"candidate_fraction": 0.5, "candidate_init": "pas"}}


def halving_of(name: str) -> str | None:
    """The HALVING schedule variant ``name`` runs (None: every hypothesis trains to the end)."""
    return name if name in HALVING else COMBINED.get(name)


def variant_definition(name: str, definition: dict[str, Any], b: str, targets: list[float]) -> dict[str, Any]:
    d = {**definition, "base": {"checkpoint": b}}
    if h := halving_of(name):
        d["halving"] = HALVING[h]
    if name.endswith("ties"):
        d["ties"] = TIES
    if name.startswith("cache"):
        d["distill"] = {**d["distill"], "cache": {"clips_per_video": int(name[5:])}}
    if name == "halving_cache":
        d["distill"] = {**d["distill"], "cache": {"clips_per_video": 8}}
    if name.startswith("gradient"):  # the same data, recipe, distillation and evaluation as PAS; its own keys
        g = yaml.safe_load((ROOT / "jobs" / "demo_gradient.yaml").read_text())
        d = {**d, "strategy": "gradient", "gradient": {**g["gradient"], "targets_gflops": targets,
                                                       "epochs": GRADIENT_EPOCHS, **GRADIENT.get(name, {}),
                                                       **ABLATIONS.get(name, {})}}
    return d


def search_compute(status: dict[str, Any]) -> float:
    """Compute of iterations >= 1 and of the teacher cache's shards (B's training left out: the searches share it)."""
    cache = sum(a["compute_hours"] or 0.0 for s in status.get("teacher_cache", []) for a in s["attempts"])
    return compute_of(status) + cache


def _result(h: dict[str, Any], name: str = "result.json") -> dict[str, Any]:
    return json.loads((Path(h["out_dir"]) / name).read_text())


def record(h: dict[str, Any]) -> PerVideo:
    return PerVideo.from_dict(_result(h)["per_video"], h["out_dir"])


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


def iteration_rows(name: str, runs: dict[int, dict[str, dict[str, Any]]], reference: str = "full") \
        -> list[dict[str, Any]]:
    """Per iteration of variant ``name``: each seed's winner, and its comparison with ``reference``'s winner."""
    out = []
    depth = max(len(winners(r[name])) for r in runs.values())
    for i in range(depth):
        mine, theirs, each = [], [], []
        for seed, r in sorted(runs.items()):
            w, f = winners(r[name]), winners(r[reference])
            if i >= len(w) or i >= len(f):
                continue
            a, b = record(w[i]).shared(record(f[i]))
            mine += a
            theirs += b
            c = paired(a, b)
            each.append({"seed": seed, "op": w[i]["op"], "path": w[i]["path"], "top1": w[i]["top1"],
                         "interval": percent_interval(w[i]["top1"], w[i]["eval_videos"]), "gflops": w[i]["gflops"],
                         "reference_top1": f[i]["top1"], "difference": c.difference, "diff_interval": [c.low, c.high]})
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


def rung_group(st: dict[str, Any], full: dict[str, Any], i: int, k: int) -> dict[str, Any] | None:
    """Rung k of iteration i in variant ``st`` against the full search's end (same parent): Kendall's tau over the
    hypotheses both have, whether the rung's best is the end's best (all of them; the fine-tuned ones alone), and
    which from-scratch hypotheses' rung scores are at chance (their 95% interval holds 1 / classes)."""
    ends = {h["op"]: h for h in full["hypotheses"] if h["iteration"] == i and h["kind"] == "pas"
            and h["top1"] is not None and (Path(h["out_dir"]) / "result.json").is_file()}
    rungs = {h["op"]: h for h in st["hypotheses"] if h["iteration"] == i and len(h["rung_top1"]) >= k
             and (Path(h["out_dir"]) / f"rung-{k}.json").is_file()}
    ops = sorted(set(ends) & set(rungs))
    if len(ops) < 3:
        return None
    end = {o: ends[o]["top1"] for o in ops}
    rung = {o: rungs[o]["rung_top1"][k - 1] for o in ops}
    results = {o: _result(ends[o]) for o in ops}
    tuned = [o for o in ops if results[o]["finetuned_from_parent"]]
    at_chance = []
    for o in (o for o in ops if o not in tuned):
        low, high = _result(rungs[o], f"rung-{k}.json")["top1_interval"]
        at_chance.append(low <= 100.0 / results[o]["spec"]["num_classes"] <= high)
    return {"tau": kendall_tau_b([rung[o] for o in ops], [end[o] for o in ops]), "hypotheses": len(ops),
            "best_same": max(ops, key=rung.__getitem__) == max(ops, key=end.__getitem__),
            "tuned_best_same": (max(tuned, key=rung.__getitem__) == max(tuned, key=end.__getitem__))
            if len(tuned) >= 2 else None, "at_chance": at_chance}


def rung_study(name: str, runs: dict[int, dict[str, dict[str, Any]]], seed_rng: int = 0) -> list[dict[str, Any]]:
    """Per rung k before the end: Kendall's tau of rung-k scores against the full search's final top-1 of the same
    hypotheses, per (seed, iteration) group with at least 3 of them, and a bootstrap interval over the groups;
    split by how a hypothesis starts (fine-tuned from its parent, or from scratch)."""
    halving = HALVING[halving_of(name) or name]
    out = []
    for k in range(1, halving["rungs"]):
        groups = [g for st, full, i in same_parent(name, runs) if (g := rung_group(st, full, i, k)) is not None]
        if not groups:
            continue
        rng = random.Random(seed_rng)
        taus = [g["tau"] for g in groups]
        boot = sorted(statistics.mean(rng.choices(taus, k=len(taus))) for _ in range(2000))
        tuned = [g["tuned_best_same"] for g in groups if g["tuned_best_same"] is not None]
        chance = [c for g in groups for c in g["at_chance"]]
        out.append({"rung": k, "fraction": f"1/{halving['eta'] ** (halving['rungs'] - k)}", "groups": len(groups),
                    "hypotheses": statistics.mean(g["hypotheses"] for g in groups),
                    "tau_mean": statistics.mean(taus), "tau_interval": [boot[49], boot[1949]],
                    "best_same": sum(g["best_same"] for g in groups) / len(groups),
                    "finetuned_best_same": [sum(tuned), len(tuned)], "scratch_at_chance": [sum(chance), len(chance)]})
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
            ta, tb = (_result(y)["train_seconds"] for y in (o, h))
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
        if halving_of(v):
            entry["rungs"] = rung_study(v, runs)
        if v.startswith("cache") or v == "halving_cache":
            entry["hypothesis_cost"] = hypothesis_cost(v, runs)
        if v.startswith("gradient") and v != "gradient" and "gradient" in variants:
            entry["against_gradient"] = iteration_rows(v, runs, "gradient")
        if v.startswith("gradient"):
            entry["targets"] = {seed: gradient_targets(r[v]) for seed, r in runs.items()}
        out[v] = entry
    return out


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
    plot_tradeoff(summary, MARGIN, f"{args.job} ({definition['backbone']}), seeds {args.seeds}\nthin: mean "
                  "difference [95% t over seeds, clipped to -60..20]\nthick: pooled over videos x seeds; dots: each "
                  "seed", figure)
    out.write_text(json.dumps({"job": args.job, "backbone": definition["backbone"], "seeds": seeds,
                               "margin": MARGIN, "strategies": summary}, indent=2) + "\n")
    print(f"\nwrote {out} and {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
