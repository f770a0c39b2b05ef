"""`pas status`: its controller line (a controller killed without releasing its lease, SIGKILL, is not shown as
running, on this host or another), and the tries of a hypothesis that trains in rungs."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pas_orchestrator.core.actions import CancelSearch
from pas_orchestrator.ledger.states import SearchState
from pas_orchestrator.ledger.store import LEASE_STALE_SECONDS, Ledger
from pas_orchestrator.views import controller_line

TAKE_LEASE = """
import sys, time
from pas_orchestrator.ledger.store import Ledger
led = Ledger(sys.argv[1]); led.acquire_lease(); print("held", flush=True); time.sleep(600)
"""


def _status(runs: Path, capsys: pytest.CaptureFixture[str]) -> str:
    from pas_orchestrator.commands import status

    assert status.run(argparse.Namespace(runs=runs, search=None, json=False, study=False, watch=None)) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_a_sigkilled_controller_is_shown_as_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "runs" / "s1" / "ledger.sqlite"
    led = Ledger(path)
    led.init_search("s1", {}, "h", "local")
    led.close()
    proc = subprocess.Popen([sys.executable, "-c", TAKE_LEASE, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    assert _status(tmp_path / "runs", capsys).startswith(f"controller: pid {proc.pid} on ")  # alive: shown
    proc.kill()
    proc.wait()
    line = _status(tmp_path / "runs", capsys)
    assert line.startswith(f"controller: not running (pid {proc.pid} on ") and "ended without releasing" in line
    assert "resume with the same `pas search` command" in line
    led = Ledger(path)
    led.apply(CancelSearch("cancelled by pas cancel"))
    led.close()
    line = _status(tmp_path / "runs", capsys)
    assert line.startswith("controller: not running") and "cancelled: resume" in line


@pytest.mark.parametrize(("holder", "alive", "state", "expect"), [
    (None, None, SearchState.RUNNING, "controller: not running (resume with the same `pas search` command)"),
    (None, None, SearchState.DONE, "controller: not running (the search is done)"),
    (("here", 7, 990.0), True, SearchState.RUNNING, "controller: pid 7 on here, heartbeat 10 s ago"),
    (("here", 7, 990.0), False, SearchState.RUNNING, "controller: not running (pid 7 on here ended without releasing "
                                                      "its lease, last heartbeat 10 s ago; resume with the same "
                                                      "`pas search` command)"),
    (("there", 7, 1000.0 - LEASE_STALE_SECONDS - 1), None, SearchState.RUNNING,
     f"controller: pid 7 on there, no heartbeat for {LEASE_STALE_SECONDS + 1:.0f} s: probably not running (the "
     "next `pas search` takes its lease over)"),
    (("here", 7, 990.0), True, SearchState.CANCELLED, "controller: pid 7 on here, heartbeat 10 s ago (the search "
                                                       "is cancelled: it stops at its next poll)"),
])
def test_controller_line(holder: tuple[str, int, float] | None, alive: bool | None, state: SearchState,
                         expect: str) -> None:
    assert controller_line(holder, alive, state, now=1000.0) == expect


def test_the_line_reads_the_clock_it_is_given() -> None:
    assert "heartbeat 0 s ago" in controller_line(("h", 1, time.time()), True, SearchState.RUNNING)


def test_tries_counts_the_attempts_of_the_current_rung_not_the_rungs() -> None:
    """A halving hypothesis that went through 3 rungs without a retry tried once (its rungs have a column of their
    own); a retry of its current rung makes it 2."""
    import json as _json

    from pas_orchestrator.ledger.records import AttemptRec, HypRec, SearchRec, Snapshot
    from pas_orchestrator.ledger.states import AttemptState, HypState
    from pas_orchestrator.views import as_json, render

    def att(aid: int, rung: int, state: AttemptState) -> AttemptRec:
        return AttemptRec(aid, 2, aid, f"j_{aid}", "b", 0, str(100 + aid), state, None, None, 0, 0.0, None, None,
                          None, rung=rung)

    definition = _json.dumps({"halving": {"eta": 3, "rungs": 3}})
    base = HypRec(1, 0, "base", "pas", "", HypState.DONE, None, 4.0, 10, "{}", "/r/0-base", 90.0, 99.0, None, False,
                  0.0, None, attempts=(att(9, 0, AttemptState.COMPLETED),))
    done = HypRec(2, 1, "s", "pas", "s", HypState.DONE, None, 2.0, 10, "{}", "/r/1-s", 80.0, 95.0, None, True, 0.0,
                  None, attempts=tuple(att(i, i, AttemptState.COMPLETED) for i in (1, 2, 3)), rung=3)
    snap = Snapshot(SearchRec("s", definition, "h", "local", SearchState.DONE, None, 0.0, 1.0), (base, done))
    row = next(line for line in render(snap).splitlines() if line.lstrip().startswith("1 "))
    cols = row.split()
    assert cols[:7] == ["1", "s", "s", "DONE", "*", "103", "-"] and cols[7] == "1", row
    assert as_json(snap)["hypotheses"][1]["tries"] == 1
    retried = replace(done, attempts=(*done.attempts[:2], att(3, 3, AttemptState.FAILED),
                                      att(4, 3, AttemptState.COMPLETED)))
    assert as_json(Snapshot(snap.search, (base, retried)))["hypotheses"][1]["tries"] == 2

