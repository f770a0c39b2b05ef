"""Is a probe's evidence really gone from the reduced view, and there in the base view? Measured on clips cut by
pas's own decoding and transforms (``ClipDataset``: the training view with B as teacher, and the evaluation view).

For each probe (``pas data synth --probe OP``; default s, t, f, generated under --work) and each lane of each
clip, ``pas_models.data.probes.lane_statistic`` reads what the view shows of the lane's bit. Printed per view:
the statistic's mean for bit 0 and bit 1 and the AUC of telling the bits apart by it (0.5: no better than a
coin; 1: every bit-1 lane above every bit-0 lane) with its 95% interval (Hanley-McNeil).

    python benchmarks/probe_evidence.py [--work DIR] [--probes s,t,f] [--videos 48] [--backend decord|pyav]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pas_models.data import probes, synth  # noqa: E402
from pas_models.data.dataset import ClipDataset  # noqa: E402
from pas_models.data.formats import load_dataset_config, load_video_list  # noqa: E402
from pas_models.presets import preset  # noqa: E402
from pas_models.reductions import apply_op  # noqa: E402


def auc(zero: list[float], one: list[float]) -> tuple[float, float, float]:
    """P(a bit-1 lane's statistic exceeds a bit-0 lane's), ties half, with Hanley and McNeil's 95% interval."""
    x0, x1 = np.asarray(zero), np.asarray(one)
    a = float(((x1[:, None] > x0[None]) + 0.5 * (x1[:, None] == x0[None])).mean())
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    n0, n1 = len(x0), len(x1)
    se = math.sqrt(max(0.0, (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n0 * n1)))
    return a, max(0.0, a - 1.96 * se), min(1.0, a + 1.96 * se)


def views(op: str, root: Path, backend: str) -> list[tuple[str, list[float], list[float]]]:
    cfg = load_dataset_config(root / "dataset.yaml")
    samples = load_video_list(cfg, "train").samples + load_video_list(cfg, "val").samples
    base = preset("r2plus1d_tiny", cfg.num_classes)
    reduced = apply_op(base, op)
    out = []
    for name, student, teacher, train in (("base, training", base, None, True), ("base, evaluation", base, None, False),
                                          (f"{op}, training (B teaches)", reduced, base, True),
                                          (f"{op}, evaluation", reduced, None, False)):
        ds = ClipDataset(samples, student, teacher, train=train, clips=2, backend=backend, hflip=False)
        by = probes.read_lanes(op, (ds[i] for i in range(len(ds))), cfg.num_classes)
        out.append((name, by[0], by[1]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "probe_evidence")
    ap.add_argument("--probes", default="s,t,f")
    ap.add_argument("--videos", type=int, default=48, help="videos per class (half train, half validation)")
    ap.add_argument("--backend", default="decord", choices=("decord", "pyav"))
    args = ap.parse_args()
    print("| probe | view | statistic, bit 0 | statistic, bit 1 | AUC [95%] | lanes |")
    print("|---|---|---|---|---|---|")
    for op in args.probes.split(","):
        root = args.work.resolve() / f"probe-{op}"
        cfg = synth.SynthConfig(classes=4, videos_per_class=args.videos // 2, val_per_class=args.videos // 2,
                                probe=op)
        synth.generate(root, cfg)
        for name, zero, one in views(op, root, args.backend):
            if np.isnan(zero + one).all():
                print(f"| {op} | {name} | - | - | - (no two frames {probes.T_LAG} apart) | {len(zero) + len(one)} |")
                continue
            a, lo, hi = auc(zero, one)
            print(f"| {op} | {name} | {np.mean(zero):.3g} | {np.mean(one):.3g} | {a:.3f} [{lo:.3f}-{hi:.3f}] | "
                  f"{len(zero) + len(one)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
