"""The controller: the loop around the pure decision core (core/decide.py).

Each round: read the ledger (one snapshot), gather what is outside it (``observe``: job outcomes from
the executor, result files, live trainers, jobs found again), ``decide``, and carry out the actions:
ledger actions through ``Ledger.apply`` (one compare-and-set transaction each), effect actions here
(planning counts FLOPs, submission talks to the executor). A round that changed the ledger is
followed at once by another; otherwise the controller sleeps ``poll_seconds``.

Killing the controller at any instant loses nothing and submits nothing twice: attempts are committed
before their batch is submitted, and an attempt without a job id is found again by name (or
abandoned and replaced) on the next start.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pas_models.data.formats import DatasetConfig
from pas_models.halving import RungResult
from pas_models.layout import HypFiles, RunLayout
from pas_models.spec import ArchSpec
from pas_orchestrator import failpoints, replicas
from pas_orchestrator.config.cluster import ClusterProfile
from pas_orchestrator.config.search import SearchDef
from pas_orchestrator.core.actions import (
    AbandonAttempt,
    Action,
    AddHypotheses,
    CreateAttempts,
    EndSearch,
    IngestResult,
    IngestRung,
    InterruptAttempt,
    LogEvent,
    NoteScheduler,
    PlanBase,
    PlanCache,
    PlanIteration,
    PlanMeasurement,
    RecordJobIds,
    SubmitBatch,
)
from pas_orchestrator.core.decide import Observations, Policy, decide
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.errors import LedgerConflict, SubmissionError
from pas_orchestrator.executors.base import Executor, JobRef
from pas_orchestrator.kinds import CACHE_SHARD, MEASUREMENT, Result, TaskContext, cache_shard_op, kind_of, read_result
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState
from pas_orchestrator.ledger.store import Ledger
from pas_orchestrator.strategies.choice import strategy_for

log = logging.getLogger(__name__)
SUBMIT_BACKOFF_S = (30.0, 600.0)  # the longest first wait after a failed submission, and the longest wait


def trainer_holding(out_dir: str) -> str | None:
    """Who holds the hypothesis' lock (a live training process), or None. A shared, non-blocking probe
    released at once: it never makes a trainer wait."""
    path = HypFiles.of(out_dir).lock
    try:
        fh = path.open("rb")
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return fh.read(200).decode(errors="replace").strip() or "a process"
        fcntl.flock(fh, fcntl.LOCK_UN)
        return None


def _hyp(snap: Snapshot, hyp_id: int) -> HypRec:
    for h in snap.hypotheses:
        if h.id == hyp_id:
            return h
    raise LookupError(f"no hypothesis {hyp_id} in the snapshot")


@dataclass(frozen=True)
class Clock:
    """The controller's time: ``now`` (monotonic seconds) for its backoffs and waits, ``sleep`` between rounds
    (a test gives it one it moves itself)."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


