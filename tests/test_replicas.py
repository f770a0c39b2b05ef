"""Replicas (``replicas: N``): the controller driven in this process with a real ledger (tests/fakes.py) plans B's
and every hypothesis' replicas, builds each replica's task from its own chain (seed + r, B's replica r as teacher,
the parent's replica r as weights, its own teacher cache), decides on the replicas' mean, and stops a chain whose
replica failed; a rung decision takes a hypothesis' replicas with it."""

from __future__ import annotations

import json
from pathlib import Path

from fakes import FakeExecutor, controller, drive
from snapshots import B_DONE, DONE_ATT, att, halving, rung_hyp, snap

from pas_models.layout import HypFiles
from pas_models.train.task import TrainTask
from pas_orchestrator import replicas
from pas_orchestrator.core.actions import PromoteRung
from pas_orchestrator.core.decide import Observations, decide
from pas_orchestrator.ledger.states import HypState, SearchState
from pas_orchestrator.progress import summary as summary_line
from pas_orchestrator.views import as_json, render


def _job_of(ex: FakeExecutor, out_dir: str) -> str:
    return next(j for j, x in ex.jobs.items() if x.task.out_dir == out_dir)


def _task(ex: FakeExecutor, out_dir: str) -> TrainTask:
    task = ex.jobs[_job_of(ex, out_dir)].task
    assert isinstance(task, TrainTask)
    return task


def test_replicas_train_as_chains_of_their_own_and_the_winner_is_chosen_on_their_mean(tmp_path: Path) -> None:
    ex = FakeExecutor()
    c = controller(tmp_path, ex, replicas=3, selection="eq3")
    drive(c)
    s = c.ledger.snapshot()
    (base,) = s.iteration(0)
    rows = replicas.replicas_of(s, base)
    assert [h.op for h in rows] == ["base", "base.r1", "base.r2"] and [h.kind for h in rows[1:]] == ["replica"] * 2
    assert len(ex.batches) == 1 and len(ex.batches[0][1]) == 3  # one batch: B and its replicas together
    assert [_task(ex, h.out_dir).seed for h in rows] == [0, 1, 2]
    for h, top1 in zip(rows, (60.0, 70.0, 80.0), strict=True):
        ex.succeed(_job_of(ex, h.out_dir), top1=top1, gflops=base.gflops, videos=100)
    drive(c)
    s = c.ledger.snapshot()
    hyps = {h.op: h for h in s.iteration(1)}
    assert sorted(hyps) == ["c", "s"] and len(s.iteration(1, "replica")) == 4
    for op in ("s", "c"):
        for r, h in enumerate(replicas.replicas_of(s, hyps[op])):
            task = _task(ex, h.out_dir)
            b_r = replicas.replica(s, base, r)
            assert b_r is not None and task.seed == r
            assert task.teacher_checkpoint == str(HypFiles.of(b_r.out_dir).model)  # distilled from B's replica r
            assert task.parent_checkpoint in (None, str(HypFiles.of(b_r.out_dir).model))
    # replica 0 alone would choose c (80 > 50); the replicas' means choose s (60 > 55)
    figures = {"s": (50.0, 60.0, 70.0), "c": (80.0, 40.0, 45.0)}
    for op, tops in figures.items():
        for h, top1 in zip(replicas.replicas_of(s, hyps[op]), tops, strict=True):
            ex.succeed(_job_of(ex, h.out_dir), top1=top1, gflops=h.gflops, videos=100)
    drive(c)
    s = c.ledger.snapshot()
    assert s.search.state == SearchState.DONE, s.search.error
    winner = s.winner(1)
    assert winner is not None and winner.op == "s"
    sw, sc = replicas.summary(s, winner), replicas.summary(s, hyps["c"])
    assert sw is not None and sw.top1 == (50.0, 60.0, 70.0) and sw.mean == 60.0 and sw.sd == 10.0
    assert sw.p_beats_winner is None
    assert sc is not None and sc.mean == 55.0 and sc.p_beats_winner == 1 / 3  # c beat s in replica 0 only
    assert "best: s (iteration 1) 60.00%" in summary_line(s, 1, None)  # the mean the choice was made on
    text = render(s)
    assert "replicas (replica r trains with the search's seed + r" in text
    line = next(x for x in text.splitlines() if x.split()[:2] == ["1", "c"] and "80.0 40.0 45.0" in x)
    assert line.split()[-3:] == ["55.00", "21.79", "0.33"]
    out = {(h["iteration"], h["op"]): h for h in as_json(s)["hypotheses"]}
    assert out[1, "c"]["replicas"] == {"count": 3, "top1": [80.0, 40.0, 45.0], "mean": 55.0,
                                       "sd": sc.sd, "p_beats_winner": 1 / 3}
    assert out[1, "c"]["vs_winner"]["videos"] == 300 and out[1, "c.r1"]["kind"] == "replica"
    why = next(e.message for e in c.ledger.events(100) if e.kind == "winner")
    assert "top-1 against s on the same 100 videos x 3 replicas (paired, 95%): c -5.00 [" in why, why


