"""``pas bench-model``: measured latency next to GFLOPs for each step of an operator sequence.

For the base network and after each operator: GFLOPs per view (fvcore, as ``pas flops``) and the
median latency per view on this CPU (batch 1 and 8 by default, after warm-up, a fixed thread
count) and on the GPU when one is present (CUDA events). Each step prints its FLOPs reduction, its
measured speedup, both relative to the base network, and their ratio (speedup / FLOPs reduction: 1 where
time follows FLOPs, below 1 where a network saves less time than FLOPs): FLOPs are not speed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch
from tqdm import tqdm

from pas_models.flops import CONVENTION, count_cost
from pas_models.latency import default_threads, measure
from pas_orchestrator.chain import add_chain_arguments, int_list, op_chain
from pas_orchestrator.table import format_table

NAME = "bench-model"


def _batches(text: str) -> tuple[int, ...]:
    return int_list(text, "batch sizes", "1,8")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="measured latency beside GFLOPs, per step of an operator sequence",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_chain_arguments(p)
    p.add_argument("--batch", type=_batches, default=(1, 8), metavar="B,B", help="batch sizes (default 1,8)")
    p.add_argument("--threads", type=int, default=default_threads(),
                   help="CPU threads, fixed for every measurement (default: this process's cores, %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed passes first (default 3)")
    p.add_argument("--passes", type=int, default=10, help="timed passes; the median is reported (default 10)")
    p.add_argument("--no-gpu", action="store_true", help="CPU only, even when a GPU is present")
    p.add_argument("--classes", type=int, default=None, help="classifier outputs (default: the preset's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_gpu else [])
    steps: list[dict[str, Any]] = []
    chain, failure = op_chain(args)
    with tqdm(total=len(chain) * len(devices) * len(args.batch), desc="measuring", unit="run", disable=None,
              leave=False) as bar:
        for step, op, spec in chain:
            row: dict[str, Any] = {"step": step, "op": op or "base", "label": spec.label,
                                   "gflops": count_cost(spec).gflops, "latency": {}}
            for dev in devices:
                for b in args.batch:
                    lat = measure(spec, dev, b, warmup=args.warmup, passes=args.passes, threads=args.threads)
                    row["latency"][f"{dev}_b{b}"] = lat.to_dict()
                    bar.update()
            steps.append(row)
    base = steps[0]
    for row in steps:
        row["flops_reduction"] = base["gflops"] / row["gflops"]
        row["speedup"] = {k: base["latency"][k]["ms_per_view"] / v["ms_per_view"] for k, v in row["latency"].items()}
        row["speedup_per_flops"] = {k: v / row["flops_reduction"] for k, v in row["speedup"].items()}
    if args.json:
        print(json.dumps({"convention": CONVENTION, "backbone": args.backbone, "threads": args.threads,
                          "steps": steps, "not_applicable": failure}, indent=2))
    else:
        keys = list(base["latency"])
        head = ["step", "op", "GFLOPs/view", "FLOPs /"]
        for k in keys:
            dev, b = k.rsplit("_b", 1)
            head += [f"{dev} b{b} ms/view", "speedup", "/ FLOPs /"]
        rows = []
        for r in steps:
            cells = [r["step"], r["op"], f"{r['gflops']:.4g}", f"{r['flops_reduction']:.2f}x"]
            for k in keys:
                cells += [f"{r['latency'][k]['ms_per_view']:.3g}", f"{r['speedup'][k]:.2f}x",
                          f"{r['speedup_per_flops'][k]:.2f}"]
            rows.append(cells)
        print(format_table(head, rows))
        devs = "; ".join(sorted({v["device"] for v in base["latency"].values()}))
        print(f"\nMedian of {args.passes} passes after {args.warmup} warm-up, per view, eval mode ({devs}). "
              f"FLOPs / and speedup: relative to the base network; / FLOPs /: speedup / FLOPs reduction."
              f"\n{CONVENTION}.")
    if failure:
        print(f"pas {NAME}: step {failure['step']}: operator {failure['op']!r} is not applicable: "
              f"{failure['reason']}", file=sys.stderr)
        return 1
    return 0
