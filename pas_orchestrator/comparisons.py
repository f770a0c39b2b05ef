"""Hypotheses compared on the same test videos (pure): each against its iteration's winner, paired
(pas_models.intervals.paired: the difference in top-1 points, Newcombe's interval, the exact McNemar test), from
the per-video records their results carry (``per_video``; results made before them have none)."""

from __future__ import annotations

import json

from pas_models.intervals import Paired, paired
from pas_models.predictions import PerVideo, PredictionsInvalid
from pas_orchestrator.ledger.records import HypRec, Snapshot


def per_video(h: HypRec) -> PerVideo | None:
    """The per-video record of a trained hypothesis' result, None where it has none."""
    if not h.result:
        return None
    return _record(json.loads(h.result).get("per_video"), h.label)


def _record(data: object, label: str) -> PerVideo | None:
    if not data:
        return None
    try:
        return PerVideo.from_dict(data, f"{label} per_video")
    except PredictionsInvalid:
        return None


def between(a: PerVideo | None, b: PerVideo | None) -> Paired | None:
    """``a`` minus ``b`` in top-1 points on the videos both were evaluated on, or None."""
    if a is None or b is None or a.videos != b.videos:
        return None
    mine, theirs = a.shared(b)
    return paired(mine, theirs)


def against(winner: HypRec, other: HypRec) -> Paired | None:
    """``other`` minus ``winner`` in top-1 points on the videos both were evaluated on, or None."""
    return between(per_video(other), per_video(winner))


def at_rung(best: HypRec, other: HypRec, rung: int) -> Paired | None:
    """``other`` minus ``best`` in top-1 points at a rung's evaluation, on the same videos, or None."""
    a, b = other.score(rung), best.score(rung)
    if a is None or b is None:
        return None
    return between(_record(a.per_video, other.label), _record(b.per_video, best.label))


def vs_winner(snap: Snapshot, h: HypRec) -> Paired | None:
    """``h`` against its iteration's winner (None: the winner itself, B, untrained, or no per-video records)."""
    w = snap.winner(h.iteration) if h.iteration > 0 else None
    return against(w, h) if w is not None and w.id != h.id and h.top1 is not None else None


def describe(winner: HypRec, others: list[HypRec]) -> str:
    """The winner against each other trained hypothesis, for its ``why``: "" where none has per-video records."""
    compared = [(h, c) for h in sorted(others, key=lambda x: -(x.top1 or 0.0)) if (c := against(winner, h))]
    if not compared:
        return ""
    return (f"top-1 against {winner.op} on the same {units(winner, compared[0][1].n)} (paired, 95%): "
            + "; ".join(f"{h.op} {c.difference:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"
                        + ("" if c.distinguishable else " not distinguishable") for h, c in compared))


def units(h: HypRec, n: int) -> str:
    """What ``n`` evaluated videos of ``h`` are: "640 videos", or "640 videos x 3 replicas" where its figures pool
    its replicas (pas_orchestrator/replicas.py)."""
    k = json.loads(h.result).get("replicas", 1) if h.result else 1
    return f"{n // k} videos x {k} replicas" if k > 1 and n % k == 0 else f"{n} videos"


def tie_break(ordered: list[HypRec], level: float) -> tuple[HypRec, str]:
    """Noise-aware selection (``ties``): ``ordered`` is the selection's ranking, best first. Every hypothesis whose
    top-1 the exact McNemar test cannot tell from the best's on the same videos (p >= ``level``) ties with it;
    the tied one with the fewest GFLOPs wins, the ranking deciding among equal costs. Hypotheses without
    per-video records never tie. Returns the winner and the clause its why gains."""
    best = ordered[0]
    tied = [best] + [h for h in ordered[1:] if (c := against(best, h)) is not None and c.p_value >= level]
    pick = min(tied, key=lambda h: (h.gflops if h.gflops is not None else float("inf"), tied.index(h)))
    if len(tied) == 1:
        return best, f"ties (paired, level {level:g}): every other is distinguishable from {best.op}"
    return pick, (f"ties (paired, level {level:g}): {', '.join(h.op for h in tied)} not distinguishable from the "
                  f"selection's {best.op}; {pick.op} costs the fewest GFLOPs ({pick.gflops or 0:.4g})"
                  + (f", so it wins instead of {best.op}" if pick is not best else ""))
