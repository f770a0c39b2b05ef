"""Hypotheses compared on the same videos (pas_orchestrator/comparisons.py): in the winner's why, `pas status
--json`'s ``vs_winner`` and the report, from the per-video records of their results."""

from __future__ import annotations

import json
from dataclasses import replace

from snapshots import B_DONE, LAYOUT, hyp, snap

from pas_models.predictions import PerVideo
from pas_orchestrator.comparisons import against, describe
from pas_orchestrator.core.actions import MarkWinner
from pas_orchestrator.ledger.records import HypRec
from pas_orchestrator.ledger.states import HypState
from pas_orchestrator.strategies.coordinate_descent import CoordinateDescent
from pas_orchestrator.views import as_json

N = 64


def trained(hid: int, op: str, right: list[int], winner: bool = False) -> HypRec:
    """An iteration-1 hypothesis that got the videos ``right`` of 64 right at top-1 (and every one at top-5)."""
    per = PerVideo(N, (True,) * N, tuple(i in right for i in range(N)), (True,) * N)
    h = hyp(hid, 1, op, HypState.DONE, top1=100 * len(right) / N, top5=100.0, winner=winner)
    return replace(h, result=json.dumps({"per_video": per.to_dict(), "eval_videos": N}), eval_videos=N)


def test_the_winner_against_each_rival_on_the_same_videos() -> None:
    t = trained(2, "t", list(range(36)))  # 56.25%
    f = trained(3, "f", list(range(1, 35)))  # 53.12%: 1 video t lacks, 3 t has
    c = trained(4, "c", list(range(10)))  # 15.62%
    assert against(t, f).difference == -100 * 2 / N and not against(t, f).distinguishable
    assert against(t, c).distinguishable and against(t, c).difference < -30
    why = describe(t, [c, f])
    assert why.startswith("top-1 against t on the same 64 videos (paired, 95%): f -3.12 [")
    assert "not distinguishable" in why.split(";")[0] and "not distinguishable" not in why.split(";")[1]
    assert describe(t, [replace(f, result="{}")]) == ""  # results made before per-video records: nothing claimed


def test_the_winners_why_carries_it_and_status_json_has_it() -> None:
    base = replace(B_DONE, top1=50.0, gflops=20.0)
    t, f = trained(2, "t", list(range(36))), trained(3, "f", list(range(1, 35)))
    t, f = replace(t, gflops=10.0), replace(f, gflops=10.0)
    (mark,) = CoordinateDescent(1, None, "eq3", 0.1, False, LAYOUT).advance(snap(base, t, f))
    assert isinstance(mark, MarkWinner) and mark.hypothesis_id == t.id
    assert "top-1 against t on the same 64 videos (paired, 95%): f -3.12 [" in mark.why
    out = as_json(snap(base, replace(t, winner=True), f))
    rows = {h["op"]: h for h in out["hypotheses"]}
    assert rows["t"]["vs_winner"] is None and rows["f"]["vs_winner"]["difference"] == -100 * 2 / N
    assert rows["f"]["vs_winner"]["videos"] == N and rows["f"]["vs_winner"]["distinguishable"] is False
    lo, hi = rows["t"]["top1_interval"]
    assert lo < 56.25 < hi and rows["t"]["eval_videos"] == N
