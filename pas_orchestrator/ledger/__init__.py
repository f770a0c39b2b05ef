"""The search ledger (SQLite via SQLAlchemy 2): states, tables, and the store that is their only writer.

``Ledger`` is imported lazily (``pas_orchestrator.ledger.store``): the decision core imports the
records and states of this package, and the action handlers (handlers.py) import the core's actions.
"""

from typing import Any

from pas_orchestrator.ledger.records import AttemptRec, EventRec, HypRec, NewHypothesis, SearchRec, Snapshot
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState

__all__ = ["AttemptRec", "AttemptState", "EventRec", "HypRec", "HypState", "Ledger", "NewHypothesis",
           "SearchRec", "SearchState", "Snapshot"]


def __getattr__(name: str) -> Any:
    if name == "Ledger":
        from pas_orchestrator.ledger.store import Ledger

        return Ledger
    raise AttributeError(name)
