"""Replicas (search key ``replicas: N``): N independent trainings of B and of every hypothesis, as one search.

Replica 0 of a network is its own ledger row (kind ``pas``); replica r >= 1 is a row of kind ``replica``, op
``OP.rR``, in the same iteration with the same path, spec and cost, trained with the search's seed + r. Each
replica is a chain of its own: hypothesis replica r is distilled from B's replica r and fine-tuned from the
previous winner's replica r, so a chain whose replica failed for good (B's included) stops there: its later
rows are not planned, the other chains go on. Replicas apply to every iteration: each
iteration's choice is a comparison, and a replica that skipped one would have no parent of its own after it.

What the strategy sees (``pooled``): every ``pas`` row carries its replicas' mean top-1 and top-5, its test
videos and per-video records concatenated replica by replica (so a paired comparison pairs the same video of
the same replica: McNemar's test over video x replica), and its rung scores likewise; it is not terminal until
every replica is. A rung decision promotes or stops a hypothesis with its replicas (``Replicated``); the
winner is marked on the ``pas`` row. ``summary`` gives per hypothesis the replicas' top-1s, their mean and
standard deviation, and P(hypothesis beats the winner): the share of replicas r in which it has the higher top-1
of the two (ties count one half), over the replicas both have.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pas_models.predictions import PerVideo, PredictionsInvalid
from pas_orchestrator.core.actions import Action, PromoteRung
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import TERMINAL_HYP, HypState
from pas_orchestrator.strategies.base import Strategy

KIND = "replica"


def replica_op(op: str, r: int) -> str:
    return op if r == 0 else f"{op}.r{r}"


def source_op(op: str) -> tuple[str, int]:
    """``t.r2`` -> ("t", 2); an op without a replica suffix is replica 0."""
    head, sep, tail = op.rpartition(".r")
    return (head, int(tail)) if sep and tail.isdigit() else (op, 0)


def replicas_of(snap: Snapshot, h: HypRec) -> list[HypRec]:
    """``h`` (replica 0, as ``snap`` has it) and its replica rows, by replica number."""
    h = next((x for x in snap.hypotheses if x.id == h.id), h)
    rows = [x for x in snap.hypotheses if x.kind == KIND and x.iteration == h.iteration
            and source_op(x.op)[0] == h.op]
    return [h, *sorted(rows, key=lambda x: source_op(x.op)[1])]


def replica(snap: Snapshot, h: HypRec, r: int) -> HypRec | None:
    """Replica ``r`` of the ``pas`` row ``h`` (``h`` itself for r = 0), None where there is none."""
    return next((x for x in replicas_of(snap, h) if source_op(x.op)[1] == r), None)


def source(snap: Snapshot, h: HypRec) -> HypRec:
    """The ``pas`` row a replica row replicates."""
    op, _ = source_op(h.op)
    for x in snap.iteration(h.iteration):
        if x.op == op:
            return x
    raise LookupError(f"{h.label}: the search has no hypothesis {h.iteration}-{op} it replicates")


def new_rows(planned: Sequence[NewHypothesis], replicas: int, hyp_dir: Callable[[int, str, str], Path],
             chains: Sequence[int] | None = None) -> tuple[NewHypothesis, ...]:
    """The replica rows of freshly planned ``pas`` rows (those that will train): replicas 1..N-1, or only the
    ``chains`` still alive (their parent's replica is done). ``hyp_dir(iteration, op, kind)``: their folders."""
    alive = range(1, replicas) if chains is None else [r for r in chains if r >= 1]
    out = []
    for p in planned:
        if p.state != HypState.PLANNED:
            continue
        for r in alive:
            op = replica_op(p.op, r)
            out.append(replace(p, op=op, kind=KIND, out_dir=str(hyp_dir(p.iteration, op, KIND))))
    return tuple(out)


def live_chains(snap: Snapshot, parent: HypRec, replicas: int) -> list[int]:
    """The replicas whose chain goes on from ``parent`` (B or a winner): those whose replica of it is DONE."""
    return [r for r in range(replicas) if (x := replica(snap, parent, r)) is not None and x.state == HypState.DONE]


# ---------------------------------------------------------------- what the strategy sees


def _per_video(data: object) -> PerVideo | None:
    if not data:
        return None
    try:
        return PerVideo.from_dict(data)
    except PredictionsInvalid:
        return None


def _concat(records: list[PerVideo | None]) -> dict[str, object] | None:
    if not records or any(x is None for x in records) or len({x.videos for x in records if x}) != 1:
        return None
    parts = [x for x in records if x is not None]
    return PerVideo(sum(x.videos for x in parts), tuple(v for x in parts for v in x.evaluated),
                    tuple(v for x in parts for v in x.top1), tuple(v for x in parts for v in x.top5)).to_dict()


def _pooled_row(rows: list[HypRec]) -> HypRec:
    """Replica 0's row carrying the figures of all its trained replicas (the strategy's view)."""
    h = rows[0]
    if any(x.state not in TERMINAL_HYP for x in rows):
        return _pooled_rungs(replace(h, state=HypState.RUNNING) if h.state in TERMINAL_HYP else h, rows)
    done = [x for x in rows if x.state == HypState.DONE and x.top1 is not None]
    out = h
    if h.state == HypState.DONE and done:
        results = [json.loads(x.result or "{}") for x in done]
        merged = {**results[0], "per_video": _concat([_per_video(r.get("per_video")) for r in results]),
                  "replicas": len(done)}
        out = replace(h, top1=statistics.fmean(x.top1 or 0.0 for x in done),
                      top5=statistics.fmean(x.top5 or 0.0 for x in done), result=json.dumps(merged),
                      eval_videos=sum(x.eval_videos or 0 for x in done) or None)
    return _pooled_rungs(out, rows)


def _pooled_rungs(h: HypRec, rows: list[HypRec]) -> HypRec:
    """Rung scores: a rung's mean over the replicas, once every replica still training has reached it."""
    racing = [x for x in rows if x.state in (HypState.PLANNED, HypState.RUNNING, HypState.DONE, HypState.STOPPED)]
    if h.rung is None or not racing:
        return h
    scores = []
    for k in sorted({s.rung for s in h.rung_scores}):
        at = [x.score(k) for x in racing]
        if any(s is None for s in at):
            continue
        got = [s for s in at if s is not None]
        scores.append({"rung": k, "top1": statistics.fmean(s.top1 for s in got),
                       "top5": statistics.fmean(s.top5 for s in got), "steps": got[0].steps,
                       "total_steps": got[0].total_steps,
                       "eval_videos": sum(s.eval_videos or 0 for s in got) or None,
                       "per_video": _concat([_per_video(s.per_video) for s in got])})
    return replace(h, rung_results=json.dumps(scores) if scores else None)


def pooled(snap: Snapshot) -> Snapshot:
    """The snapshot as the strategy sees it with replicas: each ``pas`` row pooled over its replicas."""
    if not any(h.kind == KIND for h in snap.hypotheses):
        return snap
    rows = tuple(_pooled_row(replicas_of(snap, h)) if h.kind == "pas" else h for h in snap.hypotheses)
    return Snapshot(snap.search, rows)


@dataclass(frozen=True)
class Replicated:
    """A strategy deciding on the replicas' pooled figures; a rung decision takes each hypothesis' replicas
    with it (promoted or stopped together)."""

    inner: Strategy
    replicas: int

    @property
    def name(self) -> str:
        return f"{self.inner.name}, {self.replicas} replicas"

    def advance(self, snap: Snapshot) -> list[Action]:
        return [self._with_replicas(a, snap) for a in self.inner.advance(pooled(snap))]

    @staticmethod
    def _with_replicas(action: Action, snap: Snapshot) -> Action:
        if not isinstance(action, PromoteRung):
            return action
        by_id = {h.id: h for h in snap.hypotheses}

        def others(hid: int) -> list[HypRec]:
            return [x for x in replicas_of(snap, by_id[hid])[1:] if x.state not in TERMINAL_HYP]

        promoted = tuple(i for hid in action.promoted for i in (hid, *(x.id for x in others(hid))))
        stopped = tuple(s for hid, why in action.stopped for s in ((hid, why), *((x.id, why) for x in others(hid))))
        return replace(action, promoted=promoted, stopped=stopped)


# ---------------------------------------------------------------- what status and the report show


@dataclass(frozen=True)
class Summary:
    """A network over its replicas."""

    top1: tuple[float, ...]  # each trained replica's, by replica number (None-free)
    mean: float
    sd: float | None  # sample standard deviation (None with one replica)
    p_beats_winner: float | None  # None: the winner itself, B, or no replica in common

    def to_dict(self) -> dict[str, object]:
        return {"count": len(self.top1), "top1": list(self.top1), "mean": self.mean, "sd": self.sd,
                "p_beats_winner": self.p_beats_winner}


def _top1_by_replica(snap: Snapshot, h: HypRec) -> dict[int, float]:
    return {source_op(x.op)[1]: x.top1 for x in replicas_of(snap, h)
            if x.state == HypState.DONE and x.top1 is not None}


def summary(snap: Snapshot, h: HypRec) -> Summary | None:
    """``h`` (a ``pas`` row) over its trained replicas; None where the search has no replicas or none trained."""
    if h.kind != "pas" or not any(x.kind == KIND for x in snap.hypotheses):
        return None
    mine = _top1_by_replica(snap, h)
    if not mine:
        return None
    values = tuple(mine[r] for r in sorted(mine))
    w = snap.winner(h.iteration) if h.iteration > 0 else None
    p = None
    if w is not None and w.id != h.id:
        theirs = _top1_by_replica(snap, w)
        both = sorted(set(mine) & set(theirs))
        if both:
            p = sum(1.0 if mine[r] > theirs[r] else 0.5 if mine[r] == theirs[r] else 0.0 for r in both) / len(both)
    return Summary(values, statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, p)


HEAD = ("iter", "op", "path", "replicas", "top-1 % each", "mean %", "sd", "P(beats winner)")
NOTE = ("replica r trains with the search's seed + r; each iteration chose on the replicas' mean. P(beats winner): the "
        "share of replicas in which the network has a higher top-1 than its iteration's winner (ties count 1/2)")


def table_rows(snap: Snapshot) -> list[list[str]]:
    """Each network over its replicas (``HEAD``'s columns), [] without replicas."""
    rows = []
    for h in snap.hypotheses:
        sm = summary(snap, h)
        if sm is None:
            continue
        rows.append([str(h.iteration), h.op, h.path or "-", str(len(sm.top1)), " ".join(f"{t:.1f}" for t in sm.top1),
                     f"{sm.mean:.2f}", "-" if sm.sd is None else f"{sm.sd:.2f}",
                     "winner" if h.winner else "-" if sm.p_beats_winner is None else f"{sm.p_beats_winner:.2f}"])
    return rows


def wrap(strategy: Strategy, replicas: int) -> Strategy:
    return strategy if replicas <= 1 else Replicated(strategy, replicas)
