"""The submitit job: a time-limit/preemption signal (USR2, what SLURM sends) makes the job requeue
itself, and the requeued run resumes from last.pt instead of starting over."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import submitit

from pas_models.data.formats import load_dataset_config
from pas_models.presets import preset
from pas_models.train.checkpoint import read_json
from pas_models.train.job import TrainJob
from pas_models.train.run import STEP_SECONDS_ENV
from pas_models.train.task import EvalConfig, Recipe, TrainTask

EPOCHS = 8


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def test_usr2_requeues_and_the_job_resumes_from_its_checkpoint(synth_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # 8 epochs of 3 steps paced to 0.3 s each: 7 s of training whatever else runs here, the signal comes after
    # the first epoch's checkpoint (30 unpaced epochs: 8.8 CPU-s more for this test; 6 once ended before the signal)
    monkeypatch.setenv(STEP_SECONDS_ENV, "0.3")  # the job's environment is this process' (submitit's local executor)
    recipe = Recipe(epochs=EPOCHS, batch_per_gpu=4, lr=0.05, reference_batch=4, warmup_epochs=0.5, schedule="cosine",
                    clips_per_video=1, num_workers=0)
    task = TrainTask("base", preset("r2plus1d_tiny", 4), load_dataset_config(synth_dir / "dataset.yaml"),
                     str(tmp_path / "out"), recipe=recipe, eval=EvalConfig(clips=1))
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(timeout_min=60)  # not timed out: a preemption, requeued without using a timeout
    job = executor.submit(TrainJob(), task)
    last = tmp_path / "out" / "last.pt"
    deadline = time.monotonic() + 180
    while not last.exists():  # the first epoch is checkpointed: now interrupt it as SLURM would
        assert time.monotonic() < deadline, job.stderr()
        assert job.state != "FINISHED", job.stderr()
        time.sleep(0.05)
    (worker,) = _children(job._process.pid)  # the task process under submitit's local controller
    os.kill(worker, signal.SIGUSR2)
    result = job.result()
    assert result.epochs == EPOCHS
    assert read_json(tmp_path / "out" / "requeued.json") == {"requeues": 1}
    log = (tmp_path / "out" / "train.log").read_text()
    assert log.count("resuming at epoch") == 1
    assert "Requeued job" in job.stderr() or "Requeued job" in (job.stdout() or "")
    # the epochs before the signal were not trained again: training resumed after the checkpointed epoch(s)
    # and no epoch finished twice (the signal may land between the checkpoint and its log line)
    resumed = int(log.split("resuming at epoch ")[1].split()[0])
    assert resumed >= 1
    assert all(log.count(f"epoch {e}/{EPOCHS} done") <= 1 for e in range(1, EPOCHS + 1))
    assert all(log.count(f"epoch {e}/{EPOCHS} done") == 1 for e in range(resumed + 1, EPOCHS + 1))
    assert "every step lasts at least 0.3 s" in log
