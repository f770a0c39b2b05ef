"""The local executor's fork server (pas_models/train/forkserver.py), with real processes: a job is forked from
the server (not a fresh interpreter), gets its proxy's environment, folder and process group, dies with its
proxy, and runs as a plain submitit process when no server answers; the server leaves with its controller."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pas_orchestrator.executors.local import _GroupExecutor


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, pgid) of a live process, None when there is none (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else (int(fields[1]), int(fields[2]))


def _wait(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    address = f"pas-test-forkserver-{os.getpid()}"
    log = tmp_path_factory.mktemp("forkserver") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-u", "-m", "pas_models.train.forkserver", "serve", address,
                                 str(os.getpid())],
                                process_group=0, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    _wait("the server's imports", lambda: "ready" in log.read_text(), timeout=120)
    yield address, proc
    proc.terminate()
    proc.wait(timeout=30)


def _executor(folder: Path, address: str | None) -> _GroupExecutor:
    ex = _GroupExecutor(folder=folder)
    ex.preload = address
    ex.update_parameters(timeout_min=5)
    return ex


def test_a_job_is_forked_from_the_server_with_its_proxys_environment_folder_and_group(
        server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    address, proc = server
    monkeypatch.setenv("PAS_FORKSERVER_PROBE", "from-the-controller")
    monkeypatch.chdir(tmp_path)
    ex = _executor(tmp_path / "jobs", address)
    parent = ex.submit(os.getppid)
    env = ex.submit(os.environ.get, "PAS_FORKSERVER_PROBE")
    cwd = ex.submit(os.getcwd)
    group = ex.submit(os.getpgid, 0)
    assert parent.result() == proc.pid  # forked by the server: no interpreter started, no torch imported
    assert env.result() == "from-the-controller" and cwd.result() == str(tmp_path)
    assert group.result() == int(group.job_id)  # the job's own group: pas cancel and Ctrl-C reach it


def test_a_job_dies_with_its_proxy(server, tmp_path: Path) -> None:
    address, proc = server
    ex = _executor(tmp_path / "jobs", address)
    job = ex.submit(time.sleep, 120)
    pgid = int(job.job_id)

    def members() -> dict[int, tuple[int, int]]:
        out = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (st := _stat(int(entry.name))) and st[1] == pgid:
                out[int(entry.name)] = st
        return out

    forked = _wait("the forked job", lambda: [p for p, (ppid, _) in members().items() if ppid == proc.pid])
    [proxy] = [p for p, (ppid, _) in members().items() if ppid == pgid]  # submitit's task: our proxy
    os.kill(proxy, signal.SIGKILL)
    _wait("the forked job to end with its proxy", lambda: _stat(forked[0]) is None, timeout=10)
    job.cancel()


def test_without_a_server_the_job_runs_as_a_plain_submitit_process(tmp_path: Path) -> None:
    ex = _executor(tmp_path / "jobs", "pas-test-no-such-server")
    job = ex.submit(os.getppid)
    assert job.result() == int(job.job_id)  # a child of submitit's local controller, as without pas


def test_the_server_leaves_when_its_controller_is_gone(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    started = subprocess.run([sys.executable, "-c", (
        "import os, subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-u', '-m', 'pas_models.train.forkserver', 'serve', "
        f"'pas-test-orphan-{os.getpid()}', str(os.getpid())], stdout=open({str(log)!r}, 'wb'), "
        "stderr=subprocess.STDOUT, process_group=0)\nprint(p.pid)\n")], capture_output=True, text=True, check=True,
                             timeout=60)
    pid = int(started.stdout)
    _wait("the orphaned server to leave", lambda: "leaving" in log.read_text(), timeout=120)
    _wait("its process to end", lambda: _stat(pid) is None, timeout=10)
