"""The report of a search: a markdown table like the paper's Table 1 and a plot like its Figure 3.

Pure apart from writing the files: everything comes from a ledger snapshot.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pas_models.measure import MeasureResult, Timing
from pas_orchestrator import replicas
from pas_orchestrator.comparisons import units, vs_winner
from pas_orchestrator.kinds import MEASUREMENT, SUPERNET
from pas_orchestrator.labels import Point
from pas_orchestrator.ledger import HypRec, HypState, Snapshot


def chosen_path(snap: Snapshot) -> list[HypRec]:
    """B, then each iteration's winner, in order."""
    base = snap.iteration(0)
    path = [base[0]] if base and base[0].state == HypState.DONE else []
    i = 1
    while (w := snap.winner(i)) is not None:
        path.append(w)
        i += 1
    return path


def strategy_of(snap: Snapshot) -> str:
    """The search's strategy (from the definition recorded in its ledger)."""
    try:
        return str(json.loads(snap.search.definition).get("strategy", "coordinate_descent"))
    except (ValueError, AttributeError):
        return "coordinate_descent"


def network_name(snap: Snapshot, h: HypRec) -> str:
    """B, NAME-PAS-i (a coordinate descent's winner of iteration i), NAME-target-j (the gradient strategy's
    network of target j)."""
    if not h.iteration:
        return f"{snap.search.name} (B)"
    return f"{snap.search.name}-" + ("target-" if strategy_of(snap) == "gradient" else "PAS-") + str(h.iteration)


def architectures(snap: Snapshot) -> dict[str, str]:
    """The gradient strategy's candidates: code -> what differs from B (from the supernets' results)."""
    out = {}
    for h in snap.hypotheses:
        if h.kind == SUPERNET.name and h.result:
            for c in json.loads(h.result).get("candidates", []):
                out[c["code"]] = c["description"]
    return out


def compute_text(snap: Snapshot) -> str:
    used = snap.compute()
    return " + ".join(f"{v:.3g} {k}" for k, v in sorted(used.items())) or "not recorded"


def _views(h: HypRec) -> int:
    return int(json.loads(h.result)["views"]) if h.result else 1


def measurements(snap: Snapshot) -> dict[int, MeasureResult]:
    """Each iteration's latency measurement (pas_models.measure: its networks and B timed alone, interleaved)."""
    out = {}
    for h in snap.hypotheses:
        if h.kind == MEASUREMENT.name and h.state == HypState.DONE and h.result:
            out[h.iteration] = MeasureResult.from_dict(json.loads(h.result), f"{snap.search.name} {h.label}")
    return out


def timing(snap: Snapshot, h: HypRec, batch: int = 1,
           measured: dict[int, MeasureResult] | None = None) -> tuple[Timing, Timing, str] | None:
    """(h's timing, B's timing in the same measurement job, that job's device) at ``batch``, or None.
    B is timed by every iteration's job: its own row uses the first iteration's."""
    m = measurements(snap) if measured is None else measured
    job = m.get(h.iteration) if h.iteration else (m[min(m)] if m else None)
    if job is None:
        return None
    base = snap.iteration(0)[0]
    mine, ref = job.of(h.label, batch), job.of(base.label, batch)
    if mine is None or ref is None:
        return None
    return mine, ref, job.device


def _ms(snap: Snapshot, h: HypRec, batch: int, measured: dict[int, MeasureResult]) -> str:
    t = timing(snap, h, batch, measured)
    if t is None:
        return "-"
    return f"{t[0].ms_per_view:.3g}" + (f" (spread {t[0].spread:.0%}: not trusted)" if t[0].flagged else "")


def _speedup(snap: Snapshot, h: HypRec, measured: dict[int, MeasureResult], batch: int = 1) -> str:
    """Measured speedup over B (both timed in the same job) next to the FLOPs reduction, e.g. "1.9x (FLOPs 5.6x)"."""
    base = snap.iteration(0)[0]
    t = timing(snap, h, batch, measured)
    if t is None or not h.gflops or not base.gflops:
        return "-"
    mine, ref, _ = t
    flops = f" (FLOPs {base.gflops / h.gflops:.2f}x)"
    if mine.flagged or ref.flagged:
        return "not trusted (spread > 20%)" + flops
    return f"{ref.ms_per_view / mine.ms_per_view:.2f}x" + flops


