"""Helpers of the tests marked `slurm`: sacct rows, a controller started as a subprocess, the profile."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
# the test cluster's partitions (tests/slurm/cluster.sh): debug = node1, node2 (the default), debug2 = node3, node4;
# the tests of xdist group "slurm-b" run on debug2, at the same time as the others on debug
PARTITIONS = {"slurm": "debug", "slurm-b": "debug2"}
B = PARTITIONS["slurm-b"]


def sacct(*args: str, fields: str = "JobID,JobName,State,NNodes,NodeList") -> list[list[str]]:
    """``sacct -P -n -X`` rows (one per job / array task) as lists of fields."""
    out = subprocess.run(["sacct", "-P", "-n", "-X", f"--format={fields}", *args],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def profile(tmp_path: Path, **slurm: Any) -> str:
    """The slurm-local profile with ``slurm`` keys replaced, written to tmp_path/profile.yaml."""
    data = yaml.safe_load((ROOT / "cluster_profiles/slurm-local.yaml").read_text())
    data["slurm"].update(slurm)
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(data))
    return "profile.yaml"


def controller(cwd: Path, cluster: str = "slurm-local", failpoints: str | None = None,
               env_extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`pas search --job job.yaml` in ``cwd`` as a subprocess (polling every second); ``env_extra``: variables
    added to its environment (and so to its jobs')."""
    env = {**os.environ, **(env_extra or {})}
    env.pop("PAS_FAILPOINTS", None)
    if failpoints:
        env["PAS_FAILPOINTS"] = failpoints
    return subprocess.Popen([sys.executable, "-m", "pas_orchestrator", "search", "--job", "job.yaml", "--cluster",
                             cluster, "--poll", "1"], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_for(what: str, check: Any, timeout: float = 300, every: float = 0.5) -> Any:
    """Poll ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)
