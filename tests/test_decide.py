"""The decision core, table-driven: a snapshot and observations in, the actions out. Pure: no ledger
file, no process, no scheduler (milliseconds)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pas_models.halving import RungResult
from pas_models.layout import RunLayout
from pas_models.measure import MeasureResult, Timing
from pas_models.nas.result import Candidate, SupernetResult
from pas_models.teacher_cache.config import CacheShardResult
from pas_models.train.result import JobResult
from pas_orchestrator.core.actions import (
    AbandonAttempt,
    AddHypotheses,
    EndSearch,
    FailAttempt,
    IngestResult,
    IngestRung,
    InterruptAttempt,
    MarkWinner,
    ObserveAttempt,
    PlanBase,
    PlanCache,
    PlanIteration,
    PlanMeasurement,
    PromoteRung,
    RecordJobIds,
    SubmitBatch,
)
from pas_orchestrator.core.decide import Capacity, Observations, Policy, decide
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.ledger.records import AttemptRec, HypRec, NewHypothesis, SearchRec, Snapshot
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState
from pas_orchestrator.strategies.coordinate_descent import CoordinateDescent
from pas_orchestrator.strategies.gradient import GradientSearch
from pas_orchestrator.strategies.halving import SuccessiveHalving

LAYOUT = RunLayout.of("/runs", "s")


def search(state: SearchState = SearchState.RUNNING) -> SearchRec:
    return SearchRec("s", "{}", "h", "local", state, None, 0.0, None)


def att(aid: int, hid: int, state: AttemptState, job: str | None = "100", number: int = 1) -> AttemptRec:
    return AttemptRec(aid, hid, number, f"pas-s-i0-b1_{aid}", "pas-s-i0-b1", 0, job, state, None, None, 0, 0.0,
                      None, None, None)


def hyp(hid: int, iteration: int, op: str, state: HypState, *attempts: AttemptRec, top1: float | None = None,
        gflops: float | None = 10.0, winner: bool = False, kind: str = "pas", top5: float | None = None) -> HypRec:
    path = "" if op == "base" else op
    done = state == HypState.DONE
    return HypRec(hid, iteration, op, kind, path, state, None, gflops, 1000, "{}", f"/runs/s/hyp/{iteration}-{op}",
                  top1 if top1 is not None else (50.0 if done else None),
                  top5 if top5 is not None else (80.0 if done else None), None, winner, 0.0, None,
                  attempts=tuple(attempts))


def rung_hyp(hid: int, op: str, rung: int, scores: dict[int, float], *attempts: AttemptRec,
             state: HypState = HypState.RUNNING, gflops: float = 10.0) -> HypRec:
    """An iteration-1 hypothesis of a halving search at ``rung`` with top-1 ``scores`` per rung reached."""
    rr = json.dumps([{"rung": k, "top1": v, "top5": 90.0, "steps": 2 * k, "total_steps": 18}
                     for k, v in sorted(scores.items())])
    return replace(hyp(hid, 1, op, state, *attempts, gflops=gflops), rung=rung, rung_results=rr if scores else None)


def snap(*hyps: HypRec, state: SearchState = SearchState.RUNNING) -> Snapshot:
    return Snapshot(search(state), tuple(hyps))


def policy(iterations: int = 2, retries: int = 1, max_array: int = 8, max_concurrent: int | None = None,
           target: float | None = None, baselines: bool = False, measure: bool = False,
           drain: bool = False) -> Policy:
    return Policy(CoordinateDescent(iterations, target, "eq3", 0.05, baselines, LAYOUT), retries,
                  Capacity(max_array, max_concurrent, drain), measure=measure)


def budget(hours: float, iterations: int = 3) -> Policy:
    return replace(policy(iterations=iterations), budget_hours=hours)


def used(a: AttemptRec, hours: float) -> AttemptRec:
    return replace(a, compute_hours=hours, compute_unit="GPU-h")


def halving(eta: int = 3, rungs: int = 3, drain: bool = False) -> Policy:
    cd = CoordinateDescent(1, None, "eq3", 0.05, False, LAYOUT)
    return Policy(SuccessiveHalving(cd, eta, rungs), 1, Capacity(8, None, drain), rungs=rungs)


def result(top1: float = 60.0) -> JobResult:
    return JobResult(hypothesis="x", attempt=1, top1=top1, top5=90.0, gflops_per_view=5.0, views=1, params=10,
                     epochs=1, train_seconds=1.0, gpu_hours=0.0, clips_seen=4, videos_skipped=0, eval_videos=2,
                     checkpoint="/m.pt", spec={}, finetuned_from_parent=False, versions={}, recipe={})


def measurement() -> MeasureResult:
    return MeasureResult("1-latency", 1, "cpu (2 threads)", "h", 10, 3,
                         (Timing("0-base", 1, 2.0, 1.9, 2.1, (2.0, 2.0, 2.1), 0.05),))


def cached(shards: int = 2) -> Policy:
    return replace(policy(iterations=1), cache_shards=shards)


def shard(hid: int, k: int, state: HypState, *attempts: AttemptRec) -> HypRec:
    return replace(hyp(hid, 0, f"cache-{k}", state, *attempts, kind="teacher_cache", gflops=None), top1=None, top5=None)


SHARD = CacheShardResult("0-cache-1", 1, 1, 2, "/runs/s/teacher_cache/shard-001-of-002.npz", 6, 48, 0, 4096, 3.0, 1.0,
                         "cpu (2 threads) on h")
RUN = AttemptState.RUNNING
SUB = AttemptState.SUBMITTED
B_RUNNING = hyp(1, 0, "base", HypState.RUNNING, att(1, 1, RUN))
B_DONE = hyp(1, 0, "base", HypState.DONE, att(1, 1, AttemptState.COMPLETED), top1=70.0, gflops=20.0)
running = JobOutcome(Phase.RUNNING, node="n1", label="RUNNING")
failed = JobOutcome(Phase.FAILED, "OUT_OF_MEMORY: exit code 0:125", label="OUT_OF_MEMORY")

T_DONE = hyp(2, 1, "t", HypState.DONE)
T_WON = hyp(2, 1, "t", HypState.DONE, winner=True)
M_PLANNED = hyp(4, 1, "latency", HypState.PLANNED, kind="latency")
DONE_ATT = AttemptState.COMPLETED
RUNG1 = RungResult("1-t", 1, 1, 3, 2, 18, 40.0, 80.0, 1, 4, 1.0, 4)
STOP = ("stopped at rung 1/3: rank {r} of {n} by eq3 (top-1 {t:.2f}%, top-5 90.00% after 2 of 18 steps); "
        "the best {up} went on")
BASELINE_1T = NewHypothesis(1, "t", "baseline", "t", "/runs/s/hyp/1-t-scratch", gflops=10.0, params=1000, spec="{}")

CASES = [
    # (id, snapshot, observations, policy, expected actions)
    ("empty search plans B", snap(), Observations(), policy(), [PlanBase()]),
    ("cancelled search does nothing", snap(B_RUNNING, state=SearchState.CANCELLED),
     Observations(jobs={1: failed}), policy(), []),
    ("failed search does nothing", snap(state=SearchState.FAILED), Observations(), policy(), []),
    ("planned B is submitted", snap(hyp(1, 0, "base", HypState.PLANNED)), Observations(), policy(),
     [SubmitBatch((1,), 0)]),
    ("running job is observed", snap(B_RUNNING), Observations(jobs={1: running}), policy(),
     [ObserveAttempt(1, RUN, running)]),
    ("queued job is observed with its reason",
     snap(hyp(1, 0, "base", HypState.RUNNING, att(1, 1, SUB))),
     Observations(jobs={1: JobOutcome(Phase.QUEUED, "Resources", label="PENDING")}), policy(),
     [ObserveAttempt(1, SUB, JobOutcome(Phase.QUEUED, "Resources", label="PENDING"))]),
    ("requeued job is observed with its count",
     snap(B_RUNNING), Observations(jobs={1: JobOutcome(Phase.REQUEUED, requeues=2, requeue_why="previous run "
                                                                                                "NODE_FAIL")}),
     policy(), [ObserveAttempt(1, RUN, JobOutcome(Phase.REQUEUED, requeues=2, requeue_why="previous run NODE_FAIL"))]),
    ("job not known yet: wait", snap(B_RUNNING), Observations(jobs={1: JobOutcome(Phase.UNKNOWN)}), policy(), []),
    ("no answer from the scheduler: wait", snap(B_RUNNING), Observations(), policy(), []),
    ("a scheduler state pas does not know is shown, never acted on", snap(B_RUNNING),
     Observations(jobs={1: JobOutcome(Phase.UNKNOWN, label="BURST_BUFFER_STAGE")}), policy(),
     [ObserveAttempt(1, RUN, JobOutcome(Phase.UNKNOWN, label="BURST_BUFFER_STAGE"))]),
    ("result ingested", snap(B_RUNNING),
     Observations(jobs={1: JobOutcome(Phase.SUCCEEDED)}, results={1: result()}), policy(),
     [IngestResult(1, 1, result(), JobOutcome(Phase.SUCCEEDED))]),
    ("a result while the scheduler still says RUNNING decides", snap(B_RUNNING),
     Observations(jobs={1: running}, results={1: result()}), policy(), [IngestResult(1, 1, result(), running)]),
    ("a result while the scheduler does not answer decides", snap(B_RUNNING),
     Observations(results={1: result()}), policy(), [IngestResult(1, 1, result(), None)]),
    ("job completed without result.json fails (retry left)", snap(B_RUNNING),
     Observations(jobs={1: JobOutcome(Phase.SUCCEEDED)}), policy(retries=1),
     [FailAttempt(1, RUN, "job completed without result.json", JobOutcome(Phase.SUCCEEDED))]),
    ("invalid result.json is a failure", snap(B_RUNNING),
     Observations(jobs={1: JobOutcome(Phase.SUCCEEDED)}, results={1: "result.json: missing key 'top1'"}),
     policy(), [FailAttempt(1, RUN, "invalid result.json: result.json: missing key 'top1'",
                            JobOutcome(Phase.SUCCEEDED))]),
    ("failed job spends a retry", snap(B_RUNNING), Observations(jobs={1: failed}), policy(retries=1),
     [FailAttempt(1, RUN, "OUT_OF_MEMORY: exit code 0:125", failed)]),
    ("last retry spent: the hypothesis fails",
     snap(hyp(1, 0, "base", HypState.RUNNING, att(1, 1, AttemptState.FAILED), att(2, 1, RUN, number=2))),
     Observations(jobs={2: failed}), policy(retries=1),
     [FailAttempt(2, RUN, "OUT_OF_MEMORY: exit code 0:125", failed,
                  fail_hypothesis="2 attempts failed (max_retries 1); last: OUT_OF_MEMORY: exit code 0:125")]),
    ("interrupted attempts do not count against retries",
     snap(hyp(1, 0, "base", HypState.RUNNING, att(1, 1, AttemptState.INTERRUPTED), att(2, 1, AttemptState.INTERRUPTED),
              att(3, 1, RUN, number=3))),
     Observations(jobs={3: failed}), policy(retries=1),
     [FailAttempt(3, RUN, "OUT_OF_MEMORY: exit code 0:125", failed)]),
    ("interrupted job is not a failure", snap(B_RUNNING),
     Observations(jobs={1: JobOutcome(Phase.INTERRUPTED, "cancelled outside pas (scancel)")}), policy(),
     [InterruptAttempt(1, RUN, "cancelled outside pas (scancel)",
                       JobOutcome(Phase.INTERRUPTED, "cancelled outside pas (scancel)"))]),
    ("job gone but its trainer holds the lock: wait for it", snap(B_RUNNING),
     Observations(jobs={1: failed}, trainers={1: "pid 42 on host"}), policy(),
     [ObserveAttempt(1, RUN, failed, note="job out_of_memory, but its trainer (pid 42 on host) still holds the "
                                          "hypothesis: waiting for it")]),
    ("interrupted (after a retry) hypothesis without active attempt is submitted again",
     snap(hyp(1, 0, "base", HypState.RUNNING, att(1, 1, AttemptState.INTERRUPTED))), Observations(), policy(),
     [SubmitBatch((1,), 0)]),
    ("orphan found at the scheduler", snap(hyp(1, 0, "base", HypState.RUNNING, att(1, 1, AttemptState.CREATED,
                                                                                    job=None))),
     Observations(found={1: "77"}), policy(), [RecordJobIds(((1, "77"),), found=True)]),
    ("orphan not found: abandoned", snap(hyp(1, 0, "base", HypState.RUNNING, att(1, 1, AttemptState.CREATED,
                                                                                  job=None))),
     Observations(found={1: None}), policy(),
     [AbandonAttempt(1, "never reached the scheduler (the controller stopped before submitting); a new attempt "
                        "replaces it")]),
    ("orphan not looked up (scheduler silent): nothing, and nothing submitted twice",
     snap(hyp(1, 0, "base", HypState.RUNNING, att(1, 1, AttemptState.CREATED, job=None))), Observations(), policy(),
     []),
    ("submission failed earlier (attempt abandoned): submitted again",
     snap(hyp(1, 0, "base", HypState.RUNNING, att(1, 1, AttemptState.ABANDONED, job=None))), Observations(), policy(),
     [SubmitBatch((1,), 0)]),
    ("B failed: the search fails", snap(replace(hyp(1, 0, "base", HypState.FAILED), reason="2 attempts failed")),
     Observations(), policy(), [EndSearch(SearchState.FAILED, "the base network failed: 2 attempts failed")]),
    ("B done: iteration 1 planned", snap(B_DONE), Observations(), policy(), [PlanIteration(1, 1)]),
    ("iteration running: its planned hypotheses submitted as one batch",
     snap(B_DONE, hyp(2, 1, "t", HypState.PLANNED), hyp(3, 1, "f", HypState.PLANNED),
          hyp(4, 1, "l", HypState.NOT_APPLICABLE)), Observations(), policy(), [SubmitBatch((2, 3), 1)]),
    ("the batch is cut to the array size",
     snap(B_DONE, hyp(2, 1, "t", HypState.PLANNED), hyp(3, 1, "f", HypState.PLANNED), hyp(4, 1, "s", HypState.PLANNED)),
     Observations(), policy(max_array=2), [SubmitBatch((2, 3), 1)]),
    ("local capacity: only as many as free slots",
     snap(B_DONE, hyp(2, 1, "t", HypState.RUNNING, att(2, 2, RUN)), hyp(3, 1, "f", HypState.PLANNED),
          hyp(4, 1, "s", HypState.PLANNED)), Observations(jobs={2: running}), policy(max_concurrent=2),
     [ObserveAttempt(2, RUN, running), SubmitBatch((3,), 1)]),
    ("local capacity full: nothing submitted",
     snap(B_DONE, hyp(2, 1, "t", HypState.RUNNING, att(2, 2, RUN)), hyp(3, 1, "f", HypState.PLANNED)),
     Observations(jobs={2: running}), policy(max_concurrent=1), [ObserveAttempt(2, RUN, running)]),
    ("an ending waits for the next call before the strategy acts",
     snap(B_DONE, hyp(2, 1, "t", HypState.RUNNING, att(2, 2, RUN)), hyp(3, 1, "f", HypState.DONE)),
     Observations(results={2: result()}), policy(), [IngestResult(2, 2, result(), None)]),
    ("iteration done: winner by Eq. 3",
     snap(B_DONE, hyp(2, 1, "t", HypState.DONE, top1=55.0, gflops=10.0), hyp(3, 1, "f", HypState.DONE, top1=61.0,
                                                                              gflops=10.0)),
     Observations(), policy(), [MarkWinner(3, "Eq. 3: highest top-1 61.00%")]),
    ("winner with baselines: the winner's architecture queued from scratch",
     snap(B_DONE, hyp(2, 1, "t", HypState.DONE, top1=61.0, gflops=10.0)), Observations(), policy(baselines=True),
     [MarkWinner(2, "Eq. 3: highest top-1 61.00%"),
      AddHypotheses((BASELINE_1T,))]),
    ("no hypothesis of the iteration trained: the search fails",
     snap(B_DONE, replace(hyp(2, 1, "t", HypState.FAILED), reason="OOM"), hyp(3, 1, "l", HypState.NOT_APPLICABLE)),
     Observations(), policy(),
     [EndSearch(SearchState.FAILED, "iteration 1: no hypothesis was trained (t: FAILED OOM; l: NOT_APPLICABLE)")]),
    ("no operator applies any more at iteration 2: done",
     snap(B_DONE, hyp(2, 1, "t", HypState.DONE, winner=True), hyp(3, 2, "t", HypState.NOT_APPLICABLE)),
     Observations(), policy(iterations=5), [EndSearch(SearchState.DONE, "iteration 2: no operator applies any more")]),
    ("no operator applies to B: the search fails",
     snap(B_DONE, hyp(2, 1, "t", HypState.NOT_APPLICABLE)), Observations(), policy(),
     [EndSearch(SearchState.FAILED, "iteration 1: no operator applies any more")]),
    ("winner chosen: next iteration planned from it",
     snap(B_DONE, hyp(2, 1, "t", HypState.DONE, winner=True, gflops=10.0)), Observations(), policy(iterations=3),
     [PlanIteration(2, 2)]),
    ("iterations done: the search ends",
     snap(B_DONE, hyp(2, 1, "t", HypState.DONE, winner=True, gflops=10.0)), Observations(), policy(iterations=1),
     [EndSearch(SearchState.DONE, "stopping: 1 iterations done")]),
    ("GFLOPs target reached: the search ends",
     snap(B_DONE, hyp(2, 1, "t", HypState.DONE, winner=True, gflops=4.0)), Observations(),
     policy(iterations=5, target=5.0),
     [EndSearch(SearchState.DONE, "stopping: target reached: 4 <= 5 GFLOPs per view")]),
    ("stop waits for a baseline still training",
     snap(B_DONE, hyp(2, 1, "t", HypState.DONE, winner=True, gflops=10.0),
          hyp(3, 1, "t", HypState.RUNNING, att(3, 3, RUN), kind="baseline")),
     Observations(jobs={3: running}), policy(iterations=1, baselines=True), [ObserveAttempt(3, RUN, running)]),
    # latency measured alone: one job per iteration once its trainings have ended
    ("an iteration that ended gets its measurement job beside the winner",
     snap(B_DONE, T_DONE, hyp(3, 1, "f", HypState.DONE, top1=40.0)), Observations(), policy(measure=True),
     [PlanMeasurement(1), MarkWinner(2, "Eq. 3: highest top-1 50.00%")]),
    ("no measurement when latency is off (eval.latency_passes: 0)",
     snap(B_DONE, T_DONE), Observations(), policy(), [MarkWinner(2, "Eq. 3: highest top-1 50.00%")]),
    ("no measurement of an iteration that trained nothing",
     snap(B_DONE, hyp(2, 1, "t", HypState.FAILED)), Observations(), policy(measure=True),
     [EndSearch(SearchState.FAILED, "iteration 1: no hypothesis was trained (t: FAILED)")]),
    ("no measurement before every training of the iteration has ended",
     snap(B_DONE, T_DONE, hyp(3, 1, "f", HypState.RUNNING, att(3, 3, RUN))), Observations(jobs={3: running}),
     policy(measure=True), [ObserveAttempt(3, RUN, running)]),
    ("the search does not end while its measurement is pending: it is submitted",
     snap(B_DONE, T_WON, M_PLANNED), Observations(), policy(iterations=1, measure=True), [SubmitBatch((4,), 1)]),
    ("the search ends once its measurement has",
     snap(B_DONE, T_WON, hyp(4, 1, "latency", HypState.DONE, att(4, 4, AttemptState.COMPLETED), kind="latency")),
     Observations(), policy(iterations=1, measure=True), [EndSearch(SearchState.DONE, "stopping: 1 iterations done")]),
    ("local: a pending measurement waits for the running trainings and nothing new starts",
     snap(B_DONE, T_WON, M_PLANNED, hyp(5, 1, "t", HypState.RUNNING, att(5, 5, RUN), kind="baseline"),
          hyp(6, 2, "f", HypState.PLANNED)),
     Observations(jobs={5: running}), policy(iterations=2, measure=True, drain=True),
     [ObserveAttempt(5, RUN, running)]),
    ("local: a pending measurement waits for a job still exiting after its result came in",
     snap(B_DONE, T_WON, M_PLANNED, hyp(6, 2, "f", HypState.PLANNED)), Observations(finishing=1),
     policy(iterations=2, measure=True, drain=True), []),
    ("local: the measurement alone once nothing runs",
     snap(B_DONE, T_WON, M_PLANNED, hyp(6, 2, "f", HypState.PLANNED)), Observations(),
     policy(iterations=2, measure=True, drain=True), [SubmitBatch((4,), 1)]),
    ("local: nothing beside a running measurement",
     snap(B_DONE, T_WON, hyp(4, 1, "latency", HypState.RUNNING, att(4, 4, RUN), kind="latency"),
          hyp(6, 2, "f", HypState.PLANNED)), Observations(jobs={4: running}),
     policy(iterations=2, measure=True, drain=True), [ObserveAttempt(4, RUN, running)]),
    ("SLURM: the measurement is a batch of its own, the trainings go on beside it (--exclusive)",
     snap(B_DONE, T_WON, M_PLANNED, hyp(6, 2, "f", HypState.PLANNED)), Observations(),
     policy(iterations=2, measure=True), [SubmitBatch((4,), 1)]),
    ("SLURM: then the trainings",
     snap(B_DONE, T_WON, hyp(4, 1, "latency", HypState.RUNNING, att(4, 4, RUN), kind="latency"),
          hyp(6, 2, "f", HypState.PLANNED)), Observations(),
     policy(iterations=2, measure=True), [SubmitBatch((6,), 2)]),
    # successive halving inside an iteration (strategies/halving.py)
    ("a rung's result is ingested, not taken for the final one",
     snap(B_DONE, rung_hyp(2, "t", 1, {}, att(2, 2, RUN))), Observations(results={2: RUNG1}), halving(),
     [IngestRung(2, 2, RUNG1, None)]),
    ("a hypothesis at the end of its rung waits: no attempt, no decision while another is still training",
     snap(B_DONE, rung_hyp(2, "t", 1, {1: 40.0}, att(2, 2, DONE_ATT)), rung_hyp(3, "f", 1, {}, att(3, 3, RUN))),
     Observations(jobs={3: running}), halving(), [ObserveAttempt(3, RUN, running)]),
    ("a hypothesis waiting at its rung is not submitted again, the others are",
     snap(B_DONE, rung_hyp(2, "t", 1, {1: 40.0}, att(2, 2, DONE_ATT)), rung_hyp(3, "f", 1, {})),
     Observations(), halving(), [SubmitBatch((3,), 1)]),
    ("rung 1 of 5: the best ceil(5/3) = 2 go on, the others stop with rank and score",
     snap(B_DONE, *(rung_hyp(i, op, 1, {1: t}, att(i, i, DONE_ATT)) for i, op, t in
                    ((2, "s", 30.0), (3, "t", 50.0), (4, "f", 45.0), (5, "c", 20.0), (6, "l", 10.0)))),
     Observations(), halving(),
     [PromoteRung(1, 1, (3, 4), ((2, STOP.format(r=3, n=5, t=30.0, up=2)), (5, STOP.format(r=4, n=5, t=20.0, up=2)),
                                 (6, STOP.format(r=5, n=5, t=10.0, up=2))))]),
    ("a tie at a rung is broken by top-5, then GFLOPs, then operator order (as the final choice)",
     snap(B_DONE, rung_hyp(2, "s", 1, {1: 40.0}, att(2, 2, DONE_ATT), gflops=10.0),
          rung_hyp(3, "t", 1, {1: 40.0}, att(3, 3, DONE_ATT), gflops=9.0)),
     Observations(), halving(eta=2),
     [PromoteRung(1, 1, (3,), ((2, STOP.format(r=2, n=2, t=40.0, up=1)),))]),
    ("fewer hypotheses than eta: one goes on",
     snap(B_DONE, rung_hyp(2, "t", 1, {1: 40.0}, att(2, 2, DONE_ATT)), rung_hyp(3, "f", 1, {1: 45.0},
                                                                                att(3, 3, DONE_ATT))),
     Observations(), halving(), [PromoteRung(1, 1, (3,), ((2, STOP.format(r=2, n=2, t=40.0, up=1)),))]),
    ("not-applicable and failed hypotheses take no part in a rung",
     snap(B_DONE, rung_hyp(2, "t", 1, {1: 40.0}, att(2, 2, DONE_ATT)),
          replace(hyp(3, 1, "l", HypState.NOT_APPLICABLE), gflops=None),
          rung_hyp(4, "f", 1, {}, att(4, 4, AttemptState.FAILED), state=HypState.FAILED)),
     Observations(), halving(), [PromoteRung(1, 1, (2,), ())]),
    ("promoted hypotheses are submitted together, resuming at the next rung",
     snap(B_DONE, rung_hyp(3, "t", 2, {1: 50.0}, att(3, 3, DONE_ATT)), rung_hyp(4, "f", 2, {1: 45.0},
                                                                                att(4, 4, DONE_ATT)),
          replace(rung_hyp(2, "s", 1, {1: 30.0}, att(2, 2, DONE_ATT), state=HypState.STOPPED), stopped_rung=1)),
     Observations(), halving(), [SubmitBatch((3, 4), 1)]),
    ("the last rung: the winner is chosen among the fully trained only",
     snap(B_DONE, replace(rung_hyp(3, "t", 3, {1: 50.0, 2: 55.0}, att(3, 3, DONE_ATT), state=HypState.DONE),
                          top1=60.0),
          replace(rung_hyp(4, "f", 2, {1: 45.0, 2: 70.0}, att(4, 4, DONE_ATT), state=HypState.STOPPED),
                  stopped_rung=2)),
     Observations(), halving(), [MarkWinner(3, "Eq. 3: highest top-1 60.00%")]),
    ("a rung job that completed without its rung file fails and names it",
     snap(B_DONE, rung_hyp(2, "t", 1, {}, replace(att(2, 2, RUN), rung=1))),
     Observations(jobs={2: JobOutcome(Phase.SUCCEEDED)}), halving(),
     [FailAttempt(2, RUN, "job completed without rung-1.json", JobOutcome(Phase.SUCCEEDED))]),
    # compute budget (search key budget.gpu_hours)
    ("under budget: submitted",
     snap(B_DONE, hyp(2, 1, "t", HypState.PLANNED)), Observations(), budget(10.0), [SubmitBatch((2,), 1)]),
    ("budget spent while jobs run: they finish, nothing new starts",
     snap(replace(B_DONE, attempts=(used(att(1, 1, AttemptState.COMPLETED), 6.0),)),
          hyp(2, 1, "t", HypState.RUNNING, used(att(2, 2, RUN), 5.0)), hyp(3, 1, "f", HypState.PLANNED)),
     Observations(jobs={2: running}), budget(10.0), [ObserveAttempt(2, RUN, running)]),
    ("budget spent, nothing runs: the search ends with the best network so far, the rest cancelled",
     snap(replace(B_DONE, attempts=(used(att(1, 1, AttemptState.COMPLETED), 6.0),)),
          replace(T_WON, top1=55.0, attempts=(used(att(2, 2, AttemptState.COMPLETED), 5.0),)),
          hyp(3, 2, "f", HypState.PLANNED)),
     Observations(), budget(10.0),
     [EndSearch(SearchState.DONE, "budget spent: 11 of 10 compute hours used; the best network so far is "
                                  "iteration 1's winner t (55.00% top-1, 10 GFLOPs/view)",
                cancel_unfinished="not started: the budget was spent")]),
    ("a measurement's result is ingested",
     snap(B_DONE, T_WON, hyp(4, 1, "latency", HypState.RUNNING, att(4, 4, RUN), kind="latency")),
     Observations(results={4: measurement()}), policy(iterations=1, measure=True),
     [IngestResult(4, 4, measurement(), None)]),
    # a teacher cache: B's soft labels made once (one job per shard) between B and iteration 1
    ("teacher cache: nothing before B is done", snap(B_RUNNING), Observations(jobs={1: running}), cached(),
     [ObserveAttempt(1, RUN, running)]),
    ("teacher cache: B done, the cache stage is planned instead of iteration 1", snap(B_DONE), Observations(),
     cached(3), [PlanCache(3)]),
    ("teacher cache: its shards go out as one batch of their own",
     snap(B_DONE, shard(5, 0, HypState.PLANNED), shard(6, 1, HypState.PLANNED)), Observations(), cached(2),
     [SubmitBatch((5, 6), 0)]),
    ("teacher cache: iteration 1 waits while a shard runs",
     snap(B_DONE, shard(5, 0, HypState.DONE, att(5, 5, DONE_ATT)), shard(6, 1, HypState.RUNNING, att(6, 6, RUN))),
     Observations(jobs={6: running}), cached(2), [ObserveAttempt(6, RUN, running)]),
    ("teacher cache: a shard's result is ingested",
     snap(B_DONE, shard(6, 1, HypState.RUNNING, att(6, 6, RUN))), Observations(results={6: SHARD}), cached(1),
     [IngestResult(6, 6, SHARD, None)]),
    ("teacher cache: every shard done, iteration 1 is planned",
     snap(B_DONE, shard(5, 0, HypState.DONE, att(5, 5, DONE_ATT)), shard(6, 1, HypState.DONE, att(6, 6, DONE_ATT))),
     Observations(), cached(2), [PlanIteration(1, 1)]),
    ("teacher cache: a shard that failed for good fails the search",
     snap(B_DONE, shard(5, 0, HypState.DONE, att(5, 5, DONE_ATT)),
          replace(shard(6, 1, HypState.FAILED, att(6, 6, AttemptState.FAILED)), reason="2 attempts failed")),
     Observations(), cached(2),
     [EndSearch(SearchState.FAILED, "the teacher cache could not be made: 0-cache-1: FAILED 2 attempts failed")]),
    ("teacher cache: a failing shard job spends a retry like any job",
     snap(B_DONE, shard(6, 1, HypState.RUNNING, att(6, 6, RUN))), Observations(jobs={6: failed}), cached(1),
     [FailAttempt(6, RUN, "OUT_OF_MEMORY: exit code 0:125", failed)]),
]




# ---- strategy: gradient (a supernet per target, then its candidates) --------------------------------------
def gradient(targets: tuple[float, ...] = (5.0, 2.0), eta: int = 4, rungs: int = 2, one: bool = True) -> Policy:
    return Policy(GradientSearch(targets, eta, rungs, one, LAYOUT), 1, Capacity(8), rungs=rungs)


def cand(cycle: int, code: str, gflops: float) -> Candidate:
    return Candidate(cycle, (0, 1), code, "crop /1.4", gflops, gflops * 1.1, 0.5, {"name": code}, f"/w/{code}.pt")


def supernet_result(*cands: Candidate, target: float = 5.0) -> SupernetResult:
    return SupernetResult("1-supernet", 1, target, cands, ("frames", "crop"), ((1.0, 0.0), (0.5, 0.5)), 12, 0.0,
                          10, 9, 3.0, 40, {})


def sn(hid: int, j: int, state: HypState, *attempts: AttemptRec, res: SupernetResult | None = None) -> HypRec:
    h = replace(hyp(hid, j, "supernet", state, *attempts, kind="supernet", gflops=None), top1=None, top5=None)
    return replace(h, result=json.dumps(res.to_dict()) if res is not None else None)


def cand_hyp(hid: int, j: int, op: str, rung: int, scores: dict[int, float], *attempts: AttemptRec,
             state: HypState = HypState.RUNNING, gflops: float = 5.0, top1: float | None = None) -> HypRec:
    h = replace(rung_hyp(hid, op, rung, scores, *attempts, state=state, gflops=gflops), iteration=j)
    return replace(h, top1=top1) if top1 is not None else h


TWO = supernet_result(cand(1, "g01", 4.9), cand(2, "g10", 5.2), cand(3, "g01", 4.9))
DONE_SN = sn(2, 1, HypState.DONE, att(2, 2, AttemptState.COMPLETED), res=TWO)
GRADIENT_CASES = [
    ("gradient: B done: one supernet per target", snap(B_DONE), Observations(), gradient(),
     [AddHypotheses((NewHypothesis(1, "supernet", "supernet", "5 GFLOPs", "/runs/s/hyp/1-supernet"),
                     NewHypothesis(2, "supernet", "supernet", "2 GFLOPs", "/runs/s/hyp/2-supernet")))]),
    ("gradient: the planned supernets are one batch",
     snap(B_DONE, sn(2, 1, HypState.PLANNED), sn(3, 2, HypState.PLANNED)), Observations(), gradient(),
     [SubmitBatch((2, 3), 2)]),
    ("gradient: a supernet's result is ingested", snap(B_DONE, sn(2, 1, HypState.RUNNING, att(2, 2, RUN))),
     Observations(results={2: TWO}), gradient(), [IngestResult(2, 2, TWO, None)]),
    ("gradient: a done supernet's distinct candidates become its target's hypotheses at rung 1",
     snap(B_DONE, DONE_SN, sn(3, 2, HypState.RUNNING, att(3, 3, RUN))), Observations(), gradient(),
     [AddHypotheses((NewHypothesis(1, "c1", "pas", "g01", "/runs/s/hyp/1-c1", gflops=4.9, spec='{"name": "g01"}',
                                   rung=1),
                     NewHypothesis(1, "c2", "pas", "g10", "/runs/s/hyp/1-c2", gflops=5.2, spec='{"name": "g10"}',
                                   rung=1)))]),
    ("gradient: rung 1 waits for every candidate",
     snap(B_DONE, DONE_SN, cand_hyp(4, 1, "c1", 1, {1: 40.0}), cand_hyp(5, 1, "c2", 1, {}, att(5, 5, RUN))),
     Observations(jobs={5: running}), gradient(), [ObserveAttempt(5, RUN, running)]),
    ("gradient: after the short training only the best candidate goes on",
     snap(B_DONE, DONE_SN, cand_hyp(4, 1, "c1", 1, {1: 40.0}), cand_hyp(5, 1, "c2", 1, {1: 45.0}),
          cand_hyp(6, 1, "c3", 1, {1: 45.0}, gflops=4.0)), Observations(), gradient(),
     [PromoteRung(1, 1, (6,), (
         (5, "stopped at rung 1/2: rank 2 of 3 by top-1 (top-1 45.00%, top-5 90.00% after 2 of 18 steps); the best "
             "1 went on"),
         (4, "stopped at rung 1/2: rank 3 of 3 by top-1 (top-1 40.00%, top-5 90.00% after 2 of 18 steps); the best "
             "1 went on")))]),
    ("gradient: with a halving section, the best ceil(n / eta) go on",
     snap(B_DONE, DONE_SN, cand_hyp(4, 1, "c1", 1, {1: 40.0}), cand_hyp(5, 1, "c2", 1, {1: 45.0}),
          cand_hyp(6, 1, "c3", 1, {1: 30.0})), Observations(), gradient(eta=2, one=False),
     [PromoteRung(1, 1, (5, 4), (
         (6, "stopped at rung 1/2: rank 3 of 3 by top-1 (top-1 30.00%, top-5 90.00% after 2 of 18 steps); the best "
             "2 went on"),))]),
    ("gradient: the candidate trained to the end is the target's network",
     snap(B_DONE, DONE_SN, cand_hyp(4, 1, "c1", 1, {1: 40.0}, state=HypState.STOPPED),
          cand_hyp(5, 1, "c2", 2, {1: 45.0}, att(5, 5, AttemptState.COMPLETED), state=HypState.DONE, top1=61.0),
          sn(3, 2, HypState.RUNNING, att(3, 3, RUN))), Observations(jobs={3: running}), gradient(),
     [ObserveAttempt(3, RUN, running),
      MarkWinner(5, "target 1 (5 GFLOPs): c2 c2 trained to the end, top-1 61.00% at 5 GFLOPs")]),
    ("gradient: every target has its network: done",
     snap(B_DONE, DONE_SN, replace(cand_hyp(5, 1, "c2", 2, {1: 45.0}, state=HypState.DONE, top1=61.0), winner=True)),
     Observations(), gradient(targets=(5.0,)), [EndSearch(SearchState.DONE, "every target ended: target 1: c2")]),
    ("gradient: a supernet that failed for good ends its target; the others go on",
     snap(B_DONE, replace(sn(2, 1, HypState.FAILED), reason="2 attempts failed"),
          sn(3, 2, HypState.RUNNING, att(3, 3, RUN))), Observations(jobs={3: running}), gradient(),
     [ObserveAttempt(3, RUN, running)]),
    ("gradient: no target has a network: failed",
     snap(B_DONE, replace(sn(2, 1, HypState.FAILED), reason="OOM")), Observations(), gradient(targets=(5.0,)),
     [EndSearch(SearchState.FAILED, "every target ended: target 1 (5 GFLOPs): its supernet failed (OOM)")]),
]
CASES += GRADIENT_CASES


@pytest.mark.parametrize(("snapshot", "observations", "pol", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_decide(snapshot: Snapshot, observations: Observations, pol: Policy, expected: list) -> None:
    assert decide(snapshot, observations, pol) == expected


def test_decide_is_pure_and_deterministic() -> None:
    """Same inputs, same actions; the inputs are not changed (frozen records)."""
    s, o = CASES[5][1], CASES[5][2]
    assert decide(s, o, policy()) == decide(s, o, policy())


def test_the_core_imports_no_io_modules() -> None:
    """decide's modules import no scheduler, database, subprocess or torch code."""
    import subprocess
    import sys

    code = ("import sys; import pas_orchestrator.core.decide, pas_orchestrator.strategies.coordinate_descent, "
            "pas_orchestrator.strategies.gradient; "
            "bad = [m for m in ('torch', 'sqlalchemy', 'submitit', 'subprocess', 'sqlite3') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"the decision core imports {out}"
