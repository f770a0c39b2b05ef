"""``pas status``: the search tree: iteration x operator -> state, job, attempts, elapsed,
top-1 / top-5, GFLOPs per view; ``*`` marks each iteration's winner."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

from pas_orchestrator.views import as_json, controller_line, render


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the state of a search", description=__doc__)
    p.add_argument("--search", help="search name (default: the only one, or the latest under --runs)")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--json", action="store_true", help="machine-readable output (indented at a terminal)")
    p.add_argument("--study", action="store_true", help="the studies run on the search (`pas study`) instead")
    p.add_argument("--watch", type=float, nargs="?", const=5.0, metavar="SECONDS", help="refresh until Ctrl-C")
    p.set_defaults(func=run)


def _alive(holder: tuple[str, int, float] | None) -> bool | None:
    """Whether the lease holder's pid lives, where it runs on this host (None: another host, or no holder)."""
    if holder is None or holder[0] != socket.gethostname():
        return None
    try:
        os.kill(holder[1], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def run(args: argparse.Namespace) -> int:
    from pas_orchestrator.ledger.store import Ledger
    from pas_orchestrator.runs import find_ledger

    path = find_ledger(args.runs, args.search)
    while True:
        ledger = Ledger(path, readonly=True)
        try:
            snap = ledger.snapshot()
            holder = ledger.lease_holder()
        finally:
            ledger.close()
        if args.json:
            # indented for a person at a terminal; compact otherwise (json's C encoder: 10x faster on
            # a 10,000-attempt ledger, which is what scripts and `watch` pay)
            print(json.dumps(as_json(snap), indent=2 if sys.stdout.isatty() else None))
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(render(snap, studies=args.study))
            print(controller_line(holder, _alive(holder), snap.search.state))
        if not args.watch:
            return 0
        time.sleep(args.watch)
