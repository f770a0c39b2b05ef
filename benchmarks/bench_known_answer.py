"""Does the search make the known right decision? Iteration 1 of PAS on known-answer probes, with replicas.

A probe (``pas data synth --probe OP``, docs/benchmarks.md) is a dataset whose evidence operator OP destroys
by construction, so its hypothesis should score at chance, significantly below every other operator, and
never be chosen. For each probe (default s, t, f from jobs/probe.yaml; or any dataset with ``--data FILE
--destroys OP``: a probe built elsewhere) it runs, one search at a time:

- ``full``: the probe's definition (B and every hypothesis trained ``--replicas`` times, seeds 0..R-1);
- ``halving``: the same with ``halving: {eta: 3, rungs: 3}``, importing B (the full search's replica 0):
  the destroyed operator should stop at rung 1 and never be chosen; the table also shows which operators
  rung 1 (a ninth of the steps, one-clip evaluation) already tells apart from it;
- ``cache``: the same with ``distill.cache: {clips_per_video: 8}``, importing the same B.

Per probe, variant and operator: each replica's top-1, the replicas' pooled top-1 with its 95% interval
(Wilson over videos x replicas), the destroyed operator's paired difference from it on the same videos x
replicas (Newcombe's interval, exact McNemar p), and with halving the rung-1 figures (one-clip evaluation
after a ninth of the steps) and the rung each hypothesis stopped at. A probe passes a variant when the
destroyed operator is below every other one with p < 0.05 / (operators - 1) (Bonferroni), or was stopped
by halving, and is not chosen. A search already DONE under ``--work`` is reused.

    python benchmarks/bench_known_answer.py [--work DIR] [--job jobs/probe.yaml] [--probes s,t,f] [--replicas 3]
        [--variants full,halving,cache] [--data DATASET.yaml --destroys OP --name NAME]

Writes DIR/bench_known_answer.json and prints the tables (markdown).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search_cost import iteration_compute, run_search

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pas_models.intervals import paired, percent_interval  # noqa: E402
from pas_models.predictions import PerVideo  # noqa: E402
from pas_orchestrator.replicas import source_op  # noqa: E402

VARIANTS = ("full", "halving", "cache")
ALPHA = 0.05


def definitions(args: argparse.Namespace, work: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Probe name -> (the operator that destroys its evidence, the search definition)."""
    base = yaml.safe_load((ROOT / args.job).read_text())
    base["replicas"] = args.replicas
    if args.data:
        d = {**base, "name": f"probe-{args.name}"}
        d.pop("synthetic", None)
        d["data"] = {"file": str(Path(args.data).resolve())}
        return {args.name: (args.destroys, d)}
    out = {}
    for op in args.probes.split(","):
        synthetic = {**base.get("synthetic", {}), "probe": op, "classes": 4,
                     "root": str(work / "data" / f"probe-{op}")}
        out[op] = (op, {**base, "name": f"probe-{op}", "synthetic": synthetic})
    return out


def variant(definition: dict[str, Any], name: str, b: Path) -> dict[str, Any]:
    d = {**definition, "name": f"{definition['name']}-{name}", "base": {"checkpoint": str(b)}}
    if name == "halving":
        d["halving"] = {"eta": 3, "rungs": 3}
    elif name == "cache":
        d["distill"] = {**d["distill"], "cache": {"clips_per_video": 8}}
    return d


def _record(out_dir: str, rung: int | None) -> PerVideo | None:
    f = Path(out_dir) / ("result.json" if rung is None else f"rung-{rung}.json")
    if not f.is_file():
        return None
    data = json.loads(f.read_text()).get("per_video")
    return PerVideo.from_dict(data, str(f)) if data else None


def _pooled(records: list[PerVideo | None]) -> list[bool] | None:
    """Correctness over videos x replicas (the evaluated videos of each replica, in order)."""
    if not records or any(r is None for r in records):
        return None
    return [r.top1[i] for r in records if r is not None for i in range(r.videos) if r.evaluated[i]]


