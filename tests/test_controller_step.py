"""The controller driven in this process, one ``step()`` at a time: a real ledger (SQLite on disk), a fake executor
and a fake clock (tests/fakes.py). observe -> decide -> apply / submit, the submission backoff, the cancel race, a
lease taken over, results that arrive while no controller runs. Whole searches in subprocesses (test_cli_search,
test_controller_kill, the SLURM tests) stay for what needs real processes and a real scheduler."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
from fakes import FakeClock, FakeExecutor, controller, drive, write_result

from pas_models.layout import HypFiles
from pas_orchestrator.controller import Controller
from pas_orchestrator.core.actions import CancelSearch
from pas_orchestrator.core.decide import Capacity
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.errors import LedgerError, SubmissionError
from pas_orchestrator.ledger.records import Snapshot
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState
from pas_orchestrator.ledger.store import Ledger


def snap(c: Controller) -> Snapshot:
    return c.ledger.snapshot()


def only_job(ex: FakeExecutor) -> str:
    (jid,) = ex.active()
    return jid


def test_a_search_runs_from_B_to_its_winner_one_step_at_a_time(tmp_path: Path) -> None:
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    drive(c)  # B planned (its FLOPs counted), submitted
    (base,) = snap(c).iteration(0)
    assert base.state == HypState.RUNNING and [b for b, _ in ex.batches] == ["pas-inproc-i0-b1"]
    jid = only_job(ex)
    assert drive(c) == 0  # queued: nothing changes
    ex.run(jid)
    drive(c)
    (a,) = snap(c).iteration(0)[0].attempts
    assert a.state == AttemptState.RUNNING and a.node == "node1" and a.job_id == jid
    ex.succeed(jid, top1=90.0, gflops=base.gflops)
    drive(c)  # B ingested; iteration 1 planned from it and submitted as one batch
    s = snap(c)
    assert s.iteration(0)[0].state == HypState.DONE and s.iteration(0)[0].top1 == 90.0
    hyps = s.iteration(1)
    assert sorted(h.op for h in hyps) == ["c", "s"] and all(h.state == HypState.RUNNING for h in hyps)
    assert ex.batches[-1][0] == "pas-inproc-i1-b2" and len(ex.batches[-1][1]) == 2
    for h in hyps:
        job = next(j for j, x in ex.jobs.items() if x.task.out_dir == h.out_dir)
        ex.succeed(job, top1={"s": 85.0, "c": 60.0}[h.op], gflops=h.gflops)
    drive(c)
    s = snap(c)
    assert s.search.state == SearchState.DONE, s.search.error
    winner = s.winner(1)
    assert winner is not None and winner.op == "s"  # 85% at half the FLOPs beats 60%
    assert drive(c) == 0 and not c.step()  # an ended search: nothing more


def test_a_failed_job_spends_a_retry_then_fails_its_hypothesis(tmp_path: Path) -> None:
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    drive(c)
    first = only_job(ex)
    ex.fail(first, "CUDA error: out of memory")
    drive(c)  # failed, retried (max_retries 1): a second attempt submitted
    second = only_job(ex)
    assert second != first
    (b,) = snap(c).iteration(0)
    assert [a.state for a in b.attempts] == [AttemptState.FAILED, AttemptState.SUBMITTED]
    assert "out of memory" in (b.attempts[0].reason or "")
    ex.fail(second, "CUDA error: out of memory")
    drive(c)
    s = snap(c)
    assert s.iteration(0)[0].state == HypState.FAILED and "2 attempts failed" in (s.iteration(0)[0].reason or "")
    assert s.search.state == SearchState.FAILED


def test_an_interrupted_job_is_submitted_again_without_spending_a_retry(tmp_path: Path) -> None:
    ex = FakeExecutor()
    c = controller(tmp_path, ex, max_retries=0)
    drive(c)
    ex.interrupt(only_job(ex))
    drive(c)
    (b,) = snap(c).iteration(0)
    assert [a.state for a in b.attempts] == [AttemptState.INTERRUPTED, AttemptState.SUBMITTED]
    assert b.state == HypState.RUNNING


def test_a_result_decides_over_the_scheduler_and_a_finishing_job_is_followed(tmp_path: Path) -> None:
    """result.json is the truth whatever the scheduler says; a job still exiting when its result is ingested is
    followed until the scheduler says how it ended (shown by `pas status`)."""
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    drive(c)
    jid = only_job(ex)
    ex.succeed(jid, still_running=True)
    drive(c)
    (a,) = snap(c).iteration(0)[0].attempts
    assert a.state == AttemptState.COMPLETED and c._finishing  # ingested; its job still followed
    ex.fail(jid, "exit code 1 while exiting")  # the job then ends badly: the result stands
    c.step()
    (a,) = snap(c).iteration(0)[0].attempts
    assert a.state == AttemptState.COMPLETED and a.scheduler_state == "FAILED" and not c._finishing


def test_a_job_that_ended_while_its_trainer_holds_the_hypothesis_is_waited_for(tmp_path: Path) -> None:
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    drive(c)
    jid = only_job(ex)
    out = Path(snap(c).iteration(0)[0].out_dir)
    lock = HypFiles.of(out).lock
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a+b") as fh:  # a trainer that outlived its wrapper holds the lock
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(b"pid 4242 on node1")
        fh.flush()
        ex.fail(jid, "the wrapper was killed")
        drive(c)
        (a,) = snap(c).iteration(0)[0].attempts
        assert a.state != AttemptState.FAILED and "still holds the hypothesis" in (a.reason or "")
        write_result(ex.jobs[jid].task, 70.0)  # the trainer finishes
    drive(c)
    assert snap(c).iteration(0)[0].state == HypState.DONE


def test_a_transient_submission_failure_backs_off_doubling_then_submits(tmp_path: Path) -> None:
    ex, clock = FakeExecutor(), FakeClock()
    c = controller(tmp_path, ex, clock)
    ex.refuse = [SubmissionError("sbatch: error: Socket timed out"), SubmissionError("sbatch: Socket timed out")]
    drive(c)  # planned; the first submission fails; its attempt is looked for (not there), abandoned
    assert ex.calls.count("submit") == 1 and ex.calls.count("find") >= 1
    (b,) = snap(c).iteration(0)
    assert [a.state for a in b.attempts] == [AttemptState.ABANDONED]
    first = 6.0  # 3 x the local profile's 2 s poll
    events = [e.message for e in c.ledger.events(1000) if e.kind == "submit"]
    assert f"next try in {first:.0f} s" in events[-1]
    clock.advance(first - 0.1)
    drive(c)
    assert ex.calls.count("submit") == 1  # still waiting
    clock.advance(0.1)
    drive(c)  # second try fails too: twice the wait
    assert ex.calls.count("submit") == 2
    assert f"next try in {2 * first:.0f} s" in [e.message for e in c.ledger.events(1000) if e.kind == "submit"][-1]
    clock.advance(2 * first)
    drive(c)
    assert ex.calls.count("submit") == 3 and len(ex.active()) == 1
    assert snap(c).iteration(0)[0].attempts[-1].state == AttemptState.SUBMITTED
    ex.refuse = [SubmissionError("sbatch: Socket timed out")]  # a success reset the backoff
    ex.fail(only_job(ex))
    drive(c)
    assert f"(try 1), next try in {first:.0f} s" in [e.message for e in c.ledger.events(1000) if e.kind == "submit"][-1]


def test_a_refused_submission_fails_the_search_at_once(tmp_path: Path) -> None:
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    ex.refuse = [SubmissionError("sbatch: error: Invalid account or account/partition combination", permanent=True)]
    drive(c)
    s = snap(c)
    assert s.search.state == SearchState.FAILED and "Invalid account" in (s.search.error or "")
    assert [a.state for a in s.iteration(0)[0].attempts] == [AttemptState.ABANDONED]


def test_pas_cancel_while_sbatch_runs_cancels_the_jobs_it_queued(tmp_path: Path) -> None:
    """`pas cancel` (another process) records the cancellation between sbatch and the job ids being recorded: the
    controller's record is refused (compare-and-set) and the jobs it just queued are cancelled, not left running."""
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    other = Ledger(c.ledger.path)
    ex.during_submit = lambda: other.apply(CancelSearch("cancelled by pas cancel"))
    drive(c)
    assert ex.batches and ex.cancelled == ex.batches[0][1]
    s = snap(c)
    assert s.search.state == SearchState.CANCELLED
    assert any(e.kind == "conflict" for e in c.ledger.events(1000))


