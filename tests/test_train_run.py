"""The training job on CPU with the tiny preset and synthetic videos: outputs, idempotence, SIGKILL + resume,
the teacher's batch-norm statistics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pas_models.data.formats import load_dataset_config
from pas_models.nets import build_model
from pas_models.predictions import PerVideo, Predictions
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_models.train.checkpoint import load_checkpoint, save_checkpoint
from pas_models.train.result import JobResult
from pas_models.train.run import STEP_SECONDS_ENV, CheckpointMismatch, run
from pas_models.train.task import Distill, EvalConfig, Recipe, TrainTask
from pas_models.train.teacher import build_teacher

RECIPE = Recipe(epochs=2, batch_per_gpu=4, lr=0.05, reference_batch=4, warmup_epochs=0.5, schedule="cosine",
                clips_per_video=1, num_workers=0)


def _task(synth_dir: Path, out: Path, **kw: object) -> TrainTask:
    data = load_dataset_config(synth_dir / "dataset.yaml")
    args: dict[str, object] = {"hypothesis": "h", "student": preset("r2plus1d_tiny", 4), "data": data,
                               "out_dir": str(out), "recipe": RECIPE, "eval": EvalConfig(clips=2), **kw}
    return TrainTask(**args)  # type: ignore[arg-type]


def test_base_then_distilled_student(synth_dir: Path, tmp_path: Path) -> None:
    base = run(_task(synth_dir, tmp_path / "base"))
    for name in ("last.pt", "model.pt", "result.json", "train.log"):
        assert (tmp_path / "base" / name).exists(), name
    assert base.epochs == 2 and base.clips_seen == 2 * 12 and base.views == 2
    assert 0 <= base.top1 <= base.top5 <= 100 and base.eval_videos == 4
    assert json.loads((tmp_path / "base" / "result.json").read_text()) == base.to_dict()
    assert JobResult.read(tmp_path / "base" / "result.json") == base  # what the controller reads back
    # per video, beside the result: which of the 4 validation videos it got right, agreeing with its top-1/top-5
    pred = Predictions.read(tmp_path / "base" / "predictions.npz")
    assert pred.videos == 4 and pred.video.tolist() == [0, 1, 2, 3] and pred.top.shape == (4, 4)
    assert (pred.top[:, 0] == pred.label).mean() * 100 == pytest.approx(base.top1)
    assert abs(pred.prob.astype(float).sum(1) - 1).max() < 0.01  # every class is in its top 4 of 4
    per = PerVideo.from_dict(base.per_video)
    assert per.evaluated == (True,) * 4 and sum(per.top1) * 25 == pytest.approx(base.top1)
    assert sum(per.top5) * 25 == pytest.approx(base.top5) and per == pred.per_video()
    fresh = build_model(preset("r2plus1d_tiny", 4)).state_dict()
    assert load_checkpoint(base.checkpoint)["model"].keys() == fresh.keys()
    teacher = preset("r2plus1d_tiny", 4)
    student = apply_op(teacher, "f")
    res = run(_task(synth_dir, tmp_path / "f", student=student, teacher=teacher, teacher_checkpoint=base.checkpoint,
                    parent=teacher, parent_checkpoint=base.checkpoint))
    assert res.finetuned_from_parent is True
    assert res.gflops_per_view == pytest.approx(base.gflops_per_view / 2, rel=0.01)
    c = run(_task(synth_dir, tmp_path / "c", student=apply_op(teacher, "c"), teacher=teacher,
                  teacher_checkpoint=base.checkpoint, parent=teacher, parent_checkpoint=base.checkpoint))
    assert c.finetuned_from_parent is False


def test_existing_result_is_returned_without_training(synth_dir: Path, tmp_path: Path) -> None:
    task = _task(synth_dir, tmp_path)
    first = run(task)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.is_file()}
    assert run(task) == first
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.is_file()} == stamps  # nothing rewritten


def test_checkpoint_of_another_task_is_refused(synth_dir: Path, tmp_path: Path) -> None:
    save_checkpoint({"config_hash": "0123456789abcdef"}, tmp_path / "last.pt")
    with pytest.raises(CheckpointMismatch, match="written by a different task"):
        run(_task(synth_dir, tmp_path))


CHILD = """
import pickle, sys
from pas_models.train.run import run
run(pickle.loads(bytes.fromhex(sys.argv[1])))
"""


def test_sigkill_mid_epoch_then_rerun_resumes(synth_dir: Path, tmp_path: Path) -> None:
    import pickle

    recipe = Recipe(**{**RECIPE.__dict__, "epochs": 3, "batch_per_gpu": 2, "checkpoint_minutes": 0.0})
    task = _task(synth_dir, tmp_path, recipe=recipe)
    # each step of the child lasts at least 0.3 s (the checkpoint is written after it), so the 50 ms poll kills it
    # while epoch 2 is still under way even on a loaded machine (unpaced, the poll once missed the rest of the epoch)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, pickle.dumps(task).hex()], cwd=Path(__file__).parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, STEP_SECONDS_ENV: "0.3"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill once a mid-epoch checkpoint of epoch 2 exists
            try:
                ckpt = load_checkpoint(tmp_path / "last.pt")
                if ckpt["epoch"] == 1 and ckpt["step"] >= 2:
                    break
            except Exception:  # not written yet (the rename is atomic, so never torn)
                pass
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(tmp_path / "last.pt")
    # killed inside epoch 2 (6 steps per epoch), with steps of it left, after the poll saw it under way
    assert killed_at["epoch"] == 1 and 2 <= killed_at["step"] < 6
    assert not (tmp_path / "result.json").exists()
    result = run(task)
    assert result.epochs == 3
    assert result.clips_seen == 3 * 12  # no clip trained twice, none lost
    assert f"resuming at epoch 1 step {killed_at['step']} from" in (tmp_path / "train.log").read_text()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_teacher_bn_modes_leave_stored_statistics_unchanged(tmp_path: Path, mode: str) -> None:
    spec = preset("r2plus1d_tiny", 4)
    torch.manual_seed(0)
    model = build_model(spec)
    with torch.no_grad():
        model.train()(torch.randn(4, *spec.input_shape()))  # non-trivial running statistics
    save_checkpoint({"model": model.state_dict()}, tmp_path / "t.pt")
    task = TrainTask(hypothesis="x", student=spec, data=None, out_dir=str(tmp_path),  # type: ignore[arg-type]
                     teacher=spec, teacher_checkpoint=str(tmp_path / "t.pt"), distill=Distill(teacher_bn=mode))
    teacher = build_teacher(task, torch.device("cpu"))
    assert teacher is not None and teacher.training == (mode == "train")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    x = torch.randn(4, *spec.input_shape())
    with torch.no_grad():
        out1 = teacher(x)
        teacher(torch.randn(4, *spec.input_shape()) * 3)
        out2 = teacher(x)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert torch.allclose(out1, out2, atol=1e-6)
    assert all(not p.requires_grad for p in teacher.parameters())
    if mode == "train":  # batch statistics, not the stored ones: differs from eval mode
        assert not torch.allclose(out1, model.eval()(x), atol=1e-4)


def test_two_gloo_processes_follow_the_single_process_trajectory(synth_dir: Path, tmp_path: Path) -> None:
    """Same seed and total batch (8 = 1 x 8 = 2 x 4): each step trains on the same 8 clips and DDP
    averages the gradients. Tolerance 10% per step: each rank's BatchNorm normalises with its own
    4 clips (SyncBatchNorm is GPU-only), and the gap compounds; measured: 0.7% at the first step,
    at most 5.1% over the 6 steps."""
    from pas_models.train.launch import run_local

    losses, results = {}, {}
    for nproc in (1, 2):
        recipe = Recipe(**{**RECIPE.__dict__, "batch_per_gpu": 8 // nproc, "reference_batch": 8,
                           "clips_per_video": 2})
        out = tmp_path / str(nproc)
        results[nproc] = run_local(_task(synth_dir, out, recipe=recipe), nproc)
        losses[nproc] = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses[1]) == len(losses[2]) == 2 * (24 // 8)
    for a, b in zip(losses[1], losses[2], strict=True):
        assert b == pytest.approx(a, rel=0.10)
    assert losses[2][0] == pytest.approx(losses[1][0], rel=0.02)  # same clips, same initial weights
    assert results[1].clips_seen == results[2].clips_seen == 2 * 24
    assert results[1].eval_videos == results[2].eval_videos == 4  # every video counted once
    assert PerVideo.from_dict(results[2].per_video).evaluated == (True,) * 4  # every rank's videos recorded
