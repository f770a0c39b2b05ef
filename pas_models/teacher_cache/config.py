"""The teacher cache's configuration, a shard job's task and its result: torch- and numpy-free (the controller
builds tasks and reads results)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pas_models.errors import PasError
from pas_models.spec import ArchSpec
from pas_models.typed_data import load_json

if TYPE_CHECKING:
    from pas_models.data.formats import DatasetConfig

FORMAT = 2  # of the shard files (2: teacher_dropout recorded; 1 made B's soft labels with its dropout on)
SALT = 0x7EAC4E  # separates the cache's clip draws from every other use of the seed


class CacheInvalid(PasError):
    """A teacher cache that is missing, incomplete, unreadable or made for another B or dataset."""


@dataclass(frozen=True)
class CacheConfig:
    """``distill.cache``: K recipes per training video, logits kept (all, or the ``top_k`` largest), shards."""

    clips_per_video: int = 8
    top_k: int | None = None
    shards: int = 4


def shard_name(shard: int, shards: int) -> str:
    return f"shard-{shard:03d}-of-{shards:03d}.npz"


def shard_videos(num_videos: int, shard: int, shards: int) -> list[int]:
    return list(range(shard, num_videos, shards))


@dataclass(frozen=True)
class CacheShardTask:
    """One shard of the cache: B over K recipes of every video of the shard."""

    label: str  # e.g. "0-cache-2"
    out_dir: str  # the job's folder (result.json, log)
    cache_dir: str  # where the shard files go (runs/NAME/teacher_cache)
    shard: int
    teacher: ArchSpec
    teacher_checkpoint: str
    data: DatasetConfig
    config: CacheConfig = field(default_factory=CacheConfig)
    teacher_bn: str = "train"
    batch: int = 16  # clips per forward pass (train BN mode: the statistics of this many clips)
    num_workers: int = 2
    seed: int = 0
    attempt: int = 1
    teacher_dropout: bool = False
    gpu_decode: bool = False  # the search's recipe.gpu_decode: NVDEC decodes on a GPU node (no loader workers)

    @property
    def result_path(self) -> Path:
        return Path(self.out_dir) / "result.json"

    @property
    def shard_path(self) -> Path:
        return Path(self.cache_dir) / shard_name(self.shard, self.config.shards)


@dataclass(frozen=True)
class CacheShardResult:
    label: str
    attempt: int
    shard: int
    shards: int
    path: str
    videos: int  # videos of the shard
    clips: int  # clips stored
    unreadable: int  # videos of the shard that could not be read (no recipes: training skips them)
    bytes: int  # size of the shard file
    seconds: float  # wall time of the job's work
    teacher_seconds: float  # of which B's forward passes
    device: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": "teacher_cache"}

    @classmethod
    def from_dict(cls, data: Any, source: str = "result") -> CacheShardResult:
        if not isinstance(data, dict) or data.get("kind") != "teacher_cache":
            raise CacheInvalid(f"{source}: not a teacher cache shard result (expected kind: teacher_cache)")
        types = {"label": str, "attempt": int, "shard": int, "shards": int, "path": str, "videos": int,
                 "clips": int, "unreadable": int, "bytes": int, "seconds": (int, float),
                 "teacher_seconds": (int, float), "device": str}
        for key, typ in types.items():
            v = data.get(key)
            if not isinstance(v, typ) or isinstance(v, bool):  # type: ignore[arg-type]
                raise CacheInvalid(f"{source}: {key}: expected {typ}, got {v!r}")
        return cls(**{k: data[k] for k in types})

    @classmethod
    def read(cls, path: str | Path) -> CacheShardResult:
        return cls.from_dict(load_json(path, CacheInvalid), str(Path(path)))


