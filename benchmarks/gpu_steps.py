"""The training steps that bench_gpu.py times: pas's own step (``pas_models.train.run._step``) on synthetic
batches, with the recipe's accelerator options (``pas_models.train.accel``), live or cached distillation."""

from __future__ import annotations

import statistics
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pas_models.nets import build_model
from pas_models.spec import ArchSpec
from pas_models.train.accel import Precision, compiled, sgd
from pas_models.train.run import _step
from pas_models.train.task import Distill, Recipe
from pas_models.train.teacher import CachedTeacher, LiveTeacher, freeze

SPREAD_LIMIT = 0.2
# each row adds one option to the row above (the ladder); "amp" is bf16, fp16 where the GPU lacks bf16 (V100)
LADDER = (("fp32 eager", {}), ("+ cudnn.benchmark", {"cudnn_benchmark": True}), ("+ AMP autocast", {"amp": "AMP"}),
          ("+ channels_last_3d", {"channels_last": True}), ("+ fused SGD", {"fused_optimizer": True}),
          ("+ torch.compile", {"compile": "default"}))


def ladder_recipes(amp: str) -> list[tuple[str, Recipe]]:
    """(label, recipe) per ladder row, each with the options of every row above."""
    out, opts = [], {"cudnn_benchmark": False}
    for label, more in LADDER:
        opts = {**opts, **{k: (amp if v == "AMP" else v) for k, v in more.items()}}
        out.append((label.replace("AMP", amp), Recipe(**opts)))  # type: ignore[arg-type]
    return out


@dataclass
class Step:
    """One configuration's step, ready to run: student (and live teacher), optimizer, one fixed batch."""

    label: str
    recipe: Recipe
    run: Callable[[], None]
    first_step_s: float = 0.0  # the first step (with torch.compile: the compilation)
    ms: list[float] = field(default_factory=list)  # per round: ms per step

    @property
    def median_ms(self) -> float:
        return statistics.median(self.ms)

    @property
    def spread(self) -> float:
        return (max(self.ms) - min(self.ms)) / self.median_ms if len(self.ms) > 1 else 0.0


def make_step(label: str, teacher: ArchSpec, student: ArchSpec, recipe: Recipe, batch: int, device: torch.device,
              live: bool) -> Step:
    precision = Precision.of(recipe, device, label)
    fmt, gpu = precision.memory_format, precision.gpu
    torch.manual_seed(0)
    model = build_model(student).to(device, memory_format=fmt).train()
    signal: Any = CachedTeacher()
    data: dict[str, Any] = {"student": torch.randn(batch, *student.input_shape(train=True), device=device),
                            "label": torch.randint(0, student.num_classes, (batch,), device=device)}
    if live:
        network = freeze(build_model(teacher)).to(device)
        signal = LiveTeacher(network, False, fmt)
        signal.network = compiled(signal.network, recipe.compile, gpu)
        data["teacher"] = torch.randn(batch, *teacher.input_shape(train=True), device=device)
    else:
        data["soft"] = torch.randn(batch, teacher.num_classes, device=device)
    tr = types.SimpleNamespace(
        task=types.SimpleNamespace(distill=Distill()), device=device, precision=precision,
        optimizer=sgd(model.parameters(), 1e-4, recipe), teacher=signal,
        train_model=compiled(model, recipe.compile, gpu), env=types.SimpleNamespace(world=1),
        scaler=torch.amp.GradScaler("cuda", enabled=precision.amp_dtype == torch.float16))
    return Step(label, recipe, lambda: _step(tr, data, 1e-4, fmt))  # type: ignore[arg-type]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(steps: list[Step], device: torch.device, rounds: int, per_round: int, warmup: int) -> None:
    """Warm each step up (its first step timed apart), then ``rounds`` interleaved rounds (the order rotated
    each round) of ``per_round`` steps each; cudnn.benchmark set to each step's own recipe before it runs."""
    for s in steps:
        torch.backends.cudnn.benchmark = s.recipe.cudnn_benchmark
        t = time.perf_counter()
        s.run()
        _sync(device)
        s.first_step_s = time.perf_counter() - t
        for _ in range(warmup - 1):
            s.run()
        print(f"  {s.label}: first step {s.first_step_s:.1f} s", file=sys.stderr, flush=True)
    for r in range(rounds):
        for s in steps[r % len(steps):] + steps[:r % len(steps)]:
            torch.backends.cudnn.benchmark = s.recipe.cudnn_benchmark
            _sync(device)
            t = time.perf_counter()
            for _ in range(per_round):
                s.run()
            _sync(device)
            s.ms.append((time.perf_counter() - t) / per_round * 1e3)
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)


def flag(spread: float) -> str:
    return f"{100 * spread:.0f}%" + (", not trusted" if spread > SPREAD_LIMIT else "")
