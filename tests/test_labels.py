"""Point labels on the report's figures: none overlaps another, points at one place share a label, as drawn by
matplotlib's own renderer (Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pas_orchestrator.labels import overlapping, place


def test_crowded_points_get_labels_that_never_overlap() -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    # a search's worst case: hypotheses at the same cost and accuracy, and near ones, on a log axis
    points = [(0.0026, 51.56, "t"), (0.0026, 51.56, "f"), (0.0026, 51.9, "s"), (0.00262, 52.2, "l"),
              (0.0025, 34.4, "c"), (0.00156, 59.4, "t,s"), (0.00147, 51.56, "t,t"), (0.00147, 50.0, "t,f"),
              (0.00126, 15.6, "t,c"), (0.00165, 15.6, "t,l"), (0.00094, 59.4, "t,s,t"), (0.00094, 54.7, "t,s,f"),
              (0.00075, 15.6, "t,s,c"), (0.00093, 37.5, "t,s,l"), (0.0052, 53.1, "B")]
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    ax.set_xscale("log")
    fig.tight_layout()
    bars = [(x, y - 12, y + 12) for x, y, _ in points]  # each point's 95% interval, about +-12 points
    notes = place(ax, points, bars=bars)
    texts = sorted(n.get_text() for n in notes)
    assert "t / f" in texts and len(texts) == len(points) - 1  # t and f share their place: one label
    assert overlapping(fig, notes) == []
    renderer = fig.canvas.get_renderer()
    for n in notes:  # inside the figure (the B label at the right edge once fell off it), off others' bars
        n.update_positions(renderer)
        box = matplotlib.text.Text.get_window_extent(n, renderer)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
        own = ax.transData.transform(n.xy)
        for x, lo, hi in bars:
            (bx, blo), (_, bhi) = ax.transData.transform((x, lo)), ax.transData.transform((x, hi))
            if abs(bx - own[0]) > 0.5:  # another point's bar
                assert box.x1 <= bx - 3 or box.x0 >= bx + 3 or box.y1 <= blo or box.y0 >= bhi, n.get_text()
    plt.close(fig)


def test_a_cluster_of_many_labels_at_nearly_one_place_still_never_overlaps() -> None:
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    points = [(1.0 + i * 1e-4, 50.0 + (i % 3) * 0.01, f"hyp-{i}") for i in range(14)]
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    ax.set_xlim(0.5, 2)
    ax.set_ylim(0, 100)
    notes = place(ax, points, fontsize=7)
    assert len(notes) == 14 and overlapping(fig, notes) == []
    plt.close(fig)
