"""The search ledger (SQLite via SQLAlchemy 2): states, tables, and the store that is their only writer."""

from pas_orchestrator.ledger.records import AttemptRec, EventRec, HypRec, SearchRec, Snapshot
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState
from pas_orchestrator.ledger.store import Ledger, NewHypothesis

__all__ = ["AttemptRec", "AttemptState", "EventRec", "HypRec", "HypState", "Ledger", "NewHypothesis",
           "SearchRec", "SearchState", "Snapshot"]