def test_a_controller_whose_lease_was_taken_over_stops(tmp_path: Path) -> None:
    c = controller(tmp_path)
    Ledger(c.ledger.path).acquire_lease(stale_seconds=0)  # another controller took the search over
    with pytest.raises(LedgerError, match="lost its lease"):
        c.run(poll_seconds=0)


def test_a_result_written_while_no_controller_ran_is_ingested_after_the_restart(tmp_path: Path) -> None:
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    drive(c)
    jid = only_job(ex)
    c.ledger.close()  # the controller is gone (killed): its job goes on and finishes
    ex.succeed(jid, top1=88.0)
    again = controller(tmp_path, ex)
    drive(again)
    s = snap(again)
    assert s.iteration(0)[0].state == HypState.DONE and s.iteration(0)[0].top1 == 88.0
    assert len(s.iteration(1)) == 2  # and the search went on


def test_jobs_queued_before_the_controller_recorded_them_are_found_again(tmp_path: Path) -> None:
    """Killed between sbatch and recording the job ids: the next controller finds the jobs by name and records
    them (nothing submitted twice)."""
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    real_submit = ex.submit

    def killed_after_sbatch(batch: str, tasks: list) -> list[str]:
        real_submit(batch, tasks)
        raise KeyboardInterrupt  # the controller dies here

    ex.submit = killed_after_sbatch  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        drive(c)
    (a,) = snap(c).iteration(0)[0].attempts
    assert a.state == AttemptState.CREATED and a.job_id is None
    c.ledger.close()
    ex.submit = real_submit  # type: ignore[method-assign]
    again = controller(tmp_path, ex)
    drive(again)
    (a,) = snap(again).iteration(0)[0].attempts
    assert a.state == AttemptState.SUBMITTED and a.job_id == ex.batches[0][1][0] and len(ex.batches) == 1
    assert any("found" in e.message for e in again.ledger.events(1000))


