"""Reading a teacher cache: the manifest a cache was made for, every shard in memory (``CachedClips``, numpy), and
the recipe draw a shard job and a training share."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pas_models.spec import ArchSpec
from pas_models.teacher_cache.config import FORMAT, SALT, CacheConfig, CacheInvalid, shard_name

if TYPE_CHECKING:  # numpy (and the data package) where arrays are made: the controller's commands stay light
    import numpy as np

    from pas_models.data.formats import DatasetConfig, Sample


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_hash(samples: Sequence[Sample], data: DatasetConfig) -> str:
    """What the teacher saw: the training videos in order (path, label) and the input normalisation."""
    h = hashlib.sha256()
    h.update(json.dumps({"mean": list(data.mean), "std": list(data.std), "hflip": data.hflip}).encode())
    for s in samples:
        h.update(f"\n{s.path}\t{s.label}".encode())
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class Manifest:
    """What a cache was made for: a hypothesis refuses a shard whose manifest differs from its own."""

    dataset: str  # dataset_hash of the training list
    videos: int
    teacher_weights: str  # sha256 of B's weights file
    teacher: str  # B's spec (JSON)
    clips_per_video: int
    top_k: int | None
    seed: int
    teacher_bn: str
    shards: int
    teacher_dropout: bool = False
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: Manifest) -> list[str]:
        mine, theirs = self.to_dict(), other.to_dict()
        out = []
        for k in mine:
            if mine[k] != theirs[k]:
                a, b = str(theirs[k]), str(mine[k])
                out.append(f"{k}: {a[:40]} (cache) != {b[:40]} (this training)" if k in ("teacher", "dataset",
                           "teacher_weights") else f"{k}: {theirs[k]} (cache) != {mine[k]} (this training)")
        return out


def manifest_for(samples: Sequence[Sample], data: DatasetConfig, teacher: ArchSpec, teacher_checkpoint: str,
                 config: CacheConfig, seed: int, teacher_bn: str, teacher_dropout: bool = False) -> Manifest:
    return Manifest(dataset_hash(samples, data), len(samples), file_sha256(teacher_checkpoint), teacher.to_json(),
                    config.clips_per_video, config.top_k, seed, teacher_bn, config.shards, teacher_dropout)





@dataclass
class CachedClips:
    """Every shard of a cache, in memory (numpy; shared copy-on-write by forked loader workers).

    Row ``video * K + k`` is recipe k of that video; ``valid`` is False for the rows of an unreadable video.
    """

    manifest: Manifest
    start: np.ndarray  # int32 [V*K]
    box: np.ndarray  # int32 [V*K, 4]: top, left, height, width in source pixels
    flip: np.ndarray  # bool [V*K]
    logits: np.ndarray  # float16 [V*K, C] or [V*K, top_k]
    indices: np.ndarray | None  # int32 [V*K, top_k] (None: logits hold every class)
    rest: np.ndarray | None  # float16 [V*K]: the mean of the dropped logits
    valid: np.ndarray  # bool [V*K]
    classes: int

    @property
    def k(self) -> int:
        return self.manifest.clips_per_video

    @functools.cached_property
    def teacher(self) -> ArchSpec:
        return ArchSpec.from_json(self.manifest.teacher)

    def unreadable_videos(self) -> list[int]:
        import numpy as np

        per_video = self.valid.reshape(-1, self.k).any(axis=1)
        return [int(v) for v in np.flatnonzero(~per_video)]

    def row(self, video: int, k: int) -> int:
        return video * self.k + k

    def soft(self, row: int) -> np.ndarray:
        """B's logits for that clip as a dense float32 vector over the classes."""
        import numpy as np

        if self.indices is None:
            return self.logits[row].astype(np.float32)
        assert self.rest is not None
        out = np.full(self.classes, float(self.rest[row]), dtype=np.float32)
        out[self.indices[row]] = self.logits[row].astype(np.float32)
        return out

    def recipe_for(self, video: int, clip: int, epoch: int, seed: int) -> int:
        """The row clip ``clip`` of ``video`` uses in ``epoch``: K distinct recipes before any repeats."""
        import numpy as np

        perm = np.random.default_rng([seed, SALT, 1, epoch, video]).permutation(self.k)
        return self.row(video, int(perm[clip % self.k]))


def load(cache_dir: str | os.PathLike[str], expected: Manifest) -> CachedClips:
    """Every shard of the cache at ``cache_dir``, checked against ``expected`` (one line naming the file and
    what differs, or what is missing)."""
    import numpy as np

    root = Path(cache_dir)
    v, k = expected.videos, expected.clips_per_video
    n = v * k
    start = np.zeros(n, np.int32)
    box = np.zeros((n, 4), np.int32)
    flip = np.zeros(n, bool)
    valid = np.zeros(n, bool)
    logits: np.ndarray | None = None
    indices: np.ndarray | None = None
    rest: np.ndarray | None = None
    classes = ArchSpec.from_json(expected.teacher).num_classes
    for s in range(expected.shards):
        path = root / shard_name(s, expected.shards)
        if not path.is_file():
            raise CacheInvalid(f"{path}: teacher cache shard missing (the cache stage of the search did not finish)")
        try:
            with np.load(path, allow_pickle=False) as z:
                got = Manifest(**json.loads(str(z["manifest"])))
                diff = expected.differences(got)
                if diff:
                    raise CacheInvalid(f"{path}: made for another B or dataset: " + "; ".join(diff))
                rows = z["video"].astype(np.int64) * k + z["recipe"].astype(np.int64)
                if rows.size and (rows.min() < 0 or rows.max() >= n):
                    raise CacheInvalid(f"{path}: rows outside the {v} videos x {k} recipes of the manifest")
                start[rows], box[rows], flip[rows], valid[rows] = z["start"], z["box"], z["flip"], True
                if logits is None:
                    logits = np.zeros((n, z["logits"].shape[1]), np.float16)
                    if "indices" in z:
                        indices = np.zeros((n, z["indices"].shape[1]), np.int32)
                        rest = np.zeros(n, np.float16)
                logits[rows] = z["logits"]
                if indices is not None and rest is not None:
                    indices[rows], rest[rows] = z["indices"], z["rest"]
        except CacheInvalid:
            raise
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise CacheInvalid(f"{path}: not a readable teacher cache shard ({exc.__class__.__name__}: {exc}); "
                               "delete it and run the search again to remake it") from None
    if logits is None:
        logits = np.zeros((n, classes), np.float16)
    return CachedClips(expected, start, box, flip, logits, indices, rest, valid, classes)



def draw_recipe(seed: int, video: int, k: int, num_frames: int, span: int) -> tuple[np.random.Generator, int]:
    """The generator of recipe k of ``video`` and its start frame (the box and flip are drawn next from it,
    once the frame size is known: pas_models.data.transforms.train_box)."""
    import numpy as np

    from pas_models.data.sampling import random_starts

    rng = np.random.default_rng([seed, SALT, 0, video, k])
    return rng, random_starts(num_frames, span, 1, rng)[0]


