"""Clips for training and evaluation, with the teacher's full view and the student's reduced view.

One item is one clip of one video::

    plan_views(student, teacher, start)  -> frames to decode (the union of both views)
    reader.frames(plan.decode)           -> one decode (one get_batch)
    crop_resize(union, box, teacher crop)-> the teacher's view; the student's view is its
                                            selected frames of the same box, resized to the
                                            student's crop (both in uint8, then normalised)

Unreadable videos (missing, empty, a folder, corrupt, truncated, wrong container)
are skipped, never a crash. A video that fails once is excluded for the rest of the
run: the exclusion is a flag in shared memory, made by the main process and seen by
every DataLoader worker of every epoch (workers are new processes each epoch), so it
is logged once with its path and reason, and a partially corrupt video is not used
again in a later epoch after one of its clips failed. ``exclude(ids)`` restores the
flags on resume. The item carries the ids of the videos skipped to produce it
(``skipped``), which ``collate_clips`` gathers so the training job can count distinct
ones. Training replaces a bad video by the next readable one (a scan bounded by the
dataset size: no infinite loop); evaluation returns the item with ``valid = False``
and the evaluation leaves out every video with an invalid view (used whole or not at
all). A dataset with no readable video at all raises ``NoReadableVideo`` with one line.

``decode_device="cuda"`` (torchcodec only): frames are decoded by the GPU's NVDEC and every view is cut,
resized and normalised there, so items are tensors on that GPU; such a dataset is read in the process that
owns the GPU (a loader with no workers: CUDA does not survive a fork). The same frames, boxes and flips as on
the CPU; the pixels differ by the colour conversion's rounding (NVDEC's NV12 -> RGB is not swscale's) and
by at most one level from the resize (``transforms.resize_frames``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from pas_models.data.backends import VideoUnreadable, effective_backend, open_video
from pas_models.data.errors import check_file
from pas_models.data.formats import Sample
from pas_models.data.sampling import plan_views, random_starts, uniform_starts, views_span
from pas_models.data.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    Box,
    crop_resize,
    eval_boxes,
    to_clip,
    train_box,
)
from pas_models.errors import PasError
from pas_models.spec import ArchSpec

log = logging.getLogger(__name__)


class NoReadableVideo(PasError):
    """Every video of a dataset is unreadable."""


class ClipDataset(Dataset):
    """Clips of ``samples`` for ``student`` (and ``teacher``, when distilling).

    train=True: ``clips`` random clips per video per epoch (temporal jitter, random
    resize and crop, horizontal flip unless hflip=False); call ``set_epoch`` so each epoch draws new clips.
    train=False: ``clips`` uniformly spaced clips x ``crops`` (1 centre or 3) per video.
    Items: student (3, T, S, S), teacher (3, T', S', S') when a teacher is given, label,
    video (index into samples), valid (bool), skipped (tuple of video ids).

    cache (train=True, no teacher): clips are the teacher cache's recipes (pas_models.teacher_cache): each
    epoch clip c of a video is one of its K recorded clips (start, box, flip), only the student's frames
    are decoded, and the item carries B's stored logits as ``soft`` (float32, one per class).
    """

    def __init__(self, samples: Sequence[Sample], student: ArchSpec, teacher: ArchSpec | None = None, *,
                 train: bool, clips: int = 1, crops: int = 1, backend: str = "auto",
                 mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD, hflip: bool = True,
                 seed: int = 0, cache: Any = None, decode_device: str = "cpu") -> None:
        if not samples:
            raise NoReadableVideo("the dataset lists no videos")
        if cache is not None and (not train or teacher is not None):
            raise ValueError("a teacher cache replaces the teacher's view of training clips: train=True, no teacher")
        self.cache = cache  # pas_models.teacher_cache.CachedClips
        self.samples = list(samples)
        self.student, self.teacher = student, teacher
        self.train, self.clips, self.crops = train, clips, (1 if train else crops)
        # resolved here (auto imports torchcodec to see whether it loads: 1.3-1.8 s), not in each forked worker
        self.backend = effective_backend(backend)
        self.decode_device = gpu_decode_device(decode_device, self.backend)
        self.mean, self.std, self.hflip, self.seed = tuple(mean), tuple(std), hflip, seed
        self.epoch = 0
        self.span = views_span(student, teacher)
        self._bad: dict[int, str] = {}  # reasons this process knows: video id -> reason
        self._excluded = torch.zeros(len(self.samples), dtype=torch.uint8).share_memory_()  # every process
        # test-and-set of _excluded across DataLoader workers (forked: they inherit it), so that two workers
        # finding the same bad video at once warn once
        self._lock: Any = multiprocessing.get_context("fork").Lock()
        for i, s in enumerate(self.samples):  # cheap checks up front; decoding errors are found lazily
            try:
                check_file(s.path)
            except VideoUnreadable as exc:
                self._mark_bad(i, exc.reason)
        if len(self._bad) == len(self.samples):
            raise NoReadableVideo(f"none of the {len(self.samples)} videos is a non-empty file "
                                  f"(first: {self.samples[0].path}: {self._bad[0]}); run `pas data check`")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples) * self.clips * self.crops

    @property
    def skipped_videos(self) -> dict[int, str]:
        """Videos excluded so far by any process: id -> reason (where this process knows it)."""
        return {int(i): self._bad.get(int(i), "unreadable") for i in self._excluded.nonzero().flatten()}

    def exclude(self, videos: Sequence[int], reason: str = "unreadable earlier in this run") -> None:
        """Exclude ``videos`` (ids) for the rest of the run, e.g. those a resumed run had found."""
        for v in videos:
            self._bad.setdefault(int(v), reason)
            self._excluded[int(v)] = 1

    def _mark_bad(self, video: int, reason: str) -> None:
        self._bad.setdefault(video, reason)
        with self._lock or contextlib.nullcontext():
            first = not self._excluded[video]
            self._excluded[video] = 1
        if first:
            log.warning("skipping unreadable video %s: %s", self.samples[video].path, reason)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a worker started by spawn, not fork): without the lock, which only forks inherit."""
        state = self.__dict__.copy()
        state["_lock"] = None
        return state

    def __getitem__(self, index: int) -> dict[str, Any]:
        video, rest = divmod(index, self.clips * self.crops)
        clip, crop = divmod(rest, self.crops)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        skipped: list[int] = []
        for attempt in range(len(self.samples)):
            vid = (video + attempt) % len(self.samples)
            if self._excluded[vid]:
                skipped.append(vid)
            else:
                try:
                    item = self._load(vid, clip, crop, rng)
                    return {**item, "valid": True, "skipped": tuple(skipped)}
                except VideoUnreadable as exc:
                    self._mark_bad(vid, exc.reason)
                    skipped.append(vid)
            if not self.train:  # evaluation never substitutes another video
                return {**self._placeholder(video), "valid": False, "skipped": tuple(skipped)}
        raise NoReadableVideo(f"all {len(self.samples)} videos are unreadable (e.g. "
                              f"{self.samples[video].path}: {self._bad.get(video, 'unreadable')}); "
                              "run `pas data check` on the dataset")

    def _load(self, vid: int, clip: int, crop: int, rng: np.random.Generator) -> dict[str, Any]:
        if self.cache is not None:
            return self._load_cached(vid, clip)
        def start_of(n: int) -> int:
            if self.train:
                return int(random_starts(n, self.span, 1, rng)[0])
            return int(uniform_starts(n, self.span, self.clips)[clip])

        frames, plan = self._decode(vid, start_of, self.teacher)
        h, w = frames.shape[1:3]
        geometry = (self.teacher or self.student).view
        if self.train:
            box, flip = train_box(h, w, geometry, rng)
            flip = flip and self.hflip
        else:
            box, flip = eval_boxes(h, w, geometry, self.crops)[crop], False
        return self._cut(vid, frames, plan, box, flip)

    def clip_at(self, vid: int, start: int, box: Box, flip: bool) -> dict[str, Any]:
        """The views of ``vid``'s clip with this start frame, crop box and flip (e.g. a teacher cache's recipe,
        to compare the cached path with the live one)."""
        frames, plan = self._decode(vid, lambda n: start, self.teacher)
        return self._cut(vid, frames, plan, box, flip)

    def _decode(self, vid: int, start_of: Any, teacher: ArchSpec | None) -> tuple[Any, Any]:
        """(frames of the clip's views, the plan): ``start_of(num_frames)`` gives the clip's first frame; frames
        are a uint8 array, or a tensor on the decoding GPU."""
        reader = open_video(self.samples[vid].path, self.backend, self.decode_device)
        try:
            plan = plan_views(self.student, teacher, start_of(reader.num_frames), reader.num_frames)
            frames = reader.frames(plan.decode)
        finally:
            reader.close()
        if self.decode_device != "cpu" and isinstance(frames, np.ndarray):  # a file the CPU decoded
            frames = torch.from_numpy(frames).to(self.decode_device)
        return frames, plan

    def _cut(self, vid: int, frames: Any, plan: Any, box: Box, flip: bool) -> dict[str, Any]:
        """The student's (and the teacher's) view of decoded frames: the box at B's crop size, then each view."""
        base_spec = self.teacher or self.student
        union = crop_resize(frames, box, base_spec.crop(self.train), flip)  # uint8 (N, 3, S, S)
        out: dict[str, Any] = {"label": self.samples[vid].label, "video": vid}
        student = student_view(frames, union, plan.student, box, self.student.crop(self.train), flip)
        out["student"] = to_clip(student, self.mean, self.std)
        if self.teacher is not None:
            assert plan.teacher is not None
            out["teacher"] = to_clip(union[list(plan.teacher)], self.mean, self.std)
        return out

    def _load_cached(self, vid: int, clip: int) -> dict[str, Any]:
        """A recipe of the teacher cache: the student's frames of B's recorded clip, cut exactly as the live
        path cuts them (B's crop box, resized to the student's crop), and B's stored logits."""
        cache = self.cache
        row = cache.recipe_for(vid, clip, self.epoch, self.seed)
        frames, plan = self._decode(vid, lambda n: int(cache.start[row]), None)
        box = Box(*(int(x) for x in cache.box[row]))
        student = crop_resize(frames[list(plan.student)], box, self.student.crop(True), bool(cache.flip[row]))
        return {"label": self.samples[vid].label, "video": vid, "student": to_clip(student, self.mean, self.std),
                "soft": torch.from_numpy(cache.soft(row)).to(self.decode_device)}

    def _placeholder(self, video: int) -> dict[str, Any]:
        dev = self.decode_device
        out: dict[str, Any] = {"label": self.samples[video].label, "video": video,
                               "student": torch.zeros(self.student.input_shape(self.train), device=dev)}
        if self.teacher is not None:
            out["teacher"] = torch.zeros(self.teacher.input_shape(self.train), device=dev)
        return out


def gpu_decode_device(device: str, backend: str) -> str:
    """``device`` where frames can be decoded there: "cpu", or a CUDA device with the torchcodec backend."""
    device = str(device)
    if device == "cpu":
        return device
    if not device.startswith("cuda"):
        raise PasError(f"decoding on {device!r}: frames decode on the CPU or on a CUDA device")
    if backend != "torchcodec":
        raise PasError(f"decoding on the GPU needs the torchcodec backend (this dataset decodes with {backend}): "
                       "set `backend: torchcodec` (or auto, where torchcodec loads) in the dataset config, or "
                       "recipe.gpu_decode: false")
    if not torch.cuda.is_available():
        raise PasError(f"decoding on {device}: this machine has no CUDA device; set recipe.gpu_decode: false")
    return device


def student_view(frames: np.ndarray | torch.Tensor, union: torch.Tensor, positions: Sequence[int], box: Box, crop: int,
                 flip: bool) -> torch.Tensor:
    """The student's frames of a clip: the union's (B's crop) when the crops agree, else the same source box
    resized straight to the student's crop, exactly as its evaluation cuts it. Resizing B's crop again would
    keep detail that B's resize aliased to lower frequencies: detail the student's own view has lost."""
    if union.shape[-1] == crop:
        return union[list(positions)]
    return crop_resize(frames[list(positions)], box, crop, flip)


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """default_collate for the tensors; ``skipped`` becomes one flat tuple of video ids."""
    skipped = tuple(v for item in items for v in item["skipped"])
    batch = default_collate([{k: v for k, v in item.items() if k != "skipped"} for item in items])
    batch["skipped"] = skipped
    return batch


class ClipLoader(DataLoader):
    """A DataLoader that collects garbage before it forks its workers.

    A video reader left in a reference cycle in the parent (an exception's traceback holds it, for
    instance) still owns FFmpeg's decoding threads. A forked worker has no such threads; when its garbage
    collector frees the reader, ``avcodec_free_context`` waits for them forever and the worker hangs
    (seen: a training epoch never started). Collecting in the parent, which has the threads, first
    leaves the workers nothing of the kind to free.
    """

    def __iter__(self):  # type: ignore[no-untyped-def]
        if self.num_workers > 0:
            gc.collect()
        return super().__iter__()
