"""Reaching the user's fork server (``forkserver.py``) from a controller or a job's proxy: its address, a
connection to it (never to another user's), a controller's lease on it, and where a proxy says which group its
forked job is in. No torch: the controller imports it."""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import struct
import sys
import time


def peer_uid(s: socket.socket) -> int:
    """The user id of the process at the other end (the kernel's word: SO_PEERCRED)."""
    _pid, uid, _gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid


def connect(address: str) -> socket.socket | None:
    """A connection to the server at ``address``, None when none listens there or it is another user's (an
    abstract socket name is open to every user of the machine: a job is never sent to another user's
    server, whose forked jobs would run as that user with this job's environment)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect("\0" + address)
        if peer_uid(s) != os.getuid():
            raise PermissionError
    except OSError:
        s.close()
        return None
    return s


def address_for(env: dict[str, str]) -> str:
    """The server address: a function of the user and of what decides the code a forked job runs (the
    interpreter, ``sys.path`` after its first entry, ``env`` and the environment's PAS_/PYTHON variables, and
    the place, size and modification time of every file of ``pas_models``); not of the search, so that the
    searches and studies a user runs at once share one server. ``sys.path[0]`` is the job's own folder, as
    in the plain ``python -m`` command (``_job``)."""
    import pas_models

    root = os.path.realpath(os.path.dirname(pas_models.__file__))
    code = [(os.path.relpath(path, root), (st := path.stat()).st_size, st.st_mtime_ns)
            for path in pas_models.source_files()]
    seen = {k: v for k, v in os.environ.items() if k.startswith(("PAS_", "PYTHON"))}
    key = json.dumps([os.getuid(), sys.executable, sys.path[1:], sorted({**seen, **env}.items()), root, code])
    return "pas-forkserver-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def lease(address: str, wait: float = 0.0) -> socket.socket | None:
    """A lease on the server at ``address`` (None when none listens there, after ``wait`` seconds of
    trying): the server stays while the returned connection is open."""
    deadline = time.monotonic() + wait
    while (s := connect(address)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if s is None:
        return None
    try:
        s.send(json.dumps({"lease": os.getpid()}).encode())
    except OSError:
        s.close()
        return None
    return s


def holds(lease_socket: socket.socket) -> bool:
    """Whether the server of a lease is still there (it closes its end when it leaves)."""
    try:
        readable, _, _ = select.select([lease_socket], [], [], 0)
        return not readable or lease_socket.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


def group_file(folder: str | os.PathLike[str], job_id: str | int) -> str:
    """Where a proxy says which group its job is in, when not its own (``{"pid", "pgid", "start"}``)."""
    return os.path.join(folder, f"{job_id}_group.json")
