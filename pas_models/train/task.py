"""What one training job is told: a plain, picklable description (sent to compute nodes by submitit)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pas_models.data.formats import DatasetConfig, hashed_data
from pas_models.halving import Rung
from pas_models.spec import ArchSpec, hashed_form
from pas_models.teacher_cache.config import CacheConfig

SCHEDULES = ("step", "cosine")
TEACHER_BN_MODES = ("train", "eval")
KL_REDUCTIONS = ("mean", "batchmean")  # Distill.kl_reduction (train/loss.py)
AMP_MODES = ("none", "bf16", "fp16")
# recipe keys that say how the step runs, not what it trains: out of every identity hash
ACCEL_KEYS = ("compile", "fused_optimizer", "gpu_decode")
COMPILE_MODES = ("none", "default", "max-autotune-no-cudagraphs", "max-autotune")


@dataclass(frozen=True)
class Recipe:
    """SGD recipe. lr is for ``reference_batch`` clips per step and scales linearly with the real
    total batch; warmup is linear from 0 over ``warmup_epochs``; then ``step`` divides by
    ``step_gamma``^-1 every ``step_epochs`` or ``cosine`` anneals to 0 at ``epochs``."""

    epochs: int = 45
    batch_per_gpu: int = 24
    lr: float = 0.96
    reference_batch: int = 1536
    warmup_epochs: float = 10.0
    schedule: str = "step"
    step_epochs: int = 10
    step_gamma: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    clips_per_video: int = 3
    dropout: float | None = None  # overrides the spec's head dropout when set
    amp: str = "none"  # none | bf16 | fp16 (GPU only)
    channels_last: bool = False  # channels_last_3d memory format (GPU only)
    cudnn_benchmark: bool = True
    sync_bn: bool = False  # SyncBatchNorm across ranks (GPU only; torch refuses it on CPU)
    num_workers: int = 4
    checkpoint_minutes: float = 10.0
    # how the step uses the GPU (pas_models.train.accel); none changes what is trained, so none is in the hash
    compile: str = "none"  # torch.compile mode of the training forward: none | default | max-autotune[-no-cudagraphs]
    fused_optimizer: bool = False  # SGD's fused kernel (GPU and CPU)
    gpu_decode: bool = False  # decode on the GPU (NVDEC, torchcodec) and cut the views there; loader without workers


def recorded_recipe(d: dict[str, Any]) -> dict[str, Any]:
    """A recipe's dict as a definition records it: ``ACCEL_KEYS`` left out at their defaults (definitions recorded
    before those keys existed still match)."""
    defaults = Recipe()
    return {k: v for k, v in d.items() if k not in ACCEL_KEYS or v != getattr(defaults, k)}


@dataclass(frozen=True)
class Distill:
    """Knowledge distillation from the base network: Eq. 7 with temperature t and weight alpha."""

    temperature: float = 5.0
    alpha: float = 500.0
    teacher_bn: str = "train"  # train (paper Table 7) | eval
    teacher_dropout: bool = False  # B's dropout active when it teaches (off: its soft labels are not random)
    kl_reduction: str = "mean"  # mean: over batch and classes (paper's effective weight) | batchmean: Eq. 5
    feature_weight: float = 0.0  # weight of the stage-output loss (paper Table 6); 0 = logits only (the paper's PAS)
    feature_loss: str = "mse"  # mse (after the ReLU) | margin (Heo et al.'s margin ReLU, before it): train.features
    cache: CacheConfig | None = None  # B's soft labels computed once per search (pas_models.teacher_cache)


@dataclass(frozen=True)
class EvalConfig:
    """Multi-view evaluation: ``clips`` uniform clips x ``crops`` (1 or 3) per video, softmax averaged."""

    clips: int = 10
    crops: int = 1
    batch: int = 16
    every_epochs: int = 0  # a quick 1-clip validation every N epochs (TensorBoard, metrics); 0: only the final one
    # measured inference latency (pas_models.measure, one job per iteration of a search that runs alone;
    # `pas train`: at the end of the job): these batch sizes, this many timed passes per round; 0 passes: off
    latency_batches: tuple[int, ...] = (1, 8)
    latency_passes: int = 10
    latency_rounds: int = 3  # a search's measurement job: networks interleaved, this many rounds


@dataclass(frozen=True)
class TrainTask:
    """One hypothesis (or the base network when ``teacher`` is None)."""

    hypothesis: str
    student: ArchSpec
    data: DatasetConfig
    out_dir: str
    teacher: ArchSpec | None = None
    teacher_checkpoint: str | None = None
    parent: ArchSpec | None = None
    parent_checkpoint: str | None = None
    recipe: Recipe = field(default_factory=Recipe)
    distill: Distill = field(default_factory=Distill)
    eval: EvalConfig = field(default_factory=EvalConfig)
    lr_divisor: float = 10.0
    attempt: int = 1
    seed: int = 0
    # latency measured by this job at the end (`pas train`); a search's jobs leave it to its measurement job
    measure_latency: bool = True
    # a halving search: train to the end of this rung only (a prefix of the full schedule), evaluate cheaply,
    # write rung-K.json; None or the last rung: the whole schedule (pas_models.halving)
    rung: Rung | None = None
    # distill.cache: the folder of the search's teacher cache (its shards), read instead of running B
    teacher_cache: str | None = None
    # the seed that cache was made with, where it is not this task's: one imported B's cache teaches every replica
    teacher_cache_seed: int | None = None

    def config_hash(self) -> str:
        """Identity of what is trained (not of where or which attempt): checkpoints of another task are refused."""
        d = asdict(self)
        for key in ("out_dir", "attempt", "hypothesis", "measure_latency", "rung", "teacher_cache"):
            d.pop(key)
        for key in ("student", "teacher", "parent"):
            d[key] = hashed_form(d[key])
        d["data"] = hashed_data(d["data"])
        if d["teacher_cache_seed"] is None:  # the task's own seed: the hash of a task made before the setting
            d.pop("teacher_cache_seed")
        if d["distill"]["cache"] is None:  # a live teacher: the hash of a task made before caches existed
            d["distill"].pop("cache")
        for key, default in (("teacher_dropout", False), ("feature_loss", "mse")):
            if d["distill"][key] == default:  # the default: the hash of a task made before the setting existed
                d["distill"].pop(key)
        d["eval"].pop("latency_rounds")  # none changes what is trained (and old checkpoints keep their hash)
        for key in ACCEL_KEYS:
            d["recipe"].pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
