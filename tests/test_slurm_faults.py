"""Faults against real SLURM daemons (tests/slurm/cluster.sh): a controller SIGKILLed at random instants
and between sbatch and the ledger write, a job that exits non-zero, a node set DOWN under a running
job, and the scheduler states `pas status` shows on the way. No mocks. Run with `make test-slurm`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from slurmkit import B, controller, profile, sacct, wait_for
from tinyjob import TINY_RECIPE, failing_job, look, paced, pas, tiny_job

from pas_orchestrator.errors import LedgerError
from pas_orchestrator.ledger import Ledger

pytestmark = pytest.mark.slurm


def _status(cwd: Path) -> dict:
    """`pas status --json` (its function, in this process: tests/tinyjob.look)."""
    st = look(cwd)
    assert st is not None
    return st


def _idle_nodes() -> set[str]:
    out = subprocess.run(["sinfo", "-h", "-N", "-p", "debug", "-t", "idle", "-o", "%N"], capture_output=True, text=True,
                         timeout=30)
    return set(out.stdout.split())


def _since() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))


def _every_job_once_and_known(tmp_path: Path, status: dict, since: str, found_again: int) -> None:
    """Every job SLURM ran for the search since ``since``: once per attempt job name, each one known to the
    ledger, no finished job's result lost, none of an abandoned attempt; at least ``found_again`` found by name."""
    attempts = {a["job_name"]: a for h in status["hypotheses"] + status["measurements"] for a in h["attempts"]}
    # every job SLURM ran for this search: once per attempt job name, each one known to the ledger
    seen: dict[str, list[str]] = {}
    for jid, name, state, *_ in sacct("-S", since, fields="JobID,JobName,State"):
        if name.startswith("pas-slurm-kill-"):
            key = f"{name}_{jid.split('_')[1] if '_' in jid else 0}"
            assert key not in seen, f"{key} submitted twice: {seen[key]} and {jid}"
            seen[key] = [jid, state]
    assert seen and set(seen) <= set(attempts), set(seen) - set(attempts)
    for key, (jid, state) in seen.items():
        a = attempts[key]
        assert a["job_id"] == jid, (key, a)
        assert state != "COMPLETED" or a["state"] == "COMPLETED", (key, a)  # no finished job's result lost
    abandoned = [k for k, a in attempts.items() if a["state"] == "ABANDONED"]
    assert not set(abandoned) & set(seen), "an abandoned attempt had reached SLURM"
    # jobs submitted by a controller killed before recording them were found again by name
    ledger = Ledger(tmp_path / "runs" / "slurm-kill" / "ledger.sqlite", readonly=True)
    found = [e for e in ledger.events(limit=100_000) if e.kind == "reconcile" and "found job" in e.message]
    ledger.close()
    assert len(found) >= found_again, found


