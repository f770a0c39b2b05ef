"""The frame every job on a node runs in (a training, a supernet): the result of an earlier run returned as is,
else the hypothesis folder's exclusive lock, the process group, and the job's own log."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TypeVar

import torch

from pas_models.layout import HypFiles
from pas_models.train import distributed

log = logging.getLogger(__name__)
R = TypeVar("R")


def run_once(files: HypFiles, done: Callable[[], R | None],
             body: Callable[[distributed.DistEnv, torch.device], R]) -> R:
    """A job's frame (a training, a supernet): what an earlier run of it wrote (``done()``), else, under the
    folder's exclusive lock (rank 0; a duplicate job waits, then finds the result), ``body(env, device)`` with
    the process group set up and the job's own log, torn down whatever happens."""
    if (result := done()) is not None:
        return result
    env = distributed.detect()
    lock = exclusive_lock(files) if env.rank == 0 else None
    try:
        if (result := done()) is not None:
            return result
        device = distributed.setup(env)
        try:
            with job_log(files, env.is_main):
                return body(env, device)
        finally:
            distributed.teardown()
    finally:
        if lock is not None:
            lock.close()


@contextmanager
def job_log(files: HypFiles, main: bool) -> Iterator[None]:
    """The job's own log (``train.log``, rank 0), at INFO whatever the caller configured."""
    pkg_log = logging.getLogger("pas_models")
    handler = logging.FileHandler(files.log) if main else None
    previous_level = pkg_log.level
    if handler:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        pkg_log.addHandler(handler)
        pkg_log.setLevel(logging.INFO)
    try:
        yield
    finally:
        if handler:
            pkg_log.removeHandler(handler)
            pkg_log.setLevel(previous_level)
            handler.close()


def exclusive_lock(files: HypFiles) -> IO[bytes]:
    """An exclusive lock on ``.lock`` (flock: released when the process dies): two jobs training the same
    hypothesis (a resubmission racing a job the controller lost track of) never interleave. The holder
    writes who it is into the file (the controller shows it while it waits for a trainer whose job
    wrapper is gone)."""
    fh = files.lock.open("a+b")
    for _ in range(20):  # the controller's probe holds a shared lock for an instant: not a reason to log
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            time.sleep(0.05)
    else:
        log.warning("%s is locked by another job training the same task: waiting for it", files.root)
        fcntl.flock(fh, fcntl.LOCK_EX)
    fh.truncate(0)
    fh.write(f"pid {os.getpid()} on {socket.gethostname()}".encode())
    fh.flush()
    return fh
