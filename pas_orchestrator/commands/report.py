"""``pas report``: the paper-style table (runs/NAME/report/table.md) and the accuracy-vs-GFLOPs plot
(runs/NAME/report/pareto.png) of a search; the table is printed too. Each study run on the search
(`pas study`) gets its table again (report/study-SLUG.md and .csv)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pas_models.errors import PasError
from pas_models.layout import RunLayout
from pas_orchestrator.report_compare import compare_markdown, plot_compare
from pas_orchestrator.runs import read_snapshot


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="table and plot of a search", description=__doc__)
    p.add_argument("--search", help="search name (default: the latest under --runs)")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--compare", action="append", default=[], metavar="OTHER",
                   help="another search of the same base (e.g. a PAS search next to a gradient one): its networks "
                        "on the same table and figure (report/compare-OTHER.md, .png); repeatable")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pas_orchestrator.ledger.store import Ledger
    from pas_orchestrator.report_html import refresh

    path, snap = read_snapshot(args.runs, args.search)
    out = RunLayout(path.parent).report
    ledger = Ledger(path, readonly=True)
    try:
        files = refresh(ledger, out)
    finally:
        ledger.close()
    print(files["table"].read_text())
    from pas_orchestrator.studies.registry import studies_in
    from pas_orchestrator.studies.report import write_study

    for study in studies_in(snap):
        for what, path in write_study(study, snap, out).items():
            files[f"{study.slug}-{what}"] = path
    if args.compare:
        others = [read_snapshot(args.runs, name)[1] for name in args.compare]
        bases = {s.iteration(0)[0].spec for s in [snap, *others] if s.iteration(0)}
        if len(bases) > 1:
            raise PasError(f"--compare: {', '.join(args.compare)} and {snap.search.name} do not share one base "
                           "network (their B specs differ): nothing to compare")
        stem = "compare-" + "-".join(args.compare)
        files["compare"] = out / f"{stem}.md"
        files["compare"].write_text(compare_markdown([snap, *others]))
        files["compare_plot"] = out / f"{stem}.png"
        plot_compare([snap, *others], files["compare_plot"])
        print(files["compare"].read_text())
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0
