"""``decide(snapshot, observations, policy) -> [Action]``: the whole policy of a search, pure.

One call looks at the ledger as it is (``Snapshot``) and at what was observed outside it since
(``Observations``: job outcomes from the executor, result files, live trainers, jobs found again)
and returns what should happen next, in this order of precedence:

1. reconcile: an attempt committed but never given a job id is either found at the scheduler
   (``RecordJobIds``) or abandoned (``AbandonAttempt``; a new attempt replaces it, no retry spent);
2. follow every active attempt: a valid result.json decides first, whatever the scheduler says
   (``IngestResult``); an invalid one is a failure; then the job's outcome: queued / running /
   requeued are recorded (``ObserveAttempt``); failed spends a retry (``FailAttempt``, the
   hypothesis fails when they are exhausted); interrupted does not (``InterruptAttempt``); a job
   that ended while a trainer still holds the hypothesis' lock is waited for, not failed;
3. when nothing ended in this call: the search strategy advances (winner, next iteration, stop);
4. when the strategy has nothing to do: every hypothesis that needs an attempt is submitted as one
   batch, within the executor's capacity.

The shell applies the actions and calls again at once whenever the ledger changed, so each call
decides on a snapshot in which nothing it decides about is stale. No I/O, no clock, no scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pas_models.train.result import JobResult
from pas_orchestrator.core.actions import (
    AbandonAttempt,
    Action,
    FailAttempt,
    IngestResult,
    InterruptAttempt,
    ObserveAttempt,
    RecordJobIds,
    SubmitBatch,
)
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.ledger.records import AttemptRec, HypRec, Snapshot
from pas_orchestrator.ledger.states import ACTIVE_ATTEMPT, AttemptState, HypState, SearchState
from pas_orchestrator.strategies.base import Strategy

# actions after which the strategy and the submission wait for the next call (they would decide on stale rows)
_ENDINGS = (RecordJobIds, AbandonAttempt, IngestResult, FailAttempt, InterruptAttempt)


@dataclass(frozen=True)
class Capacity:
    """What an executor takes at once."""

    max_array: int  # tasks in one submission (SLURM MaxArraySize, the profile's max_array_size)
    max_concurrent: int | None = None  # jobs queued or running at once (local: max_jobs); None: no limit here


@dataclass(frozen=True)
class Policy:
    """The fixed part of a search (from its definition and cluster profile)."""

    strategy: Strategy
    max_retries: int
    capacity: Capacity


@dataclass(frozen=True)
class Observations:
    """What the shell saw outside the ledger for this call (each mapping may leave things out: unknown)."""

    jobs: Mapping[int, JobOutcome] = field(default_factory=dict)  # attempt id -> its job's outcome
    results: Mapping[int, JobResult | str] = field(default_factory=dict)  # hyp id -> result.json, or why invalid
    trainers: Mapping[int, str] = field(default_factory=dict)  # hyp id -> the live trainer holding its lock
    found: Mapping[int, str | None] = field(default_factory=dict)  # orphan attempt id -> job id, None: not there


def decide(snap: Snapshot, obs: Observations, policy: Policy) -> list[Action]:
    if snap.search.state != SearchState.RUNNING:
        return []
    actions: list[Action] = []
    for h in snap.hypotheses:
        for a in h.attempts:
            if a.state == AttemptState.CREATED and a.job_id is None:
                actions += _reconcile(a, obs)
            elif a.state in (AttemptState.SUBMITTED, AttemptState.RUNNING) and a.job_id is not None:
                actions += _follow(h, a, obs, policy)
    if any(isinstance(x, _ENDINGS) for x in actions):
        return actions
    advance = policy.strategy.advance(snap)
    if advance:
        return actions + advance
    return actions + _submit(snap, policy)


def _reconcile(a: AttemptRec, obs: Observations) -> list[Action]:
    if a.id not in obs.found:
        return []  # not looked up (the scheduler did not answer): next time
    job_id = obs.found[a.id]
    if job_id is not None:
        return [RecordJobIds(((a.id, job_id),), found=True)]
    return [AbandonAttempt(a.id, "never reached the scheduler (the controller stopped before submitting); "
                                 "a new attempt replaces it")]


def _follow(h: HypRec, a: AttemptRec, obs: Observations, policy: Policy) -> list[Action]:
    outcome = obs.jobs.get(a.id)
    result = obs.results.get(h.id)
    if isinstance(result, JobResult):  # a written result is the truth, whatever the scheduler says
        return [IngestResult(h.id, a.id, result, outcome)]
    if isinstance(result, str):
        return [_fail(h, a, f"invalid result.json: {result}", outcome, policy)]
    if outcome is None:
        return []
    if outcome.active:
        return [ObserveAttempt(a.id, a.state, outcome)]
    if outcome.phase == Phase.UNKNOWN:
        # not found yet (None label), or a state this pas does not know (shown, never guessed at)
        return [ObserveAttempt(a.id, a.state, outcome)] if outcome.label else []
    trainer = obs.trainers.get(h.id)
    if trainer is not None:  # the job ended but its trainer goes on (its wrapper was killed): wait for it
        return [ObserveAttempt(a.id, a.state, outcome,
                               note=f"job {outcome.shown.lower()}, but its trainer ({trainer}) still holds the "
                                    "hypothesis: waiting for it")]
    if outcome.phase == Phase.INTERRUPTED:
        return [InterruptAttempt(a.id, a.state, outcome.reason or "interrupted", outcome)]
    if outcome.phase == Phase.SUCCEEDED:
        return [_fail(h, a, "job completed without result.json", outcome, policy)]
    return [_fail(h, a, outcome.reason or "failed", outcome, policy)]


def _fail(h: HypRec, a: AttemptRec, reason: str, outcome: JobOutcome | None, policy: Policy) -> FailAttempt:
    failed = sum(1 for x in h.attempts if x.state == AttemptState.FAILED) + 1
    exhausted = None
    if failed > policy.max_retries:
        exhausted = f"{failed} attempts failed (max_retries {policy.max_retries}); last: {reason}"
    return FailAttempt(a.id, a.state, reason, outcome, fail_hypothesis=exhausted)


def _submit(snap: Snapshot, policy: Policy) -> list[Action]:
    active = sum(1 for h in snap.hypotheses for a in h.attempts if a.state in ACTIVE_ATTEMPT)
    need = [h for h in snap.hypotheses if h.state in (HypState.PLANNED, HypState.RUNNING)
            and not any(a.state in ACTIVE_ATTEMPT for a in h.attempts)]
    cap = policy.capacity
    if cap.max_concurrent is not None:
        need = need[:max(0, cap.max_concurrent - active)]
    need = need[:cap.max_array]  # the rest: the next batch
    if not need:
        return []
    return [SubmitBatch(tuple(h.id for h in need), max(h.iteration for h in need))]
