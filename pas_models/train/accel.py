"""How a training uses its accelerator, from the recipe: precision and memory format (``Precision``), where
frames are decoded and how the loader feeds the step (``Feeding``), ``torch.compile`` (``compiled``) and the
optimizer's fused kernel (``sgd``).

Every option applies to GPUs only, except ``fused_optimizer`` (PyTorch has a fused SGD for the CPU too); on a
CPU the others are logged and left off, so a recipe written for the cluster runs unchanged on a laptop. None
of them changes what is trained: a checkpoint resumes with them switched (``TrainTask.config_hash`` leaves
out ``compile``, ``fused_optimizer`` and ``gpu_decode``). Measured in ``benchmarks/bench_gpu.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pas_models.train.task import COMPILE_MODES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Precision:
    """How tensors are computed on this device: AMP dtype (None: fp32) and memory format."""

    gpu: bool
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format

    @classmethod
    def of(cls, recipe: Any, device: torch.device, label: str) -> Precision:
        gpu = device.type == "cuda"
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(recipe.amp) if gpu else None
        fmt = torch.channels_last_3d if gpu and recipe.channels_last else torch.contiguous_format
        if gpu:
            torch.backends.cudnn.benchmark = recipe.cudnn_benchmark
        else:
            off = [name for name, on in (("amp", recipe.amp != "none"), ("channels_last", recipe.channels_last),
                                         ("compile", recipe.compile != "none"), ("gpu_decode", recipe.gpu_decode))
                   if on]
            if off:
                log.info("%s: on CPU: %s left off (GPU options)", label, ", ".join(off))
        return cls(gpu, amp, fmt)


@dataclass(frozen=True)
class Feeding:
    """Where a training's frames are decoded, and the loader options that follow from it."""

    decode_device: str  # "cpu", or the CUDA device whose NVDEC decodes
    num_workers: int
    pin_memory: bool

    @classmethod
    def of(cls, recipe: Any, device: torch.device) -> Feeding:
        """GPU decode: items are made on the GPU, in the process that owns it (no workers: CUDA does not survive
        a fork; nothing to pin). CPU decode: the recipe's workers, pinned memory on a GPU."""
        gpu = device.type == "cuda"
        if gpu and recipe.gpu_decode:
            return cls(str(device), 0, False)
        return cls("cpu", recipe.num_workers, gpu)


def compiled(module: nn.Module, mode: str, gpu: bool, backend: str = "inductor") -> nn.Module:
    """``module`` compiled by ``torch.compile`` in ``mode`` on a GPU; itself elsewhere or with mode none.

    Only the training forward is compiled (what the optimizer steps): evaluation, checkpoints and the next
    iteration read the module itself, whose state-dict keys the compiled wrapper would prefix."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode {mode!r}: one of {', '.join(COMPILE_MODES)}")
    if mode == "none" or not gpu:
        return module
    return torch.compile(module, mode=None if mode == "default" else mode, backend=backend)  # type: ignore[return-value]


def sgd(params: Iterable[torch.Tensor], lr: float, recipe: Any) -> torch.optim.SGD:
    """The recipe's SGD; ``fused_optimizer``: one fused kernel for all parameters (else PyTorch's foreach)."""
    return torch.optim.SGD(params, lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                           nesterov=recipe.nesterov, fused=True if recipe.fused_optimizer else None)
