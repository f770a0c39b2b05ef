"""Selection of an iteration's winner (paper Eqs. 1 and 3), ties, and the stop rule: pure functions."""

from __future__ import annotations

import pytest

from pas_models.presets import preset
from pas_models.reductions import apply_op
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
    assert "30 GFLOPs saved / 5.00 top-1 points lost = 6" in choice.why
    assert select(cands, selection="eq3", parent_gflops=40.0, tolerance=0.1, **BASE).winner.op == "s"


def test_eq1_guards_zero_and_negative_accuracy_drops() -> None:
    # no loss at all beats any finite ratio; among lossless ones the larger saving wins
    cands = [C("s", 69.0, 5.0), C("t", 70.0, 25.0), C("f", 71.0, 20.0)]
    choice = select(cands, selection="eq1", parent_gflops=40.0, tolerance=0.1, **BASE)
    assert choice.winner.op == "f" and "no-loss case" in choice.why and "of the 2 that lose nothing" in choice.why
    one = select([C("s", 69.0, 5.0), C("t", 70.0, 25.0)], selection="eq1", parent_gflops=40.0, tolerance=0.1, **BASE)
    assert one.winner.op == "t" and "no-loss case" in one.why and "that lose nothing" not in one.why


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


def test_paper_rule_switches_to_eq1_when_a_hypothesis_sees_fewer_frames_than_the_temporal_stride() -> None:
    # the same scores: Eq. 3 picks t (highest top-1), Eq. 1 picks c (30 saved / 4 lost beats t's 20 / 3)
    scores = {"s": (66.0, 20.0), "t": (67.0, 20.0), "c": (66.0, 10.0)}
    quiet = [C(op, a, g) for op, (a, g) in scores.items()]
    choice = select(quiet, selection="paper", parent_gflops=40.0, tolerance=0.1, **BASE)
    assert (choice.winner.op, choice.rule) == ("t", "eq3") and "frames >= its temporal stride" in choice.why
    flagged = [Candidate(op, a, 90.0, g, "r2plus1d 4 frames < its temporal stride 8" if op == "t" else "")
               for op, (a, g) in scores.items()]
    choice = select(flagged, selection="paper", parent_gflops=40.0, tolerance=0.1, **BASE)
    assert (choice.winner.op, choice.rule) == ("c", "eq1")
    assert "t: r2plus1d 4 frames < its temporal stride 8" in choice.why


@pytest.mark.parametrize(("path", "flagged"), [
    # the paper's R(2+1)D-18 path (Sec. 4.3: c, f, then t): 16 frames, temporal stride 1*2*2*2 = 8
    ((), set()),                    # iteration 1: children of B: t and f have 8 frames, not < 8
    (("c",), set()),                # iteration 2: the same
    (("c", "f"), {"t", "f"}),       # iteration 3: t and f children have 4 frames < 8 -> Eq. 1
    (("c", "f", "t"), {"s", "t", "f", "c", "l"}),  # iteration 4: the parent itself has 4 frames
])
def test_paper_rule_on_the_papers_r2plus1d_path(path: tuple[str, ...], flagged: set[str]) -> None:
    parent = preset("r2plus1d_18", 400)
    for op in path:
        parent = apply_op(parent, op)
    assert parent.temporal_stride(parent.pathways[0]) == 8
    below = {op for op in "stfcl" if apply_op(parent, op).frames_below_temporal_stride()}
    assert below == flagged


def test_slowfast_never_triggers_the_paper_rule() -> None:
    # SlowFast-4x16 has no temporal downsampling in its stages: its pathways' frames are never below 1
    spec = preset("slowfast_4x16_r50", 400)
    for _ in range(4):
        spec = apply_op(spec, "t")
    assert [spec.temporal_stride(p) for p in spec.pathways] == [1, 1] and not spec.frames_below_temporal_stride()


def test_the_strategy_reads_each_hypothesis_spec_for_the_paper_rule() -> None:
    """CoordinateDescent with selection paper: iteration 3 of the paper's R(2+1)D path chooses by Eq. 1, named."""
    from pas_models.layout import RunLayout
    from pas_orchestrator.core.actions import MarkWinner
    from pas_orchestrator.ledger.records import HypRec, SearchRec, Snapshot
    from pas_orchestrator.ledger.states import HypState, SearchState
    from pas_orchestrator.strategies.coordinate_descent import CoordinateDescent

    specs = {(): preset("r2plus1d_18", 400)}
    for path in (("c",), ("c", "f"), *(("c", "f", op) for op in "stfcl")):
        specs[path] = apply_op(specs[path[:-1]], path[-1])
    flops = {"s": 7.0, "t": 9.0, "f": 9.0, "c": 5.0, "l": 11.0}
    top1 = {"s": 60.0, "t": 63.0, "f": 62.0, "c": 62.5, "l": 57.0}  # Eq. 3 would take t

    def row(hid: int, it: int, path: tuple[str, ...], top: float, gflops: float, winner: bool = False) -> HypRec:
        return HypRec(hid, it, path[-1] if path else "base", "pas", ",".join(path), HypState.DONE, None, gflops, 1,
                      specs[path].to_json(), f"/r/{hid}", top, 90.0, "{}", winner, 0.0, None)

    rows = [row(1, 0, (), 70.0, 40.8), row(2, 1, ("c",), 68.0, 20.4, True), row(3, 2, ("c", "f"), 67.0, 10.2, True),
            *(row(10 + i, 3, ("c", "f", op), top1[op], flops[op]) for i, op in enumerate("stfcl"))]
    snap = Snapshot(SearchRec("s", "{}", "h", "local", SearchState.RUNNING, None, 0.0, None), tuple(rows))
    cd = CoordinateDescent(5, None, "paper", 0.1, False, RunLayout.of("/r", "s"))
    (mark,) = cd.advance(snap)
    assert isinstance(mark, MarkWinner)
    winner = next(h for h in rows if h.id == mark.hypothesis_id)
    # Eq. 1 against B (70.0, 40.8): s 33.8 / 10 = 3.38, t 31.8 / 7 = 4.54, f 31.8 / 8, c 35.8 / 7.5 = 4.77
    assert winner.op == "c" and mark.why.startswith("Eq. 1: 35.8 GFLOPs saved / 7.50 top-1 points lost")
    assert "[paper's rule: t: main 4 frames < its temporal stride 8; f: main 4 frames" in mark.why
