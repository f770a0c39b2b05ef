"""``pas report``: the paper-style table (runs/NAME/report/table.md) and the accuracy-vs-GFLOPs plot
(runs/NAME/report/pareto.png) of a search; the table is printed too."""

from __future__ import annotations

import argparse
from pathlib import Path

from pas_models.layout import RunLayout
from pas_orchestrator.report import write_report
from pas_orchestrator.runs import read_snapshot


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="table and plot of a search", description=__doc__)
    p.add_argument("--search", help="search name (default: the latest under --runs)")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path, snap = read_snapshot(args.runs, args.search)
    files = write_report(snap, RunLayout(path.parent).report)
    print(files["table"].read_text())
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0
