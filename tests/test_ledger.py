"""The ledger on a real SQLite file: state machine, idempotence, frozen records, lease, schema version."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pas_models.train.result import JobResult
from pas_orchestrator.core.actions import (
    AddHypotheses,
    CancelSearch,
    CreateAttempts,
    EndSearch,
    FailAttempt,
    IngestResult,
    InterruptAttempt,
    LogEvent,
    MarkWinner,
    ObserveAttempt,
    PlanBase,
    RecordJobIds,
    ResumeSearch,
)
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.errors import LedgerConflict, LedgerError
from pas_orchestrator.ledger import AttemptState, HypState, Ledger, NewHypothesis, SearchState
from pas_orchestrator.ledger.schema import MIGRATIONS, SCHEMA_VERSION
from pas_orchestrator.ledger.states import TRANSITIONS, allowed, check


@pytest.mark.parametrize("enum", list(TRANSITIONS), ids=lambda e: e.__name__)
def test_every_transition_not_in_the_table_is_refused(enum: type) -> None:
    for old, new in itertools.product(enum, enum):
        if old == new:
            continue
        if new in TRANSITIONS[enum][old]:
            check("x", old, new)
        else:
            assert not allowed(old, new)
            with pytest.raises(LedgerError, match=f"illegal state change {old.value} -> {new.value}"):
                check("x", old, new)


def _ledger(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "ledger.sqlite")
    led.acquire_lease()
    led.init_search("s1", {"a": 1}, "hash1", "local")
    return led


def _hyp(it: int, op: str, **kw: object) -> NewHypothesis:
    return NewHypothesis(iteration=it, op=op, kind="pas", path=op, out_dir=f"/runs/{it}-{op}", **kw)  # type: ignore


def _result(top1: float) -> JobResult:
    return JobResult(hypothesis="1-s", attempt=1, top1=top1, top5=80.0, gflops_per_view=20.1, views=1, params=1000,
                     epochs=1, train_seconds=3.0, gpu_hours=0.0, clips_seen=8, videos_skipped=0, eval_videos=2,
                     checkpoint="/runs/1-s/model.pt", spec={}, finetuned_from_parent=True, versions={}, recipe={})


RUNNING = JobOutcome(Phase.RUNNING, node="node2", label="RUNNING")


def test_lifecycle_and_idempotent_ingest(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    led.apply(AddHypotheses((_hyp(1, "s"), _hyp(1, "t"), _hyp(1, "l", state=HypState.NOT_APPLICABLE,
                                                                reason="too small"))))
    assert led.apply(AddHypotheses((_hyp(1, "s"),))).changed is False  # already there: kept as is
    snap = led.snapshot()
    assert [h.op for h in snap.hypotheses] == ["s", "t", "l"]
    s, t, _ = snap.hypotheses
    atts = led.apply(CreateAttempts((s.id, t.id), "pas-s1-i1")).attempts
    assert [a.job_name for a in atts] == ["pas-s1-i1-b1_0", "pas-s1-i1-b1_1"] and {a.number for a in atts} == {1}
    assert all(a.state == AttemptState.CREATED and a.job_id is None for a in atts)
    led.apply(RecordJobIds(((atts[0].id, "101"), (atts[1].id, "102"))))
    led.apply(ObserveAttempt(atts[0].id, AttemptState.SUBMITTED, RUNNING))
    assert led.apply(IngestResult(s.id, atts[0].id, _result(61.5))).changed is True
    assert led.apply(IngestResult(s.id, atts[0].id, _result(61.5))).changed is False  # a second ingest: nothing
    led.apply(FailAttempt(atts[1].id, AttemptState.SUBMITTED, "NODE_FAIL"))
    retry = led.apply(CreateAttempts((t.id,), "pas-s1-i1")).attempts
    assert retry[0].number == 2 and retry[0].job_name == "pas-s1-i1-b2_0"
    snap = led.snapshot()
    hs = {h.op: h for h in snap.hypotheses}
    assert hs["s"].state == HypState.DONE and hs["s"].top1 == 61.5
    assert JobResult.from_dict(json.loads(hs["s"].result or "")) == _result(61.5)  # stored whole
    assert hs["s"].attempts[0].state == AttemptState.COMPLETED and hs["s"].attempts[0].node == "node2"
    assert [a.state for a in hs["t"].attempts] == [AttemptState.FAILED, AttemptState.CREATED]
    assert hs["t"].attempts[0].reason == "NODE_FAIL" and hs["l"].reason == "too small"
    led.apply(MarkWinner(hs["s"].id, "Eq. 3"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.hypotheses[0].top1 = 0.0  # type: ignore[misc]
    assert led.snapshot().winner(1).op == "s"  # type: ignore[union-attr]
    kinds = [e.kind for e in led.events(100)]
    assert {"search", "plan", "submit", "result", "attempt", "winner"} <= set(kinds)
    led.apply(EndSearch(SearchState.DONE, "stopping: 1 iterations done"))
    with pytest.raises(LedgerConflict, match="expected CANCELLED/FAILED, but it is DONE"):
        led.apply(ResumeSearch())


def test_compare_and_set_refuses_stale_actions(tmp_path: Path) -> None:
    """An action decided on a snapshot that another writer changed since is refused, and changes nothing."""
    led = _ledger(tmp_path)
    led.apply(AddHypotheses((_hyp(1, "s"), _hyp(1, "t"))))
    s, t = led.snapshot().hypotheses
    (a,) = led.apply(CreateAttempts((s.id,), "pas-s1-i1")).attempts
    led.apply(RecordJobIds(((a.id, "101"),)))
    before = led.snapshot()
    led.apply(CancelSearch("cancelled by pas cancel"))  # another writer: `pas cancel`
    cancelled = led.snapshot()
    stale = [FailAttempt(a.id, AttemptState.SUBMITTED, "FAILED"), IngestResult(s.id, a.id, _result(50.0)),
             ObserveAttempt(a.id, AttemptState.SUBMITTED, RUNNING), InterruptAttempt(a.id, AttemptState.SUBMITTED, "x"),
             EndSearch(SearchState.DONE)]
    for action in stale:
        with pytest.raises(LedgerConflict, match="refused"):
            led.apply(action)
    assert led.snapshot() == cancelled != before
    with pytest.raises(LedgerConflict, match="already has an active attempt"):  # never two live attempts
        led.apply(ResumeSearch())
        led.apply(CreateAttempts((t.id,), "pas-s1-i1"))
        led.apply(CreateAttempts((t.id,), "pas-s1-i1"))
    with pytest.raises(LedgerError, match="no attempt with id 999"):
        led.apply(FailAttempt(999, AttemptState.RUNNING, "x"))
    with pytest.raises(LedgerError, match="not a ledger action"):
        led.apply(PlanBase())  # type: ignore[arg-type]


def test_interrupted_attempts_end_and_spend_nothing(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    led.apply(AddHypotheses((_hyp(1, "s"),)))
    (h,) = led.snapshot().hypotheses
    (a,) = led.apply(CreateAttempts((h.id,), "pas-s1-i1")).attempts
    led.apply(RecordJobIds(((a.id, "101"),)))
    led.apply(InterruptAttempt(a.id, AttemptState.SUBMITTED, "controller interrupted (Ctrl-C)"))
    (h,) = led.snapshot().hypotheses
    assert h.state == HypState.RUNNING and h.attempts[0].state == AttemptState.INTERRUPTED
    assert h.attempts[0].reason == "controller interrupted (Ctrl-C)"


def test_other_search_is_refused(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    assert led.init_search("s1", {"a": 2}, "hash2", "local").definition_hash == "hash1"  # the caller compares
    with pytest.raises(LedgerError, match="holds search 's1', not 's2'"):
        led.init_search("s2", {"a": 1}, "hash1", "local")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    _ledger(tmp_path).close()
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(LedgerError, match=r"newer pas \(ledger schema 99"):
        Ledger(tmp_path / "ledger.sqlite")


def test_a_version_1_ledger_is_upgraded_in_place(tmp_path: Path) -> None:
    """A ledger written by the first schema (no attempt.node, no halving or compute columns) keeps its rows and
    gains the columns;
    `pas status` (read-only) asks for the upgrade instead of failing on the missing column."""
    led = _ledger(tmp_path)
    led.apply(AddHypotheses((_hyp(1, "s"),)))
    (att,) = led.apply(CreateAttempts((led.snapshot().hypotheses[0].id,), "pas-s1-i1")).attempts
    led.apply(RecordJobIds(((att.id, "77"),)))
    led.close()
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:  # back to schema 1: every column added since dropped
        for sql in (q for v in sorted(MIGRATIONS) for q in MIGRATIONS[v] if q.startswith("ALTER TABLE")):
            table, column = sql.split()[2], sql.split()[5]
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with pytest.raises(LedgerError, match=r"schema 1 is older .* `pas search` once to upgrade"):
        Ledger(tmp_path / "ledger.sqlite", readonly=True)
    led = Ledger(tmp_path / "ledger.sqlite")
    led.apply(ObserveAttempt(att.id, AttemptState.SUBMITTED, JobOutcome(
        Phase.RUNNING, node="node2", requeues=1, requeue_why="previous run NODE_FAIL on node1", label="RUNNING")))
    (a,) = led.snapshot().hypotheses[0].attempts
    assert (a.job_id, a.node, a.requeues, a.state) == ("77", "node2", 1, AttemptState.RUNNING)
    assert any("requeued (1): previous run NODE_FAIL on node1" in e.message for e in led.events(100))
    led.close()
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)


def test_a_version_4_ledger_gets_its_results_test_set_sizes(tmp_path: Path) -> None:
    """Schema 5 records how many videos each top-1 was measured on (its interval); upgrading a ledger of schema 4
    fills the column from the results it ingested."""
    led = _ledger(tmp_path)
    led.apply(AddHypotheses((_hyp(1, "s"),)))
    h = led.snapshot().hypotheses[0]
    (att,) = led.apply(CreateAttempts((h.id,), "pas-s1-i1")).attempts
    led.apply(RecordJobIds(((att.id, "77"),)))
    led.apply(IngestResult(h.id, att.id, _result(50.0)))
    assert led.snapshot().hypotheses[0].eval_videos == 2
    led.close()
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        db.execute("ALTER TABLE hypothesis DROP COLUMN eval_videos")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    led = Ledger(tmp_path / "ledger.sqlite")
    (h,) = led.snapshot().hypotheses
    led.close()
    assert h.eval_videos == 2 and h.top1_interval is not None and h.top1_interval[0] < 50 < h.top1_interval[1]


@pytest.mark.parametrize(("content", "expected"), [
    (b"", r"an empty file \(0 bytes\), not a pas ledger"),
    (b"name,top1\nx,1\n", r"not an SQLite database \(14 bytes of something else\)"),
    ("sqlite", r"the SQLite database of another application \(tables: photos, tags\), not a pas ledger"),
], ids=["empty", "text", "foreign-sqlite"])
def test_a_file_that_is_not_a_ledger_is_refused_untouched(tmp_path: Path, content: bytes | str,
                                                           expected: str) -> None:
    path = tmp_path / "ledger.sqlite"
    if content == "sqlite":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE photos (id INTEGER)")
            db.execute("CREATE TABLE tags (id INTEGER)")
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(LedgerError, match=expected):
            Ledger(path, readonly=readonly)
    assert path.read_bytes() == before  # nothing added to someone else's file


def test_last_activity_is_the_ledgers_own_record(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    first = led.last_activity()
    time.sleep(0.01)
    led.apply(LogEvent("x", "something happened"))
    assert led.last_activity() > first


def test_readonly_needs_an_existing_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger here"):
        Ledger(tmp_path / "none.sqlite", readonly=True)


def test_a_new_ledger_appears_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pas status` in the first instant of a search must see no ledger or a whole one: the file is
    built aside and linked into place only once its tables and schema row are committed."""
    path = tmp_path / "ledger.sqlite"
    seen: list[str] = []
    real_link = os.link

    def link(src: str | Path, dst: str | Path) -> None:
        assert Path(dst) == path and not path.exists()
        Ledger(src, readonly=True).close()  # raises "not a pas ledger" if the schema row were missing
        seen.append(Path(src).name)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link)
    Ledger(path).close()
    assert len(seen) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == ["ledger.sqlite"]
    reader = Ledger(path, readonly=True)
    with pytest.raises(LedgerError, match=r"no search yet \(its controller is starting it"):
        reader.snapshot()  # what `pas status` says in that instant
    reader.close()


