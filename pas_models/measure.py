"""Latency measured alone: one short job per iteration times every trained network of the iteration and B.

A training job measuring its own network at the end of its evaluation shares the machine with the
other jobs of the search (locally: the same cores; on a cluster node: its other GPUs and CPUs): the
same B measured 422 ms/view in one search and 79.5 ms in another. The measurement job runs alone
instead (the controller submits nothing beside it locally; ``--exclusive`` on SLURM) and times the
networks *interleaved*: round r visits every network in turn (the order rotated by r, so no network
is always first after a pause), each network being timed ``passes`` passes per batch size after
``warmup`` passes (more for a fast network: a round lasts at least ``min_round_s``), for ``rounds``
rounds. Per network and batch size it reports the median over every
timed pass, the 10th / 90th percentiles, each round's median and the **spread**: (highest round
median - lowest round median) / median. A spread above ``SPREAD_LIMIT`` says the machine was not
quiet: the report flags such a figure instead of plotting it.

Latency does not depend on the weights: each network is built from its spec (eval mode, zeros of its
test view, ``torch.inference_mode``); CPU: a fixed thread count (every core the job may use), CUDA:
CUDA events after a synchronisation (pas_models.latency).

``MeasureTask`` / ``MeasureResult`` are torch-free (the controller builds and reads them); ``run``
and ``MeasureJob`` import torch when called.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pas_models.errors import PasError
from pas_models.typed_data import load_json

log = logging.getLogger(__name__)

SPREAD_LIMIT = 0.2  # (max - min) of the round medians over the median: above this the figure is flagged


class MeasureInvalid(PasError):
    """A measurement result file that is not whole and well typed."""


@dataclass(frozen=True)
class MeasureTask:
    label: str  # e.g. "2-latency"
    out_dir: str
    networks: tuple[tuple[str, str], ...]  # (hypothesis label, ArchSpec JSON), B first
    batches: tuple[int, ...] = (1, 8)
    passes: int = 10  # timed passes per network, batch size and round, at least (see min_round_s)
    rounds: int = 3
    # a fast network is timed for more passes, so that each of its rounds lasts this long (a round of
    # 10 passes of a 1 ms network is 10 ms: one scheduler hiccup moves its median)
    min_round_s: float = 0.2
    warmup: int = 3
    attempt: int = 1

    @property
    def result_path(self) -> Path:
        return Path(self.out_dir) / "result.json"


@dataclass(frozen=True)
class Timing:
    network: str
    batch: int
    ms_per_view: float  # median over every timed pass of every round
    p10_ms_per_view: float
    p90_ms_per_view: float
    round_medians: tuple[float, ...]
    spread: float  # (max - min) of round_medians / ms_per_view
    passes: int | None = None  # timed passes per round (None: a file written before this was recorded)

    @property
    def flagged(self) -> bool:
        return self.spread > SPREAD_LIMIT


@dataclass(frozen=True)
class MeasureResult:
    label: str
    attempt: int
    device: str  # "cpu (4 threads)" or the GPU's name
    host: str
    passes: int
    rounds: int
    timings: tuple[Timing, ...] = field(default=())

    def of(self, network: str, batch: int) -> Timing | None:
        return next((t for t in self.timings if t.network == network and t.batch == batch), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = "latency"
        d["timings"] = [{**asdict(t), "round_medians": list(t.round_medians)} for t in self.timings]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "result") -> MeasureResult:
        def bad(what: str) -> MeasureInvalid:
            return MeasureInvalid(f"{source}: {what}")

        if not isinstance(data, dict) or data.get("kind") != "latency":
            raise bad("not a latency measurement (expected an object with kind: latency)")
        for key, typ in (("label", str), ("attempt", int), ("device", str), ("host", str), ("passes", int),
                         ("rounds", int), ("timings", list)):
            if not isinstance(data.get(key), typ) or isinstance(data.get(key), bool):
                raise bad(f"{key}: expected {typ.__name__}, got {data.get(key)!r}")
        timings = []
        for i, t in enumerate(data["timings"]):
            if not isinstance(t, dict):
                raise bad(f"timings[{i}]: expected an object")
            try:
                nums = [float(t[k]) for k in ("ms_per_view", "p10_ms_per_view", "p90_ms_per_view", "spread")]
                rounds = tuple(float(x) for x in t["round_medians"])
                network, batch = str(t["network"]), int(t["batch"])
                passes = None if t.get("passes") is None else int(t["passes"])
            except (KeyError, TypeError, ValueError) as exc:
                raise bad(f"timings[{i}]: {exc.__class__.__name__}: {exc}") from None
            if not all(math.isfinite(x) and x >= 0 for x in (*nums, *rounds)) or batch < 1:
                raise bad(f"timings[{i}]: times must be finite numbers >= 0 and the batch >= 1")
            timings.append(Timing(network, batch, nums[0], nums[1], nums[2], rounds, nums[3], passes))
        return cls(data["label"], data["attempt"], data["device"], data["host"], data["passes"], data["rounds"],
                   tuple(timings))

    @classmethod
    def read(cls, path: str | Path) -> MeasureResult:
        return cls.from_dict(load_json(path, MeasureInvalid), str(Path(path)))


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summarize(network: str, batch: int, rounds: list[list[float]]) -> Timing:
    """One network at one batch size: ``rounds`` holds each round's timed passes (ms per view)."""
    every = [x for r in rounds for x in r]
    med = statistics.median(every)
    medians = tuple(statistics.median(r) for r in rounds)
    spread = (max(medians) - min(medians)) / med if med > 0 else 0.0
    return Timing(network, batch, med, _quantile(every, 0.1), _quantile(every, 0.9), medians, spread,
                  min(len(r) for r in rounds) if rounds else None)


