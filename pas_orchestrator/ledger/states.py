"""Lifecycles of searches, hypotheses and attempts: one Enum each and one table of allowed transitions.

    hypothesis:  PLANNED --> RUNNING --> DONE
                    |           +------> FAILED      (retries exhausted)
                    |           +------> STOPPED     (successive halving: not promoted at a rung)
                    +-----------+------> CANCELLED
                 NOT_APPLICABLE          (recorded at planning, with the reason)

    attempt:     CREATED --> SUBMITTED --> RUNNING --> COMPLETED
                    |            |            +------> FAILED (reason: FAILED, NODE_FAIL, OUT_OF_MEMORY, ...)
                    |            +-------------------> COMPLETED / FAILED (finished between two polls)
                    |            +------------+------> INTERRUPTED (Ctrl-C / SIGTERM / scancel: no retry spent)
                    +--> ABANDONED   (never reached the scheduler: found neither by name nor by id)
                    +--> CANCELLED   (and from SUBMITTED / RUNNING)

A retry is a new attempt row; finished rows are never rewritten. Only FAILED attempts count
against ``max_retries``. ``Ledger.apply`` is the only place that changes a state, always through
``check``, and only from the state the action expects (compare-and-set).
"""

from __future__ import annotations

import enum

from pas_orchestrator.errors import LedgerError


class SearchState(enum.Enum):
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class HypState(enum.Enum):
    PLANNED = "PLANNED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    NOT_APPLICABLE = "NOT_APPLICABLE"
    CANCELLED = "CANCELLED"
    STOPPED = "STOPPED"


class AttemptState(enum.Enum):
    CREATED = "CREATED"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    ABANDONED = "ABANDONED"
    CANCELLED = "CANCELLED"
    INTERRUPTED = "INTERRUPTED"


TRANSITIONS: dict[type[enum.Enum], dict[enum.Enum, frozenset[enum.Enum]]] = {
    SearchState: {
        SearchState.RUNNING: frozenset({SearchState.DONE, SearchState.FAILED, SearchState.CANCELLED}),
        SearchState.CANCELLED: frozenset({SearchState.RUNNING}),  # `pas search` again resumes it
        SearchState.FAILED: frozenset({SearchState.RUNNING}),
        SearchState.DONE: frozenset(),
    },
    HypState: {
        HypState.PLANNED: frozenset({HypState.RUNNING, HypState.CANCELLED}),
        HypState.RUNNING: frozenset({HypState.DONE, HypState.FAILED, HypState.CANCELLED, HypState.STOPPED}),
        HypState.CANCELLED: frozenset({HypState.PLANNED}),  # resumed after `pas cancel`
        HypState.DONE: frozenset(),
        HypState.FAILED: frozenset(),
        HypState.NOT_APPLICABLE: frozenset(),
        HypState.STOPPED: frozenset(),
    },
    AttemptState: {
        AttemptState.CREATED: frozenset({AttemptState.SUBMITTED, AttemptState.ABANDONED, AttemptState.CANCELLED}),
        AttemptState.SUBMITTED: frozenset({AttemptState.RUNNING, AttemptState.COMPLETED, AttemptState.FAILED,
                                           AttemptState.CANCELLED, AttemptState.INTERRUPTED}),
        AttemptState.RUNNING: frozenset({AttemptState.COMPLETED, AttemptState.FAILED, AttemptState.CANCELLED,
                                         AttemptState.INTERRUPTED}),
        AttemptState.COMPLETED: frozenset(),
        AttemptState.FAILED: frozenset(),
        AttemptState.ABANDONED: frozenset(),
        AttemptState.CANCELLED: frozenset(),
        AttemptState.INTERRUPTED: frozenset(),
    },
}

TERMINAL_HYP = frozenset({HypState.DONE, HypState.FAILED, HypState.NOT_APPLICABLE, HypState.CANCELLED,
                          HypState.STOPPED})
ACTIVE_ATTEMPT = frozenset({AttemptState.CREATED, AttemptState.SUBMITTED, AttemptState.RUNNING})


def allowed(old: enum.Enum, new: enum.Enum) -> bool:
    return new in TRANSITIONS[type(old)][old]


def check(what: str, old: enum.Enum, new: enum.Enum) -> None:
    """LedgerError unless ``old -> new`` is in the table (a bug, never a user error)."""
    if not allowed(old, new):
        raise LedgerError(f"{what}: illegal state change {old.value} -> {new.value}")
