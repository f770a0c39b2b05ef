"""What a supernet job is told and what it writes (torch-free: the controller builds and reads them).

``GradientConfig`` is the search definition's ``gradient:`` block; ``SupernetResult`` is
``supernet.json``, the job's last write, validated when read (one line naming the file and the key).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pas_models.data.formats import DatasetConfig, hashed_data
from pas_models.errors import PasError
from pas_models.spec import ArchSpec, hashed_form
from pas_models.train.task import ACCEL_KEYS, Distill, Recipe
from pas_models.typed_data import from_data, load_json


class SupernetResultInvalid(PasError):
    """A supernet.json that is not whole and well typed."""


@dataclass(frozen=True)
class GradientConfig:
    """The gradient strategy (``strategy: gradient``), per target GFLOPs one supernet training.

    epochs: the supernet's training length (weights and architecture parameters alternate per step).
    cycles: cosine learning-rate cycles with warm restarts; the most likely architecture at the end of
        each cycle is a candidate (1: one candidate, no diversity mechanism).
    arch_lr: Adam's learning rate for the architecture parameters (betas 0.5, 0.999; weight decay 1e-3).
    penalty: weight of (log(E[GFLOPs] / target))^2 in the architecture loss.
    tau_max, tau_min: the Gumbel-softmax temperature, annealed exponentially within each cycle.
    holdout: the fraction of the training videos the architecture steps use (the weights never see them;
        the validation set is never used by the search).
    warmup: the fraction of the first cycle in which only the weights train (architectures sampled
        uniformly).
    candidate_fraction: each candidate trains this fraction of the recipe's schedule (a prefix: the best
        one continues to the end); the halving rungs when ``halving:`` is set.
    lr_divisor: the supernet's weights train at the recipe's lr / lr_divisor (initialised from B; with
        ``candidate_init: supernet`` the candidates too).
    grad_clip: the weights' gradients are clipped to this norm at each step (DARTS's 5; 0: not clipped).
    candidate_init: how a candidate starts its training: ``supernet`` (its weights cut from the supernet at
        the end of its cycle, at lr / lr_divisor) or ``pas`` (PAS's own rule on the derived network: B's
        weights at lr / finetune.lr_divisor where its shapes allow, kt 1 taking the centre tap, else random
        weights at the recipe's lr; the supernet only chooses the architecture).
    """

    targets_gflops: tuple[float, ...] = ()
    epochs: int = 30
    cycles: int = 3
    arch_lr: float = 3.0e-4
    penalty: float = 1.0
    tau_max: float = 5.0
    tau_min: float = 0.5
    holdout: float = 0.2
    warmup: float = 0.1
    candidate_fraction: float = 0.25
    lr_divisor: float = 10.0
    grad_clip: float = 5.0
    candidate_init: str = "supernet"


@dataclass(frozen=True)
class SupernetTask:
    """One supernet training: B (its spec and weights), the target, the data and the recipes."""

    hypothesis: str
    base: ArchSpec
    base_checkpoint: str
    target_gflops: float
    data: DatasetConfig
    out_dir: str
    recipe: Recipe = field(default_factory=Recipe)
    distill: Distill = field(default_factory=Distill)
    gradient: GradientConfig = field(default_factory=GradientConfig)
    seed: int = 0
    attempt: int = 1

    def config_hash(self) -> str:
        d = asdict(self)
        for key in ("out_dir", "attempt", "hypothesis"):
            d.pop(key)
        d["base"] = hashed_form(d["base"])
        d["data"] = hashed_data(d["data"])
        for key, default in (("teacher_dropout", False), ("feature_loss", "mse")):
            if d["distill"][key] == default:  # the default: the hash of a task made before the setting existed
                d["distill"].pop(key)
        for key in ACCEL_KEYS:  # how the step runs, not what it trains
            d["recipe"].pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Candidate:
    """The most likely architecture at the end of one cycle."""

    cycle: int  # 1-based
    arch: tuple[int, ...]  # one choice index per decision (SearchSpace order)
    code: str
    description: str
    gflops: float  # exact, per view at the test view
    expected_gflops: float  # under the distribution at that moment
    probability: float  # of this architecture under that distribution
    spec: dict[str, Any]  # ArchSpec.to_dict()
    weights: str  # its weights cut from the supernet at that moment (a model.pt: model + spec)


@dataclass(frozen=True)
class SupernetResult:
    hypothesis: str
    attempt: int
    target_gflops: float
    candidates: tuple[Candidate, ...]  # one per cycle, in order (equal architectures repeat)
    decisions: tuple[str, ...]
    probabilities: tuple[tuple[float, ...], ...]  # per decision, at the end
    space_size: int
    cost_error: float  # the cost table against fvcore on whole derived networks (largest relative error)
    weight_steps: int
    arch_steps: int
    train_seconds: float
    clips_seen: int
    versions: dict[str, str]

    @property
    def distinct(self) -> list[Candidate]:
        """The candidates with distinct architectures, first occurrence each."""
        seen: set[str] = set()
        out = []
        for c in self.candidates:
            if c.code not in seen:
                seen.add(c.code)
                out.append(c)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": "supernet"}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "supernet result") -> SupernetResult:
        if not isinstance(data, dict) or data.get("kind") != "supernet":
            raise SupernetResultInvalid(f"{source}: not a supernet result (expected an object with kind: supernet)")
        return from_data(cls, {k: v for k, v in data.items() if k != "kind"}, source, SupernetResultInvalid)

    @classmethod
    def read(cls, path: str | Path) -> SupernetResult:
        return cls.from_dict(load_json(path, SupernetResultInvalid), str(Path(path)))
