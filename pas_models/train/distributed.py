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


def _submitit_tasks() -> int:
    """Tasks of the submitit job this process belongs to (SLURM or submitit's local executor), else 0."""
    if "SUBMITIT_LOCAL_JOB_ID" in os.environ:
        return int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1"))
    if "SLURM_JOB_ID" in os.environ:
        return int(os.environ.get("SLURM_NTASKS", "1"))
    return 0


def detect() -> DistEnv:
    """torchrun / an already exported environment first, then a multi-task submitit job (SLURM or
    local executor), else one process."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return DistEnv(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if _submitit_tasks() > 1:
        import submitit

        # sets MASTER_ADDR (first node), MASTER_PORT (from the job id), RANK, WORLD_SIZE, LOCAL_RANK. The
        # GPU is picked as cuda:LOCAL_RANK among the visible ones, so CUDA_VISIBLE_DEVICES stays as SLURM set it
        env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
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
