"""The controller: drives one search from its ledger until it is done.

Each ``step()`` (one poll):
1. reconcile attempts that were committed but have no job id (killed between the two): look
   for them by name/output folder in the scheduler; found -> record the id, else ABANDONED;
2. one batched state query for every active attempt; finished ones are ingested (result.json,
   idempotent) or failed with the scheduler's reason and retried up to ``max_retries``;
3. advance: plan the base network / the next iteration, choose winners (selection.py), stop;
4. submit every hypothesis that needs an attempt as one batch (an array on SLURM): attempts are
   committed first, job ids recorded right after.
Killing the controller at any instant loses nothing and submits nothing twice.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

from pas_models.data.formats import DatasetConfig
from pas_models.spec import ArchSpec
from pas_models.train.checkpoint import read_json
from pas_models.train.task import TrainTask
from pas_orchestrator import failpoints
from pas_orchestrator.config.cluster import ClusterProfile
from pas_orchestrator.config.search import SearchDef
from pas_orchestrator.executors.base import ACTIVE, FAILURE_STATES, Executor, JobRef
from pas_orchestrator.ledger import AttemptState, HypRec, HypState, Ledger, NewHypothesis, SearchState, Snapshot
from pas_orchestrator.ledger.states import ACTIVE_ATTEMPT, TERMINAL_HYP
from pas_orchestrator.planning import plan_iteration
from pas_orchestrator.selection import Candidate, select, should_stop
from pas_orchestrator.tasks import base_task, baseline_task, hypothesis_task

log = logging.getLogger(__name__)


def definition_hash(search: SearchDef) -> str:
    import hashlib

    d = asdict(search)
    d.pop("source")
    # keys added after searches were started, left out at their default so those still resume
    if d["tucker"]["ranks"] == "flops":
        del d["tucker"]["ranks"]
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Controller:
    def __init__(self, search: SearchDef, profile: ClusterProfile, run_dir: Path, ledger: Ledger,
                 executor: Executor, data: DatasetConfig) -> None:
        self.search, self.profile, self.run_dir = search, profile, run_dir
        self.ledger, self.executor, self.data = ledger, executor, data

    # ------------------------------------------------------------------ loop
    def run(self, poll_seconds: float | None = None) -> Snapshot:
        poll = self.profile.poll_seconds if poll_seconds is None else poll_seconds
        while True:
            if self.step():
                return self.ledger.snapshot()
            time.sleep(poll)

    def step(self) -> bool:
        """One poll; True when the search has ended (done, failed or cancelled)."""
        self.ledger.heartbeat()
        if self.ledger.search().state != SearchState.RUNNING:
            return True
        self._reconcile(self.ledger.snapshot())
        self._poll(self.ledger.snapshot())
        self._advance(self.ledger.snapshot())
        if self.ledger.search().state != SearchState.RUNNING:
            return True
        self._submit(self.ledger.snapshot())
        return False

    # ------------------------------------------------------------------ 1. reconcile
    def _reconcile(self, snap: Snapshot) -> None:
        orphans = [(h, a) for h in snap.hypotheses for a in h.attempts
                   if a.state == AttemptState.CREATED and a.job_id is None]
        for batch in sorted({a.batch for _, a in orphans}):
            mine = [(h, a) for h, a in orphans if a.batch == batch]
            known = self.executor.find(batch, [(a.array_index, h.out_dir) for h, a in mine],
                                       since=min(a.created_at for _, a in mine))
            for h, a in mine:
                if a.array_index in known:
                    self.ledger.set_job_ids({a.id: known[a.array_index]})
                    self.ledger.log_event("reconcile", f"{a.job_name}: found job {known[a.array_index]}", h.id)
                else:
                    self.ledger.update_attempt(a.id, AttemptState.ABANDONED,
                                               reason="never reached the scheduler (controller stopped before "
                                                      "submitting); a new attempt replaces it")

    # ------------------------------------------------------------------ 2. poll
    def _poll(self, snap: Snapshot) -> None:
        active = [(h, a) for h in snap.hypotheses for a in h.attempts
                  if a.state in (AttemptState.SUBMITTED, AttemptState.RUNNING) and a.job_id]
        if not active:
            return
        states = self.executor.states([JobRef(a.batch, a.job_id) for _, a in active if a.job_id])
        for h, a in active:
            assert a.job_id is not None
            st = states.get(a.job_id)
            if st is None or st.state == "UNKNOWN":
                continue
            # every earlier run of the job (sacct -D) is a requeue: submitit's at a time limit (REQUEUED),
            # SLURM's own after a node failure (NODE_FAIL on node2)
            runs = len(st.history) + (st.state == "REQUEUED")
            requeues = (runs, f"previous run {st.history[-1] if st.history else st.state}") if runs else None
            if st.state in ACTIVE:
                new = AttemptState.RUNNING if st.state == "RUNNING" else None
                self.ledger.update_attempt(a.id, new, scheduler_state=st.state, reason=st.reason, node=st.node,
                                           requeues=requeues)
                continue
            result = Path(h.out_dir) / "result.json"
            if result.is_file():  # whatever the scheduler says, a written result is the truth
                self.ledger.update_attempt(a.id, scheduler_state=st.state, node=st.node, requeues=requeues)
                self.ledger.ingest_result(h.id, a.id, read_json(result))
                continue
            if st.state == "COMPLETED":
                reason = "job completed without result.json"
            elif st.state in FAILURE_STATES:
                reason = f"{st.state}" + (f": {st.reason}" if st.reason else "")
            else:  # a state this pas does not know: keep waiting, never guess
                log.warning("%s: job %s in unknown state %s", a.job_name, a.job_id, st.state)
                continue
            self.ledger.update_attempt(a.id, AttemptState.FAILED, scheduler_state=st.state, reason=reason, node=st.node,
                                       requeues=requeues)
            failed = sum(1 for x in h.attempts if x.state == AttemptState.FAILED) + 1
            if failed > self.search.max_retries:
                self.ledger.set_hyp_state(h.id, HypState.FAILED,
                                          reason=f"{failed} attempts failed (max_retries {self.search.max_retries});"
                                                 f" last: {reason}")

    # ------------------------------------------------------------------ 3. advance
    def _advance(self, snap: Snapshot) -> None:
        s = self.search
        if not snap.hypotheses:
            self._plan_base()
            return
        base = snap.iteration(0)[0]
        if base.state not in TERMINAL_HYP:
            return
        if base.state != HypState.DONE:
            self.ledger.set_search_state(SearchState.FAILED, f"the base network failed: {base.reason}")
            return
        last = snap.last_iteration
        if last == 0:
            self._plan(1, base)
            return
        hyps = snap.iteration(last)
        if any(h.state not in TERMINAL_HYP for h in hyps):
            return
        winner = snap.winner(last)
        if winner is None:
            done = [h for h in hyps if h.state == HypState.DONE]
            if not done:
                self.ledger.set_search_state(SearchState.FAILED, f"iteration {last}: no hypothesis was trained ("
                                             + "; ".join(f"{h.op}: {h.state.value} {h.reason or ''}".strip()
                                                         for h in hyps) + ")")
                return
            parent = snap.winner(last - 1) if last > 1 else base
            assert parent is not None and parent.gflops is not None
            choice = select([Candidate(h.op, h.top1 or 0.0, h.top5 or 0.0, h.gflops or 0.0) for h in done],
                            selection=s.selection, base_top1=base.top1 or 0.0, base_gflops=base.gflops or 0.0,
                            parent_gflops=parent.gflops, tolerance=s.ratio_tolerance)
            winner = next(h for h in done if h.op == choice.winner.op)
            self.ledger.mark_winner(winner.id, choice.why)
            if s.baselines:
                self.ledger.add_hypotheses([NewHypothesis(last, winner.op, "baseline", winner.path,
                                                          self._out_dir(last, winner.op, "baseline"),
                                                          gflops=winner.gflops, params=winner.params,
                                                          spec=winner.spec)])
            return  # the next poll goes on from the recorded winner (and sees the new baseline)
        stop = should_stop(last, s.iterations, winner.gflops or 0.0, s.stop.target_gflops)
        if stop is None:
            self._plan(last + 1, winner)
            return
        baselines = [h for h in snap.hypotheses if h.kind == "baseline"]
        if all(h.state in TERMINAL_HYP for h in baselines):
            self.ledger.log_event("search", f"stopping: {stop}")
            self.ledger.set_search_state(SearchState.DONE)

    def _plan_base(self) -> None:
        from pas_models.flops import count_cost

        spec = self.search.base_spec()
        cost = count_cost(spec)
        self.ledger.add_hypotheses([NewHypothesis(0, "base", "pas", "", self._out_dir(0, "base", "pas"),
                                                  gflops=cost.gflops, params=cost.params, spec=spec.to_json())])

    def _plan(self, iteration: int, parent: HypRec) -> None:
        """The hypotheses of ``iteration``: every operator applied to ``parent`` (B or the last winner)."""
        from pas_models.train.teacher import load_weights

        weights = Path(parent.out_dir) / "model.pt"
        planned = plan_iteration(ArchSpec.from_json(parent.spec or ""), tuple(parent.ops), self.search.operators,
                                 self.search.tucker, parent_weights=lambda: load_weights(weights))
        new = [NewHypothesis(iteration, p.op, "pas", ",".join(p.path), self._out_dir(iteration, p.op, "pas"),
                             state=HypState.PLANNED if p.spec else HypState.NOT_APPLICABLE, reason=p.reason,
                             gflops=p.gflops, params=p.params, spec=p.spec.to_json() if p.spec else None)
               for p in planned]
        self.ledger.add_hypotheses(new)
        if all(p.spec is None for p in planned):
            self.ledger.set_search_state(SearchState.DONE if iteration > 1 else SearchState.FAILED,
                                         f"iteration {iteration}: no operator applies any more")

    def _out_dir(self, iteration: int, op: str, kind: str) -> str:
        return str(self.run_dir / "hyp" / (f"{iteration}-{op}" + ("-scratch" if kind == "baseline" else "")))

    # ------------------------------------------------------------------ 4. submit
    def _submit(self, snap: Snapshot) -> None:
        need = [h for h in snap.hypotheses if h.state in (HypState.PLANNED, HypState.RUNNING)
                and not any(a.state in ACTIVE_ATTEMPT for a in h.attempts)]
        if self.profile.executor == "local":
            running = sum(1 for h in snap.hypotheses for a in h.attempts if a.state in ACTIVE_ATTEMPT)
            need = need[:max(0, self.profile.max_jobs - running)]
        need = need[:self.profile.resources_for(self.search.backbone).max_array_size]  # the rest: next batch
        if not need:
            return
        iteration = max(h.iteration for h in need)
        tasks = [self._task(snap, h) for h in need]
        attempts = self.ledger.create_attempts([h.id for h in need], f"pas-{self.search.name}-i{iteration}")
        tasks = [replace(t, attempt=a.number) for t, a in zip(tasks, attempts, strict=True)]
        failpoints.hit("before-sbatch")
        try:
            ids = self.executor.submit(attempts[0].batch, tasks)
        except Exception as exc:
            log.error("submission of %s failed: %s", attempts[0].batch, exc)
            for h, a in zip(need, attempts, strict=True):
                self.ledger.update_attempt(a.id, AttemptState.ABANDONED, reason=f"submission failed: {exc}")
                self.ledger.log_event("submit", f"{a.job_name}: submission failed: {exc}", h.id)
            raise
        failpoints.hit("after-sbatch")
        self.ledger.set_job_ids({a.id: job_id for a, job_id in zip(attempts, ids, strict=True)})

    def _task(self, snap: Snapshot, h: HypRec) -> TrainTask:
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
        teacher = str(Path(base.out_dir) / "model.pt")
        parent_hyp = snap.winner(h.iteration - 1) if h.iteration > 1 else base
        assert parent_hyp is not None
        parent_ckpt = str(Path(parent_hyp.out_dir) / "model.pt")
        return hypothesis_task(s, self.data, student, ArchSpec.from_json(parent_hyp.spec or ""), h.out_dir, teacher,
                               parent_ckpt, hypothesis=h.label)

