"""Measured inference latency of a spec's network: FLOPs are not speed.

``measure(spec, device, batch)``: the median wall time of a forward pass divided by the batch (ms per
view), after warm-up, in eval mode under ``torch.inference_mode``, on zeros of the spec's test view
(latency does not depend on the weights). CPU: ``time.perf_counter`` with a fixed thread count
(``torch.set_num_threads``), restored afterwards. CUDA: CUDA events around each pass, after a
synchronisation. The spread (10th and 90th percentiles) is kept with the median.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from pas_models.nets import build_model
from pas_models.spec import ArchSpec


@dataclass(frozen=True)
class Latency:
    device: str  # "cpu (4 threads)" or the GPU's name
    batch: int
    ms_per_view: float  # median over the timed passes
    p10_ms_per_view: float
    p90_ms_per_view: float
    passes: int

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def default_threads() -> int:
    """The cores this process may run on (its affinity), the CPU thread count used by default."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def timed_pass(net: torch.nn.Module, x: torch.Tensor) -> float:
    """One forward pass of ``x``, in ms per view: CUDA events after a synchronisation on a GPU,
    ``time.perf_counter`` on CPU."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        net(x)
        end.record()
        torch.cuda.synchronize(x.device)
        return start.elapsed_time(end) / x.shape[0]
    t0 = time.perf_counter()
    net(x)
    return (time.perf_counter() - t0) * 1e3 / x.shape[0]


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def measure(spec: ArchSpec, device: str | torch.device = "cpu", batch: int = 1, warmup: int = 3,
            passes: int = 10, threads: int | None = None, model: torch.nn.Module | None = None) -> Latency:
    """Median latency per view of ``spec``'s network (``model`` when given: its own weights and
    dtype, e.g. the trained student) on ``device``."""
    dev = torch.device(device)
    net = (model if model is not None else build_model(spec)).to(dev).eval()
    x = torch.zeros(batch, *spec.input_shape(train=False), device=dev)
    previous = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(threads or default_threads())
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                net(x)
            times = [timed_pass(net, x) for _ in range(passes)]
        name = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
                else f"cpu ({torch.get_num_threads()} threads)")
    finally:
        torch.set_num_threads(previous)
    return Latency(name, batch, statistics.median(times), _quantile(times, 0.1), _quantile(times, 0.9), passes)
