"""The job result: what one training writes last (``result.json``) and the ledger ingests.

One frozen type, written by ``train.run()`` and validated when read (``JobResult.read``): a file
that is not a whole, well-typed result is refused with a one-line ``ResultInvalid`` that names the
file and the key. Torch-free: the controller reads results without importing torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pas_models.errors import PasError
from pas_models.typed_data import load_json

TEACHER_SOURCES = ("none", "live", "cache")


class ResultInvalid(PasError):
    """A result.json that is not a whole, well-typed job result."""


@dataclass(frozen=True)
class JobResult:
    hypothesis: str
    attempt: int
    top1: float  # percent, multi-view (the eval settings)
    top5: float
    gflops_per_view: float
    views: int  # clips x crops per video at evaluation
    params: int
    epochs: int  # epochs trained (0: an imported network, only evaluated)
    train_seconds: float
    gpu_hours: float  # train_seconds x processes on GPUs; 0 on CPU
    clips_seen: int
    videos_skipped: int  # distinct unreadable files left out (training and evaluation)
    eval_videos: int
    checkpoint: str  # model.pt
    spec: dict[str, Any]
    finetuned_from_parent: bool
    versions: dict[str, str]
    recipe: dict[str, Any]
    teacher_source: str = "none"  # none (cross-entropy only) | live (the teacher network ran each step) | cache
    latency: tuple[dict[str, Any], ...] = field(default=())  # pas_models.latency.Latency.to_dict() per batch
    distill: dict[str, Any] = field(default_factory=dict)  # the Distill settings it was taught with ({}: no teacher)
    # which validation videos it evaluated and got right (pas_models.predictions.PerVideo; {}: a result made before)
    per_video: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency"] = [dict(x) for x in self.latency]
        return {**d, **intervals(self.top1, self.top5, self.eval_videos)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "result") -> JobResult:
        if not isinstance(data, dict):
            raise ResultInvalid(f"{source}: expected a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                if f.name in _OPTIONAL:
                    continue
                raise ResultInvalid(f"{source}: missing key {f.name!r} (a partial or foreign result file)")
            values[f.name] = _check(source, f.name, data[f.name])
        return cls(**values)

    @classmethod
    def read(cls, path: str | Path) -> JobResult:
        return cls.from_dict(load_json(path, ResultInvalid), str(Path(path)))


def intervals(top1: float, top5: float, videos: int) -> dict[str, Any]:
    """What a result file says of its figures' uncertainty, for whoever reads it (derived, not read back): top-1's
    and top-5's 95% intervals in percent, Wilson's over the evaluated videos."""
    from pas_models.intervals import percent_interval

    if videos <= 0:
        return {}
    return {"top1_interval": list(percent_interval(top1, videos)),
            "top5_interval": list(percent_interval(top5, videos)), "interval": "95%, Wilson score, over eval_videos"}


_OPTIONAL = ("teacher_source", "latency", "distill", "per_video")
_INT = ("attempt", "views", "params", "epochs", "clips_seen", "videos_skipped", "eval_videos")
_FLOAT = ("top1", "top5", "gflops_per_view", "train_seconds", "gpu_hours")
_STR = ("hypothesis", "checkpoint")
_DICT = ("spec", "versions", "recipe", "distill", "per_video")


def _check(source: str, key: str, value: Any) -> Any:
    where = f"{source}: {key}"
    if key in _INT:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ResultInvalid(f"{where}: expected an integer >= 0, got {value!r}")
        return value
    if key in _FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ResultInvalid(f"{where}: expected a finite number >= 0, got {value!r}")
        if key in ("top1", "top5") and value > 100:
            raise ResultInvalid(f"{where}: a percentage cannot exceed 100, got {value!r}")
        return float(value)
    if key in _STR:
        if not isinstance(value, str):
            raise ResultInvalid(f"{where}: expected a string, got {value!r}")
        return value
    if key in _DICT:
        if not isinstance(value, dict):
            raise ResultInvalid(f"{where}: expected an object, got {type(value).__name__}")
        if key == "per_video" and value:
            from pas_models.predictions import PerVideo, PredictionsInvalid

            try:
                PerVideo.from_dict(value, where)
            except PredictionsInvalid as exc:
                raise ResultInvalid(str(exc)) from None
        return value
    if key == "finetuned_from_parent":
        if not isinstance(value, bool):
            raise ResultInvalid(f"{where}: expected true or false, got {value!r}")
        return value
    if key == "teacher_source":
        if value not in TEACHER_SOURCES:
            raise ResultInvalid(f"{where}: expected one of {', '.join(TEACHER_SOURCES)}, got {value!r}")
        return value
    if key == "latency":
        if not isinstance(value, list) or not all(isinstance(x, dict) and "batch" in x and "ms_per_view" in x
                                                  for x in value):
            raise ResultInvalid(f"{where}: expected a list of {{batch, ms_per_view, ...}} objects")
        return tuple(value)
    raise AssertionError(key)  # every field is handled above
