"""How much B's training varies with its seed: B of a search definition trained with seeds 0..N-1 (``pas train
--base``, the definition's data, recipe and evaluation; two at a time on this machine), each top-1 with its 95%
interval (Wilson, over the test videos), then their mean, standard deviation and range.

    python benchmarks/bench_base_seeds.py [--job jobs/demo.yaml] [--seeds 0,1,2,3] [--work DIR] [--parallel 2]

A seed already trained under ``--work`` is reused. Writes DIR/bench_base_seeds.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pas_models.intervals import percent_interval  # noqa: E402


def train(definition: dict[str, Any], seed: int, work: Path) -> dict[str, Any]:
    out = work / f"seed-{seed}"
    if not (out / "result.json").is_file():
        path = work / f"seed-{seed}.yaml"
        path.write_text(yaml.safe_dump({**definition, "name": f"{definition['name']}-seed{seed}", "seed": seed}))
        proc = subprocess.run([sys.executable, "-m", "pas_orchestrator", "train", "--job", str(path), "--base",
                               "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode != 0:
            raise SystemExit(f"seed {seed}: {proc.stderr[-2000:]}")
    r = json.loads((out / "result.json").read_text())
    lo, hi = percent_interval(r["top1"], r["eval_videos"])
    return {"seed": seed, "top1": r["top1"], "interval": [lo, hi], "videos": r["eval_videos"],
            "train_seconds": r["train_seconds"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--job", default="jobs/demo.yaml")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "base_seeds")
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args()
    definition = yaml.safe_load((ROOT / args.job).read_text())
    work = args.work.resolve() / Path(args.job).stem
    work.mkdir(parents=True, exist_ok=True)
    if definition.get("synthetic") is not None:  # generated where the definition says, relative to the repository
        definition["synthetic"] = {**definition["synthetic"], "root": str(ROOT / definition["synthetic"]["root"])}
    seeds = [int(s) for s in args.seeds.split(",")]
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda s: train(definition, s, work), seeds))
    tops = [r["top1"] for r in rows]
    summary = {"job": args.job, "seeds": rows, "mean": statistics.fmean(tops),
               "sd": statistics.stdev(tops) if len(tops) > 1 else None, "min": min(tops), "max": max(tops)}
    print(f"\n### B of {args.job} over seeds {args.seeds}\n")
    print("| seed | top-1 % | 95% interval | test videos | training s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['top1']:.2f} | {r['interval'][0]:.1f}-{r['interval'][1]:.1f} | {r['videos']} | "
              f"{r['train_seconds']:.0f} |")
    sd = "-" if summary["sd"] is None else f"{summary['sd']:.2f}"
    print(f"\nmean {summary['mean']:.2f}, sd {sd}, range {summary['min']:.2f}-{summary['max']:.2f}")
    (work / "bench_base_seeds.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
