"""The local executor's fork server (pas_models/train/forkserver.py), with real processes: a job is forked from
the server (not a fresh interpreter), gets its proxy's environment, folder and process group, dies with its
proxy, and runs as a plain submitit process when no server answers; a search's controllers share its server,
which leaves after its last lease."""

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
        proc = subprocess.Popen([sys.executable, "-u", "-m", "pas_models.train.forkserver", "serve", address, "600"],
                                process_group=0, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    _wait("the server's imports", lambda: "ready" in log.read_text(), timeout=120)
    proc.log = log  # type: ignore[attr-defined]
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
    path0 = ex.submit(eval, "__import__('sys').path[0]")  # evaluated in the job (sys.path itself would be pickled)
    group = ex.submit(os.getpgid, 0)
    # what a training imports is there already, and the server's objects are out of the job's collections
    # (frozen: a collection in the job does not copy the pages it shares with the server)
    preloaded = ex.submit(eval, "[m in __import__('sys').modules for m in ('torch._dynamo', "
                                "'torch.utils.tensorboard')]")
    frozen = ex.submit(eval, "__import__('gc').get_freeze_count()")
    assert preloaded.result() == [True, True] and frozen.result() > 100_000
    assert parent.result() == proc.pid  # forked by the server: no interpreter started, no torch imported
    assert env.result() == "from-the-controller" and cwd.result() == str(tmp_path)
    assert path0.result() == str(tmp_path)  # as `python -m` started there (not the server's folder)
    assert group.result() == int(group.job_id)  # the job's own group: pas cancel and Ctrl-C reach it


OTHER_USER = """
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
if sys.argv[1] == "connect":  # a lease request, as pas sends it: refused, the server closes the connection
    s.connect("\\0" + sys.argv[2])
    s.settimeout(20)
    try:
        s.send(json.dumps({"lease": 1}).encode())
        print("closed" if s.recv(100) == b"" else "answered", flush=True)
    except (BrokenPipeError, ConnectionResetError):
        print("closed", flush=True)
    except TimeoutError:
        print("held", flush=True)
else:  # squats the address of a server not started yet
    s.bind("\\0" + sys.argv[2])
    s.listen(8)
    print("listening", flush=True)
    time.sleep(60)
"""


def _as_another_user(*args: str, **kw) -> subprocess.Popen:
    python = "/usr/bin/python3"  # the system's: the venv's interpreter may sit where that user cannot read
    if os.getuid() != 0 or not os.access(python, os.X_OK):
        pytest.skip("needs root and /usr/bin/python3 to run a process as another user (nobody)")
    return subprocess.Popen([python, "-c", OTHER_USER, *args], user="nobody", group="nogroup", text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/", **kw)


def test_another_users_process_is_refused_and_never_served(server, tmp_path: Path) -> None:
    from pas_models.train import forkclient

    address, proc = server
    other = _as_another_user("connect", address)
    out, err = other.communicate(timeout=60)
    assert out.strip() == "closed", (out, err)
    _wait("the refusal in the server's log", lambda: "refused a connection from user 65534" in proc.log.read_text())
    squat = f"pas-test-squatted-{os.getpid()}"
    squatter = _as_another_user("squat", squat)
    try:
        assert squatter.stdout.readline().strip() == "listening"
        assert forkclient.lease(squat) is None  # its server is another user's: not leased ...
        ex = _executor(tmp_path / "jobs", squat)  # ... and a job runs as a plain submitit process
        job = ex.submit(os.getpid)
        assert job.result() != os.getpid() and job.result() > 0
    finally:
        squatter.kill()
        squatter.wait()


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


def test_the_server_stays_while_a_lease_is_held_and_leaves_after_the_last(tmp_path: Path) -> None:
    address = f"pas-test-lease-{os.getpid()}"
    log = tmp_path / "server.log"
    with log.open("wb") as out:  # 1 s of grace after the last lease
        server = subprocess.Popen([sys.executable, "-u", "-m", "pas_models.train.forkserver", "serve", address, "1"],
                                  process_group=0, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    # a controller's lease, held by a process that is SIGKILLed (the kernel closes its end)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pas_models.train import forkclient\n"
        f"held = forkclient.lease({address!r}, wait=30)\nprint(held is not None, flush=True)\ntime.sleep(600)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        _wait("the server's imports", lambda: "ready" in log.read_text(), timeout=120)
        time.sleep(3)  # three times its grace: held, it stays
        assert server.poll() is None and "leaving" not in log.read_text()
        holder.kill()
        holder.wait(timeout=10)
        _wait("the server to leave after its last lease", lambda: server.poll() is not None, timeout=30)
        assert "leaving" in log.read_text()
    finally:
        holder.kill()
        server.kill()
        server.wait(timeout=10)


def test_a_users_searches_and_controllers_share_one_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pas_models.train import forkclient
    from pas_orchestrator.config.cluster import load_profile
    from pas_orchestrator.executors.local import LocalExecutor

    monkeypatch.delenv("PAS_LOCAL_PRELOAD", raising=False)
    monkeypatch.setenv("PAS_FORKSERVER_TEST", str(tmp_path))  # a server of this test's own (PAS_ variables count)
    profile = load_profile("local")
    first = LocalExecutor(tmp_path / "search" / "submitit", profile, "r2plus1d_tiny")
    again = LocalExecutor(tmp_path / "search" / "submitit", profile, "r2plus1d_tiny")  # a controller started again
    other = LocalExecutor(tmp_path / "other" / "submitit", profile, "r2plus1d_tiny")  # another search
    address = first._preload()
    try:
        assert first._server is not None and first._lease is not None
        assert again._preload() == address and again._server is None and again._lease is not None  # found, leased
        assert other._preload() == address and other._server is None and other._lease is not None
        assert first._preload() == address and forkclient.holds(first._lease)  # the same lease, still held
        # another environment for its jobs, or another variable read at import: another server
        assert forkclient.address_for({**profile.env, "OMP_NUM_THREADS": "2"}) != address
        monkeypatch.setenv("PAS_FORKSERVER_TEST", "another")
        assert forkclient.address_for(dict(profile.env)) != address
    finally:
        for ex in (first, again, other):
            if ex._lease is not None:
                ex._lease.close()
        first._server.kill()
        first._server.wait(timeout=10)


IGNORES_STOP = "__import__('signal').signal(2, __import__('signal').SIG_IGN), " \
               "__import__('signal').signal(15, __import__('signal').SIG_IGN), __import__('time').sleep(120)"


def test_a_job_forked_by_another_sessions_server_is_its_own_group_and_cancel_reaches_it(tmp_path: Path) -> None:
    """The user's server was started by another search's controller, in another session: a job cannot join its
    proxy's group there (a group never spans sessions), so it gets a group of its own (not the server's, not
    that search's), which the executor knows: `pas cancel` signals and waits for it, SIGKILL included."""
    from pas_orchestrator.executors.base import JobRef
    from pas_orchestrator.executors.local import LocalExecutor

    address = f"pas-test-forkserver-other-session-{os.getpid()}"
    log = tmp_path / "server.log"
    with log.open("wb") as out:  # as a controller in another terminal (setsid) would have started it
        proc = subprocess.Popen([sys.executable, "-u", "-m", "pas_models.train.forkserver", "serve", address, "600"],
                                start_new_session=True, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    try:
        _wait("the server's imports", lambda: "ready" in log.read_text(), timeout=120)
        ex = _executor(tmp_path / "jobs", address)
        job = ex.submit(eval, IGNORES_STOP)  # stops only on SIGKILL
        forked = _wait("the forked job", lambda: [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()
                                                  and (st := _stat(int(e.name))) and st[0] == proc.pid])[0]
        assert os.getsid(forked) == proc.pid != os.getsid(0)  # the server's session: no other can be joined
        assert os.getpgid(forked) == forked != os.getpgid(proc.pid)  # a group of its own
        _wait("the job's group file", lambda: list((tmp_path / "jobs").glob(f"{job.job_id}_group.json")))
        stopped = LocalExecutor.__new__(LocalExecutor)  # the executor that started it (it reaps its process)
        stopped.folder, stopped._jobs = tmp_path, {job.job_id: job}
        assert stopped.cancel([JobRef("jobs", job.job_id)], grace_s=0.5) == []
        assert _stat(forked) is None  # ended by its group's SIGKILL, not left to the lifeline
    finally:
        proc.terminate()
        proc.wait(timeout=30)
