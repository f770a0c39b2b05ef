"""Planning an iteration: every configured operator applied to the current winner (paper Sec. 3.2).

Pure apart from counting FLOPs (a small deterministic forward pass on the CPU, cached per spec, on disk too:
a controller planning children counted before imports no torch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pas_models.errors import NotApplicable
from pas_models.flops import count_cost
from pas_models.reductions import apply_op, reads_weights
from pas_models.spec import ArchSpec
from pas_models.tucker_options import TuckerOptions

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Planned:
    op: str
    path: tuple[str, ...]  # operators from B
    spec: ArchSpec | None  # None when not applicable
    reason: str | None  # why not applicable
    gflops: float | None
    params: int | None


def plan_iteration(parent: ArchSpec, parent_path: tuple[str, ...], operators: dict[str, float],
                   tucker: TuckerOptions | None = None,
                   parent_weights: Callable[[], Mapping[str, torch.Tensor]] | None = None) -> list[Planned]:
    """One entry per operator, in the definition's order; not-applicable ones carry the reason.
    ``parent_weights()`` loads the parent's trained weights; called only when an operator reads
    them (k with ``tucker.ranks: vbmf``)."""
    out = []
    for op in operators:
        weights = parent_weights() if parent_weights is not None and reads_weights(op, tucker) else None
        try:
            child = apply_op(parent, op, operators, tucker, weights)
        except NotApplicable as exc:
            out.append(Planned(op, (*parent_path, op), None, exc.reason, None, None))
            continue
        cost = count_cost(child)
        out.append(Planned(op, (*parent_path, op), child, None, cost.gflops, cost.params))
    return out