def time_networks(networks: list[tuple[str, Any]], batches: tuple[int, ...], passes: int = 10, rounds: int = 3,
                  warmup: int = 3, min_round_s: float = 0.2, device: str | None = None, threads: int | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> tuple[str, tuple[Timing, ...]]:
    """Time ``networks`` ((label, ArchSpec), B first) interleaved, as the module says: the device's name
    and a Timing per network and batch size. ``progress(done, total, what)`` after each timing."""
    import time

    import torch

    from pas_models.latency import default_threads, timed_pass
    from pas_models.nets import build_model

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    previous = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(threads or default_threads())
    try:
        nets = [(label, build_model(spec).to(dev).eval(),
                 {b: torch.zeros(b, *spec.input_shape(train=False), device=dev) for b in batches})
                for label, spec in networks]
        times: dict[tuple[str, int], list[list[float]]] = {(n, b): [] for n, _, _ in nets for b in batches}

        def timed_round(net: torch.nn.Module, x: torch.Tensor) -> list[float]:
            """At least ``passes`` passes and at least ``min_round_s`` seconds: a slow pass (a busy machine)
            ends the round after ``passes``, a fast network is timed for more than a few milliseconds."""
            out: list[float] = []
            start = time.perf_counter()
            while len(out) < passes or time.perf_counter() - start < min_round_s:
                out.append(timed_pass(net, x))
            return out

        total, done = rounds * len(nets) * len(batches), 0
        with torch.inference_mode():
            for r in range(rounds):
                for label, net, inputs in nets[r % len(nets):] + nets[:r % len(nets)]:
                    for b in batches:
                        for _ in range(warmup):
                            net(inputs[b])
                        times[(label, b)].append(timed_round(net, inputs[b]))
                        done += 1
                        if progress:
                            progress(done, total, f"round {r + 1}/{rounds}: {label} batch {b}")
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    finally:
        torch.set_num_threads(previous)
    return name, tuple(summarize(n, b, times[(n, b)]) for n, _, _ in nets for b in batches)


def run(task: MeasureTask, device: str | None = None) -> MeasureResult:
    """Time every network of ``task`` interleaved and write ``result.json`` (atomically) last."""
    import socket
    import time

    from pas_models.spec import ArchSpec
    from pas_models.train.checkpoint import write_json

    if task.result_path.exists():
        return MeasureResult.read(task.result_path)
    started = time.monotonic()
    log.info("%s: timing %d networks x batches %s, %d interleaved rounds of at least %d passes each",
             task.label, len(task.networks), list(task.batches), task.rounds, task.passes)
    name, timings = time_networks([(label, ArchSpec.from_json(js)) for label, js in task.networks], task.batches,
                                  task.passes, task.rounds, task.warmup, task.min_round_s, device,
                                  progress=lambda done, total, what: _progress(task, done, total, what, started))
    result = MeasureResult(task.label, task.attempt, name, socket.gethostname(), task.passes, task.rounds, timings)
    Path(task.out_dir).mkdir(parents=True, exist_ok=True)
    write_json(result.to_dict(), task.result_path)
    return result


def _progress(task: MeasureTask, done: int, total: int, what: str, started: float) -> None:
    """What the job is doing: a log line, and ``progress.json`` (as a training's) for whoever watches it."""
    import time

    from pas_models.train.checkpoint import write_json

    elapsed = time.monotonic() - started
    log.info("%s: %d of %d timings done (%s), %.0f s, about %.0f s left", task.label, done, total, what, elapsed,
             elapsed / done * (total - done))
    write_json({"hypothesis": task.label, "attempt": task.attempt, "step": done, "steps": total, "what": what,
                "seconds": elapsed, "time": time.time()}, Path(task.out_dir) / "progress.json")


class MeasureJob:
    """The callable submitit runs for a measurement (short: a requeue simply measures again); its log is the
    folder's train.log, as a training's."""

    def __call__(self, task: MeasureTask) -> MeasureResult:
        from pas_models.layout import HypFiles
        from pas_models.train.frame import job_log

        os.makedirs(task.out_dir, exist_ok=True)
        with job_log(HypFiles(Path(task.out_dir)), main=True):
            return run(task)