@pytest.mark.xdist_group("slurm-b")
def test_sigkilled_controller_submits_nothing_twice_and_loses_nothing(tmp_path: Path) -> None:
    """>= 10 SIGKILLs: at random instants, and by the controller itself right after sbatch returned
    (before the job ids reach the ledger) or right before sbatch (attempts committed, nothing sent)."""
    since = _since()
    job = tiny_job("slurm-kill", iterations=2, max_retries=3, operators={"t": 2, "f": 2, "c": 1.4},
                   # latency measured (its jobs are submitted under kills too), briefly
                   eval={"clips": 1, "latency_batches": [1], "latency_rounds": 1, "latency_passes": 2})
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    cluster = profile(tmp_path, max_array_size=3, partition=B)
    # a failpoint run goes on until its next submission and dies there (whatever the machine's speed);
    # the others are killed after 1-4 s, wherever they are. The failpoints come first: a controller that
    # starts fast gets far in a few seconds, and the search must not end before the plan does
    plan = ["after-sbatch", None, "before-sbatch", None, "after-sbatch", None, "after-sbatch", None, None,
            None, None, None, None]
    rng = random.Random(4321)
    kills, self_kills, runs = 0, {"after-sbatch": 0, "before-sbatch": 0}, 0
    deadline = time.monotonic() + 900
    while True:
        assert time.monotonic() < deadline, "the killed search did not finish"
        point = plan[runs] if runs < len(plan) else None
        proc = controller(tmp_path, cluster, failpoints=point)
        runs += 1
        try:
            rc = proc.wait(timeout=300 if point else rng.uniform(1.0, 4.0) if runs <= len(plan) else 900)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        if rc == -signal.SIGKILL and point:  # it killed itself at its failpoint
            self_kills[point] += 1
            kills += 1
            continue
        assert rc == 0, proc.stderr.read().decode()[-3000:] if proc.stderr else rc
        break
    assert kills >= 10 and self_kills == {"after-sbatch": 3, "before-sbatch": 1}, (kills, self_kills)

    status = _status(tmp_path)
    assert status["state"] == "DONE"
    _every_job_once_and_known(tmp_path, status, since, self_kills["after-sbatch"])
    for h in status["hypotheses"]:
        if h["state"] != "DONE":
            continue
        assert [a["state"] for a in h["attempts"]].count("COMPLETED") == 1, h["attempts"]
        result = json.loads((Path(h["out_dir"]) / "result.json").read_text())
        assert (h["top1"], h["top5"]) == (result["top1"], result["top5"])
        assert (Path(h["out_dir"]) / "train.log").read_text().count("epoch 1/1 done") == 1  # trained once
    for m in status["measurements"]:  # each iteration's latency measured once
        assert m["state"] == "DONE" and [a["state"] for a in m["attempts"]].count("COMPLETED") == 1, m


def test_failing_job_is_retried_then_failed_with_its_reason(tmp_path: Path) -> None:
    failing_job(tmp_path, "slurm-fails")  # every video unreadable: the job raises
    run = pas(tmp_path, "search", "--job", "job.yaml", "--cluster", "slurm-local", "--poll", "1")
    assert run.returncode == 1, run.stderr[-3000:]
    assert "the base network failed: 2 attempts failed (max_retries 1)" in run.stdout
    status = _status(tmp_path)
    (base,) = status["hypotheses"]
    assert status["state"] == "FAILED" and base["state"] == "FAILED"
    assert [a["state"] for a in base["attempts"]] == ["FAILED", "FAILED"]
    for a in base["attempts"]:  # SLURM's verdict and the job's own Python error
        assert a["scheduler_state"] == "FAILED" and a["reason"].startswith("FAILED: exit code 1:0; "), a
        assert "NoReadableVideo" in a["reason"], a
        assert a["node"] in ("node1", "node2")
    assert len({a["job_id"] for a in base["attempts"]}) == 2
    text = pas(tmp_path, "status").stdout
    assert "NoReadableVideo" in text and "FAILED node" in text, text


