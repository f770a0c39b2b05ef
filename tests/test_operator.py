"""What a person operating a search meets, with real processes and signals (local executor): Ctrl-C and
SIGTERM of the controller, `pas cancel` of a controller started with `&`, a job wrapper killed under
a live trainer, a pid reused by an unrelated process, a file that is not a ledger, "the latest search",
a resume from another spelling of the same folder and a definition that really changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tinyjob import TINY_RECIPE, look, pas, tiny_job

from pas_orchestrator.executors.local import group_alive, process_start

SYNTH = {"root": "data/synth", "classes": 4, "videos_per_class": 2, "val_per_class": 1, "frames": 16}


def _job(tmp: Path, name: str, base_epochs: int = 1, **overrides: object) -> Path:
    """One iteration of one operator; B trains ``base_epochs`` (long enough to be caught running)."""
    job = tiny_job(name, iterations=1, operators={"t": 2}, max_retries=0, synthetic=SYNTH,
                   base={"train": True, "recipe": {**TINY_RECIPE, "epochs": base_epochs}}, **overrides)
    (tmp / "job.yaml").write_text(yaml.safe_dump(job))
    return tmp / "job.yaml"


def _status(cwd: Path) -> dict:
    """`pas status --json` (its function, in this process: tests/tinyjob.look)."""
    st = look(cwd)
    assert st is not None
    return st


def _foreground() -> None:
    """A terminal's foreground job has the default SIGINT action, whatever this test process inherited (a
    suite started in the background by a non-interactive shell ignores SIGINT, and so would its children)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _controller(cwd: Path, *extra: str) -> subprocess.Popen[str]:
    """`pas search` in its own process group, as a terminal starts a foreground job."""
    return subprocess.Popen([sys.executable, "-m", "pas_orchestrator", "search", "--job", "job.yaml", "--poll", "0.3",
                             *extra], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_foreground)