def interval_text(h: HypRec) -> str:
    ci = h.top1_interval
    return "-" if ci is None else f"{ci[0]:.1f}-{ci[1]:.1f} ({videos_text(h)})"


def top5_text(h: HypRec) -> str:
    """Top-5 with its 95% interval (Wilson, over the same videos): "99.84 [99.1-100.0]"."""
    if h.top5 is None:
        return "-"
    ci = h.top5_interval
    return f"{h.top5:.2f}" + ("" if ci is None else f" [{ci[0]:.1f}-{ci[1]:.1f}]")


def videos_text(h: HypRec) -> str:
    """What top-1's interval is over: "640 videos", or "640 videos x 3 replicas" for a network pooled over them."""
    return units(h, h.eval_videos or 0)


def _versus(snap: Snapshot, h: HypRec) -> str:
    c = vs_winner(snap, h)
    if c is None:
        return "-"
    return f"{c.difference:+.2f} [{c.low:+.2f}, {c.high:+.2f}]" + ("" if c.distinguishable else " not distinguishable")


def table_markdown(raw: Snapshot) -> str:
    """Table 1 and every hypothesis; with replicas, each network's figures pooled over its replicas (what the
    search chose on) and a table of the replicas."""
    snap = replicas.pooled(raw)
    baselines = {(h.iteration, h.path): h for h in snap.hypotheses if h.kind == "baseline"}
    measured = measurements(snap)
    rows = ["| model | reduction | top-1 % | top-1 95% CI | top-5 % | GFLOPs x views | ms/view (batch 1) | "
            "speedup vs B | without PAS top-1 % |",
            "|---|---|---|---|---|---|---|---|---|"]
    arch = architectures(snap)
    for h in chosen_path(snap):
        name = network_name(snap, h)
        b = baselines.get((h.iteration, h.path))
        what = f"{h.path} ({arch[h.path]})" if h.path in arch else h.path or "-"
        rows.append(f"| {name} | {what} | {h.top1:.2f} | {interval_text(h)} | {top5_text(h)} | "
                    f"{h.gflops:.4g} x {_views(h)} | {_ms(snap, h, 1, measured)} | {_speedup(snap, h, measured)} | "
                    + (f"{b.top1:.2f} |" if b is not None and b.top1 is not None else "- |"))
    devices = sorted({m.device for m in measured.values()})
    flagged = sorted({f"{i}: {t.network} b{t.batch} ({t.spread:.0%})" for i, m in measured.items() for t in m.timings
                      if t.flagged})
    title = "gradient search (a supernet per target)" if strategy_of(snap) == "gradient" else "PAS search"
    lines = [f"# {title} {snap.search.name}", "", *rows, "", f"Compute used by the whole search: {compute_text(snap)}.",
             "",
             "Latency: median per view, eval mode, measured alone by one job per iteration that times the "
             "iteration's networks and B interleaved over several rounds "
             f"({'; '.join(devices) or 'none measured'}); a speedup compares two networks of the same job. "
             "Spread: (highest - lowest round median) / median; above 20% a figure is not trusted and not plotted"
             + (f" ({'; '.join(flagged)})." if flagged else "."), "",
             "Top-1's 95% interval (and top-5's, in brackets): Wilson's, over the test videos "
             "(pas_models/intervals.py). Against the winner: the difference in top-1 points on the same videos, "
             "with Newcombe's paired 95% interval; 'not distinguishable' where it holds 0.", "",
             "## Every hypothesis", "",
             "| iteration | operator | path | state | top-1 % | top-1 95% CI | against the winner | top-5 % | "
             "GFLOPs/view | ms/view b1 | ms/view b8 | winner |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for h in snap.hypotheses:
        if h.kind != "pas":
            continue
        lines.append(f"| {h.iteration} | {h.op} | {h.path or '-'} | {h.state.value} | "
                     + ("-" if h.top1 is None else f"{h.top1:.2f}") + f" | {interval_text(h)} | {_versus(snap, h)} | "
                     + top5_text(h) + " | "
                     + ("-" if h.gflops is None else f"{h.gflops:.4g}")
                     + f" | {_ms(snap, h, 1, measured)} | {_ms(snap, h, 8, measured)} | "
                     + f"{'yes' if h.winner else ''} |")
    reps = replicas.table_rows(raw)
    if reps:
        lines += ["", "## Replicas", "", f"{replicas.NOTE[0].upper()}{replicas.NOTE[1:]}; the tables above show "
                  "each network's mean over its replicas, its interval over every replica's test videos.", "",
                  "| " + " | ".join(replicas.HEAD) + " |", "|" + "---|" * len(replicas.HEAD),
                  *("| " + " | ".join(r) + " |" for r in reps)]
    return "\n".join(lines) + "\n"


def plot(snap: Snapshot, path: Path) -> None:
    """Accuracy vs GFLOPs: every trained hypothesis (by iteration; with replicas, its mean over them), the chosen
    path, and the without-PAS baselines when present (paper Figure 3)."""
    snap = replicas.pooled(snap)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    labels: list[Point] = []
    errs: list[tuple[float, float, float]] = []
    done = [h for h in snap.hypotheses if h.kind == "pas" and h.state == HypState.DONE and h.top1 is not None]
    iterations = sorted({h.iteration for h in done})
    cmap = plt.get_cmap("viridis", max(len(iterations), 2))
    for k, it in enumerate(iterations):
        hs = [h for h in done if h.iteration == it]
        ax.scatter([h.gflops for h in hs], [h.top1 for h in hs], color=cmap(k), s=30,
                   label="B" if it == 0 else f"iteration {it}", zorder=3)
        errs += error_bars(ax, hs, cmap(k), 0.35)
        labels += [(h.gflops, h.top1, h.op if it else "B") for h in hs]
    best = chosen_path(snap)
    if best:
        label = "the targets' networks" if strategy_of(snap) == "gradient" else "PAS path"
        best = sorted(best, key=lambda h: h.gflops or 0.0)
        ax.plot([h.gflops for h in best], [h.top1 for h in best], "-", color="crimson", lw=1.5, label=label, zorder=2)
    base = [h for h in snap.hypotheses if h.kind == "baseline" and h.top1 is not None]
    if base:
        base.sort(key=lambda h: h.iteration)
        ax.plot([h.gflops for h in base], [h.top1 for h in base], "--", color="gray", marker="x",
                label="without PAS", zorder=2)
    ax.set_xscale("log")
    finish_figure(fig, ax, path, "GFLOPs per view (log scale)", "top-1 accuracy (%; bars: 95% interval)",
                  f"PAS search {snap.search.name}", labels, bars=errs)


def error_bars(ax: Any, hs: Sequence[HypRec], color: Any, alpha: float) -> list[tuple[float, float, float]]:
    """Each network's top-1 95% interval over its test videos as an error bar; returns them as (x, low, high),
    for the labels to keep off."""
    bars = [(h, ci) for h in hs if (ci := h.top1_interval) is not None and h.gflops is not None and h.top1 is not None]
    if bars:
        ax.errorbar([h.gflops for h, _ in bars], [h.top1 for h, _ in bars],
                    yerr=[[h.top1 - ci[0] for h, ci in bars], [ci[1] - h.top1 for h, ci in bars]],
                    fmt="none", ecolor=color, alpha=alpha, lw=1, capsize=2, zorder=2)
    return [(h.gflops, ci[0], ci[1]) for h, ci in bars]


def finish_figure(fig: Any, ax: Any, path: Path, xlabel: str, ylabel: str, title: str,
                  points: Sequence[Point] = (), fontsize: float = 7,
                  bars: Sequence[tuple[float, float, float]] = ()) -> None:
    """Axis labels, grid, legend, the points' labels (placed so that none overlaps another, labels.py); written
    to ``path`` and closed."""
    import matplotlib.pyplot as plt

    from pas_orchestrator.labels import place

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=10)  # a long title wraps, never cut at the edge
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing drawn yet (a report refreshed before B ended): no legend
        ax.legend(fontsize=8)
    fig.tight_layout()
    if points:
        place(ax, points, fontsize, bars)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot_speedup(snap: Snapshot, path: Path) -> bool:
    """Measured speedup vs FLOPs reduction, both relative to B, for every trained hypothesis (batch 1 and 8;
    B timed in the same measurement job); the diagonal is what the FLOPs promise. A timing whose spread
    exceeds 20% (its own or B's) is left out. False (no file) when nothing trusted was measured."""
    base = snap.iteration(0)[0] if snap.iteration(0) else None
    measured = measurements(snap)
    if base is None or not base.gflops or not measured:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    drawn, top, left_out = False, 1.0, 0
    labels: list[Point] = []
    for batch, marker in ((1, "o"), (8, "s")):
        points = []
        for h in snap.hypotheses:
            if h.kind != "pas" or h.state != HypState.DONE or not h.gflops or not h.iteration:
                continue
            t = timing(snap, h, batch, measured)
            if t is None:
                continue
            if t[0].flagged or t[1].flagged:
                left_out += 1
                continue
            points.append((base.gflops / h.gflops, t[1].ms_per_view / t[0].ms_per_view, h))
        if not points:
            continue
        drawn = True
        top = max(top, *(max(x, y) for x, y, _ in points))
        ax.scatter([p[0] for p in points], [p[1] for p in points], marker=marker, s=28, label=f"batch {batch}",
                   zorder=3)
        labels += [(x, y, h.path) for x, y, h in points]
    if not drawn:
        plt.close(fig)
        return False
    ax.plot([1, top], [1, top], ":", color="gray", label="speedup = FLOPs reduction")
    ax.set_xscale("log")
    ax.set_yscale("log")
    devices = "; ".join(sorted({m.device for m in measured.values()}))
    note = f", {left_out} not trusted (spread > 20%) left out" if left_out else ""
    finish_figure(fig, ax, path, "FLOPs reduction vs B", "measured speedup vs B (same job)",
                  f"{snap.search.name}: FLOPs are not speed ({devices}{note})", labels, 6)
    return True


