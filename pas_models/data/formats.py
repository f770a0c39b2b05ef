"""Annotation formats -> (video path, label) lists, with class names.

- ``kinetics400``: CSV ``label,youtube_id,time_start,time_end,split`` (header
  row); videos named ``<youtube_id>_<start:06d>_<end:06d>.mp4`` found anywhere
  under the root (class folders or flat). Classes: the train CSV's labels, sorted.
- ``ucf101``: ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt``
  (``Class/v_x.avi 1``, labels 1-based) and ``testlist0N.txt`` (``Class/v_x.avi``).
- ``hmdb51``: ``<class>_test_split<N>.txt`` per class, lines ``video.avi T``
  with T = 1 train, 2 test, 0 unused; videos at ``<root>/<class>/<video>``.
- ``list``: one ``relative/path label`` per line (label: 0-based integer).

Every parse error names the file and line.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pas_models.errors import PasError, UnknownNameError
from pas_models.typed_data import at, brief, from_data, key_at, read_yaml

# the decoders (pas_models.data.backends), and what a dataset may name: one of them, or auto (torchcodec where it
# loads, else decord, else PyAV: the fastest exact reader here, docs/data.md); numpy-free here
READERS = ("decord", "pyav", "torchcodec")
BACKENDS = ("auto", *READERS)

FORMATS = ("kinetics400", "ucf101", "hmdb51", "list")


def hashed_data(data: dict[str, Any]) -> dict[str, Any]:
    """A dataset config (as a dict) as identity hashes read it: ``auto`` as ``decord``. The backend says how
    frames are read, not which (every backend returns the same frames), and a config that names none was
    ``decord`` before ``auto`` became the default: its tasks and searches keep their identity."""
    return {**data, "backend": "decord"} if data.get("backend") == "auto" else data
SUBSETS = ("train", "val")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")


class AnnotationError(PasError):
    """An annotation file is missing or malformed (names the file and line)."""


@dataclass(frozen=True)
class Sample:
    path: str
    label: int


@dataclass(frozen=True)
class VideoList:
    samples: tuple[Sample, ...]
    classes: tuple[str, ...]
    missing: tuple[str, ...] = ()  # annotated videos with no file (Kinetics: deleted YouTube videos)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    return [(n, line.strip()) for n, line in enumerate(path.read_text().splitlines(), start=1) if line.strip()]


def _index_videos(root: Path) -> dict[str, str]:
    """basename -> path of every video file under root (one walk)."""
    index: dict[str, str] = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.lower().endswith(VIDEO_EXTENSIONS):
                index.setdefault(f, os.path.join(dirpath, f))
    return index


def kinetics400(root: Path, annotations: dict[str, Path], subset: str) -> VideoList:
    def rows(path: Path) -> list[dict[str, str]]:
        if not path.is_file():
            raise AnnotationError(f"{path}: annotation file not found")
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            needed = {"label", "youtube_id", "time_start", "time_end"}
            if not needed <= set(reader.fieldnames or ()):
                raise AnnotationError(f"{path}: header must have {', '.join(sorted(needed))}; got {reader.fieldnames}")
            return list(reader)

    classes = tuple(sorted({r["label"] for r in rows(annotations["train"])}))
    label_of = {c: i for i, c in enumerate(classes)}
    index = _index_videos(root)
    samples, missing = [], []
    for n, r in enumerate(rows(annotations[subset]), start=2):
        try:
            name = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}.mp4"
        except ValueError as exc:
            raise AnnotationError(f"{annotations[subset]}:{n}: bad time_start/time_end ({exc})") from exc
        if r["label"] not in label_of:
            raise AnnotationError(f"{annotations[subset]}:{n}: label {r['label']!r} is not in the train CSV")
        path = index.get(name)
        if path is None:
            missing.append(name)
        else:
            samples.append(Sample(path, label_of[r["label"]]))
    return VideoList(tuple(samples), classes, tuple(missing))


def ucf101(root: Path, annotations_dir: Path, subset: str, split: int) -> VideoList:
    classes_by_id = {}
    for n, line in _read_lines(annotations_dir / "classInd.txt"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise AnnotationError(f"{annotations_dir / 'classInd.txt'}:{n}: expected '<index> <class>', got {line!r}")
        classes_by_id[int(parts[0])] = parts[1]
    classes = tuple(classes_by_id[i] for i in sorted(classes_by_id))
    label_of = {c: i for i, c in enumerate(classes)}
    name = f"{'trainlist' if subset == 'train' else 'testlist'}{split:02d}.txt"
    samples = []
    for n, line in _read_lines(annotations_dir / name):
        rel = line.split()[0]
        cls = rel.split("/")[0]
        if cls not in label_of:
            raise AnnotationError(f"{annotations_dir / name}:{n}: class folder {cls!r} is not in classInd.txt")
        samples.append(Sample(str(root / rel), label_of[cls]))
    return VideoList(tuple(samples), classes)


def hmdb51(root: Path, annotations_dir: Path, subset: str, split: int) -> VideoList:
    suffix = f"_test_split{split}.txt"
    files = sorted(p for p in annotations_dir.glob(f"*{suffix}"))
    if not files:
        raise AnnotationError(f"{annotations_dir}: no '*{suffix}' split files")
    classes = tuple(p.name[: -len(suffix)] for p in files)
    wanted = "1" if subset == "train" else "2"
    samples = []
    for label, (cls, path) in enumerate(zip(classes, files, strict=True)):
        for n, line in _read_lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AnnotationError(f"{path}:{n}: expected '<video> <0|1|2>', got {line!r}")
            if parts[1] == wanted:
                samples.append(Sample(str(root / cls / parts[0]), label))
    return VideoList(tuple(samples), classes)


def plain_list(root: Path, list_file: Path, num_classes: int | None, classes_file: Path | None = None) -> VideoList:
    samples = []
    for n, line in _read_lines(list_file):
        rel, _, label = line.rpartition(" ")
        if not rel or not label.lstrip("-").isdigit():
            raise AnnotationError(f"{list_file}:{n}: expected 'relative/path label', got {line!r}")
        if int(label) < 0 or (num_classes is not None and int(label) >= num_classes):
            raise AnnotationError(f"{list_file}:{n}: label {label} outside [0, {num_classes})")
        samples.append(Sample(str(root / rel.strip()), int(label)))
    if classes_file is not None:
        names = tuple(line for _, line in _read_lines(classes_file))
        top = max((s.label for s in samples), default=-1)
        if top >= len(names):
            raise AnnotationError(f"{list_file}: label {top} but {classes_file} names only {len(names)} classes")
        return VideoList(tuple(samples), names)
    k = num_classes if num_classes is not None else 1 + max((s.label for s in samples), default=-1)
    return VideoList(tuple(samples), tuple(str(i) for i in range(k)))


@dataclass(frozen=True)
class DatasetConfig:
    """Where a dataset is and how it is annotated (the ``data:`` section of a search definition).

    format: one of FORMATS. root: folder of the videos. annotations: kinetics400:
    {"train": csv, "val": csv}; ucf101 / hmdb51: {"dir": folder of split files};
    list: {"train": list file, "val": list file, optional "classes": one name per line};
    relative paths are relative to root.
    split: 1-3 (ucf101, hmdb51). num_classes: classifier size (list format: optional).
    backend: "auto" (default), "decord", "pyav" or "torchcodec". mean, std: normalisation per RGB channel.
    hflip: random horizontal flips in training (off where left/right is the label).
    """

    format: str
    root: str
    annotations: dict[str, str]
    split: int = 1
    num_classes: int | None = None
    backend: str = "auto"
    mean: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
    std: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)
    hflip: bool = True

    def __hash__(self) -> int:
        return hash((self.format, self.root, tuple(sorted(self.annotations.items())), self.split))


def dataset_config_from_dict(data: dict, where: str = "data") -> DatasetConfig:
    """A validated DatasetConfig from a YAML/JSON mapping; errors name ``where`` and the key."""
    cfg = from_data(DatasetConfig, data, where, AnnotationError)
    if cfg.format not in FORMATS:
        raise AnnotationError(at(key_at(where, "format"), f"{brief(cfg.format)} is not one of {', '.join(FORMATS)}"))
    if cfg.backend not in BACKENDS:
        raise AnnotationError(at(key_at(where, "backend"),
                                 f"{brief(cfg.backend)} is not one of {', '.join(BACKENDS)}"))
    return cfg


def load_dataset_config(path: str | os.PathLike[str]) -> DatasetConfig:
    """Read a dataset config file (YAML); a relative ``root`` is relative to the file's folder."""
    p = Path(path)
    data = read_yaml(p, "dataset config", AnnotationError)
    if not isinstance(data, dict):
        raise AnnotationError(f"{p}: a dataset config must be a YAML mapping (key: value lines), got {brief(data)}")
    cfg = dataset_config_from_dict(data, where=f"{p}:")
    if not Path(cfg.root).is_absolute():
        cfg = replace(cfg, root=str((p.parent / cfg.root).resolve()))
    return cfg