def test_the_replicas_of_an_imported_B_share_its_one_teacher_cache(tmp_path: Path) -> None:
    """One B (imported) teaches every replica, so every replica reads its one cache: there is no other."""
    ex = FakeExecutor()
    (tmp_path / "b.pt").write_bytes(b"B's weights")
    c = controller(tmp_path, ex, replicas=2, base={"checkpoint": str(tmp_path / "b.pt")},
                   distill={"alpha": 10, "cache": {"clips_per_video": 2, "shards": 2}})
    drive(c)
    s = c.ledger.snapshot()
    (base,) = s.iteration(0)
    assert replicas.replicas_of(s, base) == [base]  # one B
    ex.succeed(_job_of(ex, base.out_dir), top1=60.0, gflops=base.gflops, videos=10)
    drive(c)
    for job in ex.active():
        ex.succeed(job)  # the cache's shards
    drive(c)
    s = c.ledger.snapshot()
    rows = s.iteration(1) + s.iteration(1, "replica")
    assert sorted(h.op for h in rows) == ["c", "c.r1", "s", "s.r1"]
    for h in rows:
        task = _task(ex, h.out_dir)
        assert task.teacher_cache == str(c.layout.teacher_cache)
        assert (task.seed if task.teacher_cache_seed is None else task.teacher_cache_seed) == 0  # B's, made once
        assert task.teacher_checkpoint == str(HypFiles.of(base.out_dir).model)


def test_a_failed_replica_of_B_ends_its_chain_and_the_others_go_on(tmp_path: Path) -> None:
    ex = FakeExecutor()
    c = controller(tmp_path, ex, replicas=2, max_retries=0)
    drive(c)
    s = c.ledger.snapshot()
    base, b1 = replicas.replicas_of(s, s.iteration(0)[0])
    ex.succeed(_job_of(ex, base.out_dir), top1=60.0, gflops=base.gflops, videos=10)
    drive(c)
    assert not c.ledger.snapshot().iteration(1)  # B's figure waits for its replicas
    ex.fail(_job_of(ex, b1.out_dir))
    drive(c)
    s = c.ledger.snapshot()
    assert replicas.replicas_of(s, s.iteration(0)[0])[1].state == HypState.FAILED
    assert sorted(h.op for h in s.iteration(1)) == ["c", "s"] and s.iteration(1, "replica") == []


def test_a_rung_decision_promotes_and_stops_each_hypothesis_with_its_replicas() -> None:
    from dataclasses import replace

    def rep(h: object, hid: int, r: int, score: float) -> object:
        row = rung_hyp(hid, h.op, 1, {1: score}, att(hid, hid, DONE_ATT))  # type: ignore[attr-defined]
        return replace(row, op=replicas.replica_op(h.op, r), kind=replicas.KIND)  # type: ignore[attr-defined]

    # replica 0: f 50 > t 40; with the replicas: t (40, 60, 62) = 54 > f (50, 45, 46) = 47
    t = rung_hyp(2, "t", 1, {1: 40.0}, att(2, 2, DONE_ATT))
    f = rung_hyp(3, "f", 1, {1: 50.0}, att(3, 3, DONE_ATT))
    rows = (B_DONE, t, f, rep(t, 4, 1, 60.0), rep(t, 5, 2, 62.0), rep(f, 6, 1, 45.0), rep(f, 7, 2, 46.0))
    strategy = replicas.Replicated(halving(eta=2).strategy, 3)
    (decision,) = strategy.advance(snap(*rows))
    assert isinstance(decision, PromoteRung)
    assert sorted(decision.promoted) == [2, 4, 5] and sorted(i for i, _ in decision.stopped) == [3, 6, 7]
    assert "top-1 47.00%" in dict(decision.stopped)[3]
    # a replica still short of the rung: no decision yet
    waiting = (*rows[:-1], replace(rung_hyp(7, "f", 1, {}), op="f.r2", kind=replicas.KIND))
    assert strategy.advance(snap(*waiting)) == []
    assert decide(snap(*rows), Observations(), replace(halving(eta=2), strategy=strategy)) == [decision]


def test_replica_ops_and_summaries_without_replicas() -> None:
    assert replicas.source_op("t.r12") == ("t", 12) and replicas.source_op("cache-3.r1") == ("cache-3", 1)
    assert replicas.source_op("l.mse@0.5") == ("l.mse@0.5", 0) and replicas.replica_op("t", 0) == "t"
    s = snap(B_DONE, rung_hyp(2, "t", 1, {}))
    assert replicas.pooled(s) is s and replicas.summary(s, s.hypotheses[1]) is None
    assert json.loads(json.dumps(replicas.Summary((1.0,), 1.0, None, None).to_dict()))["count"] == 1
