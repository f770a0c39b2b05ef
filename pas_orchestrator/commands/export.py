"""``pas export``: the search's final network in runs/NAME/report/best/: ``model.pt`` (weights +
spec, loads with ``torch.load(weights_only=True)``), ``spec.json``, ``model.ts`` (TorchScript,
traced on one view: ``torch.jit.load`` needs no pas) and ``model.json`` (path, top-1/5, GFLOPs)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from pas_models.errors import PasError
from pas_models.layout import ExportFiles, HypFiles, RunLayout
from pas_orchestrator.report import chosen_path
from pas_orchestrator.runs import read_snapshot


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the best model of a search", description=__doc__)
    p.add_argument("--search", help="search name (default: the latest under --runs)")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--iteration", type=int, help="export this iteration's winner (default: the last one)")
    p.add_argument("--out", type=Path, help="output folder (default runs/NAME/report/best)")
    p.set_defaults(func=run)


def export(model_pt: Path, out: Path, info: dict) -> dict[str, Path]:
    import torch

    from pas_models.nets import build_model
    from pas_models.spec import ArchSpec
    from pas_models.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(model_pt)
    spec = ArchSpec.from_json(ckpt["spec"])
    model = build_model(spec)
    model.load_state_dict(ckpt["model"])
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    where = ExportFiles(out)
    files = {"model": where.model, "spec": where.spec, "torchscript": where.torchscript, "info": where.info}
    shutil.copyfile(model_pt, files["model"])
    files["spec"].write_text(spec.to_json(indent=2) + "\n")
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream but still loads anywhere
        traced = torch.jit.trace(model, torch.zeros(1, *spec.input_shape(train=False)))
        traced.save(str(files["torchscript"]))
    files["info"].write_text(json.dumps({**info, "input_shape": [1, *spec.input_shape(train=False)]}, indent=2)
                             + "\n")
    return files


def run(args: argparse.Namespace) -> int:
    path, snap = read_snapshot(args.runs, args.search)
    best = chosen_path(snap)
    if args.iteration is not None:
        best = [h for h in best if h.iteration == args.iteration]
    if not best:
        raise PasError(f"search {snap.search.name}: no trained network to export"
                       + (f" at iteration {args.iteration}" if args.iteration is not None else ""))
    h = best[-1]
    info = {"search": snap.search.name, "iteration": h.iteration, "path": h.path, "top1": h.top1, "top5": h.top5,
            "gflops_per_view": h.gflops, "params": h.params}
    files = export(HypFiles.of(h.out_dir).model, args.out or RunLayout(path.parent).export, info)
    print(f"exported iteration {h.iteration} ({h.path or 'B'}: top-1 {h.top1:.2f}%, {h.gflops:.4g} GFLOPs/view) "
          f"to {files['model'].parent}")
    return 0
