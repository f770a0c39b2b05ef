"""Cost of a spec in the paper's convention, counted by fvcore.

Convention (``CONVENTION``, printed with every figure): fvcore's total for one
view at the spec's *test* view (``spec.input_shape()``; per pathway for
SlowFast), one fused multiply-add = one flop, batch norm counted in train mode
(fvcore: 5 flops per element), as the PAS paper reports (R(2+1)D-18 at
16x112x112: 40.8 GFLOPs; SlowFast-4x16-R50 at 256x256: 36.6). ``conv_gflops``
counts the convolutions alone (torchvision's metadata: 40.52 for R(2+1)D-18).
Element-wise adds and pooling are not counted (fvcore's default).

fvcore traces a real forward pass (meta tensors cannot be traced), with a batch
of two so that train-mode batch norm works on 1x1x1 maps; figures are divided
by two. Counting is pure in the spec and cached. Importing this module does not import torch
(``CONVENTION`` is shown by the command line).
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import asdict, dataclass

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


@functools.lru_cache(maxsize=512)
def count_cost(spec: ArchSpec) -> Cost:
    """GFLOPs per view and parameter count of ``spec`` (see the module docstring)."""
    import torch

    from pas_models.nets import build_model

    batch = 2
    with torch.random.fork_rng(devices=[]), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import and tracer warn about TorchScript deprecation
        from fvcore.nn import FlopCountAnalysis  # heavy import, only where counting happens

        model = build_model(spec).train()
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        analysis = FlopCountAnalysis(model, (torch.zeros(batch, *spec.input_shape(train=False)),))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        fvcore_log = logging.getLogger("fvcore")
        previous, fvcore_log.level = fvcore_log.level, logging.ERROR
        try:
            total = analysis.total()
            by_op = analysis.by_operator()
        finally:
            fvcore_log.setLevel(previous)
    return Cost(gflops=total / batch / 1e9, conv_gflops=by_op.get("conv", 0) / batch / 1e9, params=params)
