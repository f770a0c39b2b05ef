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
        "40_0|a|RUNNING|0:0|None|node1\n40_1|a|PENDING|0:0|None|None assigned\n41|b|COMPLETED|0:0|None|node2\n",
        SubmissionError("sacct: error: slurmdbd not responding"),
        SubmissionError("sacct: error: slurmdbd not responding"),
        "40_0|a|COMPLETED|0:0|None|node1\n40_1|a|RUNNING|0:0|None|node2\n41|b|COMPLETED|0:0|None|node2\n",
    ]
    queued = ["40_1|PENDING||Priority\n"]  # sacct has no pending reason: squeue is asked for it

    def fake_run_cmd(cmd: list[str], timeout: float = 120.0) -> str:
        calls.append(cmd)
        answer = answers.pop(0) if cmd[0] == "sacct" else queued.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    now = [1000.0]
    monkeypatch.setattr(slurm, "run_cmd", fake_run_cmd)
    monkeypatch.setattr(slurm.time, "monotonic", lambda: now[0])
    ex = slurm.SlurmExecutor(tmp_path, load_profile("slurm-local"), "r2plus1d_tiny", min_query_s=10)
    jobs = [JobRef("a", "40_0"), JobRef("a", "40_1"), JobRef("b", "41")]
    first = ex.states(jobs)
    assert [c[0] for c in calls] == ["sacct", "squeue"]
    assert calls[0][calls[0].index("-j") + 1] == "40,41" and calls[1][calls[1].index("-j") + 1] == "40"
    calls.pop()
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


def test_a_failure_state_is_confirmed_with_squeue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """sacct may show a NODE_FAIL run before SLURM's requeue of it: the job squeue still lists is alive
    (its failed run becomes history); one squeue no longer knows has failed, with its Python error."""
    import pickle

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "51_0_result.pkl").write_bytes(pickle.dumps(("error", "Traceback ...\nValueError: boom\n")))
    calls: list[list[str]] = []
    answers = {
        "sacct": "50|b|NODE_FAIL|0:0|None|node2\n51|b|FAILED|1:0|None|node1\n52|b|RUNNING|0:0|None|node1\n",
        "squeue": "50|PENDING||BeginTime\n",
    }

    def fake_run_cmd(cmd: list[str], timeout: float = 120.0) -> str:
        calls.append(cmd)
        return answers[cmd[0]]

    monkeypatch.setattr(slurm, "run_cmd", fake_run_cmd)
    ex = slurm.SlurmExecutor(tmp_path, load_profile("slurm-local"), "r2plus1d_tiny", min_query_s=0)
    st = ex.states([JobRef("b", "50"), JobRef("b", "51"), JobRef("b", "52")])
    assert [c[0] for c in calls] == ["sacct", "squeue"] and "-D" in calls[0]
    assert calls[1][calls[1].index("-j") + 1] == "50,51"  # only the failed ones are confirmed
    assert st["50"].state == "PENDING" and st["50"].reason == "BeginTime"
    assert st["50"].history == ("NODE_FAIL on node2",)
    assert st["51"].state == "FAILED" and st["51"].reason == "exit code 1:0; ValueError: boom"
    assert st["51"].node == "node1" and st["52"] == slurm.JobStatus("RUNNING", node="node1")

    def squeue_down(cmd: list[str], timeout: float = 120.0) -> str:
        if cmd[0] == "squeue":
            raise SubmissionError("`squeue` failed (exit 1): slurm_load_jobs error: Unable to contact slurm controller")
        return answers[cmd[0]]

    monkeypatch.setattr(slurm, "run_cmd", squeue_down)
    fresh = slurm.SlurmExecutor(tmp_path, load_profile("slurm-local"), "r2plus1d_tiny", min_query_s=0)
    st = fresh.states([JobRef("b", "50"), JobRef("b", "51")])
    assert st["50"].state == st["51"].state == "UNKNOWN"  # cannot confirm: no verdict yet

    def none_queued(cmd: list[str], timeout: float = 120.0) -> str:
        if cmd[0] == "squeue":
            raise SubmissionError("`squeue` failed (exit 1): slurm_load_jobs error: Invalid job id specified")
        return answers[cmd[0]]

    monkeypatch.setattr(slurm, "run_cmd", none_queued)
    assert fresh.states([JobRef("b", "50")])["50"].state == "NODE_FAIL"


def test_requeued_runs_are_history() -> None:
    """Real `sacct -D` of Slurm 22.05: a job requeued by SLURM after its node was set DOWN."""
    from pas_orchestrator.executors.sacct import parse_sacct

    rows = parse_sacct((Path(__file__).parent / "data/sacct_slurm22_requeued.txt").read_text())
    assert rows["2"][1] == slurm.JobStatus("COMPLETED", node="node2", history=("NODE_FAIL on node1",))
    assert rows["1"][1].state == "CANCELLED" and rows["1"][1].history == ("NODE_FAIL on node2",)


def test_a_started_task_still_in_the_pending_range_is_not_a_requeue() -> None:
    from pas_orchestrator.executors.sacct import parse_sacct

    rows = parse_sacct("24_[0-1]|b|PENDING|0:0|Resources|None assigned\n24_0|b|RUNNING|0:0|None|node2\n")
    assert rows["24_0"][1] == slurm.JobStatus("RUNNING", node="node2")  # no history: it ran once
    assert rows["24_1"][1] == slurm.JobStatus("PENDING", "Resources")