def test_capacity_limits_what_runs_at_once(tmp_path: Path) -> None:
    ex = FakeExecutor(Capacity(max_array=64, max_concurrent=1))
    c = controller(tmp_path, ex)
    drive(c)
    ex.succeed(only_job(ex), gflops=snap(c).iteration(0)[0].gflops)
    drive(c)
    assert len(ex.active()) == 1  # two hypotheses, one at a time
    ex.succeed(only_job(ex), top1=40.0)
    drive(c)
    assert len(ex.active()) == 1 and len(ex.batches) == 3


def test_pas_cancel_keeps_a_result_that_came_in_after_the_controller_died(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The controller is gone; one of its jobs finished and wrote result.json: `pas cancel` ingests it (the
    hypothesis is DONE with its figures), cancels only what did not finish, and says so."""
    import argparse

    from pas_orchestrator.commands import cancel

    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    drive(c)
    ex.succeed(only_job(ex), gflops=snap(c).iteration(0)[0].gflops)
    drive(c)
    s_hyp = next(h for h in snap(c).iteration(1) if h.op == "s")
    s_job = next(j for j, x in ex.jobs.items() if x.task.out_dir == s_hyp.out_dir)
    c.ledger.release_lease()
    c.ledger.close()  # the controller dies; job s finishes anyway, job c does not
    write_result(ex.jobs[s_job].task, 77.0)
    assert cancel.run(argparse.Namespace(search="inproc", runs=tmp_path / "runs", cluster=None)) == 0
    out = capsys.readouterr().out
    led = Ledger(c.ledger.path, readonly=True)
    try:
        s = led.snapshot()
    finally:
        led.close()
    by_op = {h.op: h for h in s.iteration(1)}
    assert by_op["s"].state == HypState.DONE and by_op["s"].top1 == 77.0
    assert by_op["c"].state == HypState.CANCELLED and s.search.state == SearchState.CANCELLED
    assert "1 job(s) cancelled" in out and "1 finished result kept (1-s)" in out, out


def test_interrupting_the_controller_stops_its_local_jobs_and_spends_no_retry(tmp_path: Path) -> None:
    ex = FakeExecutor()
    ex.stops_with_controller = True  # local processes: they stop with their controller
    c = controller(tmp_path, ex)
    drive(c)
    jid = only_job(ex)
    assert c.interrupt("controller interrupted (Ctrl-C)") == 1
    assert ex.cancelled == [jid]
    (a,) = snap(c).iteration(0)[0].attempts
    assert a.state == AttemptState.INTERRUPTED and "Ctrl-C" in (a.reason or "")
    again = controller(tmp_path, ex)  # the same command again: B resumes, no retry spent
    drive(again)
    assert [a.state for a in snap(again).iteration(0)[0].attempts] == [AttemptState.INTERRUPTED,
                                                                         AttemptState.SUBMITTED]


def test_an_orphan_waits_while_the_scheduler_cannot_say_whether_it_has_it(tmp_path: Path) -> None:
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    real_submit, real_find = ex.submit, ex.find

    def killed_after_sbatch(batch: str, tasks: list) -> list[str]:
        real_submit(batch, tasks)
        raise KeyboardInterrupt

    def unreachable(*_: object, **__: object) -> dict[int, str]:
        raise SubmissionError("squeue: error: slurm_load_jobs error: Socket timed out")

    ex.submit = killed_after_sbatch  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        drive(c)
    ex.submit, ex.find = real_submit, unreachable  # type: ignore[method-assign]
    again = controller(tmp_path, ex)
    drive(again)
    (a,) = snap(again).iteration(0)[0].attempts
    assert a.state == AttemptState.CREATED and len(ex.batches) == 1  # neither abandoned nor sent again
    ex.find = real_find  # type: ignore[method-assign]
    drive(again)
    (a,) = snap(again).iteration(0)[0].attempts
    assert a.state == AttemptState.SUBMITTED and a.job_id == ex.batches[0][1][0] and len(ex.batches) == 1


def test_an_unexpected_error_while_submitting_abandons_the_attempts_and_is_raised(tmp_path: Path) -> None:
    ex = FakeExecutor()
    c = controller(tmp_path, ex)

    def broken(batch: str, tasks: list) -> list[str]:
        raise RuntimeError("submitit: cannot pickle the task")

    ex.submit = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="cannot pickle"):
        drive(c)
    (a,) = snap(c).iteration(0)[0].attempts
    assert a.state == AttemptState.ABANDONED and "cannot pickle" in (a.reason or "")


def test_an_iterations_latency_is_measured_alone_before_the_search_ends(tmp_path: Path) -> None:
    """With latency measured, the iteration's measurement job is planned once its trainings ended, submitted
    alone (a local executor runs nothing beside it), as a MeasureTask of B and the iteration's networks; the
    search ends once its result is in."""
    from pas_models.measure import MeasureResult, MeasureTask, Timing

    ex = FakeExecutor(Capacity(max_array=64, max_concurrent=2, drain_for_exclusive=True))
    c = controller(tmp_path, ex, eval={"clips": 1, "latency_passes": 2, "latency_batches": [1]})
    drive(c)
    ex.succeed(only_job(ex), gflops=snap(c).iteration(0)[0].gflops)
    drive(c)
    for jid in ex.active():
        ex.succeed(jid)
    drive(c)
    s = snap(c)
    (m,) = [h for h in s.hypotheses if h.kind == "latency"]
    assert s.search.state == SearchState.RUNNING and s.winner(1) is not None and m.state == HypState.RUNNING
    (jid,) = ex.active()
    task = ex.jobs[jid].task
    assert isinstance(task, MeasureTask) and [n for n, _ in task.networks] == ["0-base", "1-c", "1-s"]
    timings = tuple(Timing(n, 1, 1.0, 0.9, 1.1, (1.0,), 0.0, 2) for n, _ in task.networks)
    Path(task.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(task.out_dir) / "result.json").write_text(MeasureResult(task.label, 1, "cpu", "h", 2, 1, timings).to_json())
    ex.jobs[jid].outcome = JobOutcome(Phase.SUCCEEDED, label="COMPLETED")
    drive(c)
    assert snap(c).search.state == SearchState.DONE
