"""The cache stage's shard job: B over K recipes of every video of one shard, written atomically as one
``.npz`` file, then ``result.json`` (torch: on the node only).

``run_shard`` in four steps: the clips to compute (``_ShardClips``, a seeded order that mixes videos in a
batch), B's logits over them (``_teacher_logits``: unreadable videos noted, not fatal), the arrays of the
shard file (``_shard_arrays``: a video kept whole or not at all, logits all or top-k), and the files.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pas_models.data.backends import VideoUnreadable, effective_backend, open_video
from pas_models.data.dataset import ClipLoader, gpu_decode_device
from pas_models.data.formats import Sample, load_video_list
from pas_models.data.sampling import clip_span, plan_views
from pas_models.data.transforms import crop_resize, to_clip, train_box
from pas_models.layout import HypFiles
from pas_models.spec import ArchSpec
from pas_models.teacher_cache.clips import Manifest, draw_recipe, manifest_for
from pas_models.teacher_cache.config import SALT, CacheConfig, CacheShardResult, CacheShardTask, shard_videos
from pas_models.train.checkpoint import atomic_write, write_json
from pas_models.train.frame import job_log
from pas_models.train.task import Distill, TrainTask
from pas_models.train.teacher import build_teacher

log = logging.getLogger(__name__)
ROWS = ("video", "recipe", "start", "box", "flip")  # a stored clip's recipe (with its logits)


class _ShardClips(Dataset):  # type: ignore[type-arg]
    """The (video, recipe) pairs of a shard in a seeded order, each decoded and cropped as its recipe says
    (an unreadable video gives an invalid item with the reason, not an error)."""

    def __init__(self, task: CacheShardTask, samples: list[Sample], decode_device: str = "cpu") -> None:
        self.task, self.samples, self.spec = task, samples, task.teacher
        # resolved once here, not by each forked worker (auto imports torchcodec to see whether it loads)
        self.backend = effective_backend(task.data.backend)
        self.decode_device = gpu_decode_device(decode_device, self.backend)
        cfg = task.config
        self.pairs = [(v, k) for v in shard_videos(len(samples), task.shard, cfg.shards)
                      for k in range(cfg.clips_per_video)]
        self.order = np.random.default_rng([task.seed, SALT, 2, task.shard]).permutation(len(self.pairs))
        self.span, self.crop = clip_span(self.spec), self.spec.crop(True)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        v, k = self.pairs[int(self.order[i])]
        task, spec = self.task, self.spec
        try:
            reader = open_video(self.samples[v].path, self.backend, self.decode_device)
            try:
                n = reader.num_frames
                rng, start = draw_recipe(task.seed, v, k, n, self.span)
                plan = plan_views(spec, None, start, n)
                frames = reader.frames(plan.decode)
            finally:
                reader.close()
        except VideoUnreadable as exc:
            return {"clip": torch.zeros(spec.input_shape(True), device=self.decode_device), "video": v, "recipe": k,
                    "start": 0, "box": torch.zeros(4, dtype=torch.int32), "flip": False, "valid": False,
                    "why": exc.reason}
        if self.decode_device != "cpu" and isinstance(frames, np.ndarray):  # a file the CPU decoded
            frames = torch.from_numpy(frames).to(self.decode_device)
        h, w = frames.shape[1:3]
        b, flip = train_box(h, w, spec.view, rng)
        flip = flip and task.data.hflip
        union = crop_resize(frames, b, self.crop, flip)
        clip = to_clip(union[list(plan.student)], task.data.mean, task.data.std)
        return {"clip": clip, "video": v, "recipe": k, "start": start,
                "box": torch.tensor([b.top, b.left, b.height, b.width], dtype=torch.int32), "flip": flip,
                "valid": True, "why": ""}


@dataclass
class _Computed:
    """B's logits over the readable clips of a shard, with their recipes, and the videos that could not be read."""

    parts: dict[str, list[torch.Tensor]] = field(default_factory=lambda: {k: [] for k in (*ROWS, "logits")})
    bad: dict[int, str] = field(default_factory=dict)  # video -> why it could not be read
    teacher_s: float = 0.0  # B's forward passes, seconds

    def add(self, batch: dict[str, Any], logits: torch.Tensor, keep: torch.Tensor) -> None:
        for key in ROWS:
            self.parts[key].append(batch[key][keep])
        self.parts["logits"].append(logits)


