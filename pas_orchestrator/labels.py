"""Point labels on a matplotlib figure that never overlap one another (nor another label's point).

Points at the same place share one label ("t / f"). Each label then takes the first of a ring of offsets
around its point, growing outward, whose box (measured by the figure's renderer, in pixels) stays inside the
figure and meets no label placed before it, no other point and no other point's error bar; a label placed
away from its point has a thin leader line to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# offsets in points: right-above first (the usual place), then the other sides, then further out
_DIRECTIONS = ((1, 0.4), (1, -1.4), (-1, 0.4), (-1, -1.4), (0, 1.2), (0, -2.2))
_RINGS = (4, 10, 18, 28, 40, 55, *range(70, 400, 15))


Point = tuple[float, float, str] | tuple[float, float, str, Any]  # x, y, text[, colour]


def _merged(points: Sequence[Point]) -> list[tuple[float, float, str, Any]]:
    """Points at the same place become one, their texts joined in order (the first one's colour)."""
    out: dict[tuple[float, float], list[str]] = {}
    colours: dict[tuple[float, float], Any] = {}
    for x, y, text, *colour in points:
        out.setdefault((x, y), []).append(text)
        colours.setdefault((x, y), colour[0] if colour else "black")
    return [(x, y, " / ".join(dict.fromkeys(texts)), colours[x, y]) for (x, y), texts in out.items()]


def _overlaps(a: Any, b: Any, pad: float = 1.0) -> bool:
    return not (a.x1 + pad <= b.x0 or b.x1 + pad <= a.x0 or a.y1 + pad <= b.y0 or b.y1 + pad <= a.y0)


def _box(note: Any, renderer: Any) -> Any:
    """The text's own box (an annotation's extent would include its leader line)."""
    from matplotlib.text import Text

    note.update_positions(renderer)  # where its offset puts it now, in pixels
    return Text.get_window_extent(note, renderer)


def place(ax: Any, points: Sequence[Point], fontsize: float = 7,
          bars: Sequence[tuple[float, float, float]] = ()) -> list[Any]:
    """Annotate each (x, y, text[, colour]) in data coordinates, inside the figure and off the vertical error
    ``bars`` (x, low, high); returns the annotations (one per distinct place)."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.canvas.draw()  # the transforms and the renderer as they will be drawn
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData
    marks = [Bbox.from_bounds(px[0] - 3, px[1] - 3, 6, 6)
             for px in (to_px.transform((p[0], p[1])) for p in points)]
    for x, lo, hi in bars:  # an error bar and its caps
        (x0, y0), (_, y1) = to_px.transform((x, lo)), to_px.transform((x, hi))
        marks.append(Bbox.from_extents(x0 - 3, min(y0, y1), x0 + 3, max(y0, y1)))
    inside = fig.bbox
    placed: list[Any] = []
    out = []
    for x, y, text, colour in sorted(_merged(points), key=lambda p: (p[0], p[1])):
        here = to_px.transform((x, y))
        others = [m for m in marks if not m.contains(*here)]  # its own point and bar never push it away
        note = ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=fontsize, zorder=4,
                           color=colour)
        width = _box(note, renderer).width * 72 / fig.dpi
        best = None
        for r in _RINGS:
            for dx, dy in _DIRECTIONS:
                off = (r if dx > 0 else -r - width if dx < 0 else -width / 2, dy * max(r, 6))
                note.set_position(off)
                box = _box(note, renderer)
                if (box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0 and box.y1 <= inside.y1
                        and not any(_overlaps(box, b) for b in placed)
                        and not any(_overlaps(box, m, 0) for m in others)):
                    best = (off, box)
                    break
            if best is not None:
                break
        if best is None:  # no free place anywhere near: the usual place, overlapping (never seen in a figure)
            note.set_position((4, 3))
            best = ((4, 3), _box(note, renderer))
        if max(abs(best[0][0]), abs(best[0][1])) > 12:  # away from its point: a leader line shows whose it is
            note.remove()
            note = ax.annotate(text, (x, y), textcoords="offset points", xytext=best[0], fontsize=fontsize, zorder=4,
                               color=colour,
                               arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5", "shrinkA": 0,
                                           "shrinkB": 2})
        placed.append(best[1])
        out.append(note)
    return out


def overlapping(fig: Any, notes: Sequence[Any]) -> list[tuple[str, str]]:
    """The pairs of labels whose boxes meet as drawn (for tests and checks)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(n.get_text(), _box(n, renderer)) for n in notes]
    return [(a, b) for i, (a, x) in enumerate(boxes) for b, y in boxes[i + 1:] if _overlaps(x, y, 0)]