def load_video_list(cfg: DatasetConfig, subset: str) -> VideoList:
    """The (path, label) samples of ``subset`` ("train" or "val") of the dataset ``cfg`` describes."""
    if cfg.format not in FORMATS:
        raise UnknownNameError("dataset format", cfg.format, FORMATS)
    if subset not in SUBSETS:
        raise UnknownNameError("subset", subset, SUBSETS)
    root = Path(cfg.root)

    def ann(key: str) -> Path:
        if key not in cfg.annotations:
            raise AnnotationError(f"data.annotations: format {cfg.format} needs key {key!r}")
        p = Path(cfg.annotations[key])
        return p if p.is_absolute() else root / p

    if cfg.format in ("ucf101", "hmdb51") and cfg.split not in (1, 2, 3):
        raise AnnotationError(f"data.split: {cfg.format} has splits 1, 2, 3; got {cfg.split}")
    if cfg.format == "kinetics400":
        out = kinetics400(root, {"train": ann("train"), subset: ann(subset)}, subset)
    elif cfg.format == "ucf101":
        out = ucf101(root, ann("dir"), subset, cfg.split)
    elif cfg.format == "hmdb51":
        out = hmdb51(root, ann("dir"), subset, cfg.split)
    else:
        out = plain_list(root, ann(subset), cfg.num_classes, ann("classes") if "classes" in cfg.annotations else None)
    if cfg.num_classes is not None and len(out.classes) != cfg.num_classes:
        raise AnnotationError(f"data.num_classes is {cfg.num_classes} but the annotations define "
                              f"{len(out.classes)} classes")
    return out
