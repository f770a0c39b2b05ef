"""Cost of a spec in the paper's convention, counted by fvcore.

Convention (``CONVENTION``, printed with every figure): fvcore's total for one
view at the spec's *test* view (``spec.input_shape()``; per pathway for
SlowFast), one fused multiply-add = one flop, batch norm counted in train mode
(fvcore: 5 flops per element), as the PAS paper reports (R(2+1)D-18 at
16x112x112: 40.8 GFLOPs; SlowFast-4x16-R50 at 256x256: 36.6). ``conv_gflops``
counts the convolutions alone (torchvision's metadata: 40.52 for R(2+1)D-18).
Element-wise adds and pooling are not counted (fvcore's default).

fvcore traces a real forward pass (meta tensors cannot be traced) of one view,
or of two where a 1x1x1 map meets train-mode batch norm (one view has one value
per channel there) and the figures are divided by two: fvcore's counts are
linear in the batch, so both give the same figures, and one view costs half.
Importing this module does not import torch (``CONVENTION`` is shown by the
command line).

Counting is pure in the spec, and a count costs a forward pass (2.8-3.8 s of CPU for
the full-size networks, 0.2-0.4 s for the tiny ones in a fresh process, plus
torch's import), so counts are cached: in the process, and on disk
(``cache_folder()``: ``$PAS_CACHE_DIR/flops``, else ``$XDG_CACHE_HOME/pas/flops``,
else ``~/.cache/pas/flops``; one small JSON file per count, written atomically).
A count read from disk costs no torch import: a controller planning an iteration
of children counted before (a restart, another search from the same base), `pas
flops`, and the job that trains a planned child reuse it. The key is the spec
and everything the count depends on: the contents of every ``pas_models``
source file and the versions of torch and fvcore (an edit or an upgrade counts
again). An unreadable entry, or one holding another spec, is counted again and
rewritten; a folder that cannot be written is not an error (the count is just
not kept). ``PAS_FLOPS_CACHE=0`` turns the disk cache off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import platform
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pas_models import source_files
from pas_models.spec import ArchSpec

CONVENTION = ("GFLOPs per view at the test view; fvcore total, 1 multiply-add = 1 flop, "
              "batch norm in train mode (as the PAS paper)")


@dataclass(frozen=True)
class Cost:
    """gflops, conv_gflops: GFLOPs per view (see CONVENTION); params: trainable parameters."""

    gflops: float
    conv_gflops: float
    params: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


CACHE_ENV = "PAS_CACHE_DIR"
CACHE_SWITCH_ENV = "PAS_FLOPS_CACHE"
_FORMAT = 1  # of a cache entry; bumped when what an entry holds changes
log = logging.getLogger(__name__)


def cache_folder() -> Path | None:
    """Where counts are kept (see the module docstring); None when ``PAS_FLOPS_CACHE`` turns it off."""
    if os.environ.get(CACHE_SWITCH_ENV, "").strip().lower() in ("0", "off", "no", "false"):
        return None
    root = os.environ.get(CACHE_ENV, "").strip()
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        root = os.path.join(xdg or os.path.join(os.path.expanduser("~"), ".cache"), "pas")
    return Path(root) / "flops"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:  # a source tree on sys.path without its metadata: the module knows its version
        return str(getattr(__import__(dist), "__version__", "unknown"))


@functools.cache
def code_key() -> str:
    """What a count depends on besides the spec: every ``pas_models`` source file's path and contents, and
    the versions of torch and fvcore (read from their metadata: no import)."""
    h = hashlib.sha256(f"format {_FORMAT}\0torch {_version('torch')}\0fvcore {_version('fvcore')}\0".encode())
    root = Path(__file__).resolve().parent
    for path in source_files():
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _entry(spec: ArchSpec) -> tuple[Path, str] | None:
    folder = cache_folder()
    if folder is None:
        return None
    text = spec.to_json()
    return folder / (hashlib.sha256(f"{code_key()}\0{text}".encode()).hexdigest()[:40] + ".json"), text


def _read(path: Path, text: str) -> Cost | None:
    try:
        d = json.loads(path.read_text())
        if d["spec"] != text:  # another spec under this name (a collision, or an edited file)
            return None
        cost = Cost(gflops=float(d["gflops"]), conv_gflops=float(d["conv_gflops"]), params=int(d["params"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.debug("flops cache: %s unreadable (%s): counting again", path, exc)
        return None
    if not all(math.isfinite(x) and x >= 0 for x in (cost.gflops, cost.conv_gflops, cost.params)):
        return None
    return cost


def _write(path: Path, text: str, cost: Cost) -> None:
    # host and pid: the ranks of a multi-node job may write the same count into one shared folder at once
    tmp = path.with_name(f".{path.stem}.{platform.node()}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({**cost.to_dict(), "spec": text}))
        os.replace(tmp, path)  # atomic: a reader sees the whole entry or none
    except OSError as exc:
        log.debug("flops cache: cannot write %s (%s): the count is not kept", path, exc)
        try:
            tmp.unlink()
        except OSError:
            pass


@functools.lru_cache(maxsize=512)
def count_cost(spec: ArchSpec) -> Cost:
    """GFLOPs per view and parameter count of ``spec`` (see the module docstring); from the cache when it
    holds this count."""
    entry = _entry(spec)
    if entry is not None and (cached := _read(*entry)) is not None:
        return cached
    cost = _count(spec)
    if entry is not None:
        _write(*entry, cost)
    return cost


def _count(spec: ArchSpec) -> Cost:
    import torch

    from pas_models.nets import build_model

    with torch.random.fork_rng(devices=[]), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import and tracer warn about TorchScript deprecation
        model = build_model(spec).train()
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        try:  # one clip: half the forward pass of two, the same figures (fvcore's counts are linear in the batch)
            total, conv = _traced(model, spec, 1)
        except ValueError as exc:  # train-mode batch norm on a 1x1x1 map: one clip has one value per channel
            if "more than 1 value per channel" not in str(exc):
                raise
            total, conv = _traced(model, spec, 2)
    return Cost(gflops=total / 1e9, conv_gflops=conv / 1e9, params=params)


def _traced(model: Any, spec: ArchSpec, batch: int) -> tuple[float, float]:
    """fvcore's total and convolution flops of one view, traced with ``batch`` views."""
    import torch
    from fvcore.nn import FlopCountAnalysis  # heavy import, only where counting happens

    analysis = FlopCountAnalysis(model, (torch.zeros(batch, *spec.input_shape(train=False)),))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    fvcore_log = logging.getLogger("fvcore")
    previous, fvcore_log.level = fvcore_log.level, logging.ERROR
    try:
        return analysis.total() / batch, analysis.by_operator().get("conv", 0) / batch
    finally:
        fvcore_log.setLevel(previous)
