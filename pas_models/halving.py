"""Successive halving inside an iteration: the rung arithmetic and the rung result (torch-free).

A hypothesis' full schedule is S = epochs x steps-per-epoch optimizer steps. With ``eta`` and
``rungs`` R, rung k (1..R) ends after

    b_k = ceil(S / eta ** (R - k))   steps          (b_R = S: the full run)

each rung a *prefix* of the full schedule: the learning rate follows the full run's schedule, so a
hypothesis promoted at b_k resumes from ``last.pt`` exactly where it stopped and ends as the
uninterrupted run would have. Ceil: every rung trains at least one step and b_k never decreases.
At b_k (k < R) the job evaluates cheaply (``halving.eval``, default 1 clip x 1 crop), writes
``rung-K.json`` (``RungResult``) and ends; the controller ranks the iteration's hypotheses at rung
k and promotes the best ``promoted_count(n, eta)`` = ceil(n / eta) (at least one).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pas_models.errors import PasError
from pas_models.typed_data import load_json


class RungInvalid(PasError):
    """A rung-K.json that is not whole and well typed."""


@dataclass(frozen=True)
class Rung:
    """What one attempt of a halving search trains to: rung ``k`` of ``rungs`` (k == rungs: the end)."""

    k: int
    rungs: int
    eta: int
    clips: int = 1  # the rung's cheap evaluation (k < rungs)
    crops: int = 1

    @property
    def last(self) -> bool:
        return self.k >= self.rungs


def rung_end(total_steps: int, eta: int, rungs: int, k: int) -> int:
    """b_k: the optimizer steps of the full schedule after which rung ``k`` ends (ceil, at least 1)."""
    if not 1 <= k <= rungs:
        raise ValueError(f"rung {k} is not in 1..{rungs}")
    if total_steps < 1:
        raise ValueError(f"a schedule of {total_steps} steps")
    return max(1, math.ceil(total_steps / eta ** (rungs - k)))


def promoted_count(n: int, eta: int) -> int:
    """How many of ``n`` hypotheses at a rung go on: ceil(n / eta), at least one (none of none)."""
    return 0 if n <= 0 else max(1, math.ceil(n / eta))


def expected_fraction(n: int, eta: int, rungs: int) -> float:
    """The compute of an iteration of ``n`` hypotheses with halving, as a fraction of training all of them
    to the end (every hypothesis of a rung costs b_k - b_{k-1} steps; S large, so no rounding)."""
    if n <= 0:
        return 0.0
    alive, done, spent = n, 0.0, 0.0
    for k in range(1, rungs + 1):
        end = eta ** -(rungs - k)
        spent += alive * (end - done)
        done = end
        alive = promoted_count(alive, eta)
    return spent / n


@dataclass(frozen=True)
class RungResult:
    hypothesis: str
    attempt: int
    rung: int
    rungs: int
    steps: int  # b_k
    total_steps: int  # S
    top1: float  # percent, the rung's cheap evaluation
    top5: float
    views: int
    eval_videos: int
    train_seconds: float
    clips_seen: int
    per_video: dict[str, Any] = field(default_factory=dict)  # pas_models.predictions.PerVideo ({}: made before)

    def to_dict(self) -> dict[str, Any]:
        from pas_models.train.result import intervals

        return {**asdict(self), "kind": "rung", **intervals(self.top1, self.top5, self.eval_videos)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "rung result") -> RungResult:
        if not isinstance(data, dict) or data.get("kind") != "rung":
            raise RungInvalid(f"{source}: not a rung result (expected an object with kind: rung)")
        values: dict[str, Any] = {}
        for name, typ in cls.__annotations__.items():
            v = data.get(name)
            if name == "per_video":
                values[name] = _per_video(v, f"{source}: per_video")
                continue
            if typ == "str":
                ok = isinstance(v, str)
            elif typ == "int":
                ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
            else:
                ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                      and (name not in ("top1", "top5") or v <= 100))
            if not ok:
                raise RungInvalid(f"{source}: {name}: expected {typ} (>= 0), got {v!r}")
            values[name] = float(v) if typ == "float" else v
        return cls(**values)

    @classmethod
    def read(cls, path: str | Path) -> RungResult:
        return cls.from_dict(load_json(path, RungInvalid), str(Path(path)))


def _per_video(value: Any, where: str) -> dict[str, Any]:
    if value is None or value == {}:
        return {}
    from pas_models.predictions import PerVideo, PredictionsInvalid

    try:
        PerVideo.from_dict(value, where)
    except PredictionsInvalid as exc:
        raise RungInvalid(str(exc)) from None
    return dict(value)
