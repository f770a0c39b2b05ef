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
    lo5, hi5 = rows["t"]["top5_interval"]  # Wilson's, of t's top-5 on the same videos
    assert lo5 <= rows["t"]["top5"] <= hi5 and hi5 - lo5 > 0


def test_noise_aware_selection_gives_a_tie_to_the_cheapest() -> None:
    """With ``ties`` on, a hypothesis the paired test cannot tell from the selection's winner ties with it, and the
    cheapest of the tied wins; one that is distinguishable, or has no per-video record, never ties."""
    base = replace(B_DONE, top1=50.0, gflops=20.0)
    t = replace(trained(2, "t", list(range(36))), gflops=10.0)  # 56.25%, the selection's winner (Eq. 3)
    f = replace(trained(3, "f", list(range(1, 35))), gflops=8.0)  # 53.12%, not distinguishable, cheaper
    c = replace(trained(4, "c", list(range(10))), gflops=5.0)  # 15.62%: distinguishable, cheapest
    s = replace(hyp(5, 1, "s", HypState.DONE, top1=55.0, top5=100.0), gflops=4.0)  # no per-video record
    paper = CoordinateDescent(1, None, "eq3", 0.1, False, LAYOUT)
    (mark,) = paper.advance(snap(base, t, f, c, s))
    assert mark.hypothesis_id == t.id and "ties" not in mark.why  # off: the selection's order alone
    noisy = replace(paper, ties_level=0.05)
    (mark,) = noisy.advance(snap(base, t, f, c, s))
    assert mark.hypothesis_id == f.id, mark.why
    assert ("ties (paired, level 0.05): t, f not distinguishable from the selection's t; f costs the fewest GFLOPs "
            "(8), so it wins instead of t") in mark.why
    (mark,) = noisy.advance(snap(base, t, c))
    assert mark.hypothesis_id == t.id and "every other is distinguishable from t" in mark.why


def test_ties_are_a_definition_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest
    import yaml
    from tinyjob import tiny_job

    from pas_orchestrator.config.recorded import definition_dict
    from pas_orchestrator.config.search import load_search
    from pas_orchestrator.errors import ConfigError
    from pas_orchestrator.strategies.choice import strategy_for

    (tmp_path / "j.yaml").write_text(yaml.safe_dump(tiny_job("t", ties={"level": 0.1})))
    search = load_search(tmp_path / "j.yaml")
    assert strategy_for(search, LAYOUT).ties_level == 0.1  # type: ignore[attr-defined]
    assert definition_dict(search)["ties"] == {"rule": "paired", "level": 0.1}
    (tmp_path / "j.yaml").write_text(yaml.safe_dump(tiny_job("t")))
    assert "ties" not in definition_dict(load_search(tmp_path / "j.yaml"))  # searches started before still resume
    (tmp_path / "j.yaml").write_text(yaml.safe_dump(tiny_job("t", ties={"level": 1.5})))
    with pytest.raises(ConfigError, match=r"ties\.level"):
        load_search(tmp_path / "j.yaml")
