"""Shared fixtures: the real clips shipped in tests/data and a small synthetic dataset made once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pas_models.data.backends import FORCE_ENV, READERS, decord_available
from pas_models.data.synth import SynthConfig, generate
from pas_models.data.torchcodec_reader import torchcodec_status

DATA = Path(__file__).resolve().parent / "data" / "videos"
MP4 = DATA / "mmaction2_test.mp4"  # 300 frames, 30 fps, 340x256
MKV = DATA / "flipping_a_pancake.mkv"  # 310 frames, 30 fps, 426x240
# tests of decord itself; `make test-pyav` hides decord (tests/no_decord) and forces PyAV everywhere
needs_decord = pytest.mark.skipif(not decord_available(), reason="decord is not installed here (PyAV-only run)")
PYAV_ONLY = os.environ.get(FORCE_ENV) == "pyav"
# torchcodec loads where its wheel and an FFmpeg it can use are installed (CI installs Debian's ffmpeg); not on
# Power9 (no wheels). Tests of torchcodec itself need it; under PYAV_ONLY every backend name reads with PyAV.
_TORCHCODEC_MISSING = torchcodec_status()[1]
needs_torchcodec = pytest.mark.skipif(_TORCHCODEC_MISSING is not None,
                                      reason=f"torchcodec is {_TORCHCODEC_MISSING} here")
_SKIP_TORCHCODEC = pytest.mark.skipif(not PYAV_ONLY and _TORCHCODEC_MISSING is not None,
                                      reason=f"torchcodec is {_TORCHCODEC_MISSING} here")
# every backend, as parameters (torchcodec's skipped where it cannot read), and those that can read here
BACKEND_PARAMS = [pytest.param(b, marks=_SKIP_TORCHCODEC) if b == "torchcodec" else b for b in READERS]
BACKENDS_HERE = tuple(b for b in READERS if b != "torchcodec" or PYAV_ONLY or _TORCHCODEC_MISSING is None)


def pytest_configure(config: pytest.Config) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ and config.getoption("dist", "no") == "loadgroup":
        _check_grouping()
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the run's own FLOPs cache (pas_models.flops), fresh for each run
        # and shared by its workers and every process they start (never the user's: each count is made at
        # least once per run, by this code)
        import tempfile

        config._pas_cache = tempfile.mkdtemp(prefix="pas-test-cache-")  # type: ignore[attr-defined]
        os.environ["PAS_CACHE_DIR"] = config._pas_cache  # type: ignore[attr-defined]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:  # a pytest-xdist worker: its share of the cores, here and in the processes it starts (torch's
        # default, a thread per core in every worker, made the in-process trainings 2-3 times slower)
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, "_pas_cache", None)
    if folder:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, SynthConfig(classes=4, videos_per_class=3, val_per_class=1, frames=32, seed=7))
    return out


from slurmkit import PARTITIONS as SLURM_GROUPS  # noqa: E402  (xdist group -> the test cluster's partition)


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
    partitions = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=20).stdout.split()
    if missing := sorted(set(SLURM_GROUPS.values()) - set(partitions)):
        return (f"the SLURM test cluster running has no partition {', '.join(missing)} (an older cluster.sh started "
                "it): tests/slurm/cluster.sh stop; tests/slurm/cluster.sh start --max-array-size 3")
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The SLURM tests first, then the slow ones: what takes longest starts first on the pytest-xdist workers
    (`make test`). A SLURM test goes one after the other with the others of its group on one worker (--dist
    loadgroup), on its group's two nodes: group "slurm" (partition debug) unless it is marked
    ``xdist_group("slurm-b")`` (partition debug2). The tests of a module with a module-scoped fixture go to
    one worker too (the fixture is made once)."""
    slurm = [item for item in items if "slurm" in item.keywords]
    slow = [item for item in items if "slow" in item.keywords and "slurm" not in item.keywords]
    first = {id(item) for item in slurm + slow}
    items[:] = slurm + slow + [item for item in items if id(item) not in first]
    for item in items:  # a module's fixture is made once: its tests go to one worker
        info = getattr(item, "_fixtureinfo", None)
        if info is not None and "slurm" not in item.keywords and any(
                d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__ if item.module else item.nodeid))
    if not slurm:
        return
    for item in slurm:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group("slurm"))
    why = _slurm_up()
    if why:
        for item in slurm:
            item.add_marker(pytest.mark.skip(reason=why))


def _check_grouping() -> None:
    """pytest 9.2 with pytest-xdist up to 3.8: `--dist loadgroup` groups nothing, silently (pytest-xdist#1386:
    the group suffix xdist writes into a test's node id no longer takes); `pytest_collection_finish` below
    catches it in a worker whatever the versions."""
    from importlib.metadata import version

    from packaging.version import Version

    if Version(pytest.__version__) >= Version("9.2") and Version(version("pytest-xdist")) <= Version("3.8.0"):
        raise pytest.UsageError(f"pytest {pytest.__version__} keeps pytest-xdist {version('pytest-xdist')} from "
                                "grouping tests (pytest-xdist#1386): pip install 'pytest>=8,<9.2' (make install "
                                "does, see setup.cfg)")


@pytest.hookimpl(trylast=True)  # after pytest-xdist wrote each item's group into its node id (a worker's collection)
def pytest_collection_finish(session: pytest.Session) -> None:
    """A pytest-xdist worker of `--dist loadgroup` whose grouped tests carry no group: the scheduler would
    spread them over the workers (each module fixture made again on each, the SLURM tests of one partition
    at the same time). pytest 9.2 with pytest-xdist 3.8 does that silently (pytest-xdist#1386)."""
    if "PYTEST_XDIST_WORKER" not in os.environ or not session.config.getoption("loadgroup", False):
        return
    lost = [item.nodeid for item in session.items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(f"pytest-xdist does not group tests with this pytest {pytest.__version__} ({lost[0]} "
                                "has no @group): pip install 'pytest>=8,<9.2' (make install does), see setup.cfg")