def operators(status: dict[str, Any], rung: int | None) -> dict[str, dict[str, Any]]:
    """Per operator of iteration 1: replicas' top-1 and pooled correctness (final, or at ``rung``)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for h in status["hypotheses"]:
        if h["iteration"] == 1 and h["kind"] in ("pas", "replica"):
            rows.setdefault(source_op(h["op"])[0], []).append(h)
    out = {}
    for op, hs in rows.items():
        hs.sort(key=lambda h: source_op(h["op"])[1])
        if rung is None:
            top1 = [h["top1"] for h in hs]
        else:
            top1 = [h["rung_top1"][rung - 1] if len(h["rung_top1"]) >= rung else None for h in hs]
        bits = _pooled([_record(h["out_dir"], rung) for h in hs])
        out[op] = {"top1": top1, "bits": bits, "winner": any(h["winner"] for h in hs),
                   "stopped_at_rung": hs[0]["stopped_at_rung"]}
    return out


def judge(ops: dict[str, dict[str, Any]], destroyed: str) -> dict[str, Any]:
    """The destroyed operator against each other one that has a record (paired, pooled over replicas)."""
    d = ops[destroyed]["bits"]
    table, separated, not_separated = {}, [], []
    for op, v in ops.items():
        bits = v["bits"]
        row: dict[str, Any] = {"replicas_top1": v["top1"], "winner": v["winner"],
                               "stopped_at_rung": v["stopped_at_rung"]}
        if bits:
            row["pooled_top1"] = 100 * sum(bits) / len(bits)
            row["interval"] = percent_interval(row["pooled_top1"], len(bits))
            row["units"] = len(bits)
        if op != destroyed and bits and d:
            c = paired(d, bits)
            row["destroyed_minus_this"] = {"difference": c.difference, "interval": [c.low, c.high],
                                           "p": c.p_value}
            below = c.difference < 0 and c.p_value < ALPHA / (len(ops) - 1)
            (separated if below else not_separated).append(op)
        table[op] = row
    chosen = [o for o, v in ops.items() if v["winner"]]
    stopped = ops[destroyed]["stopped_at_rung"]
    # a hypothesis stopped by halving has no final record: it lost, which is the right decision for this one
    below_all = (bool(d) and not not_separated and bool(separated)) or (not d and stopped is not None)
    return {"operators": table, "chosen": chosen, "separated_from": separated, "not_separated_from": not_separated,
            "destroyed_stopped_at_rung": stopped, "destroyed_below_all": below_all,
            "passed": below_all and destroyed not in chosen}


def run_probe(name: str, destroyed: str, definition: dict[str, Any], work: Path,
              variants: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"destroyed": destroyed, "variants": {}}
    t = time.monotonic()
    full = run_search(work, definition, definition["name"])
    b = Path(next(h["out_dir"] for h in full["hypotheses"] if h["iteration"] == 0 and h["kind"] == "pas"))
    out["base_top1"] = [h["top1"] for h in full["hypotheses"] if h["iteration"] == 0]
    for v in variants:
        st = full if v == "full" else run_search(work, variant(definition, v, b / "model.pt"),
                                                 f"{definition['name']}-{v}")
        res = {**judge(operators(st, None), destroyed), "compute_hours": iteration_compute(st),
               "wall_s": st["wall_s"]}
        if v == "halving":  # informational: which operators rung 1 already tells from the destroyed one
            res["rung1"] = judge(operators(st, 1), destroyed)
        out["variants"][v] = res
        print(f"   {name} {v}: chosen {','.join(res['chosen'])}, passed {res['passed']}", flush=True)
    out["wall_s"] = time.monotonic() - t
    return out


def _cell(row: dict[str, Any], final: bool = True) -> str:
    if "pooled_top1" not in row:
        return f"stopped at rung {row['stopped_at_rung']}" if row["stopped_at_rung"] else "-"
    lo, hi = row["interval"]
    reps = "/".join("-" if x is None else f"{x:.0f}" for x in row["replicas_top1"])
    return f"{row['pooled_top1']:.1f} [{lo:.1f}-{hi:.1f}] ({reps})" + (" **won**" if final and row["winner"] else "")


def print_tables(results: dict[str, Any]) -> None:
    for name, r in results.items():
        d = r["destroyed"]
        base = "/".join(f"{x:.1f}" for x in r["base_top1"] if x is not None)
        print(f"\n### probe {name}: {d} destroys the evidence; B's top-1 {base} (replicas)\n")
        ops = list(r["variants"][next(iter(r["variants"]))]["operators"])
        print("| variant | " + " | ".join(ops) + f" | {d} minus the best other, paired [95%] (p) | chosen | passed |")
        print("|---|" + "---|" * (len(ops) + 3))
        for v, res in r["variants"].items():
            for label, judged in ((v, res), (f"{v}, rung 1", res.get("rung1"))):
                if judged is None:
                    continue
                cells = [_cell(judged["operators"][o], judged is res) for o in ops]
                diffs = [judged["operators"][o].get("destroyed_minus_this") for o in ops if o != d]
                closest = max((x for x in diffs if x), key=lambda x: x["difference"], default=None)
                gap = "-" if closest is None else (f"{closest['difference']:+.1f} [{closest['interval'][0]:+.1f}, "
                                                   f"{closest['interval'][1]:+.1f}] (p {closest['p']:.2g})")
                chosen = ",".join(judged["chosen"]) if judged is res else "-"
                if judged is res:
                    verdict = "yes" if judged["passed"] else "NO"
                else:
                    verdict = "below " + (",".join(judged["separated_from"]) or "none")
                print(f"| {label} | " + " | ".join(cells) + f" | {gap} | {chosen} | {verdict} |")
        compute = ", ".join(f"{v} {res['compute_hours']:.3f}" for v, res in r["variants"].items())
        print(f"\ncompute of iteration 1 (CPU-h): {compute}; the probe's searches took {r['wall_s'] / 60:.1f} min")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "known_answer")
    ap.add_argument("--job", default="jobs/probe.yaml", help="the search to run on each probe (its backbone, recipe, "
                    "replicas...; iteration 1 is read)")
    ap.add_argument("--probes", default="s,t,f")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--data", help="a probe built elsewhere: its dataset config (num_classes required)")
    ap.add_argument("--destroys", help="with --data: the operator that destroys its evidence")
    ap.add_argument("--name", default="external", help="with --data: the probe's name in the tables")
    args = ap.parse_args()
    if bool(args.data) != bool(args.destroys):
        ap.error("--data and --destroys go together")
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        ap.error(f"--variants: unknown {', '.join(sorted(unknown))} (known: {', '.join(VARIANTS)})")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, (destroyed, definition) in definitions(args, work).items():
        print(f"== probe {name} ({destroyed} destroys its evidence)", flush=True)
        results[name] = run_probe(name, destroyed, definition, work, variants)
    print_tables(results)
    out = work / "bench_known_answer.json"
    out.write_text(json.dumps({"replicas": args.replicas, "probes": results}, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0 if all(v["passed"] for r in results.values() for v in r["variants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
