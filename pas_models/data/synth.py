"""A small synthetic action dataset of real H.264 mp4 files, generated offline and deterministically.

Each video shows one object moving over a textured, noisy background. A class
is a combination of three factors, enumerated so that neighbouring classes
differ in one factor each (class k: shape = k mod 2, speed = k // 2 mod 2,
direction = k // 4 mod 4, then more shapes):

- shape (square, cross, then disc, triangle): small, so spatial downsampling (s) blurs it;
- speed (slow 1 px/frame, fast 2.5 px/frame): frame-rate reduction (f) changes
  the apparent speed the network must tell apart;
- direction (right, left, down, up): needs several frames, so temporal-length
  cuts (t) remove evidence.

Colour, size, start position, background and noise are random per video, so
none of them gives the class away. The object wraps around the frame edges.
``probe``: a known-answer probe instead (``pas_models.data.probes``).
Files: ``<out>/videos/<class>/<class>_<i>.mp4``, ``train.txt`` / ``val.txt``
(list format: ``relative/path label``), ``classes.txt`` and ``dataset.yaml``
(the dataset config pas reads).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pas_models.data import probes

if TYPE_CHECKING:  # numpy where videos are made: a definition that names a synthetic set reads without it
    import numpy as np

# neighbouring classes pair shapes that stay apart at the demo network's 36 px input: square / cross (filled
# corners or none), disc / triangle; a square and a disc of 6-9 px (after resizing) were not told apart
SHAPES = ("square", "cross", "disc", "triangle")
GENERATOR = 2  # the videos a given SynthConfig makes: raised when they change (a root made before is refused)
OBJECT_SIZE = (16, 21)  # pixels, at the video's 48 px height
SPEEDS = {"slow": 0.75, "fast": 1.75}  # pixels per frame
DIRECTIONS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
MAX_CLASSES = len(SHAPES) * len(SPEEDS) * len(DIRECTIONS)


@dataclass(frozen=True)
class SynthConfig:
    """classes: 2..32; videos_per_class / val_per_class: videos per class in train / val;
    frames, height, width, fps: of every video; seed: everything random derives from it."""

    classes: int = 8
    videos_per_class: int = 24
    val_per_class: int = 8
    frames: int = 32
    height: int = 48
    width: int = 64  # decord 0.6 fails on some narrow widths (48 px: a row-padding size mismatch)
    fps: int = 25
    seed: int = 0
    probe: str | None = None  # a known-answer probe (pas_models.data.probes): s, t or f; None: the action set


@dataclass(frozen=True)
class ClassDef:
    shape: str
    speed: str
    direction: str

    @property
    def name(self) -> str:
        return f"{self.shape}-{self.direction}-{self.speed}"


def class_defs(k: int) -> list[ClassDef]:
    if not 2 <= k <= MAX_CLASSES:
        raise ValueError(f"synthetic classes must be in [2, {MAX_CLASSES}], got {k}")
    out = []
    for i in range(k):
        shape_lo, rest = i % 2, i // 2
        speed, rest = rest % 2, rest // 2
        direction, shape_hi = rest % 4, rest // 4
        out.append(ClassDef(SHAPES[shape_lo + 2 * shape_hi], list(SPEEDS)[speed], list(DIRECTIONS)[direction]))
    return out


def _mask(shape: str, size: int) -> np.ndarray:
    import numpy as np

    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    c = size / 2
    if shape == "square":
        m = np.ones((size, size), bool)
        m[:1], m[-1:], m[:, :1], m[:, -1:] = False, False, False, False
        return m
    if shape == "disc":
        return (yy - c) ** 2 + (xx - c) ** 2 <= (size / 2) ** 2
    if shape == "triangle":
        return (yy >= 1) & (np.abs(xx - c) <= yy / 2)
    third = size / 3  # cross
    return (np.abs(yy - c) <= third / 2 + 0.5) | (np.abs(xx - c) <= third / 2 + 0.5)


def render(cls: ClassDef, cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """uint8 RGB frames (frames, H, W, 3) of one video of class ``cls``."""
    import numpy as np

    h, w = cfg.height, cfg.width
    base = rng.integers(40, 140, size=3)
    texture = rng.normal(0, 8, size=(h // 4 + 1, w // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:h, :w]
    background = np.clip(base + texture, 0, 255)
    # each channel dark or bright: never close to the mid-grey background
    colour = np.where(rng.random(3) < 0.5, rng.integers(0, 30, size=3), rng.integers(200, 256, size=3))
    size = int(rng.integers(OBJECT_SIZE[0], OBJECT_SIZE[1] + 1))
    mask = _mask(cls.shape, size)
    dy, dx = DIRECTIONS[cls.direction]
    speed = SPEEDS[cls.speed] * float(rng.uniform(0.85, 1.15))
    # the track passes near the frame centre at mid-video, so most clips see the object
    mid = cfg.frames / 2
    y0 = h / 2 - size / 2 - dy * speed * mid + float(rng.uniform(-h / 6, h / 6))
    x0 = w / 2 - size / 2 - dx * speed * mid + float(rng.uniform(-w / 6, w / 6))
    ys, xs = np.nonzero(mask)
    video = np.empty((cfg.frames, h, w, 3), np.uint8)
    for t in range(cfg.frames):
        frame = background + rng.normal(0, 3, size=(h, w, 3))
        y, x = round(y0 + dy * speed * t), round(x0 + dx * speed * t)
        frame[(ys + y) % h, (xs + x) % w] = colour
        video[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return video


def write_mp4(path: Path, frames: np.ndarray, fps: int, keyint: int = 12) -> None:
    """Encode uint8 RGB frames as H.264 (yuv420p) mp4, single-threaded, so the bytes are deterministic."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        # x264's macroblock-tree rate control gave different bytes for the same frames from one process
        # to the next (libx264 in PyAV 18's wheel, seen on 3 of 9 videos); without it the bytes repeat
        stream.options = {"crf": "18", "preset": "veryfast", "g": str(keyint), "threads": "1",
                          "x264-params": "no-mbtree=1"}
        stream.thread_count = 1
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)


