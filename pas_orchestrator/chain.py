"""The operator-chain arguments of `pas flops`, `pas bench-model` and `pas train` (``--backbone --ops
--gamma --k-stages --k-ranks --weights``) and the chain of specs they name. Parsing is torch-free;
``op_chain`` imports the models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pas_models.errors import NotApplicable, PasError
from pas_models.presets import PRESETS, preset
from pas_models.reductions import OPERATORS, apply_op, check_gamma, parse_ops, reads_weights
from pas_models.tucker_options import RANK_RULES, TuckerOptions

if TYPE_CHECKING:
    from pas_models.spec import ArchSpec


def ops_arg(text: str) -> list[str]:
    try:
        return parse_ops(text)
    except PasError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def gamma_arg(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected OP=GAMMA (e.g. c=1.4), got {text!r}")
    try:
        return key, check_gamma(key.strip(), float(value))
    except (PasError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_chain_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments ``op_chain`` reads (shared with ``pas bench-model``)."""
    p.add_argument("--backbone", required=True, choices=sorted(PRESETS), metavar="NAME",
                   help=f"base network: {', '.join(sorted(PRESETS))}")
    p.add_argument("--ops", type=ops_arg, default=[], metavar="OPS",
                   help=f"comma-separated operators applied in order, from {', '.join(OPERATORS)} (e.g. c,f,t,t,t)")
    p.add_argument("--gamma", type=gamma_arg, action="append", default=[], metavar="OP=GAMMA",
                   help="override an operator's factor (repeatable); defaults: "
                        + ", ".join(f"{k}={op.default_gamma:g}" for k, op in OPERATORS.items()))
    p.add_argument("--k-stages", type=stages_arg, default=None, metavar="N,N",
                   help="operator k: residual stages (from 1) whose convolutions it decomposes (default: all)")
    p.add_argument("--k-ranks", choices=RANK_RULES, default="flops",
                   help="operator k's rank rule: flops (GFLOPs / gamma, default) or vbmf (needs --weights)")
    p.add_argument("--weights", type=Path, metavar="MODEL.pt",
                   help="trained weights of the base network (model.pt or a state dict): k with --k-ranks vbmf "
                        "reads them; they follow s, t, f and k steps (decomposed), not c or l")


def int_list(text: str, what: str, example: str) -> tuple[int, ...]:
    """"3,4" -> (3, 4): positive integers, comma-separated (argparse type)."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give {what} like {example}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: {what} are integers >= 1")
    return values


def stages_arg(text: str) -> tuple[int, ...]:
    return int_list(text, "stage numbers (from 1)", "3,4")


def op_chain(args: argparse.Namespace) -> tuple[list[tuple[int, str | None, ArchSpec]], dict[str, Any] | None]:
    """(step, operator or None for B, spec) for B and each of ``args.ops`` (gammas, k's options and
    the base weights from the arguments), and the not-applicable step that ended the chain early."""
    from pas_models.tucker import decomposed_state

    gammas = {**{k: op.default_gamma for k, op in OPERATORS.items()}, **dict(args.gamma)}
    tucker = TuckerOptions(args.k_stages, args.k_ranks)
    spec = preset(args.backbone, args.classes)
    weights = _base_weights(args, spec)
    chain: list[tuple[int, str | None, ArchSpec]] = [(0, None, spec)]
    for step, op in enumerate(args.ops, start=1):
        if reads_weights(op, tucker) and weights is None:
            raise PasError(f"step {step} (k with --k-ranks vbmf) reads trained weights: "
                           + ("give the base network's with --weights MODEL.pt" if args.weights is None else
                              f"{args.weights} cannot follow the {', '.join(args.ops[:step - 1])} step(s) before "
                              "it (c and l change the weights' shapes)"))
        try:
            child = apply_op(spec, op, gammas, tucker, weights)
        except NotApplicable as exc:
            return chain, {"step": step, "op": op, "reason": exc.reason}
        if weights is not None and not any(reads_weights(later, tucker) for later in args.ops[step:]):
            weights = None  # no later step reads them
        elif weights is not None:
            weights = None if op in ("c", "l") else decomposed_state(weights, spec, child) if op == "k" else weights
        spec = child
        chain.append((step, op, spec))
    return chain, None


def _base_weights(args: argparse.Namespace, spec: ArchSpec) -> dict[str, Any] | None:
    if args.weights is None:
        return None
    from pas_models.nets import build_model
    from pas_models.train.teacher import load_weights

    weights = load_weights(args.weights)
    try:
        build_model(spec).load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise PasError(f"--weights: {args.weights} are not weights of {args.backbone} with "
                       f"{spec.num_classes} classes (use --classes): {first}") from exc
    return weights
