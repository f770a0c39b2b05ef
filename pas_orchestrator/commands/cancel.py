"""``pas cancel``: stop a search: its controller (if it runs on this host), then every job it has
queued or running (scancel / local processes); unfinished hypotheses become CANCELLED. Running
``pas search`` again later resumes it (trainings restart from their last checkpoints)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import time
from pathlib import Path

from pas_models.errors import PasError
from pas_orchestrator.commands.search import make_executor
from pas_orchestrator.commands.status import find_ledger
from pas_orchestrator.config.cluster import load_profile
from pas_orchestrator.executors.base import JobRef
from pas_orchestrator.ledger import Ledger


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cancel", help="cancel a search and its jobs", description=__doc__)
    p.add_argument("--search", help="search name (default: the latest under --runs)")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--cluster", help="profile (default: the one the search was started with)")
    p.set_defaults(func=run)


def _stop_controller(ledger: Ledger, wait_s: float = 60.0) -> None:
    holder = ledger.lease_holder()
    if holder is None:
        return
    host, pid, _ = holder
    if host != socket.gethostname():
        raise PasError(f"the controller runs on {host} (pid {pid}): stop it there first (kill {pid})")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return  # dead: its lease is taken over below
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:  # a controller stopped by SIGTERM releases its lease on the way out
        if ledger.lease_holder() is None:
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise PasError(f"controller pid {pid} did not stop within {wait_s:.0f} s")


def run(args: argparse.Namespace) -> int:
    path = find_ledger(args.runs, args.search)
    ledger = Ledger(path)
    try:
        _stop_controller(ledger)
        ledger.acquire_lease()
        rec = ledger.search()
        profile = load_profile(args.cluster or rec.cluster)
        backbone = json.loads(rec.definition)["backbone"]
        active = ledger.cancel_all("cancelled by pas cancel")
        jobs = [JobRef(a.batch, a.job_id) for a in active if a.job_id]
        make_executor(profile, path.parent, backbone).cancel(jobs)
        print(f"search {rec.name} cancelled; {len(jobs)} job(s) cancelled")
    finally:
        ledger.release_lease()
        ledger.close()
    return 0
