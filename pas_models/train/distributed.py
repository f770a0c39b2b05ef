"""Who am I in a job: rank, world size, device; from torchrun's variables, SLURM (via submitit) or alone."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect() -> DistEnv:
    """torchrun / an already exported environment first, then SLURM through submitit, else one process."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return DistEnv(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        import submitit

        env = submitit.helpers.TorchDistributedEnvironment().export()  # sets MASTER_ADDR/PORT, RANK, ...
        return DistEnv(env.rank, env.world_size, env.local_rank)
    return DistEnv(0, 1, 0)


def setup(env: DistEnv) -> torch.device:
    """Init the process group when world > 1 (NCCL on GPU, gloo on CPU) and return this rank's device."""
    device = torch.device(f"cuda:{env.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if env.world > 1 and not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=env.rank, world_size=env.world)
    return device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
