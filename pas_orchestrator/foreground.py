"""Running a controller in the foreground (`pas search`, `pas study`): Ctrl-C, SIGTERM and SIGHUP stop it
the same way (the local jobs it started are stopped and recorded interrupted, no retry spent), one line,
no traceback, and the lease is always released."""

from __future__ import annotations

import signal
from collections.abc import Callable

from pas_orchestrator.ledger.records import Snapshot
from pas_orchestrator.ledger.store import Ledger


class Interrupted(Exception):
    """SIGTERM (or SIGHUP) reached the controller: stop like Ctrl-C."""


def _on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run_foreground(ledger: Ledger, body: Callable[[], Snapshot], interrupt: Callable[[str], int],
                   interrupted: Callable[[str, int], str]) -> Snapshot | None:
    """``body()`` with the lease held; on Ctrl-C / SIGTERM / SIGHUP: ``interrupt(why)`` (how many local jobs
    it stopped), then prints ``interrupted(why, stopped)`` and returns None. The lease is released either way."""
    ledger.acquire_lease()
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    previous[signal.SIGINT] = signal.getsignal(signal.SIGINT)
    try:
        return body()
    except (KeyboardInterrupt, Interrupted) as exc:
        why = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else str(exc)
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(s, signal.SIG_IGN)
        print(interrupted(why, interrupt(f"controller interrupted ({why})")))
        return None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        ledger.release_lease()
        ledger.close()
