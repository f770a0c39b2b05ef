"""Successive halving: the rung arithmetic (pure), and a hypothesis trained rung by rung (each rung a
separate run resuming from last.pt) ending with exactly the weights of the uninterrupted run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pas_models.data.formats import load_dataset_config
from pas_models.halving import Rung, RungInvalid, RungResult, expected_fraction, promoted_count, rung_end
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_models.train.checkpoint import load_checkpoint
from pas_models.train.result import JobResult
from pas_models.train.run import run
from pas_models.train.task import Distill, EvalConfig, Recipe, TrainTask


@pytest.mark.parametrize(("total", "eta", "rungs", "ends"), [
    (30, 3, 3, [4, 10, 30]),  # ceil(30 / 9), 30 / 3, 30
    (18, 3, 3, [2, 6, 18]),
    (100, 2, 3, [25, 50, 100]),
    (10, 2, 4, [2, 3, 5, 10]),  # ceil(1.25), ceil(2.5), 5, 10
    (1, 3, 3, [1, 1, 1]),  # a one-step schedule: every rung trains that step
    (5, 3, 2, [2, 5]),
])
def test_rung_ends_are_ceil_of_the_schedule_over_eta_powers(total: int, eta: int, rungs: int,
                                                            ends: list[int]) -> None:
    got = [rung_end(total, eta, rungs, k) for k in range(1, rungs + 1)]
    assert got == ends and got == sorted(got) and got[-1] == total


def test_rung_end_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match=r"rung 4 is not in 1\.\.3"):
        rung_end(10, 3, 3, 4)
    with pytest.raises(ValueError, match="a schedule of 0 steps"):
        rung_end(0, 3, 3, 1)


@pytest.mark.parametrize(("n", "eta", "promoted"), [(5, 3, 2), (6, 3, 2), (7, 3, 3), (2, 3, 1), (1, 3, 1),
                                                     (0, 3, 0), (5, 2, 3), (4, 2, 2)])
def test_promoted_is_ceil_n_over_eta_and_at_least_one(n: int, eta: int, promoted: int) -> None:
    assert promoted_count(n, eta) == promoted


def test_expected_fraction_of_an_iteration() -> None:
    # 5 hypotheses, eta 3, 3 rungs: 5 x 1/9, then 2 x (1/3 - 1/9), then 1 x (1 - 1/3) of a full training
    assert expected_fraction(5, 3, 3) == pytest.approx((5 / 9 + 2 * (1 / 3 - 1 / 9) + 2 / 3) / 5)
    assert expected_fraction(5, 2, 3) == pytest.approx((5 / 4 + 3 * (1 / 2 - 1 / 4) + 2 * (1 / 2)) / 5)
    assert expected_fraction(1, 3, 3) == pytest.approx(1.0)  # one hypothesis: it trains to the end


def test_a_rung_file_is_validated(tmp_path: Path) -> None:
    r = RungResult("1-t", 1, 1, 3, 4, 30, 40.0, 80.0, 1, 8, 2.5, 64)
    assert RungResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    bad = tmp_path / "rung-1.json"
    bad.write_text(json.dumps({**r.to_dict(), "top1": 140.0}))
    with pytest.raises(RungInvalid, match=r"rung-1.json: top1: expected float"):
        RungResult.read(bad)
    bad.write_text(json.dumps({"top1": 40.0}))
    with pytest.raises(RungInvalid, match="not a rung result"):
        RungResult.read(bad)


def test_a_hypothesis_trained_rung_by_rung_ends_with_the_uninterrupted_weights(synth_dir: Path,
                                                                               tmp_path: Path) -> None:
    """3 epochs x 6 steps, eta 3, 3 rungs: rung 1 stops inside epoch 1 (step 2), rung 2 at its end (step 6);
    each rung is a separate run() resuming from last.pt; the last one's weights equal those of one run. The
    head has dropout (as SlowFast's): its masks draw from torch's global generator, which the resumed run
    must be at exactly where the uninterrupted one was (a DataLoader made mid-epoch must not draw from it)."""
    data = load_dataset_config(synth_dir / "dataset.yaml")
    teacher = preset("r2plus1d_tiny", 4)
    recipe = Recipe(epochs=3, batch_per_gpu=2, lr=0.05, reference_batch=4, warmup_epochs=0.5, schedule="cosine",
                    clips_per_video=1, num_workers=1, dropout=0.5)
    b = run(TrainTask("base", teacher, data, str(tmp_path / "base"), recipe=replace(recipe, epochs=1),
                      eval=EvalConfig(clips=1), measure_latency=False))
    assert isinstance(b, JobResult)
    common = {"student": apply_op(teacher, "t"), "data": data, "teacher": teacher, "teacher_checkpoint": b.checkpoint,
              "parent": teacher, "parent_checkpoint": b.checkpoint, "recipe": recipe, "distill": Distill(alpha=10),
              "eval": EvalConfig(clips=2), "measure_latency": False}
    whole = run(TrainTask("1-t", out_dir=str(tmp_path / "whole"), **common))  # type: ignore[arg-type]
    rungs = []
    for k, attempt in ((1, 1), (2, 2), (3, 3)):
        task = TrainTask("1-t", out_dir=str(tmp_path / "rungs"), attempt=attempt, rung=Rung(k, 3, 3),
                         **common)  # type: ignore[arg-type]
        rungs.append(run(task))
    r1, r2, final = rungs
    assert isinstance(r1, RungResult) and isinstance(r2, RungResult) and isinstance(final, JobResult)
    assert (r1.steps, r2.steps, r1.total_steps) == (2, 6, 18) and (r1.views, r1.eval_videos) == (1, 4)
    assert r1.clips_seen == 2 * 2 and r2.clips_seen == 6 * 2 and final.clips_seen == whole.clips_seen == 18 * 2
    assert RungResult.read(tmp_path / "rungs" / "rung-1.json") == r1
    log = (tmp_path / "rungs" / "train.log").read_text()
    assert "resuming at epoch 0 step 2" in log and "resuming at epoch 1 step 0" in log
    a = load_checkpoint(tmp_path / "whole" / "model.pt")["model"]
    z = load_checkpoint(tmp_path / "rungs" / "model.pt")["model"]
    differ = [k for k in a if not torch.equal(a[k], z[k])]
    assert a.keys() == z.keys() and not differ, differ
    assert (final.top1, final.top5) == (whole.top1, whole.top5)
    # a rung already run is returned, not trained again
    again = run(TrainTask("1-t", out_dir=str(tmp_path / "rungs"), attempt=4, rung=Rung(1, 3, 3),
                          **common))  # type: ignore[arg-type]
    assert again == final  # the hypothesis has its final result: that is what any run of it returns


def scored(hid: int, op: str, right: list[bool]) -> object:
    """A hypothesis waiting at rung 1 with one evaluation: right or wrong on each video, per video."""
    from snapshots import rung_hyp

    from pas_models.predictions import PerVideo

    h = rung_hyp(hid, op, 1, {1: 100 * sum(right) / len(right)})
    pv = PerVideo(len(right), (True,) * len(right), tuple(right), (True,) * len(right)).to_dict()
    (score,) = json.loads(h.rung_results or "[]")
    return replace(h, rung_results=json.dumps([{**score, "eval_videos": len(right), "per_video": pv}]))


def test_a_stopped_hypothesis_says_its_interval_and_its_paired_difference_with_the_best_at_the_rung() -> None:
    from snapshots import B_DONE, snap

    from pas_orchestrator.core.actions import PromoteRung
    from pas_orchestrator.strategies.rungs import rung_decision

    # 200 videos: t right on 120, f on 110 of those 120 (10 discordant, all for t), s on the first 60 only
    t, f, s = (scored(2, "t", [i < 120 for i in range(200)]), scored(3, "f", [i < 110 for i in range(200)]),
               scored(4, "s", [i < 60 for i in range(200)]))
    hyps = snap(B_DONE, t, f, s).hypotheses
    ranked = sorted(hyps[1:], key=lambda h: -h.score(1).top1)
    decision = rung_decision(1, hyps[1:], 2, lambda xs: (ranked, "top-1"), lambda n: 1)
    assert isinstance(decision, PromoteRung) and decision.promoted == (2,)
    why = dict(decision.stopped)
    assert "top-1 55.00% [48.1-61.7]" in why[3] and "against t, paired on the same 200 videos: -5.00 [" in why[3]
    assert why[3].count("not distinguishable") == 0  # 10 to 0 discordant videos: McNemar p = 0.002
    assert "top-1 30.00% [24.1-36.7]" in why[4] and "-30.00 [" in why[4]


def test_with_ties_a_hypothesis_the_paired_test_cannot_tell_from_the_last_promoted_goes_on_too() -> None:
    from snapshots import B_DONE, snap

    from pas_orchestrator.core.actions import PromoteRung
    from pas_orchestrator.strategies.rungs import rung_decision

    # 200 videos, each right on a prefix: t on 120, f on 100, c on 116, l on 117 (the ranking need not follow
    # top-1: Eq. 3); two of them differ on exactly the videos between their prefixes
    t, f, c, ll = (scored(2, "t", [i < 120 for i in range(200)]), scored(3, "f", [i < 100 for i in range(200)]),
                  scored(4, "c", [i < 116 for i in range(200)]), scored(5, "l", [i < 117 for i in range(200)]))
    hyps = snap(B_DONE, t, f, c, ll).hypotheses
    ranked = [hyps[1], hyps[2], hyps[3], hyps[4]]  # t, f, c, l: f is the last of the 2 promoted
    plain = rung_decision(1, hyps[1:], 3, lambda xs: (ranked, "Eq. 3"), lambda n: 2)
    assert isinstance(plain, PromoteRung) and plain.promoted == (2, 3)
    tie = rung_decision(1, hyps[1:], 3, lambda xs: (ranked, "Eq. 3"), lambda n: 2, tie_level=0.05)
    assert isinstance(tie, PromoteRung)
    # c (16 discordant with f, p 1e-4) and l (17) are distinguishable from f: nothing is added
    assert tie.promoted == (2, 3)
    ranked = [hyps[1], hyps[3], hyps[2], hyps[4]]  # t, c, f, l: c is the last promoted; l ties with it
    tie = rung_decision(1, hyps[1:], 3, lambda xs: (ranked, "Eq. 3"), lambda n: 2, tie_level=0.05)
    assert isinstance(tie, PromoteRung) and tie.promoted == (2, 4, 5)
    why = dict(tie.stopped)
    assert list(why) == [3]
    assert "rank 3 of 4" in why[3] and "the best 2 went on, and l tied with c (paired, level 0.05)" in why[3]
    # the strategy passes the definition's ties level to its rung decisions: Eq. 3 ranks t, l, c, f (equal GFLOPs);
    # ceil(4 / 3) = 2 go on, and c, one video from l, goes with them
    from snapshots import LAYOUT

    from pas_orchestrator.strategies.coordinate_descent import CoordinateDescent
    from pas_orchestrator.strategies.halving import SuccessiveHalving

    for level, promoted in ((None, (2, 5)), (0.05, (2, 5, 4))):
        strategy = SuccessiveHalving(CoordinateDescent(1, None, "eq3", 0.05, False, LAYOUT, ties_level=level), 3, 3)
        (action,) = strategy.advance(snap(B_DONE, t, f, c, ll))
        assert isinstance(action, PromoteRung) and action.promoted == promoted, level
