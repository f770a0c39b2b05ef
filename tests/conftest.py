"""Shared fixtures: the real clips shipped in tests/data and a small synthetic dataset made once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pas_models.data.backends import FORCE_ENV, decord_available
from pas_models.data.synth import SynthConfig, generate

DATA = Path(__file__).resolve().parent / "data" / "videos"
MP4 = DATA / "mmaction2_test.mp4"  # 300 frames, 30 fps, 340x256
MKV = DATA / "flipping_a_pancake.mkv"  # 310 frames, 30 fps, 426x240
# tests of decord itself; `make test-pyav` hides decord (tests/no_decord) and forces PyAV everywhere
needs_decord = pytest.mark.skipif(not decord_available(), reason="decord is not installed here (PyAV-only run)")
PYAV_ONLY = os.environ.get(FORCE_ENV) == "pyav"


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, SynthConfig(classes=4, videos_per_class=3, val_per_class=1, frames=32, seed=7))
    return out


def _slurm_up() -> str | None:
    """None when the test cluster answers, else why not."""
    import os
    import shutil
    import subprocess

    if os.environ.get("PAS_SLURM_SKIP_REASON"):  # tests/slurm/run-tests.sh found this machine cannot run it
        return f"{os.environ['PAS_SLURM_SKIP_REASON']} (make test-slurm runs them, as root)"
    if shutil.which("scontrol") is None:
        return "no SLURM client here (make test-slurm installs and starts the test cluster, as root)"
    if subprocess.run(["scontrol", "ping"], capture_output=True, timeout=20).returncode != 0:
        return "the SLURM test cluster is not running (make test-slurm starts it: tests/slurm/cluster.sh start)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slurm = [item for item in items if "slurm" in item.keywords]
    if not slurm:
        return
    why = _slurm_up()
    if why:
        for item in slurm:
            item.add_marker(pytest.mark.skip(reason=why))
