"""Known-answer probes: synthetic datasets in which one reduction operator destroys the evidence.

A probe for operator ``s``, ``t`` or ``f`` is a dataset whose classes can be told
apart from the base network's view but not from the view that operator leaves,
so the right first decision of a PAS search is known: that operator's
hypothesis scores at chance and is never chosen. The constructions are for the
tiny backbones' view (``r2plus1d_tiny``: 8 frames at stride 2, 48x64 videos
resized to 36 px, 32 px crops; ``slowfast_tiny``'s fast pathway samples the same
frames) and the demo's factors (s 1.4, t 2, f 2). ``lane_statistic`` reads a
lane's bit from a view the way the construction says it can be read: the tests
and ``benchmarks/probe_evidence.py`` apply it to clips cut by pas's own decoding
and transforms, in the base view and in the reduced one.

Each video is a grey frame (random level, tint, blocky texture and pixel noise)
split into two lanes (top and bottom halves; left and right for ``s``); with 4
classes each lane carries one bit of the label (class k: first lane bit k mod 2,
second lane bit k // 2), with 2 classes both lanes carry the label. A lane shows:

- ``s`` (spatial resolution): horizontal stripes one pixel high (rows alternate
  +a and -a around the lane's level, a of 40-55 grey levels) for bit 1, the flat
  level for bit 0, over the frame's height but for its EDGE rows at the top and
  bottom (a crop's border row is resized with cut-short weights that keep a
  trace of the stripes) and fading in and out over RAMP rows (cut off square,
  the stripes' ends are a step that every resolution keeps). The base view
  resizes a 43-row box to 32 rows: stripes at the source's Nyquist frequency
  keep a visible aliased pattern. The s view resizes a 42-row box to 22: the
  antialiasing filter leaves about 2% of the contrast, under the pixel noise.
- ``f`` (frame rate): the lane's left half is brighter than its right half (a
  symbol 1) or darker (0), switching over time. Bit 1: period 4 frames, 1 1 0 0;
  bit 0: period 2 frames, 1 0. Sampled every 2nd frame (base), bit 1 alternates
  and bit 0 is constant; sampled every 4th frame (f) both are constant, 1 or 0
  with probability 1/2 each (the phase is random): the same distribution.
- ``t`` (temporal length): the lane's level changes every symbol (2 frames, the
  base view's stride) to one of +-d, drawn at random for T_LAG = 4 symbols; the
  next 4 symbols repeat them (bit 1) or repeat them negated (bit 0), and so on,
  from a random phase. Any 4 consecutive symbols (the t view: the first 4 of the
  base view's 8 frames) are 4 independent fair signs under either bit: the same
  distribution. The base view's 8 symbols hold 4 pairs 4 symbols apart, equal
  (bit 1) or opposite (bit 0).

Levels, amplitudes and phases are random per video, so nothing else tells the
bits apart. ``c`` and ``l`` reduce the network, not its input: no dataset takes
their evidence away by construction, so they have no probe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

PROBES = ("s", "t", "f")
PROBE_CLASSES = (2, 4)
Region = tuple[slice, slice]  # rows, columns
LANE_NAMES = {"s": ("left", "right"), "f": ("top", "bottom"), "t": ("top", "bottom")}
BIT_NAMES = {"s": ("flat", "stripes"), "f": ("flicker2", "flicker4"), "t": ("inverted", "repeated")}
EDGE = 5  # s probe: rows at the frame's top and bottom without stripes (train crops start in rows 0-5)
RAMP = 7  # s probe: rows over which the stripes fade in and out at the band's ends
SYMBOL = 2  # frames per symbol of the t probe: the base view's frame stride
T_LAG = 4  # t probe: symbols from a level to its echo: the t view's length, half the base view's
F_PATTERNS = ((1, 0), (1, 1, 0, 0))  # f probe, per frame: bit 0 (period 2), bit 1 (period 4)


def problem(op: str | None, classes: int) -> tuple[str, str] | None:
    """(key, what is wrong and the fix) when ``op`` is no probe or ``classes`` does not fit it, else None."""
    if op is None:
        return None
    if op not in PROBES:
        return "probe", (f"must be one of {', '.join(PROBES)} (c and l reduce the network, not its input: no "
                         f"dataset removes their evidence), got {op!r}")
    if classes not in PROBE_CLASSES:
        return "classes", f"a probe has 2 or 4 classes (one bit per lane), got {classes}: set 4"
    return None


def class_names(op: str, classes: int) -> list[str]:
    off, on = BIT_NAMES[op]
    if classes == 2:
        return [f"{op}-{off}", f"{op}-{on}"]
    first, second = LANE_NAMES[op]
    return [f"{op}-{first}-{BIT_NAMES[op][k % 2]}-{second}-{BIT_NAMES[op][k // 2]}" for k in range(classes)]


def lane_bits(label: int, classes: int) -> tuple[int, int]:
    return (label, label) if classes == 2 else (label % 2, label // 2)


def lanes(op: str, height: int, width: int) -> tuple[Region, Region]:
    """The two lanes of a probe's frame: left and right halves for s (its stripes need the frame's height),
    top and bottom halves for f and t."""
    every = slice(0, None)
    if op == "s":
        return (every, slice(0, width // 2)), (every, slice(width // 2, width))
    return (slice(0, height // 2), every), (slice(height // 2, height), every)


def _background(h: int, w: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    import numpy as np

    # a narrow range of levels: the s probe's stripes swing 90 grey levels either way, and are never clipped
    level = rng.uniform(110, 145) + rng.uniform(-6, 6, size=3)
    texture = rng.normal(0, 4, size=(h // 8 + 1, w // 8 + 1, 1)).repeat(8, 0).repeat(8, 1)[:h, :w]
    return np.broadcast_to(level + texture, (frames, h, w, 3)).astype(np.float64)


def _stripes(video: np.ndarray, lane: Region, bit: int, rng: np.random.Generator) -> None:
    import numpy as np

    rows, cols = lane
    # drawn under either bit, so that a seed gives both bits the same video but for the stripes
    level, phase, amplitude = rng.uniform(-5, 5), int(rng.integers(2)), rng.uniform(65, 85)
    video[:, rows, cols] += level  # the lane's own level
    if bit:
        # not within EDGE rows of the frame's top and bottom, where a crop's first or last row can fall: the
        # resize's weights are cut short at a crop's border and leave a trace of the stripes there
        n = video.shape[1] - 2 * EDGE
        sign = np.where((np.arange(n) + phase) % 2 == 0, 1.0, -1.0)
        # a smooth rise and fall over the band's first and last rows: cut off square, the stripes' ends
        # would leave a low-frequency step that every view keeps
        ramp = np.sin(np.pi / 2 * np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5).clip(max=RAMP) / RAMP) ** 2
        video[:, EDGE:EDGE + n, cols] += amplitude * (sign * ramp)[None, :, None, None]


def _flicker(video: np.ndarray, lane: Region, bit: int, rng: np.random.Generator) -> None:
    import numpy as np

    rows, w = lane[0], video.shape[2]
    pattern = np.array(F_PATTERNS[bit])
    phase = int(rng.integers(len(pattern)))
    d = rng.uniform(20, 35)
    for t in range(video.shape[0]):
        sign = 1.0 if pattern[(t + phase) % len(pattern)] else -1.0
        video[t, rows, : w // 2] += sign * d
        video[t, rows, w // 2:] -= sign * d


def _echo(video: np.ndarray, lane: Region, bit: int, rng: np.random.Generator) -> None:
    import numpy as np

    rows = lane[0]
    # one random level per symbol for T_LAG symbols, then the same levels again (bit 1) or negated (bit 0)
    first = rng.choice((-1.0, 1.0), size=T_LAG) * rng.uniform(30, 50)
    cycle = np.concatenate([first, first if bit else -first])
    phase = int(rng.integers(len(cycle) * SYMBOL))  # in frames: symbol boundaries fall on odd frames too
    for t in range(video.shape[0]):
        video[t, rows.start + 2:rows.stop - 2, 2:-2] += cycle[((t + phase) // SYMBOL) % len(cycle)]


LANE = {"s": _stripes, "f": _flicker, "t": _echo}


def render(op: str, label: int, classes: int, frames: int, height: int, width: int,
           rng: np.random.Generator) -> np.ndarray:
    """uint8 RGB frames (frames, height, width, 3) of one video of probe ``op``, class ``label``."""
    import numpy as np

    video = _background(height, width, frames, rng)
    for lane, bit in zip(lanes(op, height, width), lane_bits(label, classes), strict=True):
        LANE[op](video, lane, bit, rng)
    video += rng.normal(0, 2.5, size=video.shape)
    return np.clip(np.rint(video), 0, 255).astype(np.uint8)


GREY = 255 * 0.22  # a normalised clip's unit in grey levels, about (the normalisation's std)


def read_lanes(op: str, items: Iterable[dict[str, Any]], classes: int) -> dict[int, list[float]]:
    """``lane_statistic`` of each lane of each clip (a ``ClipDataset``'s items: ``student``, ``label``), by the
    lane's bit."""
    by: dict[int, list[float]] = {0: [], 1: []}
    for item in items:
        luma = item["student"].mean(0).numpy() * GREY
        for lane, bit in zip(lane_views(op, luma), lane_bits(item["label"], classes), strict=True):
            by[bit].append(lane_statistic(op, lane))
    return by


def lane_views(op: str, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two lanes of a view: ``clip`` (T, S, S) luma (any affine scale) -> each lane's pixels, without the
    row or column on each side of the split (which the resize mixes from both lanes)."""
    size = clip.shape[-1]
    half = size // 2
    if op == "s":
        return clip[:, :, 1:half - 1], clip[:, :, half + 1:size - 1]
    return clip[:, 1:half - 1], clip[:, half + 1:size - 1]


def lane_statistic(op: str, lane: np.ndarray) -> float:
    """What a lane (T, H, W) of a view shows of its bit, larger for bit 1 where the view keeps the evidence:
    s: the mean squared difference of neighbouring rows (the stripes' energy); f: the share of consecutive
    frames whose left-minus-right difference changes sign; t: minus the root mean square of the change of the
    lane's level from each frame to the frame 4 later (grey levels: about 0 for bit 1, whose levels repeat,
    60-100 below for bit 0, whose levels come back negated; NaN where the view has no two frames 4 apart)."""
    import numpy as np

    if op == "s":
        return float((np.diff(lane, axis=1) ** 2).mean())
    w = lane.shape[-1]
    if op == "f":
        d = lane[:, :, : w // 2].mean((1, 2)) - lane[:, :, w // 2:].mean((1, 2))
        return float((np.sign(d[1:]) != np.sign(d[:-1])).mean())
    level = lane[:, 2:-2, 2:-2].mean((1, 2))
    if len(level) <= T_LAG:
        return float("nan")
    return -float(np.sqrt(((level[T_LAG:] - level[:-T_LAG]) ** 2).mean()))
