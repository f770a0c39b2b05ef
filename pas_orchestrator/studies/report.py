"""A study's table files, next to the search's report."""

from __future__ import annotations

from pathlib import Path

from pas_orchestrator.ledger.records import Snapshot
from pas_orchestrator.studies import Study


def write_study(study: Study, snap: Snapshot, out: Path) -> dict[str, Path]:
    """``report/study-SLUG.md`` and ``.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    table = study.table(snap)
    files = {"table": out / f"study-{study.slug}.md", "csv": out / f"study-{study.slug}.csv"}
    files["table"].write_text(table.markdown())
    files["csv"].write_text(table.csv())
    return files
