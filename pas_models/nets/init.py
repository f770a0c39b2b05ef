"""The normal initialisations of the builders, skipped on the meta device.

Networks are also built on the meta device, for their shapes only (``weights.weight_shapes``, ``tucker``,
``nas``): there is nothing to initialise there, and torch's meta ``normal_`` is a Python reference whose
decorator imports ``torch._dynamo`` on first use: 1.2-1.9 s of CPU in every job and every controller
that compared two networks' shapes (uniform and constant fills stay in C++: they are left as they are).
"""

from __future__ import annotations

import torch
from torch import nn


def kaiming_normal_fan_out(weight: torch.Tensor) -> None:
    """Kaiming normal (fan out, ReLU gain): torchvision's and PySlowFast's convolutions."""
    if not weight.is_meta:
        nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")


def normal(weight: torch.Tensor, std: float) -> None:
    """N(0, std): the classifiers."""
    if not weight.is_meta:
        nn.init.normal_(weight, 0, std)