def test_node_down_under_a_running_job_is_detected_and_the_job_reruns_on_the_other_node(tmp_path: Path) -> None:
    # a training of ~15 s whatever else runs here: 20 epochs of 3 steps paced to 0.25 s each (a fixed 300
    # unpaced epochs took 30 s on one machine; 60 once finished before the node could be taken down under it);
    # what is left of it after the requeue reruns on the other node
    epochs = 20
    job = tiny_job("slurm-down", iterations=1, operators={"f": 2},
                   base={"train": True, "recipe": {**TINY_RECIPE, "checkpoint_minutes": 0.01, "epochs": epochs}})
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    wait_for("both nodes idle", lambda: _idle_nodes() == {"node1", "node2"}, timeout=60)  # partition debug's
    proc = controller(tmp_path, env_extra=paced(0.25))
    down = None
    try:
        base_dir = tmp_path / "runs" / "slurm-down" / "hyp" / "0-base"
        rows = wait_for("the base job running a few epochs", lambda: (
            (base_dir / "train.log").is_file() and f"epoch 3/{epochs} done" in (base_dir / "train.log").read_text()
            and [r for r in sacct("--name", "pas-slurm-down-i0-b1", "-S", "now-1hours") if r[2] == "RUNNING"]))
        (jid, _, _, _, down) = rows[0]
        subprocess.run(["scontrol", "update", f"nodename={down}", "state=down", "reason=pas-test"], check=True,
                       timeout=30)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
    finally:
        proc.kill()
        if down:
            subprocess.run(["scontrol", "update", f"nodename={down}", "state=resume"], timeout=30)
    other = {"node1": "node2", "node2": "node1"}[down]
    status = _status(tmp_path)
    base = status["hypotheses"][0]
    assert status["state"] == "DONE" and base["state"] == "DONE"
    (attempt,) = base["attempts"]  # SLURM requeued the same job: no second submission
    assert attempt["job_id"] == jid and attempt["state"] == "COMPLETED"
    assert attempt["node"] == other and attempt["requeues"] >= 1
    ledger = Ledger(tmp_path / "runs" / "slurm-down" / "ledger.sqlite", readonly=True)
    events = [e.message for e in ledger.events(limit=1000) if e.kind == "requeue"]
    ledger.close()
    assert any(f"NODE_FAIL on {down}" in m for m in events), events
    log = (base_dir / "train.log").read_text()
    resumed = [int(line.split("resuming at epoch ")[1].split()[0]) for line in log.splitlines()
               if "resuming at epoch" in line]
    assert resumed and resumed[0] >= 3, log  # from its checkpoint, on the other node
    assert json.loads((base_dir / "result.json").read_text())["epochs"] == epochs


def _look(cwd: Path, name: str) -> tuple[dict, str]:
    """What `pas status --json` and `pas status` print (their functions on a read-only ledger: the CLI
    takes a second to start, too slow to catch a state that lasts a few seconds)."""
    from pas_orchestrator.views import as_json, render

    ledger = Ledger(cwd / "runs" / name / "ledger.sqlite", readonly=True)
    try:
        snap = ledger.snapshot()
    finally:
        ledger.close()
    return as_json(snap), render(snap)


def _kill_trainer(out_dir: str) -> None:
    """SIGKILL the trainer of a hypothesis (its pid is in the hypothesis' lock). On a real cluster scancel ends
    the job step's processes (cgroups); on this emulated one (proctrack/linuxproc, two slurmd on one host) the
    step's Python outlived scancel and finished its training, seen as `13.batch CANCELLED, 13.0 COMPLETED`."""
    lock = Path(out_dir) / ".lock"
    text = lock.read_text() if lock.is_file() else ""
    if text.startswith("pid "):
        try:
            os.kill(int(text.split()[1]), signal.SIGKILL)
        except ProcessLookupError:
            pass


def _steps_done(out_dir: str) -> int:
    metrics = Path(out_dir) / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.is_file() else 0


def _scancel_a_running_one(st: dict) -> dict | None:
    """scancel a hypothesis early in its training and kill its trainer; the hypothesis, if it ended CANCELLED
    (one that had written its result by then is done: the result decides), else None."""
    # a hypothesis still training: its attempt active (a job whose result came in while it was
    # finishing also says RUNNING for a moment, under a COMPLETED attempt)
    running = [h for h in st["hypotheses"] if h["iteration"] == 1 and h["state"] == "RUNNING" and h["attempts"]
               and h["attempts"][-1]["state"] in ("SUBMITTED", "RUNNING")
               and h["attempts"][-1]["scheduler_state"] == "RUNNING"]
    # early in its 30 steps (0.3 s each): what is left outlasts KillWait (1 s), when the job, which
    # ignores SIGTERM like every submitit job, is killed
    running = [h for h in running if _steps_done(h["out_dir"]) < 10]
    if not running:
        return None
    job_id = running[0]["attempts"][-1]["job_id"]
    subprocess.run(["scancel", job_id], check=True, timeout=30)
    _kill_trainer(running[0]["out_dir"])
    # the ledger lags the scheduler by a poll: the job may have completed before scancel came
    ended = wait_for(f"job {job_id} to end", lambda j=job_id: [
        r[1] for r in sacct("-j", j, fields="JobID,State") if r[1] not in ("RUNNING", "COMPLETING")],
        timeout=60)
    # sacct says CANCELLED at once, while the job may still run for KillWait (submitit ignores SIGTERM)
    # and finish: wait until slurmctld holds it no more
    wait_for(f"job {job_id} to leave the queue", lambda j=job_id: not subprocess.run(
        ["squeue", "-h", "-j", j], capture_output=True, text=True, timeout=30).stdout.strip(),
        timeout=60)
    # and a job that had written its result by then is done: the result decides (not an
    # interruption); another running hypothesis is cancelled then
    if ended[0].startswith("CANCELLED") and not (Path(running[0]["out_dir"]) / "result.json").exists():
        return running[0]
    return None