CREATOR = """
import sys, time
from pas_orchestrator.ledger import Ledger
while time.time() < float(sys.argv[2]):
    pass
Ledger(sys.argv[1]).close()
"""


def test_controllers_racing_to_create_a_ledger_get_one(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    start = time.time() + 3.0  # all four past their imports, then go at once
    procs = [subprocess.Popen([sys.executable, "-c", CREATOR, str(path), str(start)], stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    Ledger(path, readonly=True).close()
    assert not [p for p in tmp_path.iterdir() if ".creating-" in p.name]


HOLDER = """
import sys, time
from pas_orchestrator.ledger import Ledger
led = Ledger(sys.argv[1]); led.acquire_lease(); print("held", flush=True); time.sleep(600)
"""


def test_second_controller_is_refused_and_a_dead_ones_lease_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LedgerError, match=rf"another controller runs this search \(pid {holder.pid}"):
            Ledger(path).acquire_lease()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    led = Ledger(path)
    led.acquire_lease()  # same host, process gone: taken over at once
    led.heartbeat()
    led.init_search("s1", {}, "h", "local")
    assert any("took over the lease" in e.message for e in led.events())
    led.release_lease()
    assert led.lease_holder() is None


def test_lease_from_another_host_is_taken_over_only_when_stale(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO lease (id, host, pid, token, acquired_at, heartbeat) "
                   "VALUES (1, 'login2', 4242, 't', ?, ?)", (time.time(), time.time()))
    with pytest.raises(LedgerError, match="pid 4242 on login2"):
        Ledger(path).acquire_lease()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE lease SET heartbeat = ?", (time.time() - 1000,))
    led = Ledger(path)
    led.acquire_lease()
    with sqlite3.connect(path) as db:  # someone else took it: this controller notices at its next heartbeat
        db.execute("UPDATE lease SET token = 'other'")
    with pytest.raises(LedgerError, match="lost its lease"):
        led.heartbeat()
