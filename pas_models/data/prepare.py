"""``pas data prepare``: re-encode a dataset's videos to H.264 MP4 at a short side, resumably.

- Outputs mirror SRC under DST with the extension ``.mp4`` (``Class/v_x.avi`` ->
  ``Class/v_x.mp4``). ``DST/prepare-map.tsv`` lists every source and its output, so the
  mapping is explicit; two sources that would map to one output (``a.avi``, ``a.mp4``)
  are refused before anything is written.
- Each output carries its settings stamp (short side, keyframe interval, the source's
  size and modification time) in its container metadata, written with it (``.part``,
  then renamed): a rerun with the same settings skips it, a rerun with other settings,
  or after the source changed, re-encodes it.
- The rotation of the source (display matrix) is applied to the pixels, so the
  prepared copy shows the same frames (smaller) without depending on it.
- Frame i of the output is frame i of the source (every decoded frame is encoded once,
  at a constant frame rate).
- With the dataset config (``--config``), its annotation files are rewritten under DST
  to point at the outputs, and ``DST/dataset.yaml`` is that config with ``root: .``; an
  annotation file under the old root lands at the same relative path, so the same
  config works by changing only ``root``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from pas_models.data.formats import VIDEO_EXTENSIONS, DatasetConfig
from pas_models.errors import PasError

MAP_FILE = "prepare-map.tsv"
STAMP_KEY = "comment"
STAMP_PREFIX = "pas-prepare v1"


class PrepareError(PasError):
    """The preparation cannot start (colliding outputs, a bad folder, ...)."""


@dataclass(frozen=True)
class PrepareJob:
    src: str
    dst: str
    short_side: int
    keyint: int

    def stamp(self) -> str:
        st = os.stat(self.src)
        return (f"{STAMP_PREFIX} short_side={self.short_side} keyint={self.keyint} "
                f"src_size={st.st_size} src_mtime_ns={st.st_mtime_ns}")


@dataclass(frozen=True)
class Plan:
    jobs: list[PrepareJob]  # to encode
    done: int  # outputs already there with the same settings
    restamped: int  # of the jobs: outputs there with other settings (or an older source)
    mapping: dict[str, str]  # source path relative to SRC -> output path relative to DST (posix)


def even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def output_name(rel: str) -> str:
    return str(Path(rel).with_suffix(".mp4").as_posix())


def read_stamp(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as c:
            return c.metadata.get(STAMP_KEY)
    except Exception:  # an unreadable output is redone
        return None


def plan_prepare(src_root: Path, dst_root: Path, short_side: int, keyint: int) -> Plan:
    """Every video under src_root, its output, and which outputs are missing or stale."""
    mapping: dict[str, str] = {}
    sources_of: dict[str, list[str]] = {}
    for dirpath, _, files in os.walk(src_root):
        for f in sorted(files):
            if f.lower().endswith(VIDEO_EXTENSIONS) and not f.endswith(".part"):
                rel = (Path(dirpath) / f).relative_to(src_root).as_posix()
                mapping[rel] = output_name(rel)
                sources_of.setdefault(mapping[rel], []).append(rel)
    clashes = {out: srcs for out, srcs in sources_of.items() if len(srcs) > 1}
    if clashes:
        shown = "; ".join(f"{' and '.join(s)} -> {o}" for o, s in sorted(clashes.items())[:5])
        raise PrepareError(f"{len(clashes)} output(s) would be written by two sources ({shown}"
                           f"{'; ...' if len(clashes) > 5 else ''}); rename or remove one of each")
    jobs, done, restamped = [], 0, 0
    for rel, out in sorted(mapping.items()):
        job = PrepareJob(str(src_root / rel), str(dst_root / out), short_side, keyint)
        dst = dst_root / out
        if dst.exists():
            if read_stamp(dst) == job.stamp():
                done += 1
                continue
            restamped += 1
        jobs.append(job)
    return Plan(jobs, done, restamped, mapping)


def reencode(job: PrepareJob) -> str | None:
    """Re-encode one video to H.264 with its short side = job.short_side (never upscaled), rotation
    applied; None on success, else the reason. Written to ``dst.part`` and renamed when complete."""
    import av

    from pas_models.data.pyav_reader import rotation_of, to_rgb
    from pas_models.data.swscale import Converter

    dst = Path(job.dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    try:
        stamp = job.stamp()
        with av.open(job.src) as src:
            stream = src.streams.video[0]
            stream.thread_type = "AUTO"
            converter = Converter()  # this process's own (swscale: safe in a forked worker)
            rate = stream.average_rate or stream.guessed_rate or 30
            time_base = Fraction(1) / Fraction(rate)
            with av.open(str(tmp), "w", format="mp4") as out:
                out.metadata[STAMP_KEY] = stamp
                enc = None
                for i, frame in enumerate(src.decode(stream)):
                    turns = rotation_of(frame)
                    if turns:
                        frame = av.VideoFrame.from_ndarray(to_rgb(frame, converter), format="rgb24")
                    if enc is None:  # sized from the first (rotated) frame
                        h, w = frame.height, frame.width
                        scale = min(1.0, job.short_side / min(h, w))
                        out_h, out_w = even(h * scale), even(w * scale)
                        enc = out.add_stream("libx264", rate=rate)
                        enc.width, enc.height, enc.pix_fmt = out_w, out_h, "yuv420p"
                        enc.options = {"crf": "20", "preset": "veryfast", "g": str(job.keyint)}
                    frame = converter.reformat(frame, width=out_w, height=out_h, format="yuv420p")
                    frame.pts, frame.time_base = i, time_base  # constant frame rate, renumbered
                    out.mux(enc.encode(frame))
                if enc is None:
                    raise ValueError("no video frames")
                out.mux(enc.encode())
    except Exception as exc:  # any decode/encode failure is a per-file result, not a crash
        tmp.unlink(missing_ok=True)
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    tmp.replace(dst)
    return None


def prepare(jobs: list[PrepareJob], workers: int | None = None,
            progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """Run the re-encoding jobs in parallel; returns failures: source path -> reason."""
    failed: dict[str, str] = {}
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for job, reason in zip(jobs, pool.map(reencode, jobs), strict=True):
            if reason is not None:
                failed[job.src] = reason
            if progress:
                progress(1)
    return failed


def write_map(dst_root: Path, mapping: dict[str, str], failed: set[str]) -> Path:
    """DST/prepare-map.tsv: source (relative to SRC), output (relative to DST), status."""
    lines = ["source\toutput\tstatus"] + [f"{s}\t{o}\t{'failed' if s in failed else 'ok'}"
                                         for s, o in sorted(mapping.items())]
    return _write_text(dst_root / MAP_FILE, "\n".join(lines) + "\n")


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def rewrite_annotations(cfg: DatasetConfig, src_root: Path, dst_root: Path, mapping: dict[str, str]) -> Path:
    """The annotation files of ``cfg`` pointing at the outputs, under DST, and DST/dataset.yaml."""
    import yaml

    def place(p: Path) -> tuple[Path, str]:
        """Where the rewritten copy of annotation path ``p`` goes, and its path relative to DST."""
        try:
            rel = p.resolve().relative_to(src_root.resolve()).as_posix()
        except ValueError:
            rel = f"annotations/{p.name}"
        return dst_root / rel, rel

    def mapped(rel: str) -> str:
        return mapping.get(rel, rel)

    root = Path(cfg.root)
    new_ann: dict[str, str] = {}
    for key, value in cfg.annotations.items():
        src = Path(value) if Path(value).is_absolute() else root / value
        dst, rel = place(src)
        new_ann[key] = rel
        if src.is_dir():  # ucf101 / hmdb51: a folder of split files
            for f in sorted(src.iterdir()):
                if f.is_file():
                    _write_text(dst / f.name, _rewrite_split(cfg.format, f, src, mapped))
        elif src.is_file():
            _write_text(dst, _rewrite_file(cfg.format, key, src, mapped))
    data = {k: v for k, v in asdict(DatasetConfig(**{**asdict(cfg), "root": ".", "annotations": new_ann})).items()}
    data["mean"], data["std"] = list(data["mean"]), list(data["std"])
    return _write_text(dst_root / "dataset.yaml", yaml.safe_dump(data, sort_keys=False))


def _rewrite_file(fmt: str, key: str, path: Path, mapped: Callable[[str], str]) -> str:
    text = path.read_text()
    if fmt == "list" and key != "classes":  # "relative/path label"
        out = []
        for line in text.splitlines():
            rel, sep, label = line.strip().rpartition(" ")
            out.append(f"{mapped(rel.strip())} {label}" if sep and rel.strip() else line)
        return "\n".join(out) + "\n"
    if fmt == "kinetics400":  # names are derived (<id>_<start>_<end>.mp4) and found by basename: unchanged
        rows = list(csv.reader(io.StringIO(text)))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        return buf.getvalue()
    return text


def _rewrite_split(fmt: str, path: Path, folder: Path, mapped: Callable[[str], str]) -> str:
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if fmt == "ucf101" and parts and path.name.startswith(("trainlist", "testlist")):
            out.append(" ".join([mapped(parts[0]), *parts[1:]]))
        elif fmt == "hmdb51" and len(parts) == 2 and "_test_split" in path.name:
            cls = path.name.split("_test_split")[0]
            out.append(f"{Path(mapped(f'{cls}/{parts[0]}')).name} {parts[1]}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"
