"""What a person reads of a search: the status table and its JSON form (pure: from a snapshot)."""

from __future__ import annotations

import json
import time

from pas_orchestrator import replicas
from pas_orchestrator.comparisons import against
from pas_orchestrator.kinds import CACHE_SHARD, MEASUREMENT, cache_shard
from pas_orchestrator.ledger import AttemptRec, HypRec, Snapshot
from pas_orchestrator.ledger.records import LEASE_STALE_SECONDS, STUDY_PREFIX, is_study
from pas_orchestrator.ledger.states import ACTIVE_ATTEMPT, SearchState
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


def rungs_of(snap: Snapshot) -> int | None:
    """The search's number of halving rungs (None: no halving), from its recorded definition."""
    try:
        halving = json.loads(snap.search.definition).get("halving")
    except (ValueError, AttributeError):
        return None
    return int(halving["rungs"]) if isinstance(halving, dict) and "rungs" in halving else None


def tries(h: HypRec) -> int:
    """Attempts at the hypothesis' current rung (all of them without halving): 1, or more after retries and
    requeued replacements; its earlier rungs are not tries (the rung column shows them)."""
    if not h.attempts:
        return 0
    return sum(1 for a in h.attempts if a.rung == h.attempts[-1].rung)


def _rung(h: HypRec, rungs: int | None) -> str:
    """``2/3``, ``stopped@1``, or ``-`` (no halving for this hypothesis)."""
    if h.stopped_rung is not None:
        return f"stopped@{h.stopped_rung}"
    if h.rung is None or rungs is None:
        return "-"
    return f"{h.rung}/{rungs}"


def controller_line(holder: tuple[str, int, float] | None, alive: bool | None, state: SearchState,
                    now: float | None = None) -> str:
    """What `pas status` says of the controller: the lease's holder (host, pid, heartbeat time), whether its pid
    lives (None: another host, not known), the search's state."""
    now = time.time() if now is None else now
    resume = ("the search is done" if state == SearchState.DONE else
              f"the search is {state.value.lower()}: resume" if state != SearchState.RUNNING else "resume")
    resume += " with the same `pas search` command" if state != SearchState.DONE else ""
    if holder is None:
        return f"controller: not running ({resume})"
    host, pid, beat = holder
    quiet = now - beat
    if alive is False:
        return (f"controller: not running (pid {pid} on {host} ended without releasing its lease, last heartbeat "
                f"{quiet:.0f} s ago; {resume})")
    if quiet > LEASE_STALE_SECONDS:
        return (f"controller: pid {pid} on {host}, no heartbeat for {quiet:.0f} s: probably not running (the next "
                "`pas search` takes its lease over)")
    line = f"controller: pid {pid} on {host}, heartbeat {quiet:.0f} s ago"
    if state != SearchState.RUNNING:
        line += f" (the search is {state.value.lower()}: it stops at its next poll)"
    return line


def render(snap: Snapshot, studies: bool = False) -> str:
    """The search's rows (and a line per study run on it), or with ``studies`` the studies' rows."""
    rows = []
    rungs = None if studies else rungs_of(snap)
    for h in snap.hypotheses:
        if is_study(h.kind) != studies:
            continue
        last = h.attempts[-1] if h.attempts else None
        job = "-" if last is None or last.job_id is None else last.job_id
        scores = h.rung_scores
        row = [h.iteration, h.op + (" (scratch)" if h.kind == "baseline" else ""), h.path or "-",
               h.state.value + (" *" if h.winner else ""), job, _scheduler(last), tries(h),
               _elapsed(last.started_at or last.submitted_at, last.ended_at) if last else "-"]
        if rungs is not None:
            row += [_rung(h, rungs), " ".join(f"{x.top1:.1f}" for x in scores) or "-"]
        used = [a.compute_hours for a in h.attempts if a.compute_hours is not None]
        row += [f"{sum(used):.3g}" if used else "-"]
        ci = h.top1_interval
        row += ["-" if h.top1 is None else f"{h.top1:.2f}", "-" if ci is None else f"{ci[0]:.1f}-{ci[1]:.1f}",
                "-" if h.top5 is None else f"{h.top5:.2f}",
                "-" if h.gflops is None else f"{h.gflops:.4g}",
                h.reason if h.reason and not h.top1 and h.stopped_rung is None else ""]
        rows.append(row)
    s = snap.search
    used = snap.compute(studies)
    head = (f"search {s.name} on {s.cluster}: {s.state.value}" + (f" ({s.error})" if s.error else "")
            + f", started {time.strftime('%Y-%m-%d %H:%M', time.localtime(s.created_at))}, "
            + f"elapsed {_elapsed(s.created_at, s.ended_at)}, compute "
            + (" + ".join(f"{v:.3g} {k}" for k, v in sorted(used.items())) or "-"))
    if studies:
        head = f"studies of search {s.name}, compute " + (" + ".join(f"{v:.3g} {k}" for k, v in
                                                                     sorted(used.items())) or "-")
    cols = ["iter", "study" if studies else "op", "path", "state", "job", "scheduler", "tries", "elapsed"]
    if studies:
        for r, h in zip(rows, [h for h in snap.hypotheses if is_study(h.kind)], strict=True):
            r[1] = f"{h.kind.removeprefix(STUDY_PREFIX)} {h.op}"
    if rungs is not None:
        cols += ["rung", "rung top-1 %"]
    unit = "/".join(sorted(used)) or "GPU-h"
    table = format_table([*cols, unit, "top-1 %", "95% CI", "top-5 %", "GFLOPs/view", "note"], rows)
    if not studies:
        table += replicas_table(snap) + _studies_line(snap)
    return head + "\n" + table