def _teacher_logits(task: CacheShardTask, clips: _ShardClips, dev: torch.device) -> _Computed:
    distill = Distill(teacher_bn=task.teacher_bn, teacher_dropout=task.teacher_dropout)
    teacher = build_teacher(TrainTask(hypothesis=task.label, student=task.teacher, data=task.data,
                                      out_dir=task.out_dir, teacher=task.teacher,
                                      teacher_checkpoint=task.teacher_checkpoint, distill=distill), dev)
    assert teacher is not None
    on_gpu = clips.decode_device != "cpu"  # items made on the GPU, in this process
    loader = ClipLoader(clips, batch_size=task.batch, shuffle=False, num_workers=0 if on_gpu else task.num_workers,
                        pin_memory=dev.type == "cuda" and not on_gpu)
    out = _Computed()
    last_log, done = time.monotonic(), 0
    with torch.inference_mode():
        for batch in loader:
            keep = batch["valid"]
            for v, why, ok in zip(batch["video"].tolist(), batch["why"], keep.tolist(), strict=True):
                if not ok and v not in out.bad:
                    log.warning("%s: skipping unreadable video %s: %s", task.label, clips.samples[v].path, why)
                if not ok:
                    out.bad[v] = why
            if keep.any():
                t = time.monotonic()
                logits = teacher(batch["clip"][keep].to(dev, non_blocking=True)).float().cpu()
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                out.teacher_s += time.monotonic() - t
                out.add(batch, logits, keep)
            done += len(keep)
            if time.monotonic() - last_log > 30:
                log.info("%s: %d of %d clips", task.label, done, len(clips))
                last_log = time.monotonic()
    return out


def _shard_arrays(computed: _Computed, cfg: CacheConfig, teacher: ArchSpec, manifest: Manifest
                  ) -> dict[str, np.ndarray]:
    """The shard file's arrays: a video is kept whole or not at all (one unreadable clip drops its every recipe);
    logits all, or the ``top_k`` largest with their classes and the mean of the others."""
    empty = {"video": np.zeros(0, np.int32), "recipe": np.zeros(0, np.int16), "start": np.zeros(0, np.int32),
             "box": np.zeros((0, 4), np.int32), "flip": np.zeros(0, bool)}
    rows = {k: torch.cat(computed.parts[k]).numpy() for k in ROWS} if computed.parts["video"] else empty
    bad = computed.bad
    keep = ~np.isin(rows["video"], list(bad)) if bad else np.ones(len(rows["video"]), bool)
    arrays: dict[str, np.ndarray] = {
        "video": rows["video"][keep].astype(np.int32), "recipe": rows["recipe"][keep].astype(np.int16),
        "start": rows["start"][keep].astype(np.int32), "box": rows["box"][keep].astype(np.int32),
        "flip": rows["flip"][keep].astype(bool)}
    full = (torch.cat(computed.parts["logits"]).numpy()[keep] if computed.parts["logits"]
            else np.zeros((0, teacher.num_classes), np.float32))
    if cfg.top_k is None or cfg.top_k >= full.shape[1]:
        arrays["logits"] = full.astype(np.float16)
    else:
        idx = np.argsort(-full, axis=1, kind="stable")[:, :cfg.top_k]
        top = np.take_along_axis(full, idx, axis=1)
        arrays["indices"] = idx.astype(np.int32)
        arrays["logits"] = top.astype(np.float16)
        arrays["rest"] = ((full.sum(axis=1) - top.sum(axis=1)) / (full.shape[1] - cfg.top_k)).astype(np.float16)
    arrays["unreadable"] = np.array(sorted(bad), np.int32)
    arrays["manifest"] = np.array(json.dumps(manifest.to_dict(), sort_keys=True))
    return arrays


def run_shard(task: CacheShardTask, device: str | None = None) -> CacheShardResult:
    """Compute one shard (all of it: a shard is the unit that is resumed) and write it atomically, then
    ``result.json``. An existing result is returned as is."""
    if task.result_path.exists():
        return CacheShardResult.read(task.result_path)
    t0 = time.monotonic()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    samples = load_video_list(task.data, "train").samples
    manifest = manifest_for(samples, task.data, task.teacher, task.teacher_checkpoint, task.config, task.seed,
                            task.teacher_bn, task.teacher_dropout)
    clips = _ShardClips(task, samples, str(dev) if task.gpu_decode and dev.type == "cuda" else "cpu")
    computed = _teacher_logits(task, clips, dev)
    arrays = _shard_arrays(computed, task.config, task.teacher, manifest)
    path = task.shard_path
    atomic_write(path, lambda fh: np.savez(fh, **arrays))  # a killed job leaves no torn shard
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    videos = len(shard_videos(len(samples), task.shard, task.config.shards))
    result = CacheShardResult(task.label, task.attempt, task.shard, task.config.shards, str(path), videos,
                              len(arrays["video"]), len(computed.bad), path.stat().st_size, time.monotonic() - t0,
                              computed.teacher_s, f"{name} on {socket.gethostname()}")
    log.info("%s: %d clips of %d videos (%d unreadable), %.3g MB, %.1f s (B: %.1f s)", task.label, result.clips,
             result.videos, result.unreadable, result.bytes / 1e6, result.seconds, computed.teacher_s)
    Path(task.out_dir).mkdir(parents=True, exist_ok=True)
    write_json(result.to_dict(), task.result_path)
    return result


class CacheJob:
    """The callable submitit runs for one shard (a requeue simply computes the shard again)."""

    def __call__(self, task: CacheShardTask) -> CacheShardResult:
        os.makedirs(task.out_dir, exist_ok=True)
        with job_log(HypFiles(Path(task.out_dir)), main=True):  # the folder's train.log, as a training's
            return run_shard(task)
