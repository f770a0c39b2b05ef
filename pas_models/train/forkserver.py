"""Local jobs forked from a process that has imported torch already (the local executor's job start).

A local job is submitit's ``python -u -m submitit.core._submit FOLDER``: a fresh interpreter that imports
torch (1.5 s of CPU here) and torch._dynamo (1.7 s, on the first optimizer), for trainings that may last a
few seconds (successive halving's first rung, the demo). The local executor uses one server per user
(``serve``), which imports all that once and forks a job for each request; the job's command is ``run``
(no torch), a proxy that takes the job's place for submitit's local controller:

- the forked job gets the proxy's environment, working folder, standard output and error, and joins the
  proxy's process group (the job's group: ``pas cancel`` and Ctrl-C reach it as before); where the server runs in
  another session than the proxy (another search's controller started it), no group can span the two: the job
  gets a group of its own, and the proxy writes it to ``FOLDER/<job id>_group.json`` for the local executor,
  which signals and waits for that group too;
- signals the proxy receives (submitit's USR2 before the time limit, SIGINT, SIGTERM) are passed on;
- the proxy exits with the job's exit status (144: submitit's requeue; -N: killed by signal N);
- the job dies with its proxy (a pipe the proxy holds: on SIGKILL of the proxy, the job kills itself).

The server's address is a function of the user, the interpreter, its ``sys.path``, the profile's
environment and the code of ``pas_models`` (``address_for``), not of the search: a controller started again
(after a kill, or ``pas study`` after ``pas search``), or another search of the same user, finds the server
already there, and code edited in between gets a server of its own. Each controller holds a lease on it (a
connection, closed by the kernel even on SIGKILL); the server leaves ``grace`` seconds after its last lease
and job ended, or after ``IDLE_SECONDS`` without jobs (the executor starts another one when needed).

Nothing depends on the server: when it cannot be reached (never started, ended, refused), ``run`` execs
the plain submitit command. It is used only where the profile has no ``setup`` lines (a setup may change
what Python imports) and ``PAS_LOCAL_PRELOAD`` is not 0.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from typing import NoReturn

from pas_models.train import forkclient

IDLE_SECONDS = 60.0
GRACE_SECONDS = 10.0  # after the last lease and job: a controller started again meanwhile finds the server
PRELOAD = ("torch", "torch._dynamo", "pas_models.train.run", "pas_models.train.job", "submitit.core.submission")
# the video backends; TensorBoard's writer (scalars.py)
OPTIONAL = ("av", "decord", "torchcodec.decoders", "torch.utils.tensorboard")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP)
_MAX_MESSAGE = 1 << 20


def _plain(folder: str) -> NoReturn:
    """What the job would have been without a server: submitit's own command, in this process."""
    os.execv(sys.executable, [sys.executable, "-u", "-m", "submitit.core._submit", folder])


def run(address: str, folder: str) -> None:
    """The job's command: ask the server for a forked job, stand in for it, exit as it exits."""
    s = forkclient.connect(address)
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
    answer = json.loads(reply) if reply else {}
    pid = answer.get("pid")
    if not pid:  # the server left before forking: nothing ran
        s.close()
        _plain(folder)
    if answer.get("pgid", os.getpgrp()) != os.getpgrp():  # a group of its own: the executor signals it too
        _write_group(folder, pid, int(answer["pgid"]))

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


def _write_group(folder: str, pid: int, pgid: int) -> None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            start = fh.read().rsplit(")", 1)[1].split()[19]  # the job's start time: a reused pid is not it
    except OSError:
        return  # ended already
    path = forkclient.group_file(folder, os.getpgrp())  # the job id: submitit's local task process leads the group
    with open(path + ".tmp", "w") as fh:
        json.dump({"pid": pid, "pgid": pgid, "start": start}, fh)
    os.replace(path + ".tmp", path)


