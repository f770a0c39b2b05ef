"""What a controller in the foreground shows while it runs (`pas search`, `pas study`; `make search`).

On a terminal: the ledger's events as they are recorded, one line each, under one status line redrawn in place
(iteration, jobs done / running / queued, the best network so far, the compute so far, and a bar of the
hypotheses ended out of those the definition plans at most). Elsewhere (a log file, ``nohup``, a pipe): the
events alone, one timestamped line each, and the status line every ``every_s`` seconds. ``quiet``: nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from pas_orchestrator import replicas
from pas_orchestrator.ledger.records import EventRec, Snapshot
from pas_orchestrator.ledger.states import TERMINAL_HYP, AttemptState, HypState


def summary(snap: Snapshot, iterations: int, planned: int | None) -> str:
    """One line: where the search is. ``planned``: the hypotheses the definition plans at most (None: not known
    ahead, as with the gradient strategy)."""
    hyps = snap.hypotheses
    done = sum(h.state in TERMINAL_HYP for h in hyps)
    running = sum(1 for h in hyps if h.attempts and h.attempts[-1].state == AttemptState.RUNNING)
    queued = sum(1 for h in hyps if h.state not in TERMINAL_HYP
                 and not (h.attempts and h.attempts[-1].state == AttemptState.RUNNING))
    parts = [f"iteration {max(snap.last_iteration, 0)}/{iterations}",
             f"jobs {done} ended, {running} running, {queued} waiting"]
    view = replicas.pooled(snap)  # with replicas: each network's mean over them, what the search chose on
    best = next((w for i in range(view.last_iteration, 0, -1) if (w := view.winner(i)) is not None), None)
    base = view.iteration(0)[0] if view.iteration(0) else None
    if best is not None:
        parts.append(f"best: {best.path} (iteration {best.iteration}) {best.top1:.2f}% at {best.gflops:.4g} GFLOPs")
    elif base is not None and base.state == HypState.DONE and base.top1 is not None:
        parts.append(f"B: {base.top1:.2f}% at {base.gflops or 0:.4g} GFLOPs")
    used = snap.compute()
    parts.append(" + ".join(f"{v:.3g} {k}" if v >= 0.001 else f"<0.001 {k}" for k, v in sorted(used.items()))
                 or "no compute yet")
    line = " | ".join(parts)
    if planned:
        frac = min(1.0, done / planned)
        line = f"[{'#' * round(20 * frac)}{'.' * (20 - round(20 * frac))}] {line}"
    return line


def event_line(e: EventRec) -> str:
    return f"{time.strftime('%H:%M:%S', time.localtime(e.time))} {e.kind}: {e.message}"


class Progress:
    """Follows a ledger while its controller runs: ``update(snap)`` after every round, ``close()`` at the end."""

    def __init__(self, events: Callable[[int], tuple[int, list[EventRec]]], iterations: int, planned: int | None,
                 stream: TextIO | None = None, quiet: bool = False, every_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, start: int | None = None) -> None:
        self.events, self.iterations, self.planned = events, iterations, planned
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = not quiet and self.stream.isatty() and os.environ.get("TERM") != "dumb"
        self.every_s, self.clock = every_s, clock
        # what happened before it started is not news: from the newest event on (``start``, else paged to it)
        self._last_event, self._last_summary = self._newest() if start is None else start, clock()
        self._shown = ""
        self._handlers = [h for h in logging.getLogger().handlers
                          if self.live and getattr(h, "stream", None) is self.stream]
        for h in self._handlers:  # a log record first clears the status line (redrawn at the next round)
            h.addFilter(self._clear)

    def _clear(self, record: logging.LogRecord) -> bool:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = ""
        return True

    def _newest(self) -> int:
        last = 0
        while True:
            nxt, new = self.events(last)
            if not new:
                return last
            last = nxt

    def update(self, snap: Snapshot) -> None:
        if self.quiet:
            return
        try:
            self._update(snap)
        except OSError:  # the terminal or pipe is gone (a closed session): the search goes on, silently
            self.quiet = True

    def _update(self, snap: Snapshot) -> None:
        self._last_event, new = self.events(self._last_event)
        line = summary(snap, self.iterations, self.planned)
        if self.live:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\x1b[K" + "".join(event_line(e)[:width] + "\n\x1b[K" for e in new) + line[:width])
            self._shown = line
        else:
            out = [event_line(e) for e in new]
            if self.clock() - self._last_summary >= self.every_s:
                out.append(f"{time.strftime('%H:%M:%S')} progress: {line}")
                self._last_summary = self.clock()
            self.stream.write("".join(x + "\n" for x in out))
        self.stream.flush()

    def close(self) -> None:
        for h in self._handlers:
            h.removeFilter(self._clear)
        if self.live and self._shown and not self.quiet:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except OSError:
                pass


def planned_hypotheses(iterations: int, operators: int, baselines: bool, measure: bool, cache_shards: int,
                       replicas: int = 1, base_replicas: int = 1) -> int:
    """The rows a coordinate-descent search plans at most: B (and its replicas), each operator per iteration times
    its replicas, a baseline and a latency measurement per iteration where asked, the teacher cache's shards per
    B replica (a GFLOPs target may end it sooner)."""
    return (base_replicas * (1 + cache_shards) + iterations * (replicas * operators + int(baselines) + int(measure)))
