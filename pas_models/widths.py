"""X3D's width arithmetic (PyTorchVideo's ``round_width`` and ``round_repeats``), free of torch: the presets
derive X3D-S/M from the paper's expansion factors with it, the builder derives each SE block's width."""

from __future__ import annotations

import math

SE_RATIO = 1 / 16  # X3D's squeeze-excitation: 1/16 of the channel-wise conv's width


def round_width(width: float, multiplier: float, min_width: int = 8, divisor: int = 8) -> int:
    """``width * multiplier`` to the nearest multiple of ``divisor`` (at least ``min_width``), one divisor
    more when rounding lost over 10% (PyTorchVideo's ``round_width``)."""
    scaled = width * multiplier
    out = max(min_width, int(scaled + divisor / 2) // divisor * divisor)
    return int(out + divisor) if out < 0.9 * scaled else int(out)


def round_repeats(repeats: int, multiplier: float) -> int:
    """Blocks of a stage after X3D's depth expansion: ``ceil(multiplier * repeats)``."""
    return math.ceil(multiplier * repeats)


def se_width(inner: int) -> int:
    """Channels inside the squeeze-excitation of a block whose channel-wise conv has ``inner`` channels."""
    return round_width(inner, SE_RATIO)
