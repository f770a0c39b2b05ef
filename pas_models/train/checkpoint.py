"""Atomic, safely loadable checkpoints and JSON files.

Every file is written to a temporary name in the same folder and renamed over
the target (``os.replace``), so a kill at any instant leaves either the old or
the new file, never a torn one. Checkpoints contain only tensors and plain
Python containers and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_write(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    atomic_write(Path(path), lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def write_json(data: Any, path: str | os.PathLike[str]) -> None:
    atomic_write(Path(path), lambda fh: fh.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode()))


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text())
