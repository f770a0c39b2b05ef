"""The ledger on a real SQLite file: state machine, idempotence, frozen records, lease, schema version."""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pas_orchestrator.errors import LedgerError
from pas_orchestrator.ledger import AttemptState, HypState, Ledger, NewHypothesis, SearchState
from pas_orchestrator.ledger.schema import SCHEMA_VERSION
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


def test_lifecycle_and_idempotent_ingest(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    led.add_hypotheses([_hyp(1, "s"), _hyp(1, "t"), _hyp(1, "l", state=HypState.NOT_APPLICABLE, reason="too small")])
    led.add_hypotheses([_hyp(1, "s")])  # already there: kept as is
    snap = led.snapshot()
    assert [h.op for h in snap.hypotheses] == ["s", "t", "l"]
    s, t, _ = snap.hypotheses
    atts = led.create_attempts([s.id, t.id], "pas-s1-i1")
    assert [a.job_name for a in atts] == ["pas-s1-i1-b1_0", "pas-s1-i1-b1_1"] and {a.number for a in atts} == {1}
    assert all(a.state == AttemptState.CREATED and a.job_id is None for a in atts)
    led.set_job_ids({atts[0].id: "101", atts[1].id: "102"})
    led.update_attempt(atts[0].id, AttemptState.RUNNING, scheduler_state="RUNNING")
    result = {"top1": 61.5, "top5": 80.0, "gflops_per_view": 20.1, "params": 1000}
    assert led.ingest_result(s.id, atts[0].id, result) is True
    assert led.ingest_result(s.id, atts[0].id, result) is False  # a second ingest changes nothing
    led.update_attempt(atts[1].id, AttemptState.FAILED, reason="NODE_FAIL")
    retry = led.create_attempts([t.id], "pas-s1-i1")
    assert retry[0].number == 2 and retry[0].job_name == "pas-s1-i1-b2_0"
    snap = led.snapshot()
    hs = {h.op: h for h in snap.hypotheses}
    assert hs["s"].state == HypState.DONE and hs["s"].top1 == 61.5
    assert hs["s"].attempts[0].state == AttemptState.COMPLETED
    assert [a.state for a in hs["t"].attempts] == [AttemptState.FAILED, AttemptState.CREATED]
    assert hs["t"].attempts[0].reason == "NODE_FAIL" and hs["l"].reason == "too small"
    led.mark_winner(hs["s"].id, "Eq. 3")
    with pytest.raises(LedgerError, match="illegal state change COMPLETED -> RUNNING"):
        led.update_attempt(atts[0].id, AttemptState.RUNNING)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.hypotheses[0].top1 = 0.0  # type: ignore[misc]
    assert led.snapshot().winner(1).op == "s"  # type: ignore[union-attr]
    kinds = [e.kind for e in led.events(100)]
    assert {"search", "plan", "submit", "result", "attempt", "winner"} <= set(kinds)
    led.set_search_state(SearchState.DONE)
    with pytest.raises(LedgerError, match="DONE -> RUNNING"):
        led.set_search_state(SearchState.RUNNING)


def test_changed_definition_and_other_search_are_refused(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    with pytest.raises(LedgerError, match="search definition changed"):
        led.init_search("s1", {"a": 2}, "hash2", "local")
    with pytest.raises(LedgerError, match="holds search 's1', not 's2'"):
        led.init_search("s2", {"a": 1}, "hash1", "local")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    _ledger(tmp_path).close()
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(LedgerError, match=r"newer pas \(ledger schema 99"):
        Ledger(tmp_path / "ledger.sqlite")


def test_a_version_1_ledger_is_upgraded_in_place(tmp_path: Path) -> None:
    """A ledger written by the first schema (no attempt.node) keeps its rows and gains the column;
    `pas status` (read-only) asks for the upgrade instead of failing on the missing column."""
    led = _ledger(tmp_path)
    led.add_hypotheses([_hyp(1, "s")])
    (att,) = led.create_attempts([led.snapshot().hypotheses[0].id], "pas-s1-i1")
    led.set_job_ids({att.id: "77"})
    led.close()
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:  # back to schema 1
        db.execute("ALTER TABLE attempt DROP COLUMN node")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with pytest.raises(LedgerError, match=r"schema 1 is older .* `pas search` once to upgrade"):
        Ledger(tmp_path / "ledger.sqlite", readonly=True)
    led = Ledger(tmp_path / "ledger.sqlite")
    led.update_attempt(att.id, AttemptState.RUNNING, scheduler_state="RUNNING", node="node2",
                       requeues=(1, "previous run NODE_FAIL on node1"))
    (a,) = led.snapshot().hypotheses[0].attempts
    assert (a.job_id, a.node, a.requeues, a.state) == ("77", "node2", 1, AttemptState.RUNNING)
    assert any("requeued (1): previous run NODE_FAIL on node1" in e.message for e in led.events(100))
    led.close()
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)


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
