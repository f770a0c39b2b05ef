"""A DistributedSampler that can start mid-epoch (for resuming from a checkpoint)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Like DistributedSampler(shuffle=True, drop_last=True): a permutation per (seed, epoch),
    rank r takes every world-th index from r; ``start`` skips the first ``start`` of this rank's
    indices (batches already trained before a restart) without loading them."""

    def __init__(self, size: int, world: int = 1, rank: int = 0, seed: int = 0) -> None:
        self.size, self.world, self.rank, self.seed = size, world, rank, seed
        self.per_rank = size // world
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=g)[: self.per_rank * self.world]
        mine = order[self.rank :: self.world].tolist()
        return iter(mine[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start
