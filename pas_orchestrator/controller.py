"""The controller shell: the loop around the pure decision core (core/decide.py).

Each round: read the ledger (one snapshot), gather what is outside it (``observe``: job outcomes from
the executor, result files, live trainers, jobs found again), ``decide``, and carry out the actions:
ledger actions through ``Ledger.apply`` (one compare-and-set transaction each), effect actions here
(planning counts FLOPs, submission talks to the executor). A round that changed the ledger is
followed at once by another; otherwise the shell sleeps ``poll_seconds``.

Killing the shell at any instant loses nothing and submits nothing twice: attempts are committed
before their batch is submitted, and an attempt without a job id is found again by name (or
abandoned and replaced) on the next start.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from dataclasses import asdict, replace
from typing import Any

from pas_models.data.formats import DatasetConfig
from pas_models.halving import RungInvalid, RungResult
from pas_models.layout import HypFiles, RunLayout
from pas_models.measure import MeasureInvalid, MeasureResult, MeasureTask
from pas_models.nas.result import SupernetResult, SupernetResultInvalid, SupernetTask
from pas_models.spec import ArchSpec
from pas_models.teacher_cache import CacheInvalid, CacheShardResult, CacheShardTask
from pas_models.train.result import JobResult, ResultInvalid
from pas_models.train.task import TrainTask
from pas_orchestrator import failpoints
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
from pas_orchestrator.core.decide import CACHE, MEASURE, Observations, Policy, decide
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.errors import LedgerConflict, SubmissionError
from pas_orchestrator.executors.base import Executor, JobRef
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState
from pas_orchestrator.ledger.store import Ledger
from pas_orchestrator.strategies.base import Strategy
from pas_orchestrator.strategies.coordinate_descent import CoordinateDescent
from pas_orchestrator.strategies.gradient import SUPERNET, GradientSearch, candidate_cycle
from pas_orchestrator.strategies.halving import SuccessiveHalving
from pas_orchestrator.studies import is_study
from pas_orchestrator.studies.registry import study_of
from pas_orchestrator.tasks import base_task, baseline_task, hypothesis_task

log = logging.getLogger(__name__)
SUBMIT_BACKOFF_S = (30.0, 600.0)  # the longest first wait after a failed submission, and the longest wait


def definition_hash(search: SearchDef) -> str:
    return hashlib.sha256(json.dumps(definition_dict(search), sort_keys=True, default=str).encode()).hexdigest()[:16]


def definition_dict(search: SearchDef) -> dict[str, Any]:
    """The search definition as recorded in the ledger (what a resume must match)."""
    d = asdict(search)
    d.pop("source")
    # keys added after searches were started, left out at their default so those still resume
    if d["tucker"]["ranks"] == "flops":
        del d["tucker"]["ranks"]
    if d["eval"]["latency_rounds"] == 3:
        del d["eval"]["latency_rounds"]
    for key in ("halving", "budget", "gradient"):
        if d[key] is None:
            del d[key]
    if d["strategy"] == "coordinate_descent":
        del d["strategy"]
    for key, default in (("teacher_dropout", False), ("feature_loss", "mse")):
        if d["distill"][key] == default:
            del d["distill"][key]
    return json.loads(json.dumps(d, default=str))


def strategy_for(search: SearchDef, layout: RunLayout) -> Strategy:
    """The search strategy of a definition: the paper's coordinate descent, with successive halving inside
    each iteration when ``halving`` is set (a new strategy is chosen here, from a key of the definition)."""
    if search.strategy == "gradient":
        assert search.gradient is not None
        h = search.candidate_halving()
        return GradientSearch(search.gradient.targets_gflops, h.eta, h.rungs, promote_one=search.halving is None,
                              layout=layout)
    cd = CoordinateDescent(iterations=search.iterations, target_gflops=search.stop.target_gflops,
                           selection=search.selection, ratio_tolerance=search.ratio_tolerance,
                           baselines=search.baselines, layout=layout)
    if search.halving is not None:
        return SuccessiveHalving(cd, search.halving.eta, search.halving.rungs)
    return cd


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


def measure_task(snap: Snapshot, h: HypRec, search: SearchDef) -> MeasureTask:
    """Iteration ``h.iteration``'s measurement: B first, then every network the iteration trained."""
    base = snap.iteration(0)[0]
    nets = [base] + [x for x in snap.iteration(h.iteration) if x.state == HypState.DONE]
    ev = search.eval
    return MeasureTask(h.label, h.out_dir, tuple((x.label, x.spec or "") for x in nets), ev.latency_batches,
                       ev.latency_passes, ev.latency_rounds)


