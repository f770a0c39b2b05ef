"""SLURM polling: one sacct call for all jobs per poll, at most one per min_query_s, the last answer kept
and the wait doubled while sacct fails (run_cmd replaced by a recorder: no SLURM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pas_orchestrator.config.cluster import load_profile
from pas_orchestrator.errors import SubmissionError
from pas_orchestrator.executors import slurm
from pas_orchestrator.executors.base import JobRef


def test_batched_rate_limited_polling_with_backoff(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[list[str]] = []
    answers: list[str | Exception] = [
        "40_0|a|RUNNING|0:0|None\n40_1|a|PENDING|0:0|Priority\n41|b|COMPLETED|0:0|None\n",
        SubmissionError("sacct: error: slurmdbd not responding"),
        SubmissionError("sacct: error: slurmdbd not responding"),
        "40_0|a|COMPLETED|0:0|None\n40_1|a|RUNNING|0:0|None\n41|b|COMPLETED|0:0|None\n",
    ]

    def fake_run_cmd(cmd: list[str], timeout: float = 120.0) -> str:
        calls.append(cmd)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    now = [1000.0]
    monkeypatch.setattr(slurm, "run_cmd", fake_run_cmd)
    monkeypatch.setattr(slurm.time, "monotonic", lambda: now[0])
    ex = slurm.SlurmExecutor(tmp_path, load_profile("slurm-local"), "r2plus1d_tiny", min_query_s=10)
    jobs = [JobRef("a", "40_0"), JobRef("a", "40_1"), JobRef("b", "41")]
    first = ex.states(jobs)
    assert len(calls) == 1 and "-j" in calls[0] and calls[0][calls[0].index("-j") + 1] == "40,41"
    assert first["40_0"].state == "RUNNING" and first["40_1"].reason == "Priority" and first["41"].state == "COMPLETED"
    now[0] += 5
    assert ex.states(jobs) == first and len(calls) == 1  # within min_query_s: no call
    now[0] += 6
    assert ex.states(jobs) == first and len(calls) == 2  # sacct fails: last answer kept, wait 20 s
    now[0] += 15
    assert ex.states(jobs) == first and len(calls) == 2
    now[0] += 6
    ex.states(jobs)
    assert len(calls) == 3  # failed again: now 40 s
    now[0] += 39
    ex.states(jobs)
    assert len(calls) == 3
    now[0] += 2
    last = ex.states(jobs)
    assert len(calls) == 4 and last["40_0"].state == "COMPLETED" and last["40_1"].state == "RUNNING"
