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
3. when nothing ended in this call: the search strategy advances (winner, next iteration, stop), and
   an iteration whose trainings have all ended gets its latency measurement job (``PlanMeasurement``,
   when the policy measures latency); the search does not end while a measurement is pending; with a
   teacher cache (``Policy.cache_shards``), the cache stage is planned once B (and every B replica) has ended
   (``PlanCache``: one job per shard, per trained B replica) and iteration 1 waits for every shard (a shard
   that failed for good fails the search);
4. when nothing was planned: every hypothesis that needs an attempt is submitted as one batch, within
   the executor's capacity (one that has reached the end of its rung waits for the rung decision of
   strategies/halving.py instead). A measurement job is a batch of its own (it has its own resources) and,
   where the executor cannot isolate it (``Capacity.drain_for_exclusive``: local), it is submitted only
   when nothing else of the search runs, and nothing is submitted beside it.

The controller applies the actions and calls again at once whenever the ledger changed, so each call
decides on a snapshot in which nothing it decides about is stale. No I/O, no clock, no scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pas_models.halving import RungResult
from pas_orchestrator.core.actions import (
    AbandonAttempt,
    Action,
    EndSearch,
    FailAttempt,
    IngestResult,
    IngestRung,
    InterruptAttempt,
    ObserveAttempt,
    PlanCache,
    PlanIteration,
    PlanMeasurement,
    RecordJobIds,
    SubmitBatch,
)
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.kinds import CACHE_SHARD, MEASUREMENT, REPLICA, Result, kind_of
from pas_orchestrator.ledger.records import AttemptRec, HypRec, Snapshot
from pas_orchestrator.ledger.states import ACTIVE_ATTEMPT, TERMINAL_HYP, AttemptState, HypState, SearchState
from pas_orchestrator.strategies.base import Strategy

# actions after which the strategy and the submission wait for the next call (they would decide on stale rows)
_ENDINGS = (RecordJobIds, AbandonAttempt, IngestResult, IngestRung, FailAttempt, InterruptAttempt)


@dataclass(frozen=True)
class Capacity:
    """What an executor takes at once."""

    max_array: int  # tasks in one submission (SLURM MaxArraySize, the profile's max_array_size)
    max_concurrent: int | None = None  # jobs queued or running at once (local: max_jobs); None: no limit here
    # a job that must run alone is given the machine by running nothing beside it (local); False: the
    # scheduler isolates it (SLURM --exclusive)
    drain_for_exclusive: bool = False


@dataclass(frozen=True)
class Policy:
    """The fixed part of a search (from its definition and cluster profile)."""

    strategy: Strategy
    max_retries: int
    capacity: Capacity
    measure: bool = False  # one latency measurement job per iteration (eval.latency_passes > 0)
    rungs: int | None = None  # successive halving: the number of rungs (the strategy decides promotions)
    budget_hours: float | None = None  # nothing new is submitted once the search's compute reached this
    cache_shards: int | None = None  # distill.cache: B's soft labels in this many shard jobs before iteration 1


@dataclass(frozen=True)
class Observations:
    """What the controller saw outside the ledger for this call (each mapping may leave things out: unknown)."""

    jobs: Mapping[int, JobOutcome] = field(default_factory=dict)  # attempt id -> its job's outcome
    # hyp id -> the result its active attempt was to write (its kind's result file, or rung-K.json of a rung
    # before the last), or why it is invalid
    results: Mapping[int, Result | RungResult | str] = field(default_factory=dict)
    trainers: Mapping[int, str] = field(default_factory=dict)  # hyp id -> the live trainer holding its lock
    found: Mapping[int, str | None] = field(default_factory=dict)  # orphan attempt id -> job id, None: not there
    finishing: int = 0  # jobs still exiting whose attempts have already ended (their result came in)


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
    if policy.cache_shards is not None:
        cache = _cache_stage(snap, policy.cache_shards)
        if cache is not None:  # the stage is not over: iterations wait for it
            advance = [a for a in advance if not isinstance(a, PlanIteration)]
            if cache:
                return actions + cache
    measure = _plan_measurements(snap, policy)
    if measure or any(h.kind == MEASUREMENT.name and h.state not in TERMINAL_HYP for h in snap.hypotheses):
        # the search ends once its measurements have: the strategy says so again then (it is pure)
        advance = [a for a in advance if not (isinstance(a, EndSearch) and a.state == SearchState.DONE)]
    if measure or advance:
        return actions + measure + advance
    return actions + _submit(snap, policy, obs)


def _plan_measurements(snap: Snapshot, policy: Policy) -> list[Action]:
    """A measurement job for each iteration whose trainings have all ended with one trained at least."""
    if not policy.measure:
        return []
    measured = {h.iteration for h in snap.hypotheses if h.kind == MEASUREMENT.name}
    out: list[Action] = []
    for i in range(1, snap.last_iteration + 1):
        hyps = snap.iteration(i)
        if (i not in measured and hyps and all(h.state in TERMINAL_HYP for h in hyps)
                and any(h.state == HypState.DONE for h in hyps)):
            out.append(PlanMeasurement(i))
    return out