def cache_shard_op(shard: int) -> str:
    return f"cache-{shard}"


def cache_task(snap: Snapshot, h: HypRec, search: SearchDef, data: DatasetConfig, layout: RunLayout) -> CacheShardTask:
    """Shard ``h.op``'s job: B (trained or imported, iteration 0's weights) over K recipes of its videos."""
    assert search.distill.cache is not None
    base = snap.iteration(0)[0]
    return CacheShardTask(h.label, h.out_dir, str(layout.teacher_cache), int(h.op.rsplit("-", 1)[1]),
                          search.base_spec(), str(HypFiles.of(base.out_dir).model), data, search.distill.cache,
                          search.distill.teacher_bn, search.recipe.batch_per_gpu, search.recipe.num_workers,
                          search.seed, teacher_dropout=search.distill.teacher_dropout)


def supernet_task(snap: Snapshot, h: HypRec, search: SearchDef, data: DatasetConfig) -> SupernetTask:
    """Target ``h.iteration``'s supernet job: B's spec and weights (iteration 0), the search's recipes."""
    assert search.gradient is not None
    base = snap.iteration(0)[0]
    return SupernetTask(h.label, search.base_spec(), str(HypFiles.of(base.out_dir).model),
                        search.gradient.targets_gflops[h.iteration - 1], data, h.out_dir, recipe=search.recipe,
                        distill=search.distill, gradient=search.gradient, seed=search.seed)


def _hyp(snap: Snapshot, hyp_id: int) -> HypRec:
    for h in snap.hypotheses:
        if h.id == hyp_id:
            return h
    raise LookupError(f"no hypothesis {hyp_id} in the snapshot")


