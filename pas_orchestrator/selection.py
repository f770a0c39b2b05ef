"""Choosing the winner of an iteration (paper Sec. 3.2) and the stop rule. Pure functions.

- Eq. 3: the hypothesis with the highest top-1. Valid when every hypothesis cuts the cost by
  the same factor C(h)/C(R_prev).
- Eq. 1: the highest (C(B) - C(h)) / (Acc(B) - Acc(h)): GFLOPs saved per accuracy point lost,
  both against the base network B. A hypothesis that loses nothing (Acc(h) >= Acc(B)) ranks
  above every one that does; among those, more GFLOPs saved wins, then higher top-1.
- ``auto``: Eq. 3 when the cost ratios agree within ``tolerance`` ((max - min) / max), else Eq. 1.
- ``paper``: the paper's switch (Sec. 3.2): Eq. 1 once the temporal resolution of a reduced model is lower
  than the network's total temporal downsampling factor (read per hypothesis: one of the iteration's
  hypotheses has a pathway that sees fewer frames than its total temporal stride), else Eq. 3.
- Ties: higher top-5, then lower GFLOPs, then the operator order of the search definition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    op: str
    top1: float  # percent
    top5: float
    gflops: float  # per view
    below_stride: str = ""  # why this hypothesis' frames are below its temporal stride ("" when they are not)


@dataclass(frozen=True)
class Choice:
    winner: Candidate
    rule: str  # "eq1" | "eq3"
    why: str


def ratios_agree(candidates: Sequence[Candidate], parent_gflops: float, tolerance: float) -> bool:
    r = [c.gflops / parent_gflops for c in candidates]
    return (max(r) - min(r)) / max(r) <= tolerance


def _eq1_key(c: Candidate, base_top1: float, base_gflops: float) -> tuple[int, float, float]:
    saved, lost = base_gflops - c.gflops, base_top1 - c.top1
    if lost <= 0:
        return (1, saved, c.top1)
    return (0, saved / lost, 0.0)


def _rule_and_key(candidates: Sequence[Candidate], selection: str, base_top1: float, base_gflops: float,
                  parent_gflops: float, tolerance: float) -> tuple[str, Callable[[Candidate], tuple]]:
    rule = selection
    if selection == "auto":
        rule = "eq3" if ratios_agree(candidates, parent_gflops, tolerance) else "eq1"
    elif selection == "paper":
        rule = "eq1" if any(c.below_stride for c in candidates) else "eq3"
    order = {c.op: i for i, c in enumerate(candidates)}

    def key(c: Candidate) -> tuple:
        primary = (c.top1,) if rule == "eq3" else _eq1_key(c, base_top1, base_gflops)
        return (*primary, c.top5, -c.gflops, -order[c.op])

    return rule, key


def rank(candidates: Sequence[Candidate], *, selection: str, base_top1: float, base_gflops: float,
         parent_gflops: float, tolerance: float) -> tuple[list[Candidate], str]:
    """Every candidate, best first, by the rule ``select`` uses (and its ties), and that rule (eq1 | eq3):
    the order a successive-halving rung promotes by."""
    if not candidates:
        return [], selection
    rule, key = _rule_and_key(candidates, selection, base_top1, base_gflops, parent_gflops, tolerance)
    return sorted(candidates, key=key, reverse=True), rule


def select(candidates: Sequence[Candidate], *, selection: str, base_top1: float, base_gflops: float,
           parent_gflops: float, tolerance: float) -> Choice:
    """The winner among the trained hypotheses of one iteration (``candidates`` in operator order)."""
    if not candidates:
        raise ValueError("no trained hypothesis to choose from")
    rule, key = _rule_and_key(candidates, selection, base_top1, base_gflops, parent_gflops, tolerance)
    best = max(candidates, key=key)
    if rule == "eq3":
        why = f"Eq. 3: highest top-1 {best.top1:.2f}%"
    else:
        lost = base_top1 - best.top1
        saved = base_gflops - best.gflops
        if lost > 0:
            why = f"Eq. 1: {saved:.4g} GFLOPs saved / {lost:.2f} top-1 points lost = {saved / lost:.4g} (highest)"
        else:
            n = sum(1 for c in candidates if c.top1 >= base_top1)
            why = (f"Eq. 1, no-loss case: top-1 {best.top1:.2f}% >= B's {base_top1:.2f}% (the ratio is undefined; "
                   f"a hypothesis that loses nothing ranks above every one that loses accuracy"
                   + (f", and saves the most GFLOPs ({saved:.4g}) of the {n} that lose nothing" if n > 1 else "")
                   + ")")
    if selection == "paper":
        trig = [f"{c.op}: {c.below_stride}" for c in candidates if c.below_stride]
        why += (f" [paper's rule: {'; '.join(trig)}]" if trig else
                " [paper's rule: every hypothesis' frames >= its temporal stride]")
    elif selection == "auto":
        why += f" [auto: cost ratios {'agree' if rule == 'eq3' else 'differ by more than'} {tolerance:g}]"
    ties = [c.op for c in candidates if c is not best and key(c)[:-3] == key(best)[:-3]]
    if ties:
        why += f"; tie with {', '.join(ties)} broken by top-5 / GFLOPs / operator order"
    return Choice(best, rule, why)


def should_stop(iterations_done: int, iterations: int, winner_gflops: float, target_gflops: float | None) -> str | None:
    """Why the search ends after this iteration, or None to go on."""
    if target_gflops is not None and winner_gflops <= target_gflops:
        return f"target reached: {winner_gflops:.4g} <= {target_gflops:g} GFLOPs per view"
    if iterations_done >= iterations:
        return f"{iterations} iterations done"
    return None
