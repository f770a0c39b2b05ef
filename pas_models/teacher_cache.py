"""The base network's soft labels, computed once per search and read by every hypothesis (``distill.cache``).

B never changes during a search, yet live distillation runs it forward on the full view at every step
of every hypothesis. With a cache, a stage between iteration 0 and iteration 1 runs B once over
``clips_per_video`` (K) training clips per video and stores, per clip, its **recipe** and B's logits:

- recipe: the clip's start frame, its crop box in source pixels and its horizontal flip, drawn exactly
  as a live training clip is (pas_models.data.sampling / transforms) from a generator seeded by
  (seed, video, k); the frame stride and the resize are B's spec (the manifest holds it);
- logits: B's output on that clip (fp16), all of them, or only the ``top_k`` largest with their class
  indices and the mean of the others (a dropped class gets that mean back: the tail of the tempered
  softmax keeps roughly its mass). Logits, not probabilities: the temperature stays a training choice.

B runs in the teacher BN mode of the search: ``train`` normalises with the statistics of the cache
job's batch (``recipe.batch_per_gpu`` clips in a seeded random order over the shard, as live training
batches clips of random videos), ``eval`` with B's stored statistics (then a stored label equals the
live teacher's output on the same clip: tests/test_teacher_cache.py).

The videos are sharded (video i in shard i mod shards), one job per shard, each writing one numpy
``.npz`` file atomically (``runs/NAME/teacher_cache/shard-K-of-N.npz``) and then its ``result.json``:
a killed shard job runs again from the start of its shard, a finished one is never recomputed. Every
shard file carries the manifest it was made for (the training list's hash, B's weights hash, K, top_k,
seed, teacher BN mode, B's spec); a hypothesis refuses shards whose manifest is not its own.

Training with the cache (pas_models.train.run, pas_models.data.dataset): each epoch, each video's clip
is one of its K recipes (a seeded permutation per video and epoch: K distinct clips before any
repeats); the loader decodes only the student's frames of that recipe, crops the recipe's box and
resizes exactly as the live path does, and the KD term uses the stored logits. No teacher network is
built or loaded. The trade-off: K fixed augmentations per video instead of a fresh one every epoch.

The dataclasses and ``load`` are torch-free (the controller builds tasks and reads results);
``run_shard`` and ``CacheJob`` import torch when called.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pas_models.errors import PasError
from pas_models.spec import ArchSpec
from pas_models.strict import load_json

if TYPE_CHECKING:  # numpy (and the data package) where arrays are made: the controller's commands stay light
    import numpy as np

    from pas_models.data.formats import DatasetConfig, Sample

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


# ---------------------------------------------------------------------------------------------- reading


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


# ---------------------------------------------------------------------------------------------- building


def draw_recipe(seed: int, video: int, k: int, num_frames: int, span: int) -> tuple[np.random.Generator, int]:
    """The generator of recipe k of ``video`` and its start frame (the box and flip are drawn next from it,
    once the frame size is known: pas_models.data.transforms.train_box)."""
    import numpy as np

    from pas_models.data.sampling import random_starts

    rng = np.random.default_rng([seed, SALT, 0, video, k])
    return rng, random_starts(num_frames, span, 1, rng)[0]


def run_shard(task: CacheShardTask, device: str | None = None) -> CacheShardResult:
    """Compute one shard (all of it: a shard is the unit that is resumed) and write it atomically, then
    ``result.json``. An existing result is returned as is."""
    import logging
    import socket

    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset

    from pas_models.data.backends import VideoUnreadable, open_video
    from pas_models.data.dataset import ClipLoader
    from pas_models.data.formats import load_video_list
    from pas_models.data.sampling import clip_span, plan_views
    from pas_models.data.transforms import crop_resize, to_clip, train_box
    from pas_models.train.checkpoint import atomic_write, write_json
    from pas_models.train.task import Distill, TrainTask
    from pas_models.train.teacher import build_teacher

    log = logging.getLogger(__name__)
    if task.result_path.exists():
        return CacheShardResult.read(task.result_path)
    t0 = time.monotonic()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    samples = load_video_list(task.data, "train").samples
    cfg, teacher_spec = task.config, task.teacher
    manifest = manifest_for(samples, task.data, teacher_spec, task.teacher_checkpoint, cfg, task.seed,
                            task.teacher_bn, task.teacher_dropout)
    videos = shard_videos(len(samples), task.shard, cfg.shards)
    pairs = [(v, k) for v in videos for k in range(cfg.clips_per_video)]
    order = np.random.default_rng([task.seed, SALT, 2, task.shard]).permutation(len(pairs))  # batches mix videos
    span = clip_span(teacher_spec)
    crop = teacher_spec.crop(True)
    hflip = task.data.hflip

    class Clips(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(pairs)

        def __getitem__(self, i: int) -> dict[str, Any]:
            v, k = pairs[int(order[i])]
            try:
                reader = open_video(samples[v].path, task.data.backend)
                try:
                    n = reader.num_frames
                    rng, start = draw_recipe(task.seed, v, k, n, span)
                    plan = plan_views(teacher_spec, None, start, n)
                    frames = reader.frames(plan.decode)
                finally:
                    reader.close()
            except VideoUnreadable as exc:
                return {"clip": torch.zeros(teacher_spec.input_shape(True)), "video": v, "recipe": k, "start": 0,
                        "box": torch.zeros(4, dtype=torch.int32), "flip": False, "valid": False, "why": exc.reason}
            h, w = frames.shape[1:3]
            b, flip = train_box(h, w, teacher_spec.view, rng)
            flip = flip and hflip
            union = crop_resize(frames, b, crop, flip)
            clip = to_clip(union[list(plan.student)], task.data.mean, task.data.std)
            return {"clip": clip, "video": v, "recipe": k, "start": start,
                    "box": torch.tensor([b.top, b.left, b.height, b.width], dtype=torch.int32), "flip": flip,
                    "valid": True, "why": ""}

    distill = Distill(teacher_bn=task.teacher_bn, teacher_dropout=task.teacher_dropout)
    teacher = build_teacher(TrainTask(hypothesis=task.label, student=teacher_spec, data=task.data,
                                      out_dir=task.out_dir, teacher=teacher_spec,
                                      teacher_checkpoint=task.teacher_checkpoint, distill=distill), dev)
    assert teacher is not None
    loader: DataLoader = ClipLoader(Clips(), batch_size=task.batch, shuffle=False, num_workers=task.num_workers,
                                    pin_memory=dev.type == "cuda")
    out: dict[str, list[Any]] = {k: [] for k in ("video", "recipe", "start", "box", "flip", "logits")}
    bad: dict[int, str] = {}
    teacher_s = 0.0
    last_log = time.monotonic()
    done = 0
    with torch.inference_mode():
        for batch in loader:
            keep = batch["valid"]
            for v, why, ok in zip(batch["video"].tolist(), batch["why"], keep.tolist(), strict=True):
                if ok:
                    continue
                if v not in bad:
                    log.warning("%s: skipping unreadable video %s: %s", task.label, samples[v].path, why)
                bad[v] = why
            if keep.any():
                t = time.monotonic()
                x = batch["clip"][keep].to(dev, non_blocking=True)
                logits = teacher(x).float().cpu()
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                teacher_s += time.monotonic() - t
                for key in ("video", "recipe", "start", "box", "flip"):
                    out[key].append(batch[key][keep])
                out["logits"].append(logits)
            done += len(keep)
            if time.monotonic() - last_log > 30:
                log.info("%s: %d of %d clips", task.label, done, len(pairs))
                last_log = time.monotonic()
    cat = {k: (torch.cat(v).numpy() if v else None) for k, v in out.items()}
    rows = {"video": cat["video"], "recipe": cat["recipe"], "start": cat["start"], "box": cat["box"],
            "flip": cat["flip"]}
    if cat["video"] is None:
        rows = {"video": np.zeros(0, np.int32), "recipe": np.zeros(0, np.int16), "start": np.zeros(0, np.int32),
                "box": np.zeros((0, 4), np.int32), "flip": np.zeros(0, bool)}
    # a video is kept whole or not at all: one unreadable clip drops the video's every recipe
    keep_rows = ~np.isin(rows["video"], list(bad)) if bad else np.ones(len(rows["video"]), bool)
    arrays: dict[str, np.ndarray] = {
        "video": rows["video"][keep_rows].astype(np.int32), "recipe": rows["recipe"][keep_rows].astype(np.int16),
        "start": rows["start"][keep_rows].astype(np.int32), "box": rows["box"][keep_rows].astype(np.int32),
        "flip": rows["flip"][keep_rows].astype(bool)}
    full = cat["logits"][keep_rows] if cat["logits"] is not None else np.zeros((0, teacher_spec.num_classes),
                                                                                np.float32)
    if cfg.top_k is None or cfg.top_k >= full.shape[1]:
        arrays["logits"] = full.astype(np.float16)
    else:
        idx = np.argsort(-full, axis=1, kind="stable")[:, :cfg.top_k]
        arrays["indices"] = idx.astype(np.int32)
        arrays["logits"] = np.take_along_axis(full, idx, axis=1).astype(np.float16)
        dropped = full.shape[1] - cfg.top_k
        arrays["rest"] = ((full.sum(axis=1) - np.take_along_axis(full, idx, axis=1).sum(axis=1)) / dropped
                          ).astype(np.float16)
    arrays["unreadable"] = np.array(sorted(bad), np.int32)
    arrays["manifest"] = np.array(json.dumps(manifest.to_dict(), sort_keys=True))
    path = task.shard_path
    atomic_write(path, lambda fh: np.savez(fh, **arrays))  # a killed job leaves no torn shard
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    result = CacheShardResult(task.label, task.attempt, task.shard, cfg.shards, str(path), len(videos),
                              int(keep_rows.sum()), len(bad), path.stat().st_size, time.monotonic() - t0,
                              teacher_s, f"{name} on {socket.gethostname()}")
    log.info("%s: %d clips of %d videos (%d unreadable), %.3g MB, %.1f s (B: %.1f s)", task.label, result.clips,
             result.videos, result.unreadable, result.bytes / 1e6, result.seconds, teacher_s)
    Path(task.out_dir).mkdir(parents=True, exist_ok=True)
    write_json(result.to_dict(), task.result_path)
    return result


class CacheJob:
    """The callable submitit runs for one shard (a requeue simply computes the shard again)."""

    def __call__(self, task: CacheShardTask) -> CacheShardResult:
        import logging

        os.makedirs(task.out_dir, exist_ok=True)
        pkg = logging.getLogger("pas_models")
        handler = logging.FileHandler(Path(task.out_dir) / "cache.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        pkg.addHandler(handler)
        pkg.setLevel(logging.INFO)
        try:
            return run_shard(task)
        finally:
            pkg.removeHandler(handler)
            handler.close()

