"""Run one task as N local processes (CPU: gloo; one GPU each when there are N GPUs), like torchrun."""

from __future__ import annotations

import os
import socket

import torch.multiprocessing as mp

from pas_models.layout import HypFiles
from pas_models.train.result import JobResult
from pas_models.train.run import run
from pas_models.train.task import TrainTask


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, task: TrainTask) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    run(task)


def run_local(task: TrainTask, nproc: int = 1) -> JobResult:
    """``run(task)`` in this process (nproc=1) or in ``nproc`` spawned processes; returns the result."""
    if nproc == 1:
        return run(task)
    mp.spawn(_worker, args=(nproc, _free_port(), task), nprocs=nproc, join=True)
    return JobResult.read(HypFiles.of(task.out_dir).result)
