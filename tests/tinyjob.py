"""The tiny search definition the controller tests start from, and running `pas` as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

TINY_RECIPE = {"epochs": 1, "batch_per_gpu": 4, "lr": 0.05, "reference_batch": 4, "warmup_epochs": 0,
               "clips_per_video": 1, "num_workers": 0}


def tiny_job(name: str, **overrides: Any) -> dict[str, Any]:
    """A tiny R(2+1)D on a 4-class synthetic set (data/synth, generated on first use); top-level keys
    of ``overrides`` replace the defaults."""
    return {"name": name, "backbone": "r2plus1d_tiny", "base": {"train": True},
            "synthetic": {"root": "data/synth", "classes": 4, "videos_per_class": 3, "val_per_class": 1,
                          "frames": 16},
            "recipe": dict(TINY_RECIPE), "eval": {"clips": 1}, "distill": {"alpha": 10}, **overrides}


def pas(cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pas_orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
