"""``pas doctor``: what pas finds in this environment, and what would stop a search.

Python and where it lives (a venv, with or without the system site packages), torch
(version, where it was imported from, its CUDA build, the GPUs it sees, NCCL),
torchvision, the video backends (decord, PyAV and its FFmpeg) and the one each dataset
will use, submitit, the SLURM commands on PATH and whether ``sacct`` answers.
Exit 0 when nothing blocks a search, 1 when something does (each such line says
``PROBLEM`` and how to fix it). Run it on a login node and inside a job.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "scontrol", "sinfo")


@dataclass(frozen=True)
class Finding:
    section: str
    name: str
    value: str
    problem: bool = False


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="what pas finds here: Python, torch/CUDA/NCCL, video backends, SLURM",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--job", type=Path, action="append", default=[], metavar="SEARCH_YAML",
                   help="a search definition whose dataset to check (repeatable)")
    p.add_argument("--dataset", type=Path, action="append", default=[], metavar="DATASET_YAML",
                   help="a dataset config to check (repeatable)")
    p.add_argument("--cluster", help="a cluster profile: with executor slurm, missing SLURM commands are problems")
    p.add_argument("--json", action="store_true", help="the findings as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    findings = [*python_findings(), *torch_findings(), *video_findings(), *dataset_findings(args.job, args.dataset),
                *submitit_findings(), *slurm_findings(args.cluster)]
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        section = None
        for f in findings:
            if f.section != section:
                section = f.section
                print(f"{section}:")
            print(f"  {f.name:<14} {'PROBLEM: ' if f.problem else ''}{f.value}")
        problems = sum(f.problem for f in findings)
        print(f"{problems} problem(s)" if problems else "no problems found", file=sys.stderr)
    return 1 if any(f.problem for f in findings) else 0


def python_findings() -> list[Finding]:
    from pas_orchestrator import __version__

    venv = sys.prefix != sys.base_prefix
    kind = "the interpreter itself (no venv)"
    if venv:
        cfg = Path(sys.prefix) / "pyvenv.cfg"
        text = cfg.read_text() if cfg.is_file() else ""
        system = "include-system-site-packages = true" in text.replace("\t", " ")
        kind = f"venv {sys.prefix} ({'with' if system else 'without'} the system site packages of {sys.base_prefix})"
    pas_bin = Path(sys.executable).parent / "pas"
    on_path = shutil.which("pas")
    if not pas_bin.exists():
        where = f"run as `{sys.executable} -m pas_orchestrator`"
    elif on_path and Path(on_path).resolve() == pas_bin.resolve():
        where = f"{pas_bin} (on PATH)"
    else:
        hint = f"source {Path(sys.prefix) / 'bin' / 'activate'}" if venv else f"export PATH={pas_bin.parent}:$PATH"
        where = f"{pas_bin} (not on PATH: `{hint}` or use the full path)"
    return [Finding("python", "pas", f"{__version__} at {Path(__file__).resolve().parents[2]}"),
            Finding("python", "python", f"{sys.version.split()[0]} {sys.executable}"),
            Finding("python", "environment", kind),
            Finding("python", "pas command", where)]


def _module(name: str):  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # ImportError, or a broken binary (undefined symbol, wrong torch)
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def torch_findings() -> list[Finding]:
    torch, err = _module("torch")
    if torch is None:
        return [Finding("torch", "torch", f"cannot import ({err}); install it (make install) or use an "
                        "environment that has it (make install SYSTEM_SITE=1 TORCH_PKGS=)", True)]
    out = [Finding("torch", "torch", f"{torch.__version__} from {Path(torch.__file__).parent}")]
    cuda = torch.version.cuda
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        out.append(Finding("torch", "cuda", f"build {cuda}; {torch.cuda.device_count()} GPU(s): {', '.join(names)}"))
        try:
            nccl = torch.cuda.nccl.version()
            out.append(Finding("torch", "nccl", ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)))
        except Exception as exc:  # no NCCL in this build: multi-GPU jobs use gloo
            out.append(Finding("torch", "nccl", f"not available ({exc}); multi-GPU jobs would use gloo"))
        if torch.backends.cudnn.is_available():
            out.append(Finding("torch", "cudnn", str(torch.backends.cudnn.version())))
    else:
        out.append(Finding("torch", "cuda", f"{'build ' + cuda if cuda else 'CPU-only build'}; no GPU visible "
                           "here (normal on a login node; jobs run on GPU nodes)"))
    tv, err = _module("torchvision")
    if tv is None:
        out.append(Finding("torch", "torchvision", f"cannot import ({err})", True))
    else:
        ops_ok = hasattr(torch.ops, "torchvision") and hasattr(torch.ops.torchvision, "nms")
        out.append(Finding("torch", "torchvision", f"{tv.__version__} from {Path(tv.__file__).parent}"
                           + ("" if ops_ok else " (its C++ ops did not load: built for another torch?)"),
                           not ops_ok))
    return out


def video_findings() -> list[Finding]:
    from pas_models.data.backends import FORCE_ENV

    out = []
    decord, err = _module("decord")
    out.append(Finding("video", "decord", f"{decord.__version__}" if decord is not None else
                       f"not installed ({err}); datasets with `backend: decord` cannot be read here "
                       "(no decord wheels on Power9: use `backend: pyav`)"))
    av, err = _module("av")
    if av is None:
        out.append(Finding("video", "pyav", f"cannot import ({err}); pip install av (or conda install -c "
                           "conda-forge av)", True))
    else:
        libs = av.library_versions
        ffmpeg = ".".join(map(str, libs.get("libavcodec", ())))
        out.append(Finding("video", "pyav", f"{av.__version__} (libavcodec {ffmpeg})"
                           + ("" if hasattr(av.VideoFrame, "rotation") else
                              "; too old to read rotation (PyAV >= 14 applies it as decord does)")))
    from pas_models.data.torchcodec_reader import INSTALL, torchcodec_status

    version, why = torchcodec_status()
    out.append(Finding("video", "torchcodec", version if version is not None else
                       f"{why}; datasets with `backend: torchcodec` cannot be read here ({INSTALL})"))
    if version is not None:
        out.append(Finding("video", "gpu decode", nvdec_line(version)))
    forced = os.environ.get(FORCE_ENV)
    if forced:
        out.append(Finding("video", FORCE_ENV, f"{forced}: every dataset uses this backend"))
    return out


def nvdec_line(torchcodec_version: str) -> str:
    """What `recipe.gpu_decode` does with this torchcodec: its CUDA builds carry "+cuXXX" in their version."""
    if "+cu" in torchcodec_version:
        return (f"torchcodec's CUDA build (cu{torchcodec_version.split('+cu', 1)[1]}): recipe.gpu_decode decodes on "
                "the GPU's NVDEC where a job has a GPU")
    return ("torchcodec is a CPU build: recipe.gpu_decode would decode on the CPU; for NVDEC install its CUDA build "
            "(pip install torchcodec --index-url https://download.pytorch.org/whl/cuXXX, torch's CUDA)")


def _backend_missing(backend: str) -> str | None:
    """Why ``backend`` cannot decode here and the fix, or None."""
    from pas_models.data.backends import decord_available
    from pas_models.data.torchcodec_reader import torchcodec_status

    if backend == "decord" and not decord_available():
        return "decord is not installed here: set `backend: pyav`"
    if backend == "torchcodec":
        version, why = torchcodec_status()
        if version is None:
            return f"torchcodec is {why}: install it or set `backend: pyav`"
    return None


def dataset_findings(jobs: list[Path], datasets: list[Path]) -> list[Finding]:
    from pas_models.data.backends import FORCE_ENV, effective_backend
    from pas_models.data.formats import load_dataset_config
    from pas_models.errors import PasError
    from pas_orchestrator.config.search import load_search

    out = []
    for path, kind in [(j, "job") for j in jobs] + [(d, "dataset") for d in datasets]:
        try:
            cfg = load_search(path).data if kind == "job" else load_dataset_config(path)
            backend = effective_backend(cfg.backend)
        except PasError as exc:
            out.append(Finding("datasets", path.name, str(exc), True))
            continue
        missing = _backend_missing(backend)
        shown = (cfg.backend if backend == cfg.backend else f"{cfg.backend}, forced to {backend}"
                 if os.environ.get(FORCE_ENV, "").strip() else f"{cfg.backend}: {backend} here")
        out.append(Finding("datasets", path.name, f"{cfg.format} at {cfg.root}: backend {shown}"
                           + (f"; {missing}" if missing else ""), bool(missing)))
    return out


def submitit_findings() -> list[Finding]:
    submitit, err = _module("submitit")
    if submitit is None:
        return [Finding("jobs", "submitit", f"cannot import ({err})", True)]
    return [Finding("jobs", "submitit", submitit.__version__)]


def slurm_findings(cluster: str | None) -> list[Finding]:
    need = False
    out = []
    if cluster:
        from pas_models.errors import PasError
        from pas_orchestrator.config.cluster import load_profile

        try:
            need = load_profile(cluster).executor == "slurm"
        except PasError as exc:
            out.append(Finding("slurm", "profile", str(exc), True))
    found = {c: shutil.which(c) for c in SLURM_COMMANDS}
    missing = [c for c, p in found.items() if p is None]
    out.append(Finding("slurm", "commands", ("all on PATH" if not missing else
                       f"missing {', '.join(missing)}" + (" (local executor only)" if not need else "")),
                       need and bool(missing)))
    if found["sacct"]:
        from pas_orchestrator.errors import SubmissionError
        from pas_orchestrator.executors.slurm import check_accounting

        try:
            check_accounting()
            out.append(Finding("slurm", "sacct", "answers"))
        except SubmissionError as exc:
            out.append(Finding("slurm", "sacct", f"{exc}; pas needs job accounting to follow jobs", need))
    return out
