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


def init_weights(model: nn.Module) -> None:
    """The builders' initialisation (torchvision's and PySlowFast's, which agree): Kaiming (fan out) convs with
    zero biases, unit batch norms except those marked ``is_final_bn`` (the last of a residual branch in SlowFast
    and X3D: zero, so each block starts as its shortcut), N(0, 0.01) classifier with a zero bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            kaiming_normal_fan_out(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.constant_(m.weight, 0.0 if getattr(m, "is_final_bn", False) else 1.0)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            normal(m.weight, 0.01)
            nn.init.constant_(m.bias, 0)
