"""A requeue signal (SLURM's USR2 before a time limit or a preemption) taken at a step boundary.

submitit's handler checkpoints, requeues and raises ``SystemExit`` from inside the signal handler:
wherever the main thread happens to be. Raised inside a finalizer (a video reader's ``__del__``), that
exception is printed and ignored, and the training went on as if no signal had come (seen in
tests/test_train_job.py about one run in five). ``deferred(signum)`` makes the training loop the
place where it happens: while active, the signal only records itself; ``pending()`` tells the loop,
which checkpoints at the exact step and then calls ``fire()`` (the original handler). Outside the
loop (evaluation, latency), the original handler runs at once, as before.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_pending: list[Callable[[], Any]] = []


def pending() -> bool:
    return bool(_pending)


def fire() -> None:
    """Run the deferred handler (submitit's: it requeues and exits)."""
    while _pending:
        _pending.pop(0)()


@contextmanager
def deferred(signum: int = signal.SIGUSR2) -> Iterator[None]:
    original = signal.getsignal(signum)
    if not callable(original):  # default or ignored: nothing of ours to defer
        yield
        return

    def record(sig: int, frame: FrameType | None) -> None:
        _pending.append(lambda: original(sig, frame))

    signal.signal(signum, record)
    try:
        yield
    finally:
        signal.signal(signum, original)
        fire()  # a signal that came after the loop's last look
