"""The roofline of a network's training step: the model FLOPs of a clip, and the most of a GPU's peak the
step can use when every layer runs at its roofline (``min(peak, intensity x bandwidth)``).

Each leaf module of one forward pass at the spec's *training* view is traced on the meta device (shapes
only, nothing computed): a convolution or linear layer does 2 x its multiply-adds in FLOPs per clip and
moves its input and output per clip and its weights once per batch; batch norm, activations and pooling do
no counted FLOPs and move their input and output. The backward pass costs about twice the forward in both
(the usual 3x rule), so the bound is that of the forward. Element-wise adds that are not modules (residual
sums) move bytes not counted here, and no layer is fused with the next, so the bound is an upper one for
unfused kernels: a step far below it is not memory-bound alone.

``step_flops`` is what MFU divides by (PaLM's convention: convolution and matmul FLOPs only, 2 per
multiply-add, at the training view); pas's GFLOPs column (``pas_models.flops``) is the paper's, at the test
view, and not this.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from pas_models.nets import build_model
from pas_models.spec import ArchSpec

# dense half-precision tensor-core peak (TFLOPS) and memory bandwidth (TB/s) of NVIDIA parts, first match of
# the device name wins (PCIe parts before their SXM names)
DEVICES = (("H100 PCIe", 756.0, 2.0), ("H100 NVL", 835.0, 3.9), ("H200", 989.0, 4.8), ("H100", 989.0, 3.35),
           ("GH200", 989.0, 4.0), ("A100-PCIE-40GB", 312.0, 1.555), ("A100", 312.0, 2.039),
           ("V100", 125.0, 0.9), ("L40S", 362.0, 0.864), ("A10", 125.0, 0.6))
COUNTED = (nn.Conv3d, nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class Layer:
    name: str
    flops: float  # forward, per clip
    bytes: float  # forward, per clip: input and output
    weight_bytes: float  # forward, per batch


@dataclass(frozen=True)
class Roofline:
    """A network's forward per clip at its training view in batches of ``batch``, and its bound on a device."""

    layers: tuple[Layer, ...]
    batch: int = 24

    def layer_bytes(self, x: Layer) -> float:
        return x.bytes + x.weight_bytes / self.batch

    @property
    def flops(self) -> float:
        return sum(x.flops for x in self.layers)

    @property
    def bytes(self) -> float:
        return sum(self.layer_bytes(x) for x in self.layers)

    def seconds(self, peak_flops: float, bandwidth: float) -> float:
        """The forward's least time per clip: each layer at max(flops / peak, bytes / bandwidth)."""
        return sum(max(x.flops / peak_flops, self.layer_bytes(x) / bandwidth) for x in self.layers)

    def bound(self, peak_flops: float, bandwidth: float) -> float:
        """The most of ``peak_flops`` the network can use: its FLOPs over its least time."""
        t = self.seconds(peak_flops, bandwidth)
        return self.flops / (peak_flops * t) if t > 0 else 0.0

    def memory_bound_share(self, peak_flops: float, bandwidth: float) -> float:
        """The share of the FLOPs done in layers whose intensity is below the device's ridge point."""
        ridge = peak_flops / bandwidth
        slow = sum(x.flops for x in self.layers if x.flops and x.flops / self.layer_bytes(x) < ridge)
        return slow / self.flops if self.flops else 0.0


def device_peak(name: str) -> tuple[float, float] | None:
    """(peak FLOP/s, bytes/s) of a device name, or None where the table does not know it."""
    for key, tflops, tbs in DEVICES:
        if key in name:
            return tflops * 1e12, tbs * 1e12
    return None


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


@functools.cache  # pure in its arguments; bench_gpu.py asks for each network in every table
def roofline(spec: ArchSpec, batch: int = 24, element_bytes: int = 2) -> Roofline:
    """Trace one training view of ``spec``, for steps of ``batch`` clips (``element_bytes``: 2 for bf16/fp16
    activations and weights, 4 for fp32)."""
    with torch.device("meta"):
        model = build_model(spec).train()
    layers: list[Layer] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if x is None or not isinstance(output, torch.Tensor):
            return
        moved = (x.numel() + output.numel()) * element_bytes
        flops = 0.0
        if isinstance(module, COUNTED):
            w = module.weight
            per_output = w[0].numel() if isinstance(module, (nn.Conv3d, nn.Conv2d)) else w.shape[1]
            flops = 2.0 * output.numel() * per_output
        layers.append(Layer(names[module], flops, float(moved), float(_weights(module) * element_bytes)))

    names = {m: n for n, m in model.named_modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        model(_meta_input(spec))
    finally:
        for h in handles:
            h.remove()
    return Roofline(tuple(layers), batch)


def _meta_input(spec: ArchSpec) -> torch.Tensor:
    return torch.empty(1, *spec.input_shape(train=True), device="meta")


def step_bound(student: Roofline, teacher: Roofline | None, peak_flops: float, bandwidth: float) -> float:
    """The roofline bound of a distillation step: the student's forward and backward (3x) and, when it runs
    live, the teacher's forward."""
    flops = 3 * student.flops + (teacher.flops if teacher is not None else 0.0)
    t = 3 * student.seconds(peak_flops, bandwidth) + (teacher.seconds(peak_flops, bandwidth) if teacher else 0.0)
    return flops / (peak_flops * t) if t > 0 else 0.0


def step_flops(student: Roofline, teacher: Roofline | None) -> float:
    """Model FLOPs of one clip's distillation step (what MFU counts)."""
    return 3 * student.flops + (teacher.flops if teacher is not None else 0.0)


def mfu(clips_per_s: float, flops_per_clip: float, peak_flops: float) -> float:
    return clips_per_s * flops_per_clip / peak_flops if peak_flops > 0 and math.isfinite(clips_per_s) else 0.0
