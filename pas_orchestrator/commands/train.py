"""``pas train``: train one hypothesis (or the base network) of a search definition here, now.

The student is the job's backbone with ``--ops`` applied in order; it is distilled
from the base network (the job's ``base.checkpoint``, else the model of an earlier
``pas train --base`` in the default folder) and fine-tuned from the parent
``ops[:-1]`` when its weight shapes allow and a trained parent exists. Reruns
resume from ``last.pt``; a finished folder returns its result at once.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pas_models.errors import PasError
from pas_models.layout import HypFiles, RunLayout
from pas_models.spec import ArchSpec
from pas_orchestrator.chain import ops_arg
from pas_orchestrator.config.search import SearchDef, load_search
from pas_orchestrator.config.synthetic import ensure_data
from pas_orchestrator.table import format_table

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one hypothesis (or the base network) here", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--job", required=True, type=Path, help="search definition (jobs/NAME.yaml)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--ops", type=ops_arg, metavar="OPS", help="operators applied to the base network, e.g. c,f")
    what.add_argument("--base", action="store_true", help="train the base network (cross-entropy, no teacher)")
    p.add_argument("--scratch", action="store_true",
                   help="with --ops: the 'without PAS' baseline (random init, cross-entropy only, base recipe)")
    p.add_argument("--out", type=Path, help="output folder (default runs/NAME/manual/OPS)")
    p.add_argument("--nproc", type=int, default=1, help="local processes (DDP: gloo on CPU, one GPU each)")
    p.add_argument("--teacher-checkpoint", type=Path, help="base network weights (default: see above)")
    p.add_argument("--parent-checkpoint", type=Path, help="weights of the network OPS[:-1] (default: see above)")
    p.add_argument("--epochs", type=int, help="override recipe.epochs")
    p.add_argument("--json", action="store_true", help="print result.json instead of a table")
    p.set_defaults(func=run)


def manual_dir(search: SearchDef, ops: list[str] | None, scratch: bool = False) -> Path:
    return RunLayout.of(Path("runs"), search.name).manual_dir(ops, scratch)


def _teacher_checkpoint(search: SearchDef, given: Path | None) -> str:
    if given is not None:
        path = given
    elif search.base.checkpoint is not None:
        path = Path(search.base.checkpoint)
    else:
        path = HypFiles(manual_dir(search, None)).model
        if not path.is_file():
            raise PasError(f"no base network: {path} does not exist; train it first with "
                           f"`pas train --job {search.source} --base` or pass --teacher-checkpoint")
    if not path.is_file():
        raise PasError(f"teacher checkpoint {path} not found")
    return str(path)


def _parent_checkpoint(search: SearchDef, ops: list[str], given: Path | None, teacher: str) -> str | None:
    if given is not None:
        if not given.is_file():
            raise PasError(f"parent checkpoint {given} not found")
        return str(given)
    if len(ops) == 1:
        return teacher
    path = HypFiles(manual_dir(search, ops[:-1])).model
    if path.is_file():
        return str(path)
    log.warning("no trained parent %s: the student starts from random weights (train the parent first with "
                "`pas train --ops %s` for adaptive fine-tuning)", path, ",".join(ops[:-1]))
    return None


def _trained_weights(search: SearchDef, args: argparse.Namespace) -> Callable[[int, ArchSpec], dict]:
    """For k with ``tucker.ranks: vbmf``: the trained network step i reduces (B, or the earlier
    ``pas train --ops OPS[:i]``; the last step's may be --parent-checkpoint)."""
    def weights_of(i: int, spec: ArchSpec) -> dict:
        if i == 0:
            path = Path(_teacher_checkpoint(search, args.teacher_checkpoint))
        elif i == len(args.ops) - 1 and args.parent_checkpoint is not None:
            path = args.parent_checkpoint
        else:
            path = HypFiles(manual_dir(search, args.ops[:i])).model
        if not path.is_file():
            raise PasError(f"operator k (tucker.ranks: vbmf) reads the trained weights of {spec.label}: {path} does "
                           f"not exist; train it first with `pas train --job {search.source} --ops "
                           f"{','.join(args.ops[:i])}`")
        from pas_models.train.teacher import load_weights

        return load_weights(path)
    return weights_of


def run(args: argparse.Namespace) -> int:
    if args.nproc < 1:
        raise PasError(f"--nproc must be >= 1, got {args.nproc}")
    if args.scratch and not args.ops:
        raise PasError("--scratch needs --ops (the base network is always trained from scratch)")
    if args.epochs is not None and args.epochs < 1:
        raise PasError(f"--epochs must be >= 1, got {args.epochs}")
    search = load_search(args.job)  # torch-free: usage errors and a bad definition answer at once
    from pas_models.train.launch import run_local
    from pas_orchestrator.tasks import base_task, baseline_task, hypothesis_task, spec_chain

    if args.epochs is not None:
        search = replace(search, recipe=replace(search.recipe, epochs=args.epochs),
                         base=replace(search.base, recipe=replace(search.base_recipe, epochs=args.epochs)))
    data = ensure_data(search)
    out = str(args.out or manual_dir(search, args.ops, args.scratch))
    if args.base:
        task = base_task(search, data, out)
    elif args.scratch:
        chain = spec_chain(search, args.ops, _trained_weights(search, args))
        task = baseline_task(search, data, chain[-1], out, hypothesis="-".join(args.ops) + "-scratch")
    else:
        teacher = _teacher_checkpoint(search, args.teacher_checkpoint)
        parent = _parent_checkpoint(search, args.ops, args.parent_checkpoint, teacher)
        chain = spec_chain(search, args.ops, _trained_weights(search, args))
        task = hypothesis_task(search, data, chain[-1], chain[-2], out, teacher, parent,
                               hypothesis="-".join(args.ops))
    result = run_local(task, args.nproc)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(
            ["hypothesis", "top-1 %", "top-5 %", "GFLOPs/view", "views", "epochs", "train s", "fine-tuned", "output"],
            [[result.hypothesis, f"{result.top1:.1f}", f"{result.top5:.1f}", f"{result.gflops_per_view:.4g}",
              result.views, result.epochs, f"{result.train_seconds:.0f}",
              "yes" if result.finetuned_from_parent else "no", out]]))
    return 0