def problem(cfg: SynthConfig) -> tuple[str, str] | None:
    """(the setting, what is wrong and the fix) for settings no dataset can be made with, else None."""
    if cfg.probe is not None:
        return probes.problem(cfg.probe, cfg.classes)
    if not 2 <= cfg.classes <= MAX_CLASSES:
        return "classes", f"must be in 2..{MAX_CLASSES}, got {cfg.classes}"
    return None


def class_names(cfg: SynthConfig) -> list[str]:
    if cfg.probe is not None:
        return probes.class_names(cfg.probe, cfg.classes)
    return [c.name for c in class_defs(cfg.classes)]


def _video(cfg: SynthConfig, label: int, rng: np.random.Generator) -> np.ndarray:
    if cfg.probe is not None:
        return probes.render(cfg.probe, label, cfg.classes, cfg.frames, cfg.height, cfg.width, rng)
    return render(class_defs(cfg.classes)[label], cfg, rng)


def _jobs(cfg: SynthConfig) -> Iterator[tuple[str, int, str, int]]:
    for label, name in enumerate(class_names(cfg)):
        for i in range(cfg.videos_per_class + cfg.val_per_class):
            yield ("train" if i < cfg.videos_per_class else "val"), label, name, i


def generate(out: Path, cfg: SynthConfig, progress: Callable[[int], None] | None = None) -> dict[str, Path]:
    """Write the dataset under ``out`` (existing complete videos are kept); returns its files."""
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"train": [], "val": []}
    for subset, label, name, i in _jobs(cfg):
        rel = f"videos/{name}/{name}_{i:03d}.mp4"
        path = out / rel
        if not path.exists():
            rng = np.random.default_rng([cfg.seed, label, i])
            write_mp4(path, _video(cfg, label, rng), cfg.fps)
        lists[subset].append(f"{rel} {label}")
        if progress:
            progress(1)
    files = {"train": out / "train.txt", "val": out / "val.txt", "classes": out / "classes.txt",
             "config": out / "dataset.yaml"}
    for subset in ("train", "val"):
        files[subset].write_text("\n".join(lists[subset]) + "\n")
    files["classes"].write_text("\n".join(class_names(cfg)) + "\n")
    files["config"].write_text(json.dumps({
        "format": "list", "root": ".", "num_classes": cfg.classes, "hflip": False,  # left/right is a class
        "annotations": {"train": "train.txt", "val": "val.txt", "classes": "classes.txt"}}, indent=2) + "\n")
    return files


def stamp(cfg: SynthConfig) -> dict[str, object]:
    """What a dataset root records of how it was made (``synth.json``): the settings and the generator."""
    settings = asdict(cfg)
    if cfg.probe is None:  # an action set's stamp has no probe key: roots made before probes existed stay valid
        del settings["probe"]
    return {**settings, "generator": GENERATOR}


def total_videos(cfg: SynthConfig) -> int:
    return cfg.classes * (cfg.videos_per_class + cfg.val_per_class)
