"""``pas flops``: GFLOPs per view, conv-only GFLOPs and parameters of each step of an operator sequence."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pas_models.flops import CONVENTION
from pas_models.reductions import OPERATORS
from pas_orchestrator.chain import add_chain_arguments, op_chain
from pas_orchestrator.table import format_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flops", help="GFLOPs per view of a backbone after a sequence of reduction operators",
                       description=__doc__ + f"\n\nConvention: {CONVENTION}.")
    add_chain_arguments(p)
    p.add_argument("--classes", type=int, default=None, help="classifier outputs (default: the preset's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)








def _view_text(shapes: dict[str, tuple[int, int, int, int]]) -> str:
    parts = [f"{t}x{h}x{w}" if len(shapes) == 1 else f"{name} {t}x{h}x{w}" for name, (_, t, h, w) in shapes.items()]
    return ", ".join(parts)






def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pas_models.flops import count_cost

    gammas = {**{k: op.default_gamma for k, op in OPERATORS.items()}, **dict(args.gamma)}
    rows: list[dict[str, Any]] = []
    chain, failure = op_chain(args)
    for step, op, spec in tqdm(chain, desc="counting FLOPs", unit="step", disable=None, leave=False):
        cost = count_cost(spec)
        rows.append({
            "step": step, "op": op or "base", "gamma": gammas[op] if op else None, "label": spec.label,
            "view": {name: list(shape) for name, shape in spec.pathway_shapes().items()},
            "gflops": cost.gflops, "conv_gflops": cost.conv_gflops, "params": cost.params,
            "ratio": cost.gflops / rows[-1]["gflops"] if rows else None, "spec": spec.to_dict(),
        })
    if args.json:
        print(json.dumps({"convention": CONVENTION, "backbone": args.backbone, "steps": rows,
                          "not_applicable": failure}, indent=2))
    else:
        print(format_table(
            ["step", "op", "view (T x H x W)", "GFLOPs/view", "conv GFLOPs", "params (M)", "x prev"],
            [[r["step"], r["op"], _view_text({k: tuple(v) for k, v in r["view"].items()}), f"{r['gflops']:.4g}",
              f"{r['conv_gflops']:.4g}", f"{r['params'] / 1e6:.3f}",
              "-" if r["ratio"] is None else f"{r['ratio']:.3f}"] for r in rows]))
        print(f"\n{CONVENTION}.")
    if failure:
        print(f"pas flops: step {failure['step']}: operator {failure['op']!r} is not applicable: "
              f"{failure['reason']}", file=sys.stderr)
        return 1
    return 0
