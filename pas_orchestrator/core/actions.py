"""What the decision core asks for: plain frozen dataclasses.

Ledger actions are applied by ``Ledger.apply`` (one transaction each, compare-and-set: an action
that expects a row in a state it is no longer in is refused with ``LedgerConflict``). Effect
actions (``PlanBase``, ``PlanIteration``, ``SubmitBatch``) are carried out by the controller,
which records what they produced through ledger actions again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pas_models.halving import RungResult
from pas_orchestrator.core.outcomes import JobOutcome
from pas_orchestrator.ledger.records import NewHypothesis
from pas_orchestrator.ledger.states import AttemptState, SearchState

if TYPE_CHECKING:
    from pas_orchestrator.kinds import Result

# ---------------------------------------------------------------- ledger actions


@dataclass(frozen=True)
class RecordJobIds:
    """Attempts (CREATED) reached the scheduler under these job ids: just submitted, or found again."""

    pairs: tuple[tuple[int, str], ...]  # (attempt id, job id)
    found: bool = False  # found again by reconciliation (the controller stopped between the two)


@dataclass(frozen=True)
class AbandonAttempt:
    """A CREATED attempt never reached the scheduler: a new attempt replaces it (no retry spent)."""

    attempt_id: int
    reason: str


@dataclass(frozen=True)
class ObserveAttempt:
    """What the scheduler says of an active attempt (its phase, node, requeues); RUNNING once it runs."""

    attempt_id: int
    expect: AttemptState
    outcome: JobOutcome
    note: str | None = None  # shown instead of the scheduler's reason (e.g. "trainer still running")


@dataclass(frozen=True)
class NoteScheduler:
    """What the scheduler now says of a job whose attempt has already ended (a job still finishing when
    its result was ingested): shown by `pas status`, no state changes."""

    attempt_id: int
    outcome: JobOutcome


@dataclass(frozen=True)
class IngestResult:
    """The result file of the hypothesis' kind (pas_orchestrator.kinds): attempt COMPLETED, hypothesis DONE (with
    its figures when it trained a network)."""

    hypothesis_id: int
    attempt_id: int
    result: Result
    outcome: JobOutcome | None = None


@dataclass(frozen=True)
class IngestRung:
    """The hypothesis' rung-K.json (successive halving): attempt COMPLETED, the rung's score kept; the
    hypothesis waits for the iteration's rung decision."""

    hypothesis_id: int
    attempt_id: int
    result: RungResult
    outcome: JobOutcome | None = None


@dataclass(frozen=True)
class PromoteRung:
    """The rung decision of an iteration: ``promoted`` go on to rung + 1, ``stopped`` (id, why) are STOPPED."""

    iteration: int
    rung: int
    promoted: tuple[int, ...]
    stopped: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class FailAttempt:
    """The attempt failed (spends one of max_retries); with ``fail_hypothesis`` the hypothesis fails too."""

    attempt_id: int
    expect: AttemptState
    reason: str
    outcome: JobOutcome | None = None
    fail_hypothesis: str | None = None


@dataclass(frozen=True)
class InterruptAttempt:
    """The attempt was stopped by a person or a signal: INTERRUPTED, resumed later without spending a retry."""

    attempt_id: int
    expect: AttemptState
    reason: str
    outcome: JobOutcome | None = None


@dataclass(frozen=True)
class CreateAttempts:
    """New attempts for hypotheses that have none active, committed before anything is submitted."""

    hypothesis_ids: tuple[int, ...]
    batch_prefix: str  # the batch is <prefix>-b<serial>, the jobs <batch>_<index>


@dataclass(frozen=True)
class MarkWinner:
    hypothesis_id: int
    why: str


@dataclass(frozen=True)
class AddHypotheses:
    hypotheses: tuple[NewHypothesis, ...]


@dataclass(frozen=True)
class EndSearch:
    state: SearchState  # DONE or FAILED
    reason: str | None = None
    # every hypothesis not ended yet (none has an active attempt) is CANCELLED with this reason (a spent budget)
    cancel_unfinished: str | None = None


@dataclass(frozen=True)
class CancelSearch:
    reason: str


@dataclass(frozen=True)
class ResumeSearch:
    """A cancelled or failed search is run again: RUNNING, its cancelled hypotheses planned again."""


@dataclass(frozen=True)
class LogEvent:
    kind: str
    message: str
    hypothesis_id: int | None = None


# ---------------------------------------------------------------- effect actions (the controller's)


@dataclass(frozen=True)
class PlanBase:
    """Record the base network B (its cost counted by the controller)."""


@dataclass(frozen=True)
class PlanIteration:
    """Every operator applied to the parent (B or the last winner); the controller counts costs and records them."""

    iteration: int
    parent_id: int


@dataclass(frozen=True)
class PlanMeasurement:
    """Record iteration ``iteration``'s latency measurement job (its trained networks and B, timed alone)."""

    iteration: int


@dataclass(frozen=True)
class PlanCache:
    """Record the teacher cache stage: one job per shard (pas_models.teacher_cache), before iteration 1."""

    shards: int


@dataclass(frozen=True)
class SubmitBatch:
    """Create attempts for these hypotheses and submit them as one batch (an array on SLURM)."""

    hypothesis_ids: tuple[int, ...]
    iteration: int


LedgerAction = (RecordJobIds | AbandonAttempt | ObserveAttempt | NoteScheduler | IngestResult | IngestRung
                | PromoteRung | FailAttempt | InterruptAttempt | CreateAttempts | MarkWinner | AddHypotheses
                | EndSearch | CancelSearch | ResumeSearch | LogEvent)
EffectAction = PlanBase | PlanIteration | PlanMeasurement | PlanCache | SubmitBatch
Action = LedgerAction | EffectAction
