"""Operator k right after decomposition, before any training: how far the child's logits are from the
parent's at the ranks of each rank rule (gamma for the flops rule; vbmf), and how long the decomposition
takes.

    python benchmarks/bench_tucker.py [--checkpoint runs/NAME/.../model.pt] [--data DIR] [--rules 2,1.25,vbmf]

Without a checkpoint: R(2+1)D-18 with random weights (no low-rank structure to find: the worst case)
on random clips. With a pas model.pt (e.g. the demo's trained B, `pas train --job jobs/demo.yaml
--base`): that network, on the validation clips of its synthetic dataset when --data is given.
Relative error = ||logits_child - logits_parent|| / ||logits_parent|| over the batch; with --data, top-1
against the labels too (parent in the header)."""

from __future__ import annotations

import argparse
import time

import torch

from pas_models.nets import build_model
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_models.spec import ArchSpec
from pas_orchestrator.table import format_table


def clips(spec: ArchSpec, data: str | None, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(clips, labels or None): n random clips, or up to n validation clips spread over the classes."""
    if data is None:
        return torch.randn(n, *spec.input_shape(), generator=torch.Generator().manual_seed(0)), None
    from pas_models.data.dataset import ClipDataset
    from pas_models.data.formats import load_dataset_config, load_video_list

    cfg = load_dataset_config(f"{data}/dataset.yaml")
    ds = ClipDataset(load_video_list(cfg, "val").samples, spec, train=False, hflip=False)
    items = [ds[i] for i in torch.linspace(0, len(ds) - 1, min(n, len(ds))).round().long().tolist()]
    return torch.stack([it["student"] for it in items]), torch.tensor([it["label"] for it in items])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a pas model.pt (its spec and weights)")
    ap.add_argument("--data", help="a synthetic dataset folder (dataset.yaml): its validation clips")
    ap.add_argument("--rules", default="2,1.5,1.25,vbmf",
                    help="k's GFLOPs divisors (flops rank rule) and/or vbmf (EVBMF ranks of the weights)")
    ap.add_argument("--clips", type=int, default=8)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.checkpoint:
        ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        parent = ArchSpec.from_json(ckpt["spec"])
        model = build_model(parent)
        model.load_state_dict(ckpt["model"])
    else:
        parent = preset("r2plus1d_18")
        model = build_model(parent)
    model.eval()
    x, labels = clips(parent, args.data, args.clips)
    with torch.no_grad():
        ref = model(x)
    rows = []
    from pas_models.flops import count_cost
    from pas_models.inherit import init_from_parent
    from pas_models.tucker import TuckerOptions

    def top1(logits: torch.Tensor) -> str:
        return "-" if labels is None else f"{100 * (logits.argmax(1) == labels).float().mean().item():.1f}"

    for rule in args.rules.split(","):
        t0 = time.perf_counter()
        if rule == "vbmf":
            child = apply_op(parent, "k", None, TuckerOptions(ranks="vbmf"), model.state_dict())
        else:
            child = apply_op(parent, "k", {"k": float(rule)})
        ranks_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        net = build_model(child)
        init_from_parent(net, model.state_dict(), parent, child)
        took = time.perf_counter() - t0
        with torch.no_grad():
            out = net.eval()(x)
        err = ((out - ref).norm() / ref.norm()).item()
        agree = (out.argmax(1) == ref.argmax(1)).float().mean().item()
        first, last = child.tucker[0], child.tucker[-1]
        rows.append([rule if rule == "vbmf" else f"gamma {float(rule):g}",
                     f"{count_cost(child).gflops / count_cost(parent).gflops:.3f}",
                     f"{first.conv} ({first.rank_in}, {first.rank_out})",
                     f"{last.conv} ({last.rank_in}, {last.rank_out})", f"{err:.3f}", f"{100 * agree:.0f}%",
                     top1(out), f"{ranks_s:.1f}", f"{took:.1f}"])
    print(f"{parent.label}: {'weights of ' + args.checkpoint if args.checkpoint else 'random weights'}, "
          f"{len(x)} {'validation' if args.data else 'random'} clips" + (f", parent top-1 {top1(ref)}%" if args.data
                                                                          else ""))
    print(format_table(["rank rule", "GFLOPs ratio", "first conv (ranks)", "last conv (ranks)", "logits rel. error",
                        "same top-1", "top-1 %", "ranks s", "decompose s"], rows))


if __name__ == "__main__":
    main()
