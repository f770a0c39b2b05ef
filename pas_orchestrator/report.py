"""The report of a search: a markdown table like the paper's Table 1 and a plot like its Figure 3.

Pure apart from writing the files: everything comes from a ledger snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pas_models.measure import MeasureResult, Timing
from pas_orchestrator.core.decide import MEASURE
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


def _views(h: HypRec) -> int:
    return int(json.loads(h.result)["views"]) if h.result else 1


def measurements(snap: Snapshot) -> dict[int, MeasureResult]:
    """Each iteration's latency measurement (pas_models.measure: its networks and B timed alone, interleaved)."""
    out = {}
    for h in snap.hypotheses:
        if h.kind == MEASURE and h.state == HypState.DONE and h.result:
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


def table_markdown(snap: Snapshot) -> str:
    baselines = {(h.iteration, h.path): h for h in snap.hypotheses if h.kind == "baseline"}
    measured = measurements(snap)
    rows = ["| model | reduction | top-1 % | top-5 % | GFLOPs x views | ms/view (batch 1) | speedup vs B "
            "| without PAS top-1 % |",
            "|---|---|---|---|---|---|---|---|"]
    for h in chosen_path(snap):
        name = f"{snap.search.name}" + (f"-PAS-{h.iteration}" if h.iteration else " (B)")
        b = baselines.get((h.iteration, h.path))
        rows.append(f"| {name} | {h.path or '-'} | {h.top1:.2f} | {h.top5:.2f} | {h.gflops:.4g} x {_views(h)} | "
                    f"{_ms(snap, h, 1, measured)} | {_speedup(snap, h, measured)} | "
                    + (f"{b.top1:.2f} |" if b is not None and b.top1 is not None else "- |"))
    devices = sorted({m.device for m in measured.values()})
    flagged = sorted({f"{i}: {t.network} b{t.batch} ({t.spread:.0%})" for i, m in measured.items() for t in m.timings
                      if t.flagged})
    lines = [f"# PAS search {snap.search.name}", "", *rows, "",
             "Latency: median per view, eval mode, measured alone by one job per iteration that times the "
             "iteration's networks and B interleaved over several rounds "
             f"({'; '.join(devices) or 'none measured'}); a speedup compares two networks of the same job. "
             "Spread: (highest - lowest round median) / median; above 20% a figure is not trusted and not plotted"
             + (f" ({'; '.join(flagged)})." if flagged else "."), "",
             "## Every hypothesis", "",
             "| iteration | operator | path | state | top-1 % | top-5 % | GFLOPs/view | ms/view b1 | ms/view b8 "
             "| winner |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for h in snap.hypotheses:
        if h.kind != "pas":
            continue
        lines.append(f"| {h.iteration} | {h.op} | {h.path or '-'} | {h.state.value} | "
                     + ("-" if h.top1 is None else f"{h.top1:.2f}") + " | "
                     + ("-" if h.top5 is None else f"{h.top5:.2f}") + " | "
                     + ("-" if h.gflops is None else f"{h.gflops:.4g}")
                     + f" | {_ms(snap, h, 1, measured)} | {_ms(snap, h, 8, measured)} | "
                     + f"{'yes' if h.winner else ''} |")
    return "\n".join(lines) + "\n"


def plot(snap: Snapshot, path: Path) -> None:
    """Accuracy vs GFLOPs: every trained hypothesis (by iteration), the chosen path, and the
    without-PAS baselines when present (paper Figure 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    done = [h for h in snap.hypotheses if h.kind == "pas" and h.state == HypState.DONE and h.top1 is not None]
    iterations = sorted({h.iteration for h in done})
    cmap = plt.get_cmap("viridis", max(len(iterations), 2))
    for k, it in enumerate(iterations):
        hs = [h for h in done if h.iteration == it]
        ax.scatter([h.gflops for h in hs], [h.top1 for h in hs], color=cmap(k), s=30,
                   label="B" if it == 0 else f"iteration {it}", zorder=3)
        for h in hs:
            ax.annotate(h.op if it else "B", (h.gflops, h.top1), textcoords="offset points", xytext=(4, 3),
                        fontsize=7)
    best = chosen_path(snap)
    if best:
        ax.plot([h.gflops for h in best], [h.top1 for h in best], "-", color="crimson", lw=1.5, label="PAS path",
                zorder=2)
    base = [h for h in snap.hypotheses if h.kind == "baseline" and h.top1 is not None]
    if base:
        base.sort(key=lambda h: h.iteration)
        ax.plot([h.gflops for h in base], [h.top1 for h in base], "--", color="gray", marker="x",
                label="without PAS", zorder=2)
    ax.set_xscale("log")
    _finish(fig, ax, path, "GFLOPs per view (log scale)", "top-1 accuracy (%)", f"PAS search {snap.search.name}")


def _finish(fig: Any, ax: Any, path: Path, xlabel: str, ylabel: str, title: str) -> None:
    """Labels, grid, legend; written to ``path`` and closed."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
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
        for x, y, h in points:
            ax.annotate(h.path, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6)
    if not drawn:
        plt.close(fig)
        return False
    ax.plot([1, top], [1, top], ":", color="gray", label="speedup = FLOPs reduction")
    ax.set_xscale("log")
    ax.set_yscale("log")
    devices = "; ".join(sorted({m.device for m in measured.values()}))
    note = f", {left_out} not trusted (spread > 20%) left out" if left_out else ""
    _finish(fig, ax, path, "FLOPs reduction vs B", "measured speedup vs B (same job)",
            f"{snap.search.name}: FLOPs are not speed ({devices}{note})")
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
