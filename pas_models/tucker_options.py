"""Operator k's settings (torch-free: configuration and the command line read them)."""

from __future__ import annotations

from dataclasses import dataclass

RANK_RULES = ("flops", "vbmf")


@dataclass(frozen=True)
class TuckerOptions:
    """Operator k's settings (search key ``tucker``): the residual ``stages`` (from 1) whose
    convolutions it decomposes (None: all) and the rank rule, ``flops`` or ``vbmf``."""

    stages: tuple[int, ...] | None = None
    ranks: str = "flops"
