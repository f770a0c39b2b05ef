"""``pas bench-model``: measured latency next to GFLOPs for each step of an operator sequence.

For the base network and after each operator: GFLOPs per view (fvcore, as ``pas flops``) and the
median latency per view on this CPU (batch 1 and 8 by default, a fixed thread count) and on the GPU
when one is present (CUDA events), every step timed interleaved with the others as a search's
measurement job times them (``--rounds`` rounds, each visiting every network in turn): the median
over every timed pass and its spread, (highest - lowest round median) / median. Each step prints its
FLOPs reduction, its measured speedup, both relative to the base network, and their ratio (speedup /
FLOPs reduction: 1 where time follows FLOPs, below 1 where a network saves less time than FLOPs):
FLOPs are not speed. A speedup whose timings spread more than 20% reads "not trusted" (a busy machine).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

import torch
from tqdm import tqdm

from pas_models.flops import CONVENTION, count_cost
from pas_models.latency import default_threads
from pas_models.measure import SPREAD_LIMIT, Timing, time_networks
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
    p.add_argument("--passes", type=int, default=10,
                   help="timed passes per network, batch size and round, at least (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--no-gpu", action="store_true", help="CPU only, even when a GPU is present")
    p.add_argument("--classes", type=int, default=None, help="classifier outputs (default: the preset's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _measure(args: argparse.Namespace, chain: list[tuple[int, str | None, Any]],
             devices: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows (GFLOPs and Timings per device and batch) and each device's name."""
    steps = [{"step": step, "op": op or "base", "label": spec.label, "gflops": count_cost(spec).gflops,
              "latency": {}} for step, op, spec in chain]
    names = []
    with tqdm(total=len(devices) * args.rounds * len(chain) * len(args.batch), desc="measuring", unit="timing",
              disable=None, leave=False) as bar:
        for dev in devices:
            name, timings = time_networks([(str(step), spec) for step, _, spec in chain], args.batch, args.passes,
                                          args.rounds, args.warmup, device=dev, threads=args.threads,
                                          progress=lambda *_: bar.update())
            names.append(name)
            for t in timings:
                steps[int(t.network)]["latency"][f"{dev}_b{t.batch}"] = t
    return _relative(steps), names


def _relative(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each step's FLOPs reduction, speedup and their ratio against the base (steps[0]), and whether its
    speedup can be trusted: neither its timing nor the base's spread more than SPREAD_LIMIT."""
    base = steps[0]
    for row in steps:
        row["flops_reduction"] = base["gflops"] / row["gflops"]
        row["speedup"] = {k: base["latency"][k].ms_per_view / v.ms_per_view for k, v in row["latency"].items()}
        row["speedup_per_flops"] = {k: v / row["flops_reduction"] for k, v in row["speedup"].items()}
        row["trusted"] = {k: not (v.flagged or base["latency"][k].flagged) for k, v in row["latency"].items()}
    return steps


def _table(args: argparse.Namespace, steps: list[dict[str, Any]], names: list[str]) -> str:
    keys = list(steps[0]["latency"])
    head = ["step", "op", "GFLOPs/view", "FLOPs /"]
    for k in keys:
        dev, b = k.rsplit("_b", 1)
        head += [f"{dev} b{b} ms/view", "spread", "speedup", "/ FLOPs /"]
    rows = []
    for r in steps:
        cells = [r["step"], r["op"], f"{r['gflops']:.4g}", f"{r['flops_reduction']:.2f}x"]
        for k in keys:
            t: Timing = r["latency"][k]
            ok = r["trusted"][k]
            cells += [f"{t.ms_per_view:.3g}", f"{100 * t.spread:.0f}%",
                      f"{r['speedup'][k]:.2f}x" if ok else "not trusted",
                      f"{r['speedup_per_flops'][k]:.2f}" if ok else "-"]
        rows.append(cells)
    return (format_table(head, rows) +
            f"\n\nMedian per view over {args.rounds} interleaved rounds of at least {args.passes} passes each "
            f"after {args.warmup} warm-up, eval mode ({'; '.join(names)}); spread: (highest - lowest round "
            f"median) / median, above {100 * SPREAD_LIMIT:.0f}% not trusted. FLOPs / and speedup: relative to the "
            f"base network; / FLOPs /: speedup / FLOPs reduction.\n{CONVENTION}.")


def run(args: argparse.Namespace) -> int:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_gpu else [])
    chain, failure = op_chain(args)
    steps, names = _measure(args, chain, devices)
    if args.json:
        for row in steps:
            row["latency"] = {k: {**asdict(t), "device": names[devices.index(k.rsplit("_b", 1)[0])]}
                              for k, t in row["latency"].items()}
        print(json.dumps({"convention": CONVENTION, "backbone": args.backbone, "threads": args.threads,
                          "rounds": args.rounds, "steps": steps, "not_applicable": failure}, indent=2))
    else:
        print(_table(args, steps, names))
    if failure:
        print(f"pas {NAME}: step {failure['step']}: operator {failure['op']!r} is not applicable: "
              f"{failure['reason']}", file=sys.stderr)
        return 1
    return 0
