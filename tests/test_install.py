"""Installing pas into an environment whose torch comes from outside it (a conda env, a module, IBM's
Open-CE torch on Power9), with the Makefile as a user runs it.

The outside torch is this test run's own: a user-site ``.pth`` (PYTHONUSERBASE) points at the
site-packages that hold it. A venv made with ``--system-site-packages`` sees the user site, a plain venv
does not: exactly the difference between ``make install SYSTEM_SITE=1`` and the default.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _outside_torch(tmp_path: Path) -> dict[str, str]:
    import torch

    base = tmp_path / "userbase"
    user_site = Path(sysconfig.get_path("purelib", f"{os.name}_user", vars={"userbase": str(base)}))
    user_site.mkdir(parents=True)
    (user_site / "outside-torch.pth").write_text(str(Path(torch.__file__).parents[1]) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONNOUSERSITE", "VIRTUAL_ENV", "PYTHONPATH")}
    return {**env, "PYTHONUSERBASE": str(base)}


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


@pytest.mark.slow
def test_install_into_an_environment_that_has_torch(tmp_path: Path) -> None:
    env = _outside_torch(tmp_path)
    base_python = getattr(sys, "_base_executable", sys.executable)
    plain = tmp_path / "plain"
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(plain)], check=True)
    hidden = subprocess.run([plain / "bin" / "python", "-c", "import torch"], env=env, capture_output=True)
    assert hidden.returncode != 0  # a plain venv does not see the outside torch: the case the issue hit

    venv = tmp_path / "v"
    make = subprocess.run(["make", "-C", str(REPO), "install", f"VENV={venv}", "SYSTEM_SITE=1",
                           f"PYTHON={base_python}"], env=env, capture_output=True, text=True, timeout=900)
    assert make.returncode == 0, make.stdout[-3000:] + make.stderr[-3000:]
    assert "Collecting torch" not in make.stdout  # torch was found, not reinstalled
    assert not (_site_packages(venv) / "torch").exists()
    assert f"pas is installed: {venv}/bin/pas" in make.stdout and f"source {venv}/bin/activate" in make.stdout

    doctor = subprocess.run([venv / "bin" / "pas", "doctor", "--json"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    found = {f["name"]: f["value"] for f in json.loads(doctor.stdout)}
    import torch

    assert found["torch"].startswith(torch.__version__) and str(Path(torch.__file__).parent) in found["torch"]
    assert "with the system site packages" in found["environment"]

    again = subprocess.run(["make", "-C", str(REPO), "install", "VENV=", f"PYTHON={venv}/bin/python"], env=env,
                           capture_output=True, text=True, timeout=900)  # into the active interpreter itself
    try:
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert f"pas is installed: {venv}/bin/pas" in again.stdout
        assert not (_site_packages(venv) / "torch").exists()
    finally:
        (REPO / ".install-stamp").unlink(missing_ok=True)
