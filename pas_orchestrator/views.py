"""What a person reads of a search: the status table and its JSON form (pure: from a snapshot)."""

from __future__ import annotations

import json
import time

from pas_orchestrator.core.decide import MEASURE
from pas_orchestrator.ledger import AttemptRec, HypRec, Snapshot
from pas_orchestrator.ledger.states import ACTIVE_ATTEMPT
from pas_orchestrator.table import format_table


def _elapsed(start: float | None, end: float | None) -> str:
    if start is None:
        return "-"
    s = int((end or time.time()) - start)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _scheduler(a: AttemptRec | None) -> str:
    """What the scheduler last said of an attempt: ``PENDING (Resources)``, ``RUNNING node2``,
    ``COMPLETED node1, requeued 1x``."""
    if a is None or a.scheduler_state is None:
        return "-"
    text = a.scheduler_state
    if a.reason and a.state in ACTIVE_ATTEMPT and a.scheduler_state != "RUNNING":  # why it waits
        text += f" ({a.reason})"
    elif a.node and a.node != "localhost":
        text += f" {a.node}"
    return text + (f", requeued {a.requeues}x" if a.requeues else "")


def render(snap: Snapshot) -> str:
    rows = []
    for h in snap.hypotheses:
        last = h.attempts[-1] if h.attempts else None
        job = "-" if last is None or last.job_id is None else last.job_id
        rows.append([h.iteration, h.op + (" (scratch)" if h.kind == "baseline" else ""), h.path or "-",
                     h.state.value + (" *" if h.winner else ""), job, _scheduler(last), len(h.attempts),
                     _elapsed(last.started_at or last.submitted_at, last.ended_at) if last else "-",
                     "-" if h.top1 is None else f"{h.top1:.2f}", "-" if h.top5 is None else f"{h.top5:.2f}",
                     "-" if h.gflops is None else f"{h.gflops:.4g}", h.reason if h.reason and not h.top1 else ""])
    s = snap.search
    head = (f"search {s.name} on {s.cluster}: {s.state.value}" + (f" ({s.error})" if s.error else "")
            + f", started {time.strftime('%Y-%m-%d %H:%M', time.localtime(s.created_at))}, "
            + f"elapsed {_elapsed(s.created_at, s.ended_at)}")
    table = format_table(["iter", "op", "path", "state", "job", "scheduler", "tries", "elapsed", "top-1 %", "top-5 %",
                          "GFLOPs/view", "note"], rows)
    return head + "\n" + table


def _attempts(h: HypRec) -> list[dict]:
    return [{"number": a.number, "job_name": a.job_name, "job_id": a.job_id, "state": a.state.value,
             "scheduler_state": a.scheduler_state, "reason": a.reason, "requeues": a.requeues, "node": a.node,
             "submitted_at": a.submitted_at, "started_at": a.started_at, "ended_at": a.ended_at}
            for a in h.attempts]


def as_json(snap: Snapshot) -> dict:
    """The search; ``hypotheses``: the networks (B, the hypotheses, baselines); ``measurements``: the
    latency measurement jobs (one per iteration), with their timings once done."""
    s = snap.search
    return {"name": s.name, "cluster": s.cluster, "state": s.state.value, "error": s.error,
            "created_at": s.created_at, "ended_at": s.ended_at,
            "hypotheses": [{"iteration": h.iteration, "op": h.op, "kind": h.kind, "path": h.path,
                            "state": h.state.value, "winner": h.winner, "reason": h.reason, "top1": h.top1,
                            "top5": h.top5, "gflops": h.gflops, "params": h.params, "out_dir": h.out_dir,
                            "attempts": _attempts(h)}
                           for h in snap.hypotheses if h.kind != MEASURE],
            "measurements": [{"iteration": h.iteration, "state": h.state.value, "reason": h.reason,
                              "out_dir": h.out_dir, "attempts": _attempts(h),
                              "timings": json.loads(h.result)["timings"] if h.result else None}
                             for h in snap.hypotheses if h.kind == MEASURE]}