def test_status_shows_the_slurm_states_and_a_cancelled_hypothesis_is_retried(tmp_path: Path) -> None:
    """Four hypotheses using all the CPUs of a node each, on two nodes: two run, two wait (PENDING,
    Resources); one running hypothesis is scancel'ed (CANCELLED: interrupted, not failed), run again and
    finished; `pas status` shows it all."""
    # 10 epochs of 3 steps paced to 0.3 s: each hypothesis trains ~9 s whatever else runs here
    job = tiny_job("slurm-states", iterations=1, operators={"s": 1.4, "t": 2, "f": 2, "c": 1.4},
                   recipe={**TINY_RECIPE, "epochs": 10})
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    cluster = profile(tmp_path, max_array_size=3, cpus_per_task=os.cpu_count() or 2)
    proc = controller(tmp_path, cluster, env_extra=paced(0.3))
    seen: set[str] = set()
    cells: set[str] = set()
    cancelled = None
    try:
        deadline = time.monotonic() + 900
        while proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.3)
            if not (tmp_path / "runs" / "slurm-states" / "ledger.sqlite").is_file():
                continue
            try:
                st, text = _look(tmp_path, "slurm-states")
            except LedgerError as exc:  # the ledger appears whole, the search row a moment later
                if "no search yet" not in str(exc):
                    raise
                continue
            cells |= {c.strip() for line in text.splitlines()[3:] for c in line.split("  ") if c.strip()}
            seen |= {a["scheduler_state"] for h in st["hypotheses"] for a in h["attempts"] if a["scheduler_state"]}
            if cancelled is None:
                cancelled = _scancel_a_running_one(st)
        assert proc.returncode == 0, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
    finally:
        proc.kill()
    final = json.loads(pas(tmp_path, "status", "--json").stdout)  # the CLI itself
    text = pas(tmp_path, "status").stdout
    seen |= {a["scheduler_state"] for h in final["hypotheses"] for a in h["attempts"]}
    assert {"PENDING", "RUNNING", "COMPLETED", "CANCELLED"} <= seen, seen
    pending = {c for c in cells if c.startswith("PENDING")}
    assert "PENDING (Resources)" in pending, pending  # waiting for a free node, and pas says so
    assert {"RUNNING node1", "RUNNING node2"} <= cells, cells
    assert final["state"] == "DONE" and cancelled is not None
    again = next(h for h in final["hypotheses"] if h["op"] == cancelled["op"] and h["iteration"] == 1)
    assert again["state"] == "DONE"
    # scancel by a person is an interruption, not a failure: resumed without spending a retry
    assert [a["state"] for a in again["attempts"]] == ["INTERRUPTED", "COMPLETED"]
    first = again["attempts"][0]
    assert first["scheduler_state"] == "CANCELLED" and first["reason"].startswith("cancelled outside pas"), first
    assert f"{again['attempts'][1]['job_id']}  COMPLETED node" in text, text