def replicas_table(snap: Snapshot) -> str:
    """With replicas: each network over its replicas (what its iteration's choice was made on), "" without."""
    rows = replicas.table_rows(snap)
    if not rows:
        return ""
    return f"\n\nreplicas ({replicas.NOTE}):\n" + format_table(list(replicas.HEAD), rows)


def _studies_line(snap: Snapshot) -> str:
    """One line naming the studies run on the search, with their states (`pas status --study` shows them)."""
    by: dict[tuple[str, int], list[HypRec]] = {}
    for h in snap.hypotheses:
        if is_study(h.kind):
            by.setdefault((h.kind.removeprefix(STUDY_PREFIX), h.iteration), []).append(h)
    if not by:
        return ""
    parts = []
    for (name, it), hs in by.items():
        done = sum(1 for h in hs if h.state.value == "DONE")
        parts.append(f"{name} at iteration {it} ({done} of {len(hs)} trainings done)")
    return "\nstudies: " + "; ".join(parts) + " (pas status --study)"


def _attempts(h: HypRec) -> list[dict]:
    return [{"number": a.number, "job_name": a.job_name, "job_id": a.job_id, "state": a.state.value, "rung": a.rung,
             "scheduler_state": a.scheduler_state, "reason": a.reason, "requeues": a.requeues, "node": a.node,
             "submitted_at": a.submitted_at, "started_at": a.started_at, "ended_at": a.ended_at,
             "compute_hours": a.compute_hours, "compute_unit": a.compute_unit}
            for a in h.attempts]


def _vs_winners(snap: Snapshot) -> dict[int, dict]:
    """Each trained hypothesis against its iteration's winner on the same videos, by hypothesis id (none for the
    winner itself, or where either has no per-video record)."""
    winners = {h.iteration: h for h in snap.hypotheses if h.winner and h.iteration > 0}
    out: dict[int, dict] = {}
    for h in snap.hypotheses:
        w = winners.get(h.iteration)
        if w is None or w.id == h.id or h.top1 is None or h.kind != w.kind:
            continue
        c = against(w, h)
        if c is not None:
            out[h.id] = {"winner": w.op, "difference": c.difference, "interval": [c.low, c.high], "videos": c.n,
                         "p_value": c.p_value, "distinguishable": c.distinguishable}
    return out


def as_json(snap: Snapshot) -> dict:
    """The search; ``hypotheses``: the networks (B, the hypotheses, baselines); ``measurements``: the
    latency measurement jobs (one per iteration), with their timings once done; ``teacher_cache``: the
    shards of B's soft labels (``distill.cache``), with what each stored once done; ``studies``: the trainings of
    the studies run on the search (``pas study``), their compute in ``studies_compute_hours_by_unit`` (the search's
    totals leave them out)."""
    s = snap.search
    rungs = rungs_of(snap)
    used = snap.compute()
    studied = snap.compute(studies=True)
    versus = _vs_winners(replicas.pooled(snap))  # with replicas: over every replica's videos
    return {"name": s.name, "cluster": s.cluster, "state": s.state.value, "error": s.error,
            "created_at": s.created_at, "ended_at": s.ended_at,
            "compute_hours_total": sum(used.values()), "compute_hours_by_unit": used,
            "hypotheses": [{"iteration": h.iteration, "op": h.op, "kind": h.kind, "path": h.path,
                            "state": h.state.value, "winner": h.winner, "reason": h.reason, "top1": h.top1,
                            "top5": h.top5, "gflops": h.gflops, "params": h.params, "out_dir": h.out_dir,
                            "rung": h.rung, "rungs": rungs if h.rung is not None else None,
                            "rung_top1": [x.top1 for x in h.rung_scores], "stopped_at_rung": h.stopped_rung,
                            "eval_videos": h.eval_videos, "vs_winner": versus.get(h.id),
                            "top1_interval": list(ci) if (ci := h.top1_interval) is not None else None,
                            "top5_interval": list(c5) if (c5 := h.top5_interval) is not None else None,
                            "replicas": sm.to_dict() if (sm := replicas.summary(snap, h)) is not None else None,
                            "tries": tries(h), "attempts": _attempts(h)}
                           for h in snap.hypotheses
                           if h.kind not in (MEASUREMENT.name, CACHE_SHARD.name) and not is_study(h.kind)],
            "studies": [{"study": h.kind.removeprefix(STUDY_PREFIX), "iteration": h.iteration, "op": h.op,
                         "kind": h.kind, "path": h.path, "state": h.state.value, "reason": h.reason, "top1": h.top1,
                         "top5": h.top5, "eval_videos": h.eval_videos,
                         "top1_interval": list(ci) if (ci := h.top1_interval) is not None else None,
                         "top5_interval": list(c5) if (c5 := h.top5_interval) is not None else None,
                         "gflops": h.gflops, "out_dir": h.out_dir, "attempts": _attempts(h)}
                        for h in snap.hypotheses if is_study(h.kind)],
            "studies_compute_hours_by_unit": studied,
            "measurements": [{"iteration": h.iteration, "state": h.state.value, "reason": h.reason,
                              "out_dir": h.out_dir, "attempts": _attempts(h),
                              "timings": json.loads(h.result)["timings"] if h.result else None}
                             for h in snap.hypotheses if h.kind == MEASUREMENT.name],
            "teacher_cache": [{"shard": cache_shard(h.op), "state": h.state.value, "reason": h.reason,
                               "out_dir": h.out_dir, "attempts": _attempts(h),
                               "result": json.loads(h.result) if h.result else None}
                              for h in snap.hypotheses if h.kind == CACHE_SHARD.name]}
