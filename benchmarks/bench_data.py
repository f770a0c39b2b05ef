"""Data-loading benchmark: clips/s and decoded frames/s, one process each, same machine, same run.

(a) pas loader (ClipDataset, decord) on videos prepared to short side 128
(b) pas loader on the original videos
(c) naive loader: decode every frame of the video with PyAV, then index and transform
(d) decode-only limit: PyAV decoding exactly the needed frames (seek to the keyframe before
    the first, stop at the last), no transforms; on the prepared and on the original videos
(e) the same with the PyAV reader before it was made frame-exact (issue 13's baseline, kept
    here only to compare: timestamp seek without a landing check, no index cache, no rotation;
    wrong on AVI with B-frames). Target: (d) >= 0.8 x (e) on the prepared videos.

Then RSS of the pas loader after 100 and after 2,000 clips (decord memory growth check).
Videos: the real clips in tests/data/videos (340x256 and 426x240, 300-310 frames); the
view is R(2+1)D-18's training view (16 frames, random short-side crop 112).
Targets: (a) >= 0.7 x (d, prepared) and >= 3 x (c); RSS growth < 50 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pas_models.data.backends import PyAVReader, VideoUnreadable
from pas_models.data.dataset import ClipDataset
from pas_models.data.formats import Sample
from pas_models.data.prepare import plan_prepare, prepare
from pas_models.data.sampling import plan_views, random_starts, views_span
from pas_models.data.transforms import KINETICS_MEAN, KINETICS_STD, crop_resize, to_clip, train_box
from pas_models.presets import preset

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT / "tests" / "data" / "videos"
SPEC = preset("r2plus1d_18")


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn, clips: int) -> float:
    fn(3)  # warm-up
    t = time.perf_counter()
    fn(clips)
    return clips / (time.perf_counter() - t)


def pas_loader(paths: list[Path]):
    ds = ClipDataset([Sample(str(p), 0) for p in paths], SPEC, train=True, clips=10_000, seed=0)
    state = {"i": 0}

    def run(n: int) -> None:
        for _ in range(n):
            ds[state["i"] % len(ds)]
            state["i"] += 1
    return run, ds


def naive_loader(paths: list[Path]):
    import av
    rng = np.random.default_rng(0)

    def run(n: int) -> None:
        for i in range(n):
            with av.open(str(paths[i % len(paths)])) as c:
                frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
            start = random_starts(len(frames), views_span(SPEC, None), 1, rng)[0]
            clip = np.stack([frames[min(start + o, len(frames) - 1)] for o in SPEC.source_frame_offsets()])
            box, flip = train_box(clip.shape[1], clip.shape[2], SPEC.view, rng)
            to_clip(crop_resize(clip, box, SPEC.view.crop_train, flip), KINETICS_MEAN, KINETICS_STD)
    return run


class TimestampSeekReader:
    """The PyAV reader as it was before issue 13 (baseline only; inexact on AVI with B-frames)."""

    def __init__(self, path: str) -> None:
        import av

        self.path, self._container = path, av.open(path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._pts = sorted(p.pts for p in self._container.demux(self._stream) if p.pts is not None and p.size > 0)
        self._container.seek(0, stream=self._stream)
        self.num_frames = len(self._pts)

    def frames(self, idx: list[int]) -> np.ndarray:
        wanted = {self._pts[i]: i for i in set(idx)}
        got: dict[int, np.ndarray] = {}
        last = max(wanted)
        self._container.seek(self._pts[min(idx)], stream=self._stream, backward=True, any_frame=False)
        for frame in self._container.decode(self._stream):
            if frame.pts in wanted:
                got[wanted[frame.pts]] = frame.to_ndarray(format="rgb24")
            if frame.pts is not None and frame.pts >= last:
                break
        if len(got) != len(wanted):
            raise VideoUnreadable(self.path, "frames missing")
        return np.stack([got[i] for i in idx])

    def close(self) -> None:
        self._container.close()


def decode_only(paths: list[Path], reader=PyAVReader):
    """One reader per clip, opened and closed as the training loader does."""
    rng = np.random.default_rng(0)

    def run(n: int) -> None:
        for i in range(n):
            r = reader(str(paths[i % len(paths)]))
            start = random_starts(r.num_frames, views_span(SPEC, None), 1, rng)[0]
            r.frames(plan_views(SPEC, None, start, r.num_frames).decode)
            r.close()
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200, help="clips per measurement (naive: a fifth)")
    parser.add_argument("--rss-clips", type=int, default=2000)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    originals = sorted(VIDEOS.glob("*.*"))
    with tempfile.TemporaryDirectory() as tmp:
        assert not prepare(plan_prepare(VIDEOS, Path(tmp), short_side=128, keyint=16).jobs, workers=2), \
            "re-encoding failed"
        prepared = sorted(Path(tmp).glob("*.mp4"))
        frames_per_clip = len(plan_views(SPEC, None, 0, 10_000).decode)
        rows = []
        for name, fn, n in [
            ("(a) pas loader, prepared 128", pas_loader(prepared)[0], args.clips),
            ("(b) pas loader, originals", pas_loader(originals)[0], args.clips),
            ("(c) naive PyAV decode-all, originals", naive_loader(originals), max(10, args.clips // 5)),
            ("(d) decode-only PyAV, prepared 128", decode_only(prepared), args.clips),
            ("(d) decode-only PyAV, originals", decode_only(originals), args.clips),
            ("(e) baseline reader, prepared 128", decode_only(prepared, TimestampSeekReader), args.clips),
            ("(d) decode-only PyAV, prepared (again)", decode_only(prepared), args.clips),
            ("(e) baseline reader, prepared (again)", decode_only(prepared, TimestampSeekReader), args.clips),
        ]:
            rate = timed(fn, n)
            rows.append((name, rate))
        run, _ = pas_loader(prepared)
        run(100)
        rss_100 = rss_mb()
        run(args.rss_clips - 100)
        rss_end = rss_mb()
    rate = dict(rows)
    print(f"{'loader':40s} {'clips/s':>9s} {'frames/s':>10s}")
    for name, r in rows:
        print(f"{name:40s} {r:9.1f} {r * frames_per_clip:10.0f}")
    a, c, d = rate["(a) pas loader, prepared 128"], rate["(c) naive PyAV decode-all, originals"], \
        rate["(d) decode-only PyAV, prepared 128"]
    print(f"\n(a) / (d prepared) = {a / d:.2f}   (target >= 0.7)")
    print(f"(a) / (c)          = {a / c:.2f}   (target >= 3)")
    d2, e1, e2 = (rate[k] for k in ("(d) decode-only PyAV, prepared (again)", "(e) baseline reader, prepared 128",
                                    "(e) baseline reader, prepared (again)"))
    print(f"(d) / (e) prepared = {d / e1:.2f}, {d2 / e2:.2f} (two alternating runs; target >= 0.8)")
    print(f"RSS after 100 clips {rss_100:.0f} MB, after {args.rss_clips} clips {rss_end:.0f} MB: "
          f"growth {rss_end - rss_100:+.1f} MB (target < 50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
