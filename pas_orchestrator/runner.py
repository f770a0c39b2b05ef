"""The one way the controller runs a command: logged, with a timeout, raising with its stderr."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Sequence

from pas_orchestrator.errors import SubmissionError

log = logging.getLogger(__name__)


def run_cmd(cmd: Sequence[str], timeout: float = 120.0) -> str:
    """stdout of ``cmd``; SubmissionError naming the command and its stderr when it fails."""
    text = shlex.join(cmd)
    log.debug("$ %s", text)
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise SubmissionError(f"`{text}`: {cmd[0]} not found (is this a SLURM login node?)") from exc
    except subprocess.TimeoutExpired as exc:
        raise SubmissionError(f"`{text}` did not answer within {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise SubmissionError(f"`{text}` failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout
