"""Finding a search under ``runs/`` and reading it: what every command that looks at a search uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pas_models.errors import PasError
from pas_models.layout import LEDGER, RunLayout, search_ledgers
from pas_orchestrator.ledger.records import Snapshot


def find_ledger(runs: Path, name: str | None) -> Path:
    """The ledger of search ``name``; without a name, that of the search active most recently (by the
    ledger's own record of activity: its controller's heartbeat and last event)."""
    from pas_orchestrator.ledger.store import Ledger

    if name:
        path = RunLayout.of(runs, name).ledger
        if not path.is_file():
            known = sorted(p.parent.name for p in search_ledgers(runs))
            raise PasError(f"no search {name!r} under {runs}/ (known: {', '.join(known) or 'none'})")
        return path
    ledgers = search_ledgers(runs)
    if not ledgers:
        raise PasError(f"no search under {runs}/: start one with `pas search --job jobs/NAME.yaml`")
    if len(ledgers) == 1:
        return ledgers[0]

    def activity(path: Path) -> float:
        try:
            ledger = Ledger(path, readonly=True)
        except PasError:
            return -1.0  # not a readable pas ledger: never "the latest"
        try:
            return ledger.last_activity()
        except PasError:
            return -1.0
        finally:
            ledger.close()

    return max(ledgers, key=lambda p: (activity(p), p.name))


def read_snapshot(runs: Path, name: str | None) -> tuple[Path, Snapshot]:
    """(ledger path, snapshot) of a search, read-only: commands that only look use this."""
    from pas_orchestrator.ledger.store import Ledger

    path = find_ledger(runs, name)
    ledger = Ledger(path, readonly=True)
    try:
        return path, ledger.snapshot()
    finally:
        ledger.close()


def _same_path(a: Any, b: Any) -> bool:
    if not (isinstance(a, str) and isinstance(b, str) and os.sep in a and os.sep in b):
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def definition_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The keys whose values differ between two recorded definitions, as ``key: old -> new``; a path that
    names the same file or folder (a symlink, another spelling) is not a change."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{where}: (absent) -> {new[key]!r}")
            elif key not in new:
                out.append(f"{where}: {old[key]!r} -> (absent)")
            else:
                out += definition_changes(old[key], new[key], where)
        return out
    if old == new or _same_path(old, new):
        return []
    return [f"{prefix}: {old!r} -> {new!r}"]


__all__ = ["LEDGER", "definition_changes", "find_ledger", "read_snapshot"]
