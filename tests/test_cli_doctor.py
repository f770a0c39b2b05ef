"""``pas doctor`` as a subprocess: what it finds, and a dataset it could not read here is a problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parent


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pas_orchestrator", "doctor", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_doctor_reports_torch_video_and_slurm(tmp_path: Path) -> None:
    (tmp_path / "ds.yaml").write_text("format: list\nroot: .\nannotations: {train: t, val: v}\nbackend: pyav\n")
    res = doctor("--json", "--dataset", str(tmp_path / "ds.yaml"))
    assert res.returncode == 0, res.stdout + res.stderr
    found = {(f["section"], f["name"]): f for f in json.loads(res.stdout)}
    assert found[("torch", "torch")]["value"].startswith(torch.__version__)
    assert str(Path(torch.__file__).parent) in found[("torch", "torch")]["value"]
    assert found[("datasets", "ds.yaml")]["value"].endswith("backend pyav")
    assert ("slurm", "commands") in found and ("video", "pyav") in found and ("jobs", "submitit") in found


def test_a_torchcodec_dataset_where_torchcodec_loads_no_ffmpeg_is_a_problem_with_the_fix(tmp_path: Path) -> None:
    fake = tmp_path / "fake" / "torchcodec"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise RuntimeError("Could not load libtorchcodec. Likely causes: FFmpeg is '
                                      'not properly installed in your environment.")\n')
    (tmp_path / "ds.yaml").write_text("format: list\nroot: .\nannotations: {train: t, val: v}\nbackend: torchcodec\n")
    res = doctor("--dataset", str(tmp_path / "ds.yaml"), env={"PYTHONPATH": str(tmp_path / "fake"),
                                                             "PAS_VIDEO_BACKEND": ""})
    assert res.returncode == 1, res.stdout + res.stderr
    line = next(s for s in res.stdout.splitlines() if "ds.yaml" in s)
    assert "torchcodec is installed, but it loads no FFmpeg (Could not load libtorchcodec" in line
    assert "install it or set `backend: pyav`" in line and "PROBLEM" in line
    assert "apt-get install ffmpeg" in next(s for s in res.stdout.splitlines() if s.strip().startswith("torchcodec"))


def test_a_decord_dataset_where_decord_is_missing_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "ds.yaml").write_text("format: list\nroot: .\nannotations: {train: t, val: v}\nbackend: decord\n")
    hidden = {"PYTHONPATH": str(TESTS / "no_decord"), "PAS_VIDEO_BACKEND": ""}
    res = doctor("--dataset", str(tmp_path / "ds.yaml"), env=hidden)
    assert res.returncode == 1
    assert "decord is not installed here: set `backend: pyav`" in res.stdout and "PROBLEM" in res.stdout
    assert "1 problem(s)" in res.stderr
    forced = doctor("--dataset", str(tmp_path / "ds.yaml"), env={**hidden, "PAS_VIDEO_BACKEND": "pyav"})
    assert forced.returncode == 0 and "backend decord, forced to pyav" in forced.stdout
    (tmp_path / "auto.yaml").write_text("format: list\nroot: .\nannotations: {train: t, val: v}\n")
    auto = doctor("--dataset", str(tmp_path / "auto.yaml"), env=hidden)  # no decord: torchcodec, or PyAV
    assert auto.returncode == 0 and ("backend auto: torchcodec here" in auto.stdout
                                     or "backend auto: pyav here" in auto.stdout), auto.stdout


def test_the_gpu_decode_line_tells_a_cuda_build_from_a_cpu_one() -> None:
    from pas_orchestrator.commands.doctor import nvdec_line

    assert nvdec_line("0.17.0+cu130").startswith("torchcodec's CUDA build (cu130): recipe.gpu_decode decodes on")
    cpu = nvdec_line("0.17.0")
    assert "CPU build" in cpu and "--index-url https://download.pytorch.org/whl/cuXXX" in cpu
