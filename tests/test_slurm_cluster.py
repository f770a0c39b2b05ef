"""pas against real SLURM daemons (tests/slurm/cluster.sh: node1, node2, MaxArraySize 3): real sbatch,
sacct, scancel; no mocks. Run with `make test-slurm`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slurm
ROOT = Path(__file__).resolve().parents[1]
JOB = {
    "name": "slurm-demo",
    "backbone": "r2plus1d_tiny",
    "base": {"train": True},
    "synthetic": {"root": "data/synth", "classes": 4, "videos_per_class": 3, "val_per_class": 1, "frames": 16},
    "iterations": 2,
    "recipe": {"epochs": 1, "batch_per_gpu": 4, "lr": 0.05, "reference_batch": 4, "warmup_epochs": 0,
               "clips_per_video": 1, "num_workers": 0},
    "eval": {"clips": 1},
    "distill": {"alpha": 10},
}


def _pas(cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pas_orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _sacct(*args: str) -> list[list[str]]:
    out = subprocess.run(["sacct", "-P", "-n", "-X", "--format=JobID,JobName,State,NNodes,NodeList", *args],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def test_demo_search_runs_through_arrays_split_by_max_array_size(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    profile = yaml.safe_load((ROOT / "cluster_profiles/slurm-local.yaml").read_text())
    profile["slurm"]["max_array_size"] = 3  # as the test cluster's MaxArraySize: 5 hypotheses -> 3 + 2
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(profile))
    run = _pas(tmp_path, "search", "--job", "job.yaml", "--cluster", "profile.yaml", "--poll", "1")
    assert run.returncode == 0, run.stderr[-3000:]
    status = json.loads(_pas(tmp_path, "status", "--json").stdout)
    assert status["state"] == "DONE"
    trained = [h for h in status["hypotheses"] if h["state"] == "DONE"]
    batches = {a["job_name"].rsplit("_", 1)[0] for h in trained for a in h["attempts"]}
    rows = [r for b in sorted(batches) for r in _sacct("--name", b, "-S", "now-1days")]
    assert all(r[2] == "COMPLETED" for r in rows), rows
    by_iteration: dict[str, list[list[str]]] = {}
    for r in rows:
        by_iteration.setdefault(r[1].split("-i")[1].split("-b")[0], []).append(r)
    assert len(by_iteration["0"]) == 1 and "_" not in by_iteration["0"][0][0]  # B: a plain job
    for it in ("1", "2"):
        n = sum(1 for h in trained if str(h["iteration"]) == it)
        arrays = {r[0].split("_")[0] for r in by_iteration[it]}
        assert len(by_iteration[it]) == n and len(arrays) == -(-n // 3)  # ceil(n / 3) arrays of <= 3 tasks
    # every attempt's job id is the one sacct knows under its batch name
    known = {r[0] for r in rows}
    assert all(a["job_id"] in known for h in trained for a in h["attempts"])
