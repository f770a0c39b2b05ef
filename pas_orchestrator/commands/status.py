"""``pas status``: the search tree: iteration x operator -> state, job, attempts, elapsed,
top-1 / top-5, GFLOPs per view; ``*`` marks each iteration's winner."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pas_models.errors import PasError
from pas_orchestrator.ledger import AttemptRec, Ledger, Snapshot
from pas_orchestrator.table import format_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the state of a search", description=__doc__)
    p.add_argument("--search", help="search name (default: the only one, or the latest under --runs)")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", type=float, nargs="?", const=5.0, metavar="SECONDS", help="refresh until Ctrl-C")
    p.set_defaults(func=run)


def find_ledger(runs: Path, name: str | None) -> Path:
    if name:
        path = runs / name / "ledger.sqlite"
        if not path.is_file():
            known = sorted(p.parent.name for p in runs.glob("*/ledger.sqlite"))
            raise PasError(f"no search {name!r} under {runs}/ (known: {', '.join(known) or 'none'})")
        return path
    ledgers = sorted(runs.glob("*/ledger.sqlite"), key=lambda p: p.stat().st_mtime)
    if not ledgers:
        raise PasError(f"no search under {runs}/: start one with `pas search --job jobs/NAME.yaml`")
    return ledgers[-1]


def read_snapshot(runs: Path, name: str | None) -> tuple[Path, Snapshot]:
    """(ledger path, snapshot) of a search, read-only: commands that only look use this."""
    path = find_ledger(runs, name)
    ledger = Ledger(path, readonly=True)
    try:
        return path, ledger.snapshot()
    finally:
        ledger.close()


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
    if a.scheduler_state == "PENDING":
        text += f" ({a.reason})" if a.reason else ""
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


def as_json(snap: Snapshot) -> dict:
    s = snap.search
    return {"name": s.name, "cluster": s.cluster, "state": s.state.value, "error": s.error,
            "created_at": s.created_at, "ended_at": s.ended_at,
            "hypotheses": [{"iteration": h.iteration, "op": h.op, "kind": h.kind, "path": h.path,
                            "state": h.state.value, "winner": h.winner, "reason": h.reason, "top1": h.top1,
                            "top5": h.top5, "gflops": h.gflops, "params": h.params, "out_dir": h.out_dir,
                            "attempts": [{"number": a.number, "job_name": a.job_name, "job_id": a.job_id,
                                          "state": a.state.value, "scheduler_state": a.scheduler_state,
                                          "reason": a.reason, "requeues": a.requeues, "node": a.node,
                                          "submitted_at": a.submitted_at, "started_at": a.started_at,
                                          "ended_at": a.ended_at} for a in h.attempts]}
                           for h in snap.hypotheses]}


def run(args: argparse.Namespace) -> int:
    path = find_ledger(args.runs, args.search)
    while True:
        ledger = Ledger(path, readonly=True)
        try:
            snap = ledger.snapshot()
            holder = ledger.lease_holder()
        finally:
            ledger.close()
        if args.json:
            print(json.dumps(as_json(snap), indent=2))
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(render(snap))
            if holder:
                print(f"controller: pid {holder[1]} on {holder[0]}, heartbeat {time.time() - holder[2]:.0f} s ago")
            else:
                print("controller: not running (resume with the same `pas search` command)")
        if not args.watch:
            return 0
        time.sleep(args.watch)
