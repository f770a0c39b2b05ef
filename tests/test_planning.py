"""Planning an iteration: every operator on the current winner, in the definition's order, with
GFLOPs, and not-applicable operators kept with their reason."""

from __future__ import annotations

from pas_models.flops import count_cost
from pas_models.presets import preset
from pas_models.reductions import DEFAULT_GAMMAS, apply_sequence
from pas_orchestrator.planning import plan_iteration


def test_plan_lists_every_operator_in_order_with_costs() -> None:
    base = preset("r2plus1d_tiny", 4)
    ops = {"c": 1.4, "f": 2.0, "s": 1.4}
    plan = plan_iteration(base, (), ops)
    assert [p.op for p in plan] == ["c", "f", "s"] and [p.path for p in plan] == [("c",), ("f",), ("s",)]
    for p in plan:
        assert p.spec is not None and p.reason is None
        assert p.gflops == count_cost(p.spec).gflops < count_cost(base).gflops


def test_not_applicable_operators_carry_their_reason() -> None:
    parent = apply_sequence(preset("r2plus1d_tiny", 4), ["l"], DEFAULT_GAMMAS)[-1]
    plan = plan_iteration(parent, ("l",), dict(DEFAULT_GAMMAS))
    by = {p.op: p for p in plan}
    assert by["l"].spec is None and by["l"].gflops is None and "changes nothing" in (by["l"].reason or "")
    assert by["l"].path == ("l", "l")
    assert all(by[k].spec is not None for k in "stfc")
