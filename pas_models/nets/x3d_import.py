"""PyTorchVideo's X3D state-dict layout (its model zoo's ``X3D_S.pyth``, ``X3D_M.pyth``: the state dict under
``model_state``; or ``create_x3d(...).state_dict()``) mapped onto pas's X3D module names.

====================================================  ==========================
PyTorchVideo                                          pas
====================================================  ==========================
blocks.0.conv.conv_t (its 1x3x3 spatial conv)         stem.conv_xy
blocks.0.conv.conv_xy (its channel-wise 5x1x1 conv)   stem.conv_t
blocks.0.norm                                         stem.bn
blocks.{i}.res_blocks.{b}.branch1_conv / _norm        stages.{i-1}.{b}.shortcut_conv / _bn
blocks.{i}.res_blocks.{b}.branch2.conv_a / norm_a     stages.{i-1}.{b}.conv_a / bn_a   (b, c alike)
blocks.{i}.res_blocks.{b}.branch2.norm_b.0            stages.{i-1}.{b}.bn_b
blocks.{i}.res_blocks.{b}.branch2.norm_b.1.block.0/2  stages.{i-1}.{b}.se.fc1 / fc2
blocks.{N+1}.pool.pre_conv / pre_norm / post_conv     head.conv / head.bn / head.proj
blocks.{N+1}.proj                                     fc
====================================================  ==========================

(PyTorchVideo's stem names its spatial conv ``conv_t`` and its temporal one ``conv_xy``: ``Conv2plus1d``
runs ``conv_t`` first.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from pas_models.errors import PasError

V = TypeVar("V")

_STEM = {"blocks.0.conv.conv_t.": "stem.conv_xy.", "blocks.0.conv.conv_xy.": "stem.conv_t.",
         "blocks.0.norm.": "stem.bn."}
_BRANCH = {"branch1_conv.": "shortcut_conv.", "branch1_norm.": "shortcut_bn.",
           "branch2.conv_a.": "conv_a.", "branch2.norm_a.": "bn_a.", "branch2.conv_b.": "conv_b.",
           "branch2.norm_b.0.": "bn_b.", "branch2.norm_b.1.block.0.": "se.fc1.",
           "branch2.norm_b.1.block.2.": "se.fc2.", "branch2.conv_c.": "conv_c.", "branch2.norm_c.": "bn_c."}
_HEAD = {"pool.pre_conv.": "head.conv.", "pool.pre_norm.": "head.bn.", "pool.post_conv.": "head.proj.",
         "proj.": "fc."}
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.*)$")
_RES = re.compile(r"^res_blocks\.(\d+)\.(.*)$")
MARKER = "blocks.0.conv.conv_t.weight"  # a key only PyTorchVideo's X3D layout has


def is_pytorchvideo_x3d(state: Mapping[str, object]) -> bool:
    """Whether ``state`` is in PyTorchVideo's X3D layout."""
    return MARKER in state


def _renamed(key: str, head_block: int) -> str | None:
    for old, new in _STEM.items():
        if key.startswith(old):
            return new + key[len(old):]
    m = _BLOCK.match(key)
    if m is None:
        return None
    block, rest = int(m.group(1)), m.group(2)
    table = _HEAD if block == head_block else None
    if table is None:
        r = _RES.match(rest)
        if r is None or not 1 <= block < head_block:
            return None
        prefix, rest, table = f"stages.{block - 1}.{r.group(1)}.", r.group(2), _BRANCH
    else:
        prefix = ""
    for old, new in table.items():
        if rest.startswith(old):
            return prefix + new + rest[len(old):]
    return None


def from_pytorchvideo(state: Mapping[str, V], source: str = "the checkpoint") -> dict[str, V]:
    """``state`` (PyTorchVideo's X3D layout) under pas's names; PasError naming the first key that has no
    counterpart in pas's X3D (another architecture, or a head with ``bn_lin5_on``)."""
    head_block = max(int(m.group(1)) for k in state if (m := _BLOCK.match(k)))
    out: dict[str, V] = {}
    for key, value in state.items():
        new = _renamed(key, head_block)
        if new is None:
            raise PasError(f"{source}: key {key!r} of PyTorchVideo's X3D layout has no counterpart in pas's X3D "
                           "(a create_x3d model with its default head is expected)")
        out[new] = value
    return out