def serve(address: str, grace: float = GRACE_SECONDS) -> None:
    """Import what a training job imports, then fork a job per request while a controller holds a lease (and
    ``grace`` seconds after the last one and the last job)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind("\0" + address)  # first: a job or a lease that comes while the imports run waits
    except OSError:  # another server has this address: it serves this search
        print(f"pas fork server {os.getpid()}: {address} has a server already", flush=True)
        return
    listener.listen(64)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _preload()
    print(f"pas fork server {os.getpid()}: ready ({address})", flush=True)
    jobs: dict[int, socket.socket] = {}
    leases: list[socket.socket] = []
    listener.settimeout(0.2)
    idle_since = last_held = time.monotonic()
    while True:
        _reap(jobs)
        leases = _held(leases)
        now = time.monotonic()
        if jobs:
            idle_since = now
        if jobs or leases:
            last_held = now
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if not jobs and (now - last_held > grace or now - idle_since > IDLE_SECONDS):
                listener.close()  # a client connecting now is refused (a job runs the plain command)
                for held in leases:
                    held.close()
                print(f"pas fork server {os.getpid()}: leaving", flush=True)
                return
            continue
        conn.settimeout(None)
        try:
            if forkclient.peer_uid(conn) != os.getuid():  # another user: it would run its code as this one
                raise ConnectionError(f"refused a connection from user {forkclient.peer_uid(conn)}")
            pid = _fork(conn, listener, [*jobs.values(), *leases])
        except ConnectionError as exc:
            print(f"pas fork server {os.getpid()}: {exc}", flush=True)
            conn.close()
            continue
        except Exception:  # a bad request: that client gets no pid and runs the plain command
            traceback.print_exc()
            conn.close()
            continue
        if pid is None:
            leases.append(conn)
        else:
            jobs[pid] = conn


def _preload() -> None:
    """Import what a training job imports, then move every object to the collector's permanent generation (again
    before each fork: ``_fork``): a job's collections no longer write to the pages it shares with the server
    (copy-on-write). A tiny hypothesis of the demo, forked 3 times each way: 31,000 page faults and 0.81 CPU-s;
    28,300 and 0.66 with TensorBoard's writer preloaded; 10,300 and 0.49 with the objects frozen too."""
    for name in PRELOAD + OPTIONAL:
        try:
            importlib.import_module(name)
        except Exception:  # an optional one may be missing, or fail to load (torchcodec without an FFmpeg)
            if name not in OPTIONAL:
                raise
    gc.collect()
    gc.freeze()


def _held(leases: list[socket.socket]) -> list[socket.socket]:
    """The leases still open (a controller that ended, even by SIGKILL, closed its end)."""
    if not leases:
        return leases
    readable, _, _ = select.select(leases, [], [], 0)
    gone = []
    for conn in readable:
        try:
            if conn.recv(_MAX_MESSAGE) == b"":
                gone.append(conn)
        except OSError:
            gone.append(conn)
    for conn in gone:
        conn.close()
    return [c for c in leases if c not in gone]


def _reap(jobs: dict[int, socket.socket]) -> None:
    """Collect every job that ended (a zombie would keep its process group alive for `pas cancel`)."""
    while True:
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


def _fork(conn: socket.socket, listener: socket.socket, others: list[socket.socket]) -> int | None:
    """Fork the job a request asks for (its pid), or None for a lease (kept open by the caller)."""
    msg, fds, _, _ = socket.recv_fds(conn, _MAX_MESSAGE, 3)
    request = json.loads(msg)
    if "lease" in request:
        for fd in fds:
            os.close(fd)
        return None
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
    if not forkclient.holds(conn):  # its proxy is gone already (cancelled while this server imported): nothing to run
        for fd in fds:
            os.close(fd)
        raise ConnectionError(f"the proxy of {request.get('folder')} left before its job was forked")
    gc.collect()  # the few objects made since the last freeze (a refused request's traceback cycle: freed)
    gc.freeze()  # and the rest frozen: not scanned by the job either
    pid = os.fork()
    if pid == 0:  # the job
        code = 1
        try:
            listener.close()
            for other in others:
                other.close()
            conn.close()
            code = _job(request, *fds)
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    pgid = _place(pid, int(request["pgid"]))
    try:
        conn.send(json.dumps({"pid": pid, "pgid": pgid}).encode())
    except OSError:  # its proxy left meanwhile: the job ends by its lifeline, and is reaped as a job
        pass
    return pid


def _place(pid: int, pgid: int) -> int:
    """Put a job (0: this process) in its proxy's group ``pgid``, or, where that group is in another session, in a
    group of its own; the group it is in. Both the server and the job call it (whichever runs first)."""
    try:
        os.setpgid(pid, pgid)
        return pgid
    except PermissionError:  # EPERM: the proxy's group is in another session
        os.setpgid(pid, 0)
        return pid or os.getpid()
    except ProcessLookupError:  # the job ended already
        return pgid


def _job(request: dict, out: int, err: int, lifeline: int) -> int:
    _place(0, int(request["pgid"]))
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
    sys.path[0] = request["cwd"]  # as `python -m submitit.core._submit` started there (the server's is its own)
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
    if len(argv) in (2, 3) and argv[0] == "serve":
        serve(argv[1], float(argv[2]) if len(argv) == 3 else GRACE_SECONDS)
    elif len(argv) == 3 and argv[0] == "run":
        run(argv[1], argv[2])
    else:
        sys.exit("usage: python -m pas_models.train.forkserver serve ADDRESS [GRACE_SECONDS] | run ADDRESS FOLDER")


if __name__ == "__main__":
    main(sys.argv[1:])
