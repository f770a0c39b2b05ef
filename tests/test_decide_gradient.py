"""The decision core's table for the gradient strategy: a supernet per target, then its candidates."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from snapshots import (
    B_DONE,
    LAYOUT,
    RUN,
    att,
    hyp,
    rung_hyp,
    running,
    snap,
)
from tinyjob import tiny_job

from pas_models.data.formats import DatasetConfig
from pas_models.layout import HypFiles
from pas_models.nas.result import Candidate, SupernetResult
from pas_models.presets import preset
from pas_orchestrator.config.search import search_from_dict
from pas_orchestrator.core.actions import (
    AddHypotheses,
    EndSearch,
    IngestResult,
    MarkWinner,
    ObserveAttempt,
    PromoteRung,
    SubmitBatch,
)
from pas_orchestrator.core.decide import Capacity, Observations, Policy, decide
from pas_orchestrator.kinds import TaskContext, train_row_task
from pas_orchestrator.ledger.records import AttemptRec, HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState
from pas_orchestrator.strategies.gradient import GradientSearch


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


@pytest.mark.parametrize(("snapshot", "observations", "pol", "expected"), [c[1:] for c in GRADIENT_CASES],
                         ids=[c[0] for c in GRADIENT_CASES])
def test_decide_gradient(snapshot: Snapshot, observations: Observations, pol: Policy, expected: list) -> None:
    assert decide(snapshot, observations, pol) == expected


@pytest.mark.parametrize("init", ["supernet", "pas"])
def test_a_candidate_starts_from_its_supernet_cut_or_as_pas_would(init: str) -> None:
    """gradient.candidate_init: ``supernet`` (the default) trains candidate c2 from its weights cut from its
    target's supernet at the end of cycle 2, at lr / gradient.lr_divisor; ``pas`` from B's weights, PAS's rule."""
    gradient_keys = {"targets_gflops": [0.002], "lr_divisor": 4}
    job = tiny_job("s", strategy="gradient", gradient=gradient_keys if init == "supernet"
                   else {**gradient_keys, "candidate_init": "pas"})
    search = search_from_dict(job, "job.yaml")
    assert search.gradient is not None and search.gradient.candidate_init == init
    student = preset("r2plus1d_tiny", 4)
    c2 = replace(cand_hyp(4, 1, "c2", 1, {}), path="g01", spec=student.to_json())
    ctx = TaskContext(search, DatasetConfig("list", "/data", {"train": "t.txt", "val": "v.txt"}, num_classes=4), LAYOUT)
    task = train_row_task(ctx, snap(B_DONE, DONE_SN, c2), c2)
    b_model = str(HypFiles.of(B_DONE.out_dir).model)
    assert task.teacher_checkpoint == b_model and task.student == student
    if init == "supernet":
        assert task.parent_checkpoint == str(HypFiles.of(DONE_SN.out_dir).candidate("g01", 2))
        assert task.lr_divisor == 4 and task.parent == student
    else:
        assert task.parent_checkpoint == b_model and task.lr_divisor == search.finetune.lr_divisor
        assert task.parent == search.base_spec()
