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


def controller(cwd: Path, cluster: str = "slurm-local", failpoints: str | None = None) -> subprocess.Popen[bytes]:
    """`pas search --job job.yaml` in ``cwd`` as a subprocess (polling every second)."""
    env = dict(os.environ)
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


def epochs_lasting(seconds: float, job: dict, root: Path) -> int:
    """Epochs of ``job``'s base training that take about ``seconds`` here, in one thread as in the job: its
    synthetic set generated where the search will find it, 20 epochs of the same network and recipe timed from
    the end of the first (which also starts the data pipeline: 1.6 s against 0.15 s for the others) to the
    end of the last, in the training log."""
    import dataclasses
    import datetime
    import json

    import torch

    from pas_models.data.formats import load_dataset_config
    from pas_models.data.synth import SynthConfig, generate
    from pas_models.presets import preset
    from pas_models.train.run import run
    from pas_models.train.task import EvalConfig, Recipe, TrainTask

    s = job["synthetic"]
    cfg = SynthConfig(classes=s["classes"], videos_per_class=s["videos_per_class"], val_per_class=s["val_per_class"],
                      frames=s["frames"])
    data_dir = root / s["root"]
    data_dir.mkdir(parents=True)
    (data_dir / "synth.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    generate(data_dir, cfg)
    probe = 20
    data = load_dataset_config(data_dir / "dataset.yaml")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(TrainTask("probe", preset(job["backbone"], s["classes"]), data, str(root / "probe"),
                      recipe=Recipe(**{**job["base"]["recipe"], "epochs": probe}), eval=EvalConfig(clips=1),
                      measure_latency=False))
    finally:
        torch.set_num_threads(threads)
    ends = {}
    for line in (root / "probe" / "train.log").read_text().splitlines():
        for n in (1, probe):
            if f"epoch {n}/{probe} done" in line:
                ends[n] = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    per_epoch = (ends[probe] - ends[1]).total_seconds() / (probe - 1)
    return max(probe, round(seconds / per_epoch))
