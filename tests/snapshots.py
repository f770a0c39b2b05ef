"""Snapshots, observations and policies for the decision core's table tests (test_decide*.py), built by hand."""

from __future__ import annotations

import json
from dataclasses import replace

from pas_models.halving import RungResult
from pas_models.layout import RunLayout
from pas_models.measure import MeasureResult, Timing
from pas_models.teacher_cache.config import CacheShardResult
from pas_models.train.result import JobResult
from pas_orchestrator.core.decide import Capacity, Policy
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.ledger.records import AttemptRec, HypRec, NewHypothesis, SearchRec, Snapshot
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState
from pas_orchestrator.strategies.coordinate_descent import CoordinateDescent
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

