"""TensorBoard scalars of a training job (rank 0 only): ``tensorboard --logdir runs/``."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


class Scalars:
    """A SummaryWriter under ``out/tensorboard``; without the tensorboard package (some Power9
    environments) it warns once and records nothing, the job goes on."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self._writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard is a dependency; a broken install must not kill a 16 h job
            log.warning("TensorBoard scalars are off: %s (pip install tensorboard)", exc)
            return
        self._writer = SummaryWriter(log_dir=str(out / "tensorboard"))

    def add(self, values: dict[str, float], step: int) -> None:
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