class Controller:
    def __init__(self, search: SearchDef, profile: ClusterProfile, layout: RunLayout, ledger: Ledger,
                 executor: Executor, data: DatasetConfig) -> None:
        self.search, self.profile, self.layout = search, profile, layout
        self.ledger, self.executor, self.data = ledger, executor, data
        # the rungs hypotheses train to: halving, or the gradient strategy's candidates (its default two rungs)
        self.halving = search.candidate_halving() if search.strategy == "gradient" else search.halving
        self.policy = Policy(strategy_for(search, layout), search.max_retries, executor.capacity,
                             measure=search.eval.latency_passes > 0,
                             rungs=self.halving.rungs if self.halving is not None else None,
                             budget_hours=search.budget.gpu_hours if search.budget is not None else None,
                             cache_shards=search.distill.cache.shards if search.distill.cache is not None else None)
        self._submit_failures = 0
        self._submit_after = 0.0  # monotonic time before which no batch is submitted (backoff)
        self._poll = profile.poll_seconds
        # attempts ingested while their job was still finishing: followed until the scheduler says it ended,
        # for `pas status` (in memory: after a restart the last word seen stays)
        self._finishing: dict[int, JobRef] = {}

    # ------------------------------------------------------------------ loop
    def run(self, poll_seconds: float | None = None) -> Snapshot:
        poll = self.profile.poll_seconds if poll_seconds is None else poll_seconds
        self._poll = poll
        while True:
            self.ledger.heartbeat()
            changed = self.step()
            snap = self.view()
            if snap.search.state != SearchState.RUNNING:
                self._settle(poll)
                return self.ledger.snapshot()
            if not changed:
                time.sleep(poll)

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
        deadline = time.monotonic() + limit_s
        while self._finishing and time.monotonic() < deadline:
            self._follow_finishing()
            if self._finishing:
                time.sleep(max(poll, 0.2))
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
        results: dict[int, JobResult | MeasureResult | CacheShardResult | SupernetResult | RungResult | str] = {}
        trainers: dict[int, str] = {}
        rungs = self.halving.rungs if self.halving is not None else None
        for h, a in active:
            files = HypFiles.of(h.out_dir)
            rung = a.rung is not None and rungs is not None and a.rung < rungs  # ends at a rung's evaluation
            path = (files.rung(a.rung) if rung and a.rung is not None else files.supernet if h.kind == SUPERNET
                    else files.result)
            if path.is_file():
                try:
                    results[h.id] = (RungResult.read(path) if rung else MeasureResult.read(path) if h.kind == MEASURE
                                     else CacheShardResult.read(path) if h.kind == CACHE
                                     else SupernetResult.read(path) if h.kind == SUPERNET else JobResult.read(path))
                except (ResultInvalid, MeasureInvalid, RungInvalid, CacheInvalid, SupernetResultInvalid) as exc:
                    results[h.id] = str(exc)
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
            new = NewHypothesis(action.iteration, MEASURE, MEASURE, "",
                                str(self.layout.hyp_dir(action.iteration, MEASURE, MEASURE)))
            return self.ledger.apply(AddHypotheses((new,))).changed
        if isinstance(action, PlanCache):
            new = tuple(NewHypothesis(0, cache_shard_op(k), CACHE, "",
                                      str(self.layout.hyp_dir(0, cache_shard_op(k), CACHE)))
                        for k in range(action.shards))
            return self.ledger.apply(AddHypotheses(new)).changed
        if isinstance(action, SubmitBatch):
            return self._submit(action, snap)
        return self.ledger.apply(action).changed

    def _plan_base(self) -> bool:
        from pas_models.flops import count_cost

        spec = self.search.base_spec()
        cost = count_cost(spec)
        new = NewHypothesis(0, "base", "pas", "", str(self.layout.hyp_dir(0, "base", "pas")), gflops=cost.gflops,
                            params=cost.params, spec=spec.to_json())
        return self.ledger.apply(AddHypotheses((new,))).changed

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
        return self.ledger.apply(AddHypotheses(new)).changed

    def _submit(self, action: SubmitBatch, snap: Snapshot) -> bool:
        if time.monotonic() < self._submit_after:
            return False
        hyps = [_hyp(snap, i) for i in action.hypothesis_ids]
        tasks = [self._task(snap, h) for h in hyps]  # built first: a task that cannot be built submits nothing
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
        self._submit_after = time.monotonic() + wait
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

    # ------------------------------------------------------------------ tasks
    def _task(self, snap: Snapshot, h: HypRec) -> TrainTask | MeasureTask | CacheShardTask | SupernetTask:
        if h.kind == MEASURE:
            return measure_task(snap, h, self.search)
        if h.kind == CACHE:
            return cache_task(snap, h, self.search, self.data, self.layout)
        if h.kind == SUPERNET:
            return supernet_task(snap, h, self.search, self.data)
        if is_study(h.kind):
            return replace(self.study_task(snap, h), measure_latency=False)
        task = replace(self._train_task(snap, h), measure_latency=False)  # measured alone (pas_models.measure)
        if h.rung is not None and self.halving is not None:
            task = replace(task, rung=self.halving.rung(h.rung))
        return task

    def study_task(self, snap: Snapshot, h: HypRec) -> TrainTask:
        """A study's training (the study shell runs them; its study knows what it needs)."""
        return study_of(h, snap).task(snap, h, lambda src: self._train_task(snap, src))

    def _train_task(self, snap: Snapshot, h: HypRec) -> TrainTask:
        s = self.search
        if h.iteration == 0:
            if s.base.checkpoint is None:
                return base_task(s, self.data, h.out_dir)
            # an imported B is only evaluated: zero epochs from its own weights
            b = s.base_spec()
            return replace(base_task(s, self.data, h.out_dir), recipe=replace(s.base_recipe, epochs=0),
                           parent=b, parent_checkpoint=s.base.checkpoint)
        # the specs planned and recorded, not replayed: a resumed search trains what it planned
        student = ArchSpec.from_json(h.spec or "")
        if h.kind == "baseline":
            return baseline_task(s, self.data, student, h.out_dir, hypothesis=h.label)
        base = snap.iteration(0)[0]
        if s.strategy == "gradient":  # a candidate (gradient.candidate_init)
            assert s.gradient is not None
            b_model = str(HypFiles.of(base.out_dir).model)
            if s.gradient.candidate_init == "pas":  # B's weights where shapes allow, else random (train.run decides)
                return hypothesis_task(s, self.data, student, s.base_spec(), h.out_dir, b_model, b_model,
                                       hypothesis=h.label)
            supernet = next(x for x in snap.hypotheses if x.kind == SUPERNET and x.iteration == h.iteration)
            weights = HypFiles.of(supernet.out_dir).candidate(h.path, candidate_cycle(h.op))
            return replace(hypothesis_task(s, self.data, student, student, h.out_dir, b_model, str(weights),
                                           hypothesis=h.label), lr_divisor=s.gradient.lr_divisor)
        parent_hyp = snap.winner(h.iteration - 1) if h.iteration > 1 else base
        if parent_hyp is None:
            raise LookupError(f"{h.label}: iteration {h.iteration - 1} has no winner in {self.ledger.path}")
        return hypothesis_task(s, self.data, student, ArchSpec.from_json(parent_hyp.spec or ""), h.out_dir,
                               str(HypFiles.of(base.out_dir).model), str(HypFiles.of(parent_hyp.out_dir).model),
                               hypothesis=h.label,
                               teacher_cache=str(self.layout.teacher_cache) if s.distill.cache is not None else None)
