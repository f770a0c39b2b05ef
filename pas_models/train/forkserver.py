"""Local jobs forked from a process that has imported torch already (the local executor's job start).

A local job is submitit's ``python -u -m submitit.core._submit FOLDER``: a fresh interpreter that imports
torch (1.5 s of CPU here) and torch._dynamo (1.7 s, on the first optimizer), for trainings that may last a
few seconds (successive halving's first rung, the demo). The local executor starts one server per
controller (``serve``), which imports all that once and forks a job for each request; the job's command is
``run`` (no torch), a proxy that takes the job's place for submitit's local controller:

- the forked job gets the proxy's environment, working folder, standard output and error, and joins the
  proxy's process group (the job's group: ``pas cancel`` and Ctrl-C reach it as before);
- signals the proxy receives (submitit's USR2 before the time limit, SIGINT, SIGTERM) are passed on;
- the proxy exits with the job's exit status (144: submitit's requeue; -N: killed by signal N);
- the job dies with its proxy (a pipe the proxy holds: on SIGKILL of the proxy, the job kills itself).

Nothing depends on the server: when it cannot be reached (never started, ended, refused), ``run`` execs
the plain submitit command. The server leaves when its controller is gone and no job of it runs, or after
``IDLE_SECONDS`` without jobs (the executor starts another one when needed). It is used only where the
profile has no ``setup`` lines (a setup may change what Python imports) and ``PAS_LOCAL_PRELOAD`` is not 0.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import NoReturn

IDLE_SECONDS = 60.0
PRELOAD = ("torch", "torch._dynamo", "pas_models.train.job", "submitit.core.submission")
OPTIONAL = ("av", "decord")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP)
_MAX_MESSAGE = 1 << 20


def _plain(folder: str) -> NoReturn:
    """What the job would have been without a server: submitit's own command, in this process."""
    os.execv(sys.executable, [sys.executable, "-u", "-m", "submitit.core._submit", folder])


def _connect(address: str) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect("\0" + address)
    except OSError:
        s.close()
        return None
    return s


def run(address: str, folder: str) -> None:
    """The job's command: ask the server for a forked job, stand in for it, exit as it exits."""
    s = _connect(address)
    if s is None:
        _plain(folder)
    lifeline_r, _held = os.pipe()  # the write end stays open in this process until it ends
    request = {"folder": folder, "cwd": os.getcwd(), "env": dict(os.environ), "pgid": os.getpgrp()}
    try:
        socket.send_fds(s, [json.dumps(request).encode()], [1, 2, lifeline_r])
        reply = s.recv(_MAX_MESSAGE)
    except OSError:
        reply = b""
    os.close(lifeline_r)
    pid = json.loads(reply).get("pid") if reply else None
    if not pid:  # the server left before forking: nothing ran
        s.close()
        _plain(folder)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    try:
        data = s.recv(_MAX_MESSAGE)
    except OSError:
        data = b""
    if not data:  # the server is gone: the job (no child of ours; init reaps it) is followed by its pid
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.5)
        sys.exit(1)
    code = int(json.loads(data)["exit"])
    if code < 0:  # killed by a signal: so is its stand-in (what submitit's local controller reads)
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(5)
    sys.exit(code)


def serve(address: str, parent: int) -> None:
    """Import what a training job imports, then fork a job per request until the controller (pid ``parent``,
    which started this process) is gone."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind("\0" + address)  # first: a job submitted while the imports run waits in the backlog
    listener.listen(64)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in PRELOAD + OPTIONAL:
        if os.getppid() != parent:  # a controller killed at once (clients waiting run the plain command)
            print(f"pas fork server {os.getpid()}: leaving (its controller is gone)", flush=True)
            return
        try:
            importlib.import_module(name)
        except ImportError:
            if name not in OPTIONAL:
                raise
    print(f"pas fork server {os.getpid()}: ready ({address})", flush=True)
    jobs: dict[int, socket.socket] = {}
    listener.settimeout(0.2)
    idle_since = time.monotonic()
    while True:
        _reap(jobs)
        if jobs:
            idle_since = time.monotonic()
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if not jobs and (os.getppid() != parent or time.monotonic() - idle_since > IDLE_SECONDS):
                listener.close()  # a client connecting now is refused and runs the plain command
                print(f"pas fork server {os.getpid()}: leaving", flush=True)
                return
            continue
        conn.settimeout(None)
        try:
            pid = _fork(conn, listener, jobs)
        except Exception:  # a bad request: that client gets no pid and runs the plain command
            traceback.print_exc()
            conn.close()
            continue
        jobs[pid] = conn


def _reap(jobs: dict[int, socket.socket]) -> None:
    while jobs:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = jobs.pop(pid, None)
        if conn is not None:
            try:
                conn.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
            except OSError:
                pass
            conn.close()


def _fork(conn: socket.socket, listener: socket.socket, jobs: dict[int, socket.socket]) -> int:
    msg, fds, _, _ = socket.recv_fds(conn, _MAX_MESSAGE, 3)
    request = json.loads(msg)
    if len(fds) != 3:
        raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
    pid = os.fork()
    if pid == 0:  # the job
        code = 1
        try:
            listener.close()
            for other in jobs.values():
                other.close()
            conn.close()
            code = _job(request, *fds)
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    conn.send(json.dumps({"pid": pid}).encode())
    return pid


def _job(request: dict, out: int, err: int, lifeline: int) -> int:
    try:
        os.setpgid(0, int(request["pgid"]))
    except OSError:  # another session: the job stays in the server's group, signals come through its proxy
        pass
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in (devnull, out, err):
        os.close(fd)
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:  # the server read it at import; the job's own value wins
        import torch

        torch.set_num_threads(int(threads))

    def watch() -> None:  # the proxy holds the other end: its death (even SIGKILL) ends the job
        while os.read(lifeline, 1):
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    sys.argv = [os.path.join(os.path.dirname(sys.modules["submitit.core.submission"].__file__), "_submit.py"),
                request["folder"]]
    from submitit.core.submission import submitit_main

    try:
        submitit_main()
        return 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # as Python itself ends on one: the traceback, then killed by SIGINT
        traceback.print_exc()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        _flush()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "serve":
        serve(argv[1], int(argv[2]))
    elif len(argv) == 3 and argv[0] == "run":
        run(argv[1], argv[2])
    else:
        sys.exit("usage: python -m pas_models.train.forkserver serve ADDRESS PARENT_PID | run ADDRESS FOLDER")


if __name__ == "__main__":
    main(sys.argv[1:])
