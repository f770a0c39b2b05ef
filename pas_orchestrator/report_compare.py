"""`pas report --compare`: searches of the same B side by side (a table and a figure): each one's chosen networks
with their intervals, the other search's network nearest in cost, and the two compared on the same test videos."""

from __future__ import annotations

from pathlib import Path

from pas_orchestrator.comparisons import against
from pas_orchestrator.labels import Point
from pas_orchestrator.ledger import HypState, Snapshot
from pas_orchestrator.report import (
    architectures,
    chosen_path,
    compute_text,
    error_bars,
    finish_figure,
    interval_text,
    network_name,
    strategy_of,
    top5_text,
)


def compare_markdown(snaps: list[Snapshot]) -> str:
    """The chosen networks of several searches of the same base (a PAS search and a gradient search) in one
    table, with the compute each search used; for each network, the other searches' network nearest in cost."""
    rows = ["| search | strategy | network | architecture | GFLOPs/view | top-1 % | top-1 95% CI | top-5 % "
            "| nearest in cost elsewhere | this one minus it, same videos |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    nets = {s.search.name: [h for h in chosen_path(s) if h.iteration] for s in snaps}
    for s in snaps:
        arch = architectures(s)
        for h in nets[s.search.name]:
            others = [(o, x) for o in snaps if o is not s for x in nets[o.search.name] if x.gflops and h.gflops]
            near = min(others, key=lambda ox: abs(ox[1].gflops / h.gflops - 1), default=None)  # type: ignore[operator]
            near_text = (f"{network_name(near[0], near[1])}: {near[1].gflops:.4g} GFLOPs, {near[1].top1:.2f}%"
                         if near is not None else "-")
            c = against(near[1], h) if near is not None else None
            diff = "-" if c is None else (f"{c.difference:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"
                                          + ("" if c.distinguishable else " not distinguishable"))
            what = f"{h.path} ({arch[h.path]})" if h.path in arch else h.path
            rows.append(f"| {s.search.name} | {strategy_of(s)} | {network_name(s, h)} | {what} | {h.gflops:.4g} | "
                        f"{h.top1:.2f} | {interval_text(h)} | {top5_text(h)} | {near_text} | {diff} |")
    spent = [f"- {s.search.name} ({strategy_of(s)}): {compute_text(s)}, B {s.iteration(0)[0].top1:.2f}% top-1 at "
             f"{s.iteration(0)[0].gflops:.4g} GFLOPs" for s in snaps if s.iteration(0) and s.iteration(0)[0].top1]
    return "\n".join([f"# {' vs '.join(s.search.name for s in snaps)}", "", *rows, "",
                      "Compute each search used (every job: B, supernets, candidates or hypotheses, rungs, latency):",
                      "", *spent]) + "\n"


def plot_compare(snaps: list[Snapshot], path: Path) -> None:
    """Accuracy vs GFLOPs of several searches: each one's chosen networks (a line) and every other network it
    trained to the end (faint), with the compute it used in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    labels: list[Point] = []
    errs: list[tuple[float, float, float]] = []
    for k, s in enumerate(snaps):
        color = plt.get_cmap("tab10")(k)
        done = [h for h in s.hypotheses if h.kind == "pas" and h.state == HypState.DONE and h.top1 is not None
                and h.iteration]
        ax.scatter([h.gflops for h in done], [h.top1 for h in done], color=color, alpha=0.25, s=18, zorder=2)
        best = sorted((h for h in chosen_path(s) if h.iteration), key=lambda h: h.gflops or 0.0)
        ax.plot([h.gflops for h in best], [h.top1 for h in best], "-o", color=color, ms=5, zorder=3,
                label=f"{s.search.name} ({strategy_of(s)}; {compute_text(s)})")
        errs += error_bars(ax, best, color, 0.4)  # the chosen networks' intervals
        labels += [(h.gflops, h.top1, "-".join(network_name(s, h).rsplit("-", 2)[-2:]), color)
                   for h in best if h.gflops is not None and h.top1 is not None]
    bases = [s.iteration(0)[0] for s in snaps if s.iteration(0) and s.iteration(0)[0].top1 is not None]
    if bases:
        ax.scatter([b.gflops for b in bases], [b.top1 for b in bases], marker="*", s=80, color="black", label="B",
                   zorder=4)
    ax.set_xscale("log")
    finish_figure(fig, ax, path, "GFLOPs per view (log scale)", "top-1 accuracy (%; bars: 95% interval)",
                  " vs ".join(s.search.name for s in snaps), labels, 6, errs)
