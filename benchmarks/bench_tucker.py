"""Operator k right after decomposition, before any training: how far the child's logits are from the
parent's at the ranks of the rank rule, and how long the decomposition takes.

    python benchmarks/bench_tucker.py [--checkpoint runs/NAME/.../model.pt] [--data DIR]

Without a checkpoint: R(2+1)D-18 with random weights (no low-rank structure to find: the worst case)
on random clips. With a pas model.pt (e.g. the demo's trained B, `pas train --job jobs/demo.yaml
--base`): that network, on the validation clips of its synthetic dataset when --data is given.
Relative error = ||logits_child - logits_parent|| / ||logits_parent|| over the batch."""

from __future__ import annotations

import argparse
import time

import torch

from pas_models.nets import build_model
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_models.spec import ArchSpec
from pas_orchestrator.table import format_table


def clips(spec: ArchSpec, data: str | None, n: int) -> torch.Tensor:
    if data is None:
        return torch.randn(n, *spec.input_shape(), generator=torch.Generator().manual_seed(0))
    from pas_models.data.dataset import ClipDataset
    from pas_models.data.formats import load_dataset_config, load_video_list

    cfg = load_dataset_config(f"{data}/dataset.yaml")
    ds = ClipDataset(load_video_list(cfg, "val").samples, spec, train=False, hflip=False)
    return torch.stack([ds[i]["student"] for i in range(min(n, len(ds)))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a pas model.pt (its spec and weights)")
    ap.add_argument("--data", help="a synthetic dataset folder (dataset.yaml): its validation clips")
    ap.add_argument("--gammas", default="2,1.5,1.25", help="k's GFLOPs divisors to try")
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
    x = clips(parent, args.data, args.clips)
    with torch.no_grad():
        ref = model(x)
    rows = []
    from pas_models.flops import count_cost
    from pas_models.weights import init_from_parent

    for gamma in (float(g) for g in args.gammas.split(",")):
        child = apply_op(parent, "k", {"k": gamma})
        t0 = time.perf_counter()
        net = build_model(child)
        init_from_parent(net, model.state_dict(), parent, child)
        took = time.perf_counter() - t0
        with torch.no_grad():
            out = net.eval()(x)
        err = ((out - ref).norm() / ref.norm()).item()
        agree = (out.argmax(1) == ref.argmax(1)).float().mean().item()
        first = child.tucker[0]
        rows.append([f"{gamma:g}", f"{count_cost(child).gflops / count_cost(parent).gflops:.3f}",
                     f"{first.conv} ({first.rank_in}, {first.rank_out})", f"{err:.3f}", f"{100 * agree:.0f}%",
                     f"{took:.1f}"])
    print(f"{parent.label}: {'weights of ' + args.checkpoint if args.checkpoint else 'random weights'}, "
          f"{len(x)} {'validation' if args.data else 'random'} clips")
    print(format_table(["gamma", "GFLOPs ratio", "first conv (ranks)", "logits rel. error", "same top-1",
                        "decompose s"], rows))


if __name__ == "__main__":
    main()