def _running_job(cwd: Path, timeout: float = 300) -> dict:
    """The first attempt with a job id whose trainer has started (it holds the hypothesis' lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for h in (look(cwd) or {"hypotheses": []})["hypotheses"]:
            for a in h["attempts"]:
                if a["job_id"] and a["state"] in ("SUBMITTED", "RUNNING") \
                        and (Path(h["out_dir"]) / ".lock").is_file() \
                        and (Path(h["out_dir"]) / ".lock").read_text().startswith("pid "):
                    return {**a, "out_dir": h["out_dir"]}
        time.sleep(0.3)
    raise AssertionError("no job started training")


def _gone(pgid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not group_alive(pgid)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_interrupts_without_spending_a_retry(tmp_path: Path, how: str) -> None:
    """max_retries 0: were the interruption a failure, the search would fail on resume."""
    _job(tmp_path, "intr", base_epochs=40)
    ctl = _controller(tmp_path)
    job = _running_job(tmp_path)
    os.killpg(ctl.pid, getattr(signal, how))  # Ctrl-C: the terminal signals the whole foreground group
    out, err = ctl.communicate(timeout=60)
    assert ctl.returncode == 130, err[-2000:]
    assert "Traceback" not in out + err, (out + err)[-3000:]
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[-1].startswith(f"pas search: intr interrupted ({'Ctrl-C' if how == 'SIGINT' else how}); 1 local "
                                "job(s) stopped"), lines
    assert _gone(int(job["job_id"]))  # the job's whole process group, trainer and loader workers included
    (base,) = _status(tmp_path)["hypotheses"]
    (att,) = base["attempts"]
    assert att["state"] == "INTERRUPTED" and att["reason"].startswith("controller interrupted"), att
    if how == "SIGTERM":
        return  # the resume is the same after either
    # a definition that changed is refused, naming the key; the same one from another spelling of the same
    # folder (a symlink: data/synth resolves elsewhere, to the same files) resumes
    changed = yaml.safe_load((tmp_path / "job.yaml").read_text())
    changed["base"]["recipe"]["epochs"] = 41
    (tmp_path / "job2.yaml").write_text(yaml.safe_dump(changed))
    refused = pas(tmp_path, "search", "--job", "job2.yaml")
    assert refused.returncode == 1 and "base.recipe.epochs: 40 -> 41" in refused.stderr, refused.stderr
    link = tmp_path.parent / f"{tmp_path.name}-link"
    link.symlink_to(tmp_path)
    resumed = subprocess.run([sys.executable, "-m", "pas_orchestrator", "search", "--job", "job.yaml", "--poll", "0.3"],
                             cwd=link, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PWD": str(link)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (base, _) = _status(tmp_path)["hypotheses"]
    assert [a["state"] for a in base["attempts"]] == ["INTERRUPTED", "COMPLETED"], base["attempts"]


@pytest.mark.slow
def test_cancel_stops_the_jobs_of_a_controller_started_with_ampersand(tmp_path: Path) -> None:
    """A script's `&` job ignores SIGINT (inherited SIG_IGN), and so do its local jobs: cancel stops the
    whole process group (SIGTERM, then SIGKILL), checks it, and nothing says RUNNING afterwards."""
    _job(tmp_path, "amp", base_epochs=200)
    script = f"{sys.executable} -m pas_orchestrator search --job job.yaml --poll 0.3 > ctl.log 2>&1 &\necho $!\n"
    pid = int(subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                             check=True).stdout.strip())
    try:
        job = _running_job(tmp_path)
        with open(f"/proc/{job['job_id']}/status") as fh:
            ignored = int(next(line for line in fh if line.startswith("SigIgn:")).split()[1], 16)
        assert ignored & (1 << (signal.SIGINT - 1)), "the job should ignore SIGINT, as under a script's &"
        cancel = pas(tmp_path, "cancel")
        assert cancel.returncode == 0, cancel.stderr
        assert "search amp cancelled; its controller stopped; 1 job(s) cancelled" in cancel.stdout
        assert _gone(int(job["job_id"]), timeout=5)  # cancel returned after checking
        st = _status(tmp_path)
        assert st["state"] == "CANCELLED"
        atts = [a for h in st["hypotheses"] for a in h["attempts"]]
        assert [a["state"] for a in atts] == ["CANCELLED"]
        assert all(a["scheduler_state"] != "RUNNING" for a in atts), atts
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_cancel_reports_a_controller_that_stopped_by_itself_and_never_signals_a_stale_lease(tmp_path: Path) -> None:
    """The controller may see the recorded cancellation and stop (releasing its lease) before `pas cancel`
    signals it (seen once in CI: the message lost "its controller stopped"); a lease left by a killed
    controller long ago names a pid that may now be another process: it is not signalled."""
    import socket

    from pas_orchestrator.commands.cancel import _stop_controller
    from pas_orchestrator.ledger.store import LEASE_STALE_SECONDS, Ledger

    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        assert ledger.lease_holder() is None  # released on its way out
        assert _stop_controller(ledger, (socket.gethostname(), gone.pid, time.time())) == "; its controller stopped"
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            said = _stop_controller(ledger, (socket.gethostname(), other.pid, time.time() - LEASE_STALE_SECONDS - 5))
            time.sleep(0.3)
            assert other.poll() is None, "a process holding a stale lease's pid was signalled"
            assert f"its controller (pid {other.pid}, no heartbeat for" in said
        finally:
            other.kill()
            other.wait()
    finally:
        ledger.close()


@pytest.mark.slow
def test_a_trainer_that_outlives_its_killed_wrapper_is_waited_for(tmp_path: Path) -> None:
    """SIGKILL the job's wrapper process only: its trainer goes on holding the hypothesis' lock; the
    attempt waits for it and ingests its result (no failure, no retry: max_retries is 0)."""
    _job(tmp_path, "orphan", base_epochs=25)
    ctl = _controller(tmp_path)
    try:
        job = _running_job(tmp_path)
        os.kill(int(job["job_id"]), signal.SIGKILL)  # the wrapper alone, not its group
        time.sleep(2)
        lock = Path(job["out_dir"]) / ".lock"
        assert lock.read_text().startswith("pid "), "the trainer should still hold the lock"
        _, err = ctl.communicate(timeout=600)
        assert ctl.returncode == 0, err[-3000:]
    finally:
        ctl.kill()
    st = _status(tmp_path)
    base = st["hypotheses"][0]
    assert base["state"] == "DONE" and [a["state"] for a in base["attempts"]] == ["COMPLETED"], base["attempts"]
    assert st["state"] == "DONE"


def test_a_reused_pid_is_not_the_job(tmp_path: Path) -> None:
    """A local job is its pid *and* its start time: a live process that got the pid of a finished job
    (here: one whose recorded start time differs) is not that job."""
    from pas_orchestrator.config.cluster import load_profile
    from pas_orchestrator.core.outcomes import Phase
    from pas_orchestrator.executors.base import JobRef
    from pas_orchestrator.executors.local import LocalExecutor

    stranger = subprocess.Popen(["sleep", "60"])
    try:
        ex = LocalExecutor(tmp_path / "submitit", load_profile("local"), "r2plus1d_tiny")
        batch = tmp_path / "submitit" / "b1"
        batch.mkdir(parents=True)
        start = process_start(stranger.pid)
        assert start is not None
        ref = JobRef("b1", str(stranger.pid))
        (batch / f"{stranger.pid}_identity.json").write_text(json.dumps({"pid": stranger.pid, "start": start}))
        assert ex.outcomes([ref])[ref.job_id].phase == Phase.RUNNING  # the recorded process itself
        boot, ticks = start.rsplit(":", 1)
        (batch / f"{stranger.pid}_identity.json").write_text(
            json.dumps({"pid": stranger.pid, "start": f"{boot}:{int(ticks) - 100}"}))
        outcome = ex.outcomes([ref])[ref.job_id]
        assert outcome.phase == Phase.FAILED and "ended without a result" in (outcome.reason or "")
        assert ex.cancel([ref]) == [] and stranger.poll() is None  # and it is never signalled
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize("kind", ["foreign-sqlite", "empty"])
def test_a_file_that_is_not_a_ledger_is_refused_by_every_command(tmp_path: Path, kind: str) -> None:
    import sqlite3

    _job(tmp_path, "foreign")
    ledger = tmp_path / "runs" / "foreign" / "ledger.sqlite"
    ledger.parent.mkdir(parents=True)
    if kind == "empty":
        ledger.touch()
    else:
        with sqlite3.connect(ledger) as db:
            db.execute("CREATE TABLE moz_places (id INTEGER)")
    before = ledger.read_bytes()
    for args in (["search", "--job", "job.yaml"], ["status"], ["report"], ["cancel"]):
        out = pas(tmp_path, *args, timeout=120)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "runs/foreign/ledger.sqlite" in lines[0] and "not a pas ledger" in lines[0], \
            (args, out.stderr)
    assert ledger.read_bytes() == before


def test_the_latest_search_is_the_one_active_last_not_the_newest_file(tmp_path: Path) -> None:
    from pas_orchestrator.core.actions import LogEvent
    from pas_orchestrator.ledger import Ledger
    from pas_orchestrator.runs import find_ledger

    runs = tmp_path / "runs"
    for name in ("old", "busy"):
        led = Ledger(runs / name / "ledger.sqlite")
        led.init_search(name, {}, "h", "local")
        led.close()
        time.sleep(0.05)
    led = Ledger(runs / "busy" / "ledger.sqlite")
    led.apply(LogEvent("poll", "still running"))  # the running search writes its -wal file, not the ledger
    led.close()
    os.utime(runs / "old" / "ledger.sqlite")  # a newer mtime on the finished one (copied, touched)
    assert find_ledger(runs, None) == runs / "busy" / "ledger.sqlite"


def test_definition_changes_name_each_key_and_ignore_another_spelling_of_a_folder(tmp_path: Path) -> None:
    """A bind mount is the case `Path.resolve()` cannot see through (a cluster's /home and /gpfs/home):
    the same folder under two paths is not a change; a different value is named with both sides."""
    from pas_orchestrator.runs import definition_changes

    real, other = tmp_path / "data", tmp_path / "mnt"
    real.mkdir()
    other.mkdir()
    old = {"synthetic": {"root": str(real), "classes": 4}, "recipe": {"lr": 0.05}, "name": "x"}
    assert definition_changes(old, old) == []
    assert definition_changes(old, {**old, "recipe": {"lr": 0.1}, "seed": 1}) == [
        "recipe.lr: 0.05 -> 0.1", "seed: (absent) -> 1"]
    assert definition_changes(old, {**old, "synthetic": {"root": str(other), "classes": 4}}) == [
        f"synthetic.root: {str(real)!r} -> {str(other)!r}"]
    if os.geteuid() != 0:
        pytest.skip("the bind mount needs root (CI runs as root)")
    mount = subprocess.run(["mount", "--bind", str(real), str(other)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"no bind mount here: {mount.stderr.strip()}")
    try:
        assert definition_changes(old, {**old, "synthetic": {"root": str(other), "classes": 4}}) == []
    finally:
        subprocess.run(["umount", str(other)], check=True)
