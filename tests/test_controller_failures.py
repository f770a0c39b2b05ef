"""Failing jobs: each attempt's failure is recorded with its reason, retried up to max_retries, then
the hypothesis is failed and the search stops with a clear error (here: the base network fails)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml


def test_failing_job_is_retried_then_failed_with_its_reason(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(4):
        (videos / f"v{i}.mp4").write_bytes(b"not a video")  # every video unreadable: the job raises
    (tmp_path / "train.txt").write_text("".join(f"videos/v{i}.mp4 {i % 2}\n" for i in range(4)))
    (tmp_path / "val.txt").write_text("videos/v0.mp4 0\n")
    job = {"name": "fails", "backbone": "r2plus1d_tiny", "base": {"train": True}, "max_retries": 1,
           "data": {"format": "list", "root": str(tmp_path), "num_classes": 2,
                    "annotations": {"train": "train.txt", "val": "val.txt"}},
           "recipe": {"epochs": 1, "batch_per_gpu": 2, "num_workers": 0}, "eval": {"clips": 1}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    run = subprocess.run([sys.executable, "-m", "pas_orchestrator", "search", "--job", "job.yaml", "--poll", "0.3"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1
    assert "pas search: fails failed: the base network failed: 2 attempts failed (max_retries 1)" in run.stdout
    status = json.loads(subprocess.run([sys.executable, "-m", "pas_orchestrator", "status", "--json"], cwd=tmp_path,
                                       capture_output=True, text=True, check=True, timeout=60).stdout)
    assert status["state"] == "FAILED"
    (base,) = status["hypotheses"]
    assert base["state"] == "FAILED" and [a["state"] for a in base["attempts"]] == ["FAILED", "FAILED"]
    assert all("NoReadableVideo" in (a["reason"] or "") or "unreadable" in (a["reason"] or "")
               for a in base["attempts"]), base["attempts"]