def plot_rungs(snap: Snapshot, path: Path) -> bool:
    """Successive halving's rank agreement: per iteration, each hypothesis' top-1 at every rung it reached
    (the rungs' cheap evaluation) and at the end (the full evaluation, the finalists); a stopped hypothesis
    ends in an x. False (no file) when the search has no rung scores."""
    hyps = [h for h in snap.hypotheses if h.kind == "pas" and h.rung_scores]
    if not hyps:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iterations = sorted({h.iteration for h in hyps})
    rungs = max(max(x.rung for x in h.rung_scores) for h in hyps) + 1
    fig, axes = plt.subplots(1, len(iterations), figsize=(3.2 * len(iterations) + 1, 3.6), dpi=120, squeeze=False)
    for ax, it in zip(axes[0], iterations, strict=True):
        for h in (x for x in hyps if x.iteration == it):
            xs = [x.rung for x in h.rung_scores]
            ys = [x.top1 for x in h.rung_scores]
            if h.state == HypState.DONE and h.top1 is not None:
                xs.append(rungs)
                ys.append(h.top1)
            line = ax.plot(xs, ys, "-o", ms=4, lw=1.2, label=h.op + (" *" if h.winner else ""))[0]
            if h.state == HypState.STOPPED:
                ax.plot(xs[-1:], ys[-1:], "x", ms=9, color=line.get_color())
        ax.set_xticks(range(1, rungs + 1), [f"rung {k}" for k in range(1, rungs)] + ["end"])
        ax.set_title(f"iteration {it}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("top-1 accuracy (%)")
    fig.suptitle(f"{snap.search.name}: top-1 at each rung (cheap evaluation) and at the end; x: stopped", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(snap: Snapshot, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"table": out / "table.md", "plot": out / "pareto.png"}
    files["table"].write_text(table_markdown(snap))
    plot(snap, files["plot"])
    if plot_speedup(snap, out / "speedup.png"):
        files["speedup"] = out / "speedup.png"
    if plot_rungs(snap, out / "rungs.png"):
        files["rungs"] = out / "rungs.png"
    return files
