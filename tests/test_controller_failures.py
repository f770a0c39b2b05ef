"""Failing jobs: each attempt's failure is recorded with its reason, retried up to max_retries, then
the hypothesis is failed and the search stops with a clear error (here: the base network fails)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tinyjob import failing_job


def test_failing_job_is_retried_then_failed_with_its_reason(tmp_path: Path) -> None:
    failing_job(tmp_path, "fails")  # every video unreadable: the job raises
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
