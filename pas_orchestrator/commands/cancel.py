"""``pas cancel``: stop a search: its controller (if it runs on this host), then every job it has
queued or running (scancel; local jobs: their whole process group, SIGTERM then SIGKILL, checked);
unfinished hypotheses become CANCELLED. Running ``pas search`` again later resumes it (trainings
restart from their last checkpoints)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import time
from pathlib import Path

from pas_models.errors import PasError
from pas_models.layout import RunLayout


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cancel", help="cancel a search and its jobs", description=__doc__)
    p.add_argument("--search", help="search name (default: the latest under --runs)")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--cluster", help="profile (default: the one the search was started with)")
    p.set_defaults(func=run)


def _stop_controller(ledger, holder: tuple[str, int, float] | None, wait_s: float = 60.0) -> str:  # type: ignore[no-untyped-def]
    """Stop the controller that held the lease when the cancellation was recorded (``holder``, read just
    before): on this host by SIGTERM (it also stops by itself at its next poll, as it sees the cancelled
    search), on another host it stops at its next poll. Returns what happened, for the user."""
    from pas_orchestrator.ledger.store import LEASE_STALE_SECONDS

    if holder is None:
        return ""
    host, pid, heartbeat = holder
    if host != socket.gethostname():
        return f"; its controller (pid {pid} on {host}) stops at its next poll"
    quiet = time.time() - heartbeat
    if quiet > LEASE_STALE_SECONDS:  # a lease left by a killed controller: its pid may belong to another process
        return f"; its controller (pid {pid}, no heartbeat for {quiet:.0f} s) stops at its next poll if it still runs"
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:  # gone already: stopped by itself on seeing the cancellation (lease released)
        return "; its controller stopped" if ledger.lease_holder() is None else ""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:  # a controller stopped by SIGTERM releases its lease on the way out
        if ledger.lease_holder() is None:
            return "; its controller stopped"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "; its controller stopped"
        time.sleep(0.2)
    raise PasError(f"controller pid {pid} did not stop within {wait_s:.0f} s (the search is cancelled in its "
                   f"ledger): kill {pid}")


def _keep_finished(ledger, definition: dict) -> list[str]:  # type: ignore[no-untyped-def]
    """Ingest the results active attempts have written (a job that finished after its controller died): their
    hypotheses end DONE, not CANCELLED. The labels of those kept."""
    from pas_models.halving import RungResult
    from pas_orchestrator.config.recorded import recorded_rungs
    from pas_orchestrator.core.actions import IngestResult, IngestRung
    from pas_orchestrator.errors import LedgerConflict
    from pas_orchestrator.kinds import read_result
    from pas_orchestrator.ledger.states import ACTIVE_ATTEMPT

    rungs, kept = recorded_rungs(definition), []
    for h in ledger.snapshot().hypotheses:
        for a in h.attempts:
            if a.state not in ACTIVE_ATTEMPT or a.job_id is None:
                continue
            result = read_result(h, a, rungs)
            if result is None or isinstance(result, str):  # none, or invalid: cancelled with the rest
                continue
            action = IngestRung(h.id, a.id, result) if isinstance(result, RungResult) else \
                IngestResult(h.id, a.id, result)
            try:
                ledger.apply(action)
            except LedgerConflict:  # its controller still runs and got there first
                continue
            kept.append(h.label)
    return kept


def run(args: argparse.Namespace) -> int:
    from pas_orchestrator.config.cluster import load_profile
    from pas_orchestrator.core.actions import CancelSearch
    from pas_orchestrator.executors import make_executor
    from pas_orchestrator.executors.base import JobRef
    from pas_orchestrator.ledger.store import Ledger
    from pas_orchestrator.runs import find_ledger

    path = find_ledger(args.runs, args.search)
    ledger = Ledger(path)
    try:
        rec = ledger.search()
        profile = load_profile(args.cluster or rec.cluster)
        backbone = json.loads(rec.definition)["backbone"]
        # the controller, read before the cancellation: once it is recorded, a running controller may see it,
        # stop and release its lease before we look again
        holder = ledger.lease_holder()
        # results that came in while no controller ingested them are kept, not cancelled
        kept = _keep_finished(ledger, json.loads(rec.definition))
        # recorded first (one transaction): a controller still running sees it and submits nothing more
        active = ledger.apply(CancelSearch("cancelled by pas cancel")).attempts
        controller = _stop_controller(ledger, holder)
        jobs = [JobRef(a.batch, a.job_id) for a in active if a.job_id]
        alive = make_executor(profile, RunLayout(path.parent), backbone).cancel(jobs)
        if alive:
            raise PasError(f"search {rec.name} cancelled, but job(s) {', '.join(alive)} did not stop: kill them "
                           "by hand (kill -KILL -- -PGID)")
        print(f"search {rec.name} cancelled{controller}; {len(jobs)} job(s) cancelled"
              + (f"; {len(kept)} finished result{'s' if len(kept) != 1 else ''} kept ({', '.join(kept)})"
                 if kept else ""))
    finally:
        ledger.close()
    return 0
