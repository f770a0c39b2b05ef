"""What a foreground `pas search` shows while it runs (pas_orchestrator/progress.py), on a controller driven
in-process: the events once each and the status line, on a terminal (a real pseudo-terminal) and elsewhere."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from fakes import FakeExecutor, controller, drive

from pas_orchestrator.progress import Progress, planned_hypotheses, summary


def _search_to_iteration_1(tmp_path: Path):  # type: ignore[no-untyped-def]
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    drive(c)
    (jid,) = ex.active()
    ex.run(jid)
    drive(c)
    return c, ex, jid


def test_the_status_line_says_where_the_search_is(tmp_path: Path) -> None:
    c, ex, jid = _search_to_iteration_1(tmp_path)
    planned = planned_hypotheses(1, 2, False, False, 0)
    assert planned == 3
    # 3 replicas with a 2-shard cache: B x 3 and its shards x 3, 2 operators x 3 in each of 2 iterations, a
    # latency job each; an imported B: one B and one cache
    assert planned_hypotheses(2, 2, False, True, 2, replicas=3, base_replicas=3) == 3 * 3 + 2 * (6 + 1)
    assert planned_hypotheses(2, 2, False, True, 2, replicas=3) == 3 + 2 * (6 + 1)
    assert summary(c.ledger.snapshot(), 1, planned) == \
        "[....................] iteration 0/1 | jobs 0 ended, 1 running, 0 waiting | no compute yet"
    ex.succeed(jid, top1=90.0, gflops=c.ledger.snapshot().iteration(0)[0].gflops)
    drive(c)
    line = summary(c.ledger.snapshot(), 1, planned)
    assert re.fullmatch(r"\[#{7}\.{13}\] iteration 1/1 \| jobs 1 ended, 0 running, 2 waiting \| B: 90\.00% at "
                        r"[0-9.e-]+ GFLOPs \| no compute yet", line), line


def test_a_log_gets_each_event_once_and_the_status_now_and_then(tmp_path: Path) -> None:
    c, ex, jid = _search_to_iteration_1(tmp_path)
    now = [0.0]
    out = io.StringIO()
    progress = Progress(c.ledger.events_after, 1, 3, stream=out, every_s=60.0, clock=lambda: now[0])
    progress.update(c.ledger.snapshot())
    assert out.getvalue() == ""  # what happened before it started is not news
    ex.succeed(jid, top1=90.0)
    drive(c)
    progress.update(c.ledger.snapshot())
    lines = out.getvalue().splitlines()
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d result: 0-base \(pas\): top-1 90\.00%.*", x) for x in lines), lines
    assert any(" plan: 1-s (pas) planned" in x for x in lines) and not any("progress:" in x for x in lines)
    progress.update(c.ledger.snapshot())
    assert out.getvalue().splitlines() == lines  # nothing new, nothing printed
    now[0] = 61.0
    progress.update(c.ledger.snapshot())
    (status,) = out.getvalue().splitlines()[len(lines):]
    assert re.fullmatch(r"\d\d:\d\d:\d\d progress: \[#{7}\.{13}\] iteration 1/1 \| jobs 1 ended, 0 running, 2 "
                        r"waiting \| B: 90\.00% at \S+ GFLOPs \| no compute yet", status), status
    progress.close()
    quiet = io.StringIO()
    q = Progress(c.ledger.events_after, 1, 3, stream=quiet, quiet=True)
    q.update(c.ledger.snapshot())
    q.close()
    assert quiet.getvalue() == ""


def test_a_terminal_gets_the_status_line_redrawn_under_the_events(tmp_path: Path) -> None:
    c, ex, jid = _search_to_iteration_1(tmp_path)
    master, slave = os.openpty()
    tty = os.fdopen(slave, "w")
    try:
        progress = Progress(c.ledger.events_after, 1, 3, stream=tty)
        assert progress.live
        progress.update(c.ledger.snapshot())
        ex.succeed(jid, top1=90.0)
        drive(c)
        progress.update(c.ledger.snapshot())
        progress.close()
        shown = ""
        while chunk := _read_ready(master):
            shown += chunk
    finally:
        tty.close()
        os.close(master)
    assert shown.startswith("\r\x1b[K[....................] iteration 0/1")
    assert "\r\x1b[K" in shown[1:] and "result: 0-base (pas): top-1 90.00%" in shown
    assert shown.rstrip("\r\n").rsplit("\x1b[K", 1)[1].startswith("[#######.............] iteration 1/1")
    assert shown.endswith("\n")


def _read_ready(fd: int) -> str:
    import select

    return os.read(fd, 1 << 16).decode() if select.select([fd], [], [], 0.2)[0] else ""


def test_a_stream_that_is_gone_silences_the_progress_not_the_search(tmp_path: Path) -> None:
    c, ex, jid = _search_to_iteration_1(tmp_path)

    class Gone(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    progress = Progress(c.ledger.events_after, 1, 3, stream=Gone())
    ex.succeed(jid, top1=90.0)
    drive(c)
    progress.update(c.ledger.snapshot())  # no exception: the controller goes on
    assert progress.quiet
    progress.close()


def test_a_resumed_search_with_a_long_history_starts_at_its_newest_event(tmp_path: Path) -> None:
    """More events than one read returns (1,000): none of them is printed as news."""
    from pas_orchestrator.core.actions import LogEvent

    c, _, _ = _search_to_iteration_1(tmp_path)
    for i in range(1500):
        c.ledger.apply(LogEvent("note", f"old {i}"))
    for progress in (Progress(c.ledger.events_after, 1, 3, stream=(out := io.StringIO())),
                     Progress(c.ledger.events_after, 1, 3, stream=(out2 := io.StringIO()),
                              start=c.ledger.last_event_id())):
        progress.update(c.ledger.snapshot())
    assert "old" not in out.getvalue() and "old" not in out2.getvalue()
