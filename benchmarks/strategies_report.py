"""The tables and the trade-off figure of ``bench_strategies.py`` (markdown on stdout, a PNG), from its summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _difference(d: dict[str, Any]) -> str:
    return f"{d['difference']:+.2f} [{d['interval'][0]:+.2f}, {d['interval'][1]:+.2f}]"


def print_iterations(summary: dict[str, Any], key: str = "iterations", reference: str = "full") -> None:
    """Per strategy and iteration: the winners over seeds and their difference from ``reference``'s."""
    print("| strategy | iteration | winner top-1 % mean +- sd | each seed: path, top-1 [95%], GFLOPs | "
          f"minus {reference}, pooled over videos x seeds [95%] (p) | minus {reference}, mean over seeds [95% t] | "
          f"P(better than {reference}) |")
    print("|---|---|---|---|---|---|---|")
    for v, e in summary.items():
        for row in e.get(key, []):
            each = "; ".join(f"{r['path']} {r['top1']:.1f} [{r['interval'][0]:.1f}-{r['interval'][1]:.1f}] "
                             f"{r['gflops']:.3g}" for r in row["runs"])
            same = v == reference
            diff = "-" if same else f"{_difference(row['pooled'])} (p {row['pooled']['p']:.2g})"
            seeds = "-" if same else _difference(row["over_seeds"])
            better = "-" if same else f"{row['p_better']:.2f}"
            print(f"| {v} | {row['iteration']} | {row['mean']:.2f} +- {row['sd']:.2f} | {each} | {diff} | {seeds} | "
                  f"{better} |")


def print_compute(summary: dict[str, Any]) -> None:
    print("\n| strategy | compute of iterations >= 1, CPU-h (each seed) | share of full | wall, min (each seed) | "
          "last iteration against full |")
    print("|---|---|---|---|---|")
    for v, e in summary.items():
        each = ", ".join(f"{c:.3f}" for c in e["compute"])
        wall = ", ".join(f"{w / 60:.1f}" for w in e["wall_s"])
        print(f"| {v} | {e['compute_mean']:.3f} ({each}) | {e['share_of_full']:.0%} | {wall} | "
              f"{e.get('verdict', '-')} |")
    costs = [(v, e["hypothesis_cost"]) for v, e in summary.items() if e.get("hypothesis_cost")]
    if costs:
        print("\n| strategy | same hypotheses | its compute / full's, median [range] | optimizer-step seconds / "
              "full's, median [range] | the cache's shards, CPU-h (each seed) |")
        print("|---|---|---|---|---|")
        for v, c in costs:
            print(f"| {v} | {c['pairs']} | {c['compute_ratio']:.2f} [{c['compute_range'][0]:.2f}-"
                  f"{c['compute_range'][1]:.2f}] | {c['steps_ratio']:.2f} [{c['steps_range'][0]:.2f}-"
                  f"{c['steps_range'][1]:.2f}] | {', '.join(f'{x:.3f}' for x in c['shards_cpu_h'])} |")


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole}" if whole else "-"


def print_rungs(summary: dict[str, Any]) -> None:
    studies = [(v, s) for v, e in summary.items() for s in e.get("rungs", [])]
    if not studies:
        return
    print("\n| strategy | rung | after | groups (seed x iteration), hypotheses each | Kendall tau, rung vs the "
          "end, mean [95% bootstrap] | the rung's best is the end's best | fine-tuned only: the same | "
          "from scratch: readings at chance |")
    print("|---|---|---|---|---|---|---|---|")
    for v, s in studies:
        print(f"| {v} | {s['rung']} | {s['fraction']} of the steps | {s['groups']}, {s['hypotheses']:.1f} | "
              f"{s['tau_mean']:+.2f} [{s['tau_interval'][0]:+.2f}, {s['tau_interval'][1]:+.2f}] | "
              f"{s['best_same']:.0%} | {_share(*s['finetuned_best_same'])} | {_share(*s['scratch_at_chance'])} |")


def print_tables(title: str, summary: dict[str, Any], seeds: list[int]) -> None:
    print(f"\n### {title}: seeds {', '.join(map(str, seeds))}\n")
    print_iterations(summary)
    print_compute(summary)
    print_rungs(summary)
    if any(e.get("against_gradient") for e in summary.values()):
        print("\nEach ablation against the gradient strategy as it ships (the same supernets and seeds):\n")
        print_iterations(summary, "against_gradient", "gradient")


def plot_tradeoff(summary: dict[str, Any], margin: float, title: str, path: Path) -> None:
    """Compute share of the full search's (x: the mean over seeds, the bar each seed's range) against the last
    iteration's difference from the full search's winner (y: the mean over seeds with its t interval, thin; the
    pooled paired interval over videos x seeds, thick; each seed's difference a grey dot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    full = summary["full"]["compute"]
    for v, e in summary.items():
        if v == "full" or not e["iterations"]:
            continue
        last = e["iterations"][-1]
        shares = [100 * c / f for c, f in zip(e["compute"], full, strict=True)]
        x, y = 100 * e["share_of_full"], last["over_seeds"]["difference"]
        lo, hi = (max(b, -60.0) if i == 0 else min(b, 20.0) for i, b in enumerate(last["over_seeds"]["interval"]))
        plo, phi = last["pooled"]["interval"]
        xerr = [[max(0.0, x - min(shares))], [max(0.0, max(shares) - x)]]  # one seed: no spread, never negative
        bars = ax.errorbar([x], [y], xerr=xerr, yerr=[[y - lo], [hi - y]], fmt="o", capsize=4, lw=0.8)
        ax.plot([x, x], [plo, phi], lw=4, alpha=0.5, color=bars[0].get_color())
        ax.scatter([x] * len(last["runs"]), [r["difference"] for r in last["runs"]], s=10, color="grey", zorder=3)
        ax.annotate(v, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.axhline(-margin, color="red", lw=0.8, ls="--", label=f"-{margin:g} points (the margin)")
    ax.axvline(25, color="green", lw=0.8, ls=":", label="25% of the full search's compute")
    ax.set_xlabel("compute of iterations >= 1, % of the full search's (mean; bar: the seeds' range)")
    ax.set_ylabel("final top-1 minus the full search's, points")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