class Controller:
    def __init__(self, search: SearchDef, profile: ClusterProfile, layout: RunLayout, ledger: Ledger,
                 executor: Executor, data: DatasetConfig, clock: Clock | None = None) -> None:
        self.search, self.profile, self.layout = search, profile, layout
        self.ledger, self.executor, self.data = ledger, executor, data
        # the rungs hypotheses train to: halving, or the gradient strategy's candidates (its default two rungs)
        self.halving = search.candidate_halving() if search.strategy == "gradient" else search.halving
        self.tasks = TaskContext(search, data, layout, self.halving)
        self.policy = Policy(strategy_for(search, layout), search.max_retries, executor.capacity,
                             measure=search.eval.latency_passes > 0,
                             rungs=self.halving.rungs if self.halving is not None else None,
                             budget_hours=search.budget.gpu_hours if search.budget is not None else None,
                             cache_shards=search.distill.cache.shards if search.distill.cache is not None else None)
        self.clock = clock or Clock()
        self._submit_failures = 0
        self._submit_after = 0.0  # monotonic time before which no batch is submitted (backoff)
        self._poll = profile.poll_seconds
        # attempts ingested while their job was still finishing: followed until the scheduler says it ended,
        # for `pas status` (in memory: after a restart the last word seen stays)
        self._finishing: dict[int, JobRef] = {}

    # ------------------------------------------------------------------ loop
    def run(self, poll_seconds: float | None = None, observe: Callable[[Snapshot], None] | None = None) -> Snapshot:
        """Rounds until the search ends; ``observe(snapshot)`` after each (progress for a person)."""
        poll = self.profile.poll_seconds if poll_seconds is None else poll_seconds
        self._poll = poll
        while True:
            self.ledger.heartbeat()
            changed = self.step()
            snap = self.view()
            if observe is not None:
                observe(snap)
            if snap.search.state != SearchState.RUNNING:
                self._settle(poll)
                return self.ledger.snapshot()
            if not changed:
                self.clock.sleep(poll)

    def view(self) -> Snapshot:
        """What ``decide`` sees (the whole ledger; a study sees its own part of it)."""
        return self.ledger.snapshot()

    def batch_name(self, iteration: int) -> str:
        return f"pas-{self.search.name}-i{iteration}"

    def step(self) -> bool:
        """One round; True when the ledger changed (the next round follows at once)."""
        snap = self.view()
        if snap.search.state != SearchState.RUNNING:
            return False
        changed = False
        self._follow_finishing()
        for action in decide(snap, self.observe(snap), self.policy):
            if isinstance(action, (IngestResult, IngestRung)) and action.outcome is not None and action.outcome.active:
                attempt = next(a for h in snap.hypotheses for a in h.attempts if a.id == action.attempt_id)
                if attempt.job_id:
                    self._finishing[attempt.id] = JobRef(attempt.batch, attempt.job_id)
            try:
                changed |= self.execute(action, snap)
            except LedgerConflict as exc:  # another writer got there first: decide again on what is there now
                log.warning("%s", exc)
                self.ledger.apply(LogEvent("conflict", str(exc)))
                return True
        return changed

    def _settle(self, poll: float, limit_s: float = 120.0) -> None:
        """The search has ended: wait (at most ``limit_s``) for jobs whose result came in while they were
        still finishing, so that `pas status` shows how they ended, and none is left behind unseen."""
        deadline = self.clock.now() + limit_s
        while self._finishing and self.clock.now() < deadline:
            self._follow_finishing()
            if self._finishing:
                self.clock.sleep(max(poll, 0.2))
        for ref in self._finishing.values():
            log.warning("job %s (%s) has not ended %.0f s after its result came in", ref.job_id, ref.batch, limit_s)

    def _follow_finishing(self) -> None:
        if not self._finishing:
            return
        outcomes = self.executor.outcomes(list(self._finishing.values()))
        for att_id, ref in list(self._finishing.items()):
            outcome = outcomes.get(ref.job_id)
            if outcome is not None and not outcome.active and outcome.phase != Phase.UNKNOWN:
                self.ledger.apply(NoteScheduler(att_id, outcome))
                del self._finishing[att_id]

    # ------------------------------------------------------------------ observations
    def observe(self, snap: Snapshot) -> Observations:
        found: dict[int, str | None] = {}
        orphans = [(h, a) for h in snap.hypotheses for a in h.attempts
                   if a.state == AttemptState.CREATED and a.job_id is None]
        for batch in sorted({a.batch for _, a in orphans}):
            mine = [(h, a) for h, a in orphans if a.batch == batch]
            try:
                known = self.executor.find(batch, [(a.array_index, h.out_dir) for h, a in mine],
                                           since=min(a.created_at for _, a in mine))
            except SubmissionError as exc:
                log.warning("cannot look for %s yet: %s", batch, exc)
                continue
            found.update({a.id: known.get(a.array_index) for _, a in mine})
        active = [(h, a) for h in snap.hypotheses for a in h.attempts
                  if a.state in (AttemptState.SUBMITTED, AttemptState.RUNNING) and a.job_id is not None]
        by_job = self.executor.outcomes([JobRef(a.batch, a.job_id) for _, a in active if a.job_id]) if active else {}
        jobs: dict[int, JobOutcome] = {a.id: by_job[a.job_id] for _, a in active if a.job_id in by_job}
        results: dict[int, Result | RungResult | str] = {}
        trainers: dict[int, str] = {}
        rungs = self.halving.rungs if self.halving is not None else None
        for h, a in active:
            result = read_result(h, a, rungs)
            if result is not None:
                results[h.id] = result
                continue
            outcome = jobs.get(a.id)
            if outcome is not None and not outcome.active:
                holder = trainer_holding(h.out_dir)
                if holder is not None:
                    trainers[h.id] = holder
        return Observations(jobs=jobs, results=results, trainers=trainers, found=found, finishing=len(self._finishing))

    # ------------------------------------------------------------------ effects
    def execute(self, action: Action, snap: Snapshot) -> bool:
        """Carry out one action decided on ``snap`` (effects here, ledger actions through ``Ledger.apply``)."""
        if isinstance(action, PlanBase):
            return self._plan_base()
        if isinstance(action, PlanIteration):
            return self._plan(action, snap)
        if isinstance(action, PlanMeasurement):
            m = MEASUREMENT.name  # its op is its kind
            row = NewHypothesis(action.iteration, m, m, "", str(self.layout.hyp_dir(action.iteration, m, m)))
            return self.ledger.apply(AddHypotheses((row,))).changed
        if isinstance(action, PlanCache):
            c = CACHE_SHARD.name
            ops = [replicas.replica_op(cache_shard_op(k), r) for r in self._cached_replicas(snap)
                   for k in range(action.shards)]
            new = tuple(NewHypothesis(0, op, c, "", str(self.layout.hyp_dir(0, op, c))) for op in ops)
            return self.ledger.apply(AddHypotheses(new)).changed
        if isinstance(action, SubmitBatch):
            return self._submit(action, snap)
        return self.ledger.apply(action).changed

    def _cached_replicas(self, snap: Snapshot) -> list[int]:
        """The B replicas that get a teacher cache: every one trained (one B when B is imported)."""
        return replicas.live_chains(snap, snap.iteration(0)[0], self.search.replicas)

    def _plan_base(self) -> bool:
        from pas_models.flops import count_cost

        spec = self.search.base_spec()
        cost = count_cost(spec)
        new = NewHypothesis(0, "base", "pas", "", str(self.layout.hyp_dir(0, "base", "pas")), gflops=cost.gflops,
                            params=cost.params, spec=spec.to_json())
        rows = (new, *replicas.new_rows((new,), self.search.base_replicas, self.layout.hyp_dir))
        return self.ledger.apply(AddHypotheses(rows)).changed

    def _plan(self, action: PlanIteration, snap: Snapshot) -> bool:
        """Every operator applied to the parent (B or the last winner), costs counted, recorded."""
        from pas_orchestrator.planning import plan_iteration

        parent = _hyp(snap, action.parent_id)
        weights = HypFiles.of(parent.out_dir).model

        def parent_weights() -> Any:  # torch: only for an operator that reads them (k with vbmf ranks)
            from pas_models.train.teacher import load_weights

            return load_weights(weights)

        planned = plan_iteration(ArchSpec.from_json(parent.spec or ""), tuple(parent.ops), self.search.operators,
                                 self.search.tucker, parent_weights=parent_weights)
        i = action.iteration
        first_rung = 1 if self.search.halving is not None else None  # halving: every hypothesis starts at rung 1
        new = tuple(NewHypothesis(i, p.op, "pas", ",".join(p.path), str(self.layout.hyp_dir(i, p.op, "pas")),
                                  state=HypState.PLANNED if p.spec else HypState.NOT_APPLICABLE, reason=p.reason,
                                  gflops=p.gflops, params=p.params, spec=p.spec.to_json() if p.spec else None,
                                  rung=first_rung if p.spec else None)
                    for p in planned)
        # every chain starts from an imported B (one B for all); later, from its own replica of the parent
        chains = (list(range(self.search.replicas)) if i == 1 and self.search.base_replicas == 1
                  else replicas.live_chains(snap, parent, self.search.replicas))
        new += replicas.new_rows(new, self.search.replicas, self.layout.hyp_dir, chains)
        return self.ledger.apply(AddHypotheses(new)).changed

    def _submit(self, action: SubmitBatch, snap: Snapshot) -> bool:
        if self.clock.now() < self._submit_after:
            return False
        hyps = [_hyp(snap, i) for i in action.hypothesis_ids]
        # built first: a task that cannot be built submits nothing
        tasks = [kind_of(h.kind).build(self.tasks, snap, h) for h in hyps]
        attempts = self.ledger.apply(CreateAttempts(action.hypothesis_ids, self.batch_name(action.iteration))).attempts
        tasks = [replace(t, attempt=a.number) for t, a in zip(tasks, attempts, strict=True)]
        batch = attempts[0].batch
        failpoints.hit("before-sbatch")
        try:
            ids = self.executor.submit(batch, tasks)
        except SubmissionError as exc:
            return self._submission_failed(batch, attempts, exc)
        except Exception as exc:
            for a in attempts:
                self.ledger.apply(AbandonAttempt(a.id, f"submission failed: {exc}"))
            raise
        failpoints.hit("after-sbatch")
        self._submit_failures = 0
        try:
            return self.ledger.apply(RecordJobIds(tuple(zip((a.id for a in attempts), ids, strict=True)))).changed
        except LedgerConflict:  # cancelled (`pas cancel`) while sbatch ran: these jobs must not run either
            self.executor.cancel([JobRef(batch, j) for j in ids])
            raise

    def _submission_failed(self, batch: str, attempts: Any, exc: SubmissionError) -> bool:
        if exc.permanent:  # the request is wrong: no retry can help
            for a in attempts:
                self.ledger.apply(AbandonAttempt(a.id, f"submission refused: {exc}"))
            self.ledger.apply(EndSearch(SearchState.FAILED, f"the scheduler refused the submission: {exc}"))
            return True
        # transient (SLURM busy or unreachable): the attempts stay committed; the next round finds them by
        # name (sbatch may have queued them before failing) or abandons and replaces them, after a backoff
        self._submit_failures += 1
        first = min(SUBMIT_BACKOFF_S[0], max(1.0, 3 * self._poll))  # 30 s with the profiles' polls
        wait = min(first * 2 ** (self._submit_failures - 1), SUBMIT_BACKOFF_S[1])
        self._submit_after = self.clock.now() + wait
        log.warning("submission of %s failed (try %d), next try in %.0f s: %s", batch, self._submit_failures, wait,
                    exc)
        self.ledger.apply(LogEvent("submit", f"{batch}: submission failed (try {self._submit_failures}), next try "
                                             f"in {wait:.0f} s: {exc}"))
        return True

    def interrupt(self, why: str) -> int:
        """The controller is stopped by Ctrl-C / SIGTERM: jobs that are this host's processes are stopped
        and their attempts recorded INTERRUPTED (resumed later without spending a retry); jobs on a
        cluster go on. Returns how many jobs were stopped."""
        if not self.executor.stops_with_controller:
            return 0
        snap = self.ledger.snapshot()
        active = [a for h in snap.hypotheses for a in h.attempts
                  if a.state in (AttemptState.SUBMITTED, AttemptState.RUNNING) and a.job_id]
        alive = self.executor.cancel([JobRef(a.batch, a.job_id) for a in active if a.job_id])
        for a in active:
            if a.job_id not in alive:
                self.ledger.apply(InterruptAttempt(a.id, a.state, why))
        return len(active) - len(alive)