def _cache_stage(snap: Snapshot, shards: int) -> list[Action] | None:
    """None once the teacher cache is complete (or not needed yet: B not done); else what to do now
    ([] while its shards run)."""
    base = snap.iteration(0)
    if not base or base[0].state != HypState.DONE:
        return None
    if any(h.state not in TERMINAL_HYP for h in snap.iteration(0, REPLICA.name)):
        return None  # each trained B replica gets a cache of its own: all of them have ended first
    rows = [h for h in snap.hypotheses if h.kind == CACHE_SHARD.name]
    if not rows:
        return [PlanCache(shards)]
    failed = [h for h in rows if h.state in TERMINAL_HYP and h.state != HypState.DONE]
    if failed:
        return [EndSearch(SearchState.FAILED, "the teacher cache could not be made: " + "; ".join(
            f"{h.label}: {h.state.value} {h.reason or ''}".strip() for h in failed))]
    if all(h.state == HypState.DONE for h in rows):
        return None
    return []


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
    if isinstance(result, RungResult):
        return [IngestRung(h.id, a.id, result, outcome)]
    if isinstance(result, str):
        return [_fail(h, a, f"invalid result.json: {result}", outcome, policy)]
    if result is not None:  # a result is the truth
        return [IngestResult(h.id, a.id, result, outcome)]
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
        rung = a.rung is not None and policy.rungs is not None and a.rung < policy.rungs
        return [_fail(h, a, f"job completed without {f'rung-{a.rung}.json' if rung else 'result.json'}", outcome,
                      policy)]
    return [_fail(h, a, outcome.reason or "failed", outcome, policy)]


def _fail(h: HypRec, a: AttemptRec, reason: str, outcome: JobOutcome | None, policy: Policy) -> FailAttempt:
    failed = sum(1 for x in h.attempts if x.state == AttemptState.FAILED) + 1
    exhausted = None
    if failed > policy.max_retries:
        exhausted = f"{failed} attempts failed (max_retries {policy.max_retries}); last: {reason}"
    return FailAttempt(a.id, a.state, reason, outcome, fail_hypothesis=exhausted)


def _submit(snap: Snapshot, policy: Policy, obs: Observations) -> list[Action]:
    running = [h for h in snap.hypotheses if any(a.state in ACTIVE_ATTEMPT for a in h.attempts)]
    active = sum(1 for h in snap.hypotheses for a in h.attempts if a.state in ACTIVE_ATTEMPT)
    need = [h for h in snap.hypotheses if h.state in (HypState.PLANNED, HypState.RUNNING)
            and not any(a.state in ACTIVE_ATTEMPT for a in h.attempts) and not h.waiting]
    cap = policy.capacity
    if policy.budget_hours is not None and need:
        used = sum(snap.compute().values())
        if used >= policy.budget_hours:
            if running or obs.finishing:
                return []  # what runs finishes; nothing new starts
            return [_budget_spent(snap, used, policy.budget_hours)]
    measuring = [h for h in need if kind_of(h.kind).alone]
    need = [h for h in need if not kind_of(h.kind).alone]
    own = [h for h in need if kind_of(h.kind).own_batch]
    if own:  # a batch of their own kind (their own job and resources); nothing else needs a job meanwhile
        need = [h for h in own if h.kind == own[0].kind]
    if cap.drain_for_exclusive:
        if any(kind_of(h.kind).alone for h in running):
            return []  # it runs alone
        if measuring:  # nothing new until the machine is free, then the measurement alone
            if running or obs.finishing:
                return []
            return [SubmitBatch((measuring[0].id,), measuring[0].iteration)]
    elif measuring and (cap.max_concurrent is None or active < cap.max_concurrent):
        batch = measuring[:cap.max_array]  # a batch of their own: their own resources
        return [SubmitBatch(tuple(h.id for h in batch), max(h.iteration for h in batch))]
    if cap.max_concurrent is not None:
        need = need[:max(0, cap.max_concurrent - active)]
    need = need[:cap.max_array]  # the rest: the next batch
    if not need:
        return []
    return [SubmitBatch(tuple(h.id for h in need), max(h.iteration for h in need))]


def _budget_spent(snap: Snapshot, used: float, budget: float) -> EndSearch:
    """The search ends once its budget is spent and nothing runs: the best network so far is the last winner."""
    best = next((w for i in range(snap.last_iteration, 0, -1) if (w := snap.winner(i)) is not None), None)
    base = snap.iteration(0)[0] if snap.iteration(0) else None
    if best is not None:
        so_far = f"the best network so far is iteration {best.iteration}'s winner {best.path} ({best.top1:.2f}% " \
                 f"top-1, {best.gflops:.4g} GFLOPs/view)"
    elif base is not None and base.state == HypState.DONE:
        so_far = "no iteration ended: the best network so far is B"
    else:
        so_far = "no network was trained"
    why = f"budget spent: {used:.3g} of {budget:g} compute hours used; {so_far}"
    return EndSearch(SearchState.DONE, why, cancel_unfinished="not started: the budget was spent")
