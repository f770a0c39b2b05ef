"""Selection of an iteration's winner (paper Eqs. 1 and 3), ties, and the stop rule: pure functions."""

from __future__ import annotations

import pytest

from pas_orchestrator.selection import Candidate, ratios_agree, select, should_stop

BASE = {"base_top1": 70.0, "base_gflops": 40.0}


def C(op: str, top1: float, gflops: float, top5: float = 90.0) -> Candidate:
    return Candidate(op, top1, top5, gflops)


def test_eq3_takes_the_highest_top1() -> None:
    cands = [C("s", 66.0, 20.0), C("t", 67.5, 20.0), C("f", 67.0, 20.0)]
    choice = select(cands, selection="eq3", parent_gflops=40.0, tolerance=0.1, **BASE)
    assert choice.winner.op == "t" and choice.rule == "eq3" and "67.50%" in choice.why


def test_eq1_takes_the_most_gflops_saved_per_point_lost() -> None:
    # s: 20 saved / 4 lost = 5; c: 30 saved / 5 lost = 6 -> c, although its top-1 is lower
    cands = [C("s", 66.0, 20.0), C("c", 65.0, 10.0)]
    choice = select(cands, selection="eq1", parent_gflops=40.0, tolerance=0.1, **BASE)
    assert choice.winner.op == "c" and choice.rule == "eq1"
    assert "30 GFLOPs saved for 5.00 top-1 points lost" in choice.why
    assert select(cands, selection="eq3", parent_gflops=40.0, tolerance=0.1, **BASE).winner.op == "s"


def test_eq1_guards_zero_and_negative_accuracy_drops() -> None:
    # no loss at all beats any finite ratio; among lossless ones the larger saving wins
    cands = [C("s", 69.0, 5.0), C("t", 70.0, 25.0), C("f", 71.0, 20.0)]
    choice = select(cands, selection="eq1", parent_gflops=40.0, tolerance=0.1, **BASE)
    assert choice.winner.op == "f" and "no top-1 lost" in choice.why


def test_auto_uses_eq3_only_when_cost_ratios_agree() -> None:
    same = [C("s", 66.0, 20.0), C("c", 65.0, 20.5)]
    assert ratios_agree(same, 40.0, 0.1)
    assert select(same, selection="auto", parent_gflops=40.0, tolerance=0.1, **BASE).rule == "eq3"
    apart = [C("s", 66.0, 20.0), C("c", 65.0, 10.0)]
    assert not ratios_agree(apart, 40.0, 0.1)
    choice = select(apart, selection="auto", parent_gflops=40.0, tolerance=0.1, **BASE)
    assert choice.rule == "eq1" and choice.winner.op == "c"


def test_ties_break_by_top5_then_gflops_then_operator_order() -> None:
    by_top5 = [C("s", 66.0, 20.0, top5=88.0), C("t", 66.0, 20.0, top5=89.0)]
    choice = select(by_top5, selection="eq3", parent_gflops=40.0, tolerance=0.1, **BASE)
    assert choice.winner.op == "t" and "tie with s" in choice.why
    by_gflops = [C("s", 66.0, 20.0), C("t", 66.0, 19.0)]
    assert select(by_gflops, selection="eq3", parent_gflops=40.0, tolerance=0.1, **BASE).winner.op == "t"
    full_tie = [C("f", 66.0, 20.0), C("t", 66.0, 20.0)]
    assert select(full_tie, selection="eq3", parent_gflops=40.0, tolerance=0.1, **BASE).winner.op == "f"


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="no trained hypothesis"):
        select([], selection="eq3", parent_gflops=40.0, tolerance=0.1, **BASE)


@pytest.mark.parametrize(("done", "gflops", "target", "stops"), [
    (1, 20.0, None, None),
    (5, 2.5, None, "5 iterations done"),
    (2, 10.0, 10.0, "target reached"),
    (2, 10.1, 10.0, None),
])
def test_stop_rule(done: int, gflops: float, target: float | None, stops: str | None) -> None:
    why = should_stop(done, 5, gflops, target)
    assert (why is None) if stops is None else (stops in why)
