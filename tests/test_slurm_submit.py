"""sbatch failing, against the real SLURM daemons: a transient error (SLURM busy) is retried with a
backoff and recorded in the ledger; an error that says the request is wrong (a partition that does not
exist) ends the search at once with SLURM's own message."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest
import yaml
from slurmkit import B, controller, profile
from tinyjob import pas, tiny_job

from pas_orchestrator.ledger import Ledger

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm-b")]  # on partition debug2

SHIM = """#!/bin/sh
# sbatch that fails once (a controller that cannot be reached), then is the real one
if [ ! -e "{marker}" ]; then
  touch "{marker}"
  echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation" >&2
  exit 1
fi
exec {real} "$@"
"""


def test_a_transient_sbatch_error_is_retried_with_backoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which("sbatch")
    assert real is not None
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sbatch").write_text(SHIM.format(marker=tmp_path / "failed-once", real=real))
    (shim / "sbatch").chmod((shim / "sbatch").stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(tiny_job("sbatch-retry", iterations=1, operators={"t": 2})))
    proc = controller(tmp_path, profile(tmp_path, partition=B))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert (tmp_path / "failed-once").exists()
    led = Ledger(tmp_path / "runs" / "sbatch-retry" / "ledger.sqlite", readonly=True)
    try:
        events = [e.message for e in led.events(1000)]
        snap = led.snapshot()
    finally:
        led.close()
    failed = [m for m in events if "submission failed (try 1), next try in" in m]
    assert len(failed) == 1 and "Socket timed out" in failed[0], events
    assert snap.search.state.value == "DONE"
    base = snap.iteration(0)[0]
    # the batch that failed was looked for at the scheduler, not found, abandoned and sent again
    assert [a.state.value for a in base.attempts] == ["ABANDONED", "COMPLETED"], base.attempts


def test_a_wrong_partition_ends_the_search_with_slurms_message(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(tiny_job("bad-partition", iterations=1)))
    cluster = profile(tmp_path, partition="nosuchpartition")
    t = time.monotonic()
    run = pas(tmp_path, "search", "--job", "job.yaml", "--cluster", cluster, "--poll", "1", timeout=300)
    assert run.returncode == 1
    assert time.monotonic() - t < 120  # no retrying of a request SLURM refuses
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("pas search: bad-partition failed: the scheduler refused the submission: sbatch of "), last
    assert "invalid partition" in last.lower(), last
