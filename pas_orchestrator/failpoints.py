"""Crash points for the fault tests: ``PAS_FAILPOINTS=after-sbatch`` makes the controller SIGKILL itself
right after sbatch returned and before the job ids reach the ledger, the narrowest window of a
submission, which a kill timed from outside would almost never hit.

Points: ``before-sbatch`` (attempts committed, nothing submitted), ``after-sbatch`` (submitted, job
ids not yet recorded). Unset in normal use: then ``hit`` is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = ("before-sbatch", "after-sbatch")


def hit(point: str) -> None:
    """SIGKILL this process when ``point`` is listed in $PAS_FAILPOINTS (comma-separated)."""
    assert point in POINTS, point
    listed = os.environ.get("PAS_FAILPOINTS")
    if listed and point in listed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
