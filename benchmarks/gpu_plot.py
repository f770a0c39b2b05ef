"""The roofline figure of bench_gpu.py: each layer of B's and PAS-1's forward (R(2+1)D-18, SlowFast-4x16-R50,
X3D-M) at its arithmetic intensity under a GPU's roofs, and each network's whole step; where the run timed
steps on that GPU, the measured step beside its bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpu_steps import SPREAD_LIMIT

from pas_models.roofline import Roofline, step_bound, step_flops

COLOURS = {"r2plus1d_18": "tab:blue", "slowfast_4x16_r50": "tab:orange", "x3d_m": "tab:green"}


def plot_roofline(path: Path, device: str, peak: float, bandwidth: float, nets: dict[str, tuple[Roofline, Roofline]],
                  measured: dict[str, float]) -> None:
    """``nets``: backbone -> (PAS-1's roofline, B's); ``measured``: backbone -> measured MFU of its live KD step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 6))
    x = [0.05, peak / bandwidth, 1e4]
    ax.plot(x, [min(peak, i * bandwidth) / 1e12 for i in x], color="black", lw=1.5,
            label=f"roof: {peak / 1e12:.0f} TFLOP/s, {bandwidth / 1e12:.2f} TB/s")
    ax.plot([peak / bandwidth] * 2, [1e-3, peak / 1e12], color="black", ls=":", lw=0.8)
    for backbone, (rf, teacher) in nets.items():
        colour = COLOURS.get(backbone, "tab:grey")
        pts = [(x_.flops / rf.layer_bytes(x_), min(peak, x_.flops / rf.layer_bytes(x_) * bandwidth) / 1e12, x_.flops)
               for x_ in rf.layers if x_.flops > 0]
        total = sum(p[2] for p in pts)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=[4 + 400 * p[2] / total for p in pts],
                   color=colour, alpha=0.55, edgecolors="none", zorder=3)
        whole = step_flops(rf, teacher) / (3 * rf.bytes + teacher.bytes)
        bound = step_bound(rf, teacher, peak, bandwidth)
        ax.scatter([whole], [bound * peak / 1e12], marker="D", s=60, color=colour, edgecolors="black", zorder=4,
                   label=f"{backbone}, iteration 1's live KD step: bound {100 * bound:.0f}%")
        if backbone in measured:
            ax.scatter([whole], [measured[backbone] * peak / 1e12], marker="x", s=80, color=colour, zorder=4,
                       label=f"{backbone}: measured {100 * measured[backbone]:.1f}%")
    ax.set(xscale="log", yscale="log", xlim=(0.5, 3000), ylim=(0.5, peak / 1e12 * 1.6),
           xlabel="arithmetic intensity (FLOPs per byte, bf16, batch of 24)", ylabel="attainable TFLOP/s",
           title=f"Roofline, {device}\ndots: PAS-1's convolutions at their roofs (area: FLOPs)\n"
                 "diamonds: the whole step, every layer at its roof (batch norms, activations included)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def measured_mfu(out: dict[str, Any]) -> dict[str, float]:
    """The MFU of the fastest trusted live KD step per backbone of the run's ladder (none where MFU is unknown)."""
    got = {}
    for backbone, ladder in out.get("ladder", {}).items():
        trusted = [r for r in ladder["rows"] if r["spread"] <= SPREAD_LIMIT and r["mfu"] > 0]
        if trusted:
            got[backbone] = max(trusted, key=lambda r: r["clips_per_s"])["mfu"]
    return got
