"""The submitit job: a time-limit/preemption signal (USR2, what SLURM sends) makes the job requeue
itself, and the requeued run resumes from last.pt instead of starting over."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import submitit

from pas_models.data.formats import load_dataset_config
from pas_models.presets import preset
from pas_models.train.checkpoint import read_json
from pas_models.train.job import TrainJob
from pas_models.train.task import EvalConfig, Recipe, TrainTask


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def test_usr2_requeues_and_the_job_resumes_from_its_checkpoint(synth_dir: Path, tmp_path: Path) -> None:
    # 30 epochs (a few seconds): with 6 the whole training once ended before the signal arrived
    recipe = Recipe(epochs=30, batch_per_gpu=4, lr=0.05, reference_batch=4, warmup_epochs=0.5, schedule="cosine",
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
    assert result.epochs == 30
    assert read_json(tmp_path / "out" / "requeued.json") == {"requeues": 1}
    log = (tmp_path / "out" / "train.log").read_text()
    assert log.count("resuming at epoch") == 1
    assert "Requeued job" in job.stderr() or "Requeued job" in (job.stdout() or "")
    # the epochs before the signal were not trained again: training resumed after the checkpointed epoch(s)
    # and no epoch finished twice (the signal may land between the checkpoint and its log line)
    resumed = int(log.split("resuming at epoch ")[1].split()[0])
    assert resumed >= 1
    assert all(log.count(f"epoch {e}/30 done") <= 1 for e in range(1, 31))
    assert all(log.count(f"epoch {e}/30 done") == 1 for e in range(resumed + 1, 31))
