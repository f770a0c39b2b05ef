"""The tiny search definition the controller tests start from, and running `pas` as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TINY_RECIPE = {"epochs": 1, "batch_per_gpu": 4, "lr": 0.05, "reference_batch": 4, "warmup_epochs": 0,
               "clips_per_video": 1, "num_workers": 0}


def tiny_job(name: str, **overrides: Any) -> dict[str, Any]:
    """A tiny R(2+1)D on a 4-class synthetic set (data/synth, generated on first use), latency not measured
    (``eval: {clips: 1}`` turns the measurement job on); top-level keys of ``overrides`` replace the defaults."""
    return {"name": name, "backbone": "r2plus1d_tiny", "base": {"train": True},
            "synthetic": {"root": "data/synth", "classes": 4, "videos_per_class": 3, "val_per_class": 1,
                          "frames": 16},
            "recipe": dict(TINY_RECIPE), "eval": {"clips": 1, "latency_passes": 0}, "distill": {"alpha": 10},
            **overrides}


def failing_job(root: Path, name: str) -> dict[str, Any]:
    """A search whose every video is unreadable (the job raises), retried once, written to root/job.yaml."""
    import yaml

    videos = root / "videos"
    videos.mkdir()
    for i in range(4):
        (videos / f"v{i}.mp4").write_bytes(b"not a video")
    (root / "train.txt").write_text("".join(f"videos/v{i}.mp4 {i % 2}\n" for i in range(4)))
    (root / "val.txt").write_text("videos/v0.mp4 0\n")
    job = {"name": name, "backbone": "r2plus1d_tiny", "base": {"train": True}, "max_retries": 1,
           "data": {"format": "list", "root": str(root), "num_classes": 2,
                    "annotations": {"train": "train.txt", "val": "val.txt"}},
           "recipe": {**TINY_RECIPE, "batch_per_gpu": 2}, "eval": {"clips": 1}}
    (root / "job.yaml").write_text(yaml.safe_dump(job))
    return job


def pas(cwd: Path, *args: str, timeout: float = 900,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`pas ARGS` in ``cwd``; ``env``: variables added to this process' environment."""
    return subprocess.run([sys.executable, "-m", "pas_orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env} if env else None)


def look(cwd: Path) -> dict | None:
    """What `pas status --json` prints in ``cwd`` (its function on the search's ledger, read-only, in this
    process: a wait loop polling it costs milliseconds, not a process that imports pas), None while there is
    no ledger or no search in it yet. The one search under ``cwd/runs``."""
    from pas_orchestrator.errors import LedgerError
    from pas_orchestrator.ledger import Ledger
    from pas_orchestrator.views import as_json

    ledgers = sorted((cwd / "runs").glob("*/ledger.sqlite"))
    if not ledgers:
        return None
    try:
        ledger = Ledger(ledgers[0], readonly=True)
        try:
            return as_json(ledger.snapshot())
        finally:
            ledger.close()
    except LedgerError as exc:
        if "no search yet" in str(exc):
            return None
        raise


def paced(seconds: float) -> dict[str, str]:
    """The environment that makes every training step of the jobs started under it last ``seconds`` at least
    (``PAS_TEST_STEP_SECONDS``): a training of a known wall time whatever else runs on the machine, for almost
    no CPU (what a test of a time limit or of a node going down needs)."""
    from pas_models.train.run import STEP_SECONDS_ENV

    return {STEP_SECONDS_ENV: str(seconds)}
