"""Loader throughput per video backend (decord, PyAV, torchcodec): clips/s of pas's loader, alone.

For each backend that loads here, R(2+1)D-18's training view (16 frames at stride 2, random short-side
crop 112, flip) from the shipped real clips (H.264 in MP4 and Matroska, 340x256 and 426x240) and from the
same clips prepared by ``pas data prepare`` (short side 128, keyframe every 16):

- per process: ``ClipDataset[i]`` in this process (decode, crop, resize, normalise), as one DataLoader
  worker does;
- per node: ``ClipLoader`` with one worker per core (``--workers``, default: this machine's cores), batches
  of 8, as a training job's loader, counting clips from the first batch on.

Measurements are interleaved: each round times every backend in turn (the order rotated each round), for
``--rounds`` rounds; a row is the median clips/s over the rounds and its spread, (highest - lowest) /
median, flagged above 20% (a busy machine). Run with nothing else on the machine.

    python benchmarks/bench_backends.py [--clips 120] [--rounds 3] [--workers N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pas_models.data.backends import READERS, decord_available
from pas_models.data.dataset import ClipDataset, ClipLoader, collate_clips
from pas_models.data.formats import Sample
from pas_models.data.prepare import plan_prepare, prepare
from pas_models.data.torchcodec_reader import torchcodec_status
from pas_models.latency import default_threads
from pas_models.presets import preset

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT / "tests" / "data" / "videos"
SPEC = preset("r2plus1d_18")
CLIPS_PER_VIDEO = 1000


def _dataset(paths: list[Path], backend: str) -> ClipDataset:
    return ClipDataset([Sample(str(p), 0) for p in paths], SPEC, train=True, clips=CLIPS_PER_VIDEO, seed=0,
                       backend=backend)


def _order(n_videos: int, clips: int, offset: int) -> list[int]:
    """Dataset indices that alternate between the videos (a clip of each in turn)."""
    return [(i % n_videos) * CLIPS_PER_VIDEO + (offset + i) % CLIPS_PER_VIDEO for i in range(clips)]


def per_process(paths: list[Path], backend: str, clips: int, offset: int) -> float:
    ds = _dataset(paths, backend)
    for i in _order(len(paths), 2, offset + clips):  # warm-up: imports, the packet index
        ds[i]
    start = time.perf_counter()
    for i in _order(len(paths), clips, offset):
        ds[i]
    return clips / (time.perf_counter() - start)


def per_node(paths: list[Path], backend: str, clips: int, offset: int, workers: int) -> float:
    ds = _dataset(paths, backend)
    loader = ClipLoader(ds, batch_size=8, sampler=_order(len(paths), clips + 8, offset), num_workers=workers,
                        collate_fn=collate_clips)
    it = iter(loader)
    next(it)  # the workers have started and filled their first batch
    start, n = time.perf_counter(), 0
    for batch in it:
        n += len(batch["label"])
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=120, help="clips per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=default_threads(), help="DataLoader workers per node")
    args = parser.parse_args()
    backends = [b for b in READERS if (b != "decord" or decord_available())
                and (b != "torchcodec" or torchcodec_status()[0] is not None)]
    originals = sorted(VIDEOS.glob("*.*"))
    with tempfile.TemporaryDirectory() as tmp:
        assert not prepare(plan_prepare(VIDEOS, Path(tmp), short_side=128, keyint=16).jobs, workers=2)
        prepared = sorted(Path(tmp).glob("*.mp4"))
        cases = [(f"{videos}, {where}", paths, where) for videos, paths in (("original", originals),
                                                                           ("prepared 128", prepared))
                 for where in ("per process", f"per node ({args.workers} workers)")]
        rates: dict[tuple[str, str], list[float]] = {}
        for r in range(args.rounds):
            for name, paths, where in cases:
                for backend in backends[r % len(backends):] + backends[:r % len(backends)]:
                    offset = r * args.clips
                    rate = (per_process(paths, backend, args.clips, offset) if where == "per process" else
                            per_node(paths, backend, args.clips, offset, args.workers))
                    rates.setdefault((name, backend), []).append(rate)
                    print(f"round {r + 1}: {name}: {backend} {rate:.1f} clips/s", file=sys.stderr, flush=True)
    print("| videos, loader | " + " | ".join(f"{b} clips/s (spread)" for b in backends) + " |")
    print("|---|" + "---|" * len(backends))
    for name, _, _ in cases:
        cells = []
        for b in backends:
            got = rates[(name, b)]
            med = statistics.median(got)
            spread = (max(got) - min(got)) / med
            cells.append(f"{med:.1f} ({100 * spread:.0f}%{', not trusted' if spread > 0.2 else ''})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nMedian over {args.rounds} interleaved rounds of {args.clips} clips; R(2+1)D-18's training view.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
