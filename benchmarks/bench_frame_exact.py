"""Frame-exact decoding, file by file: each backend's frames against a full sequential decode.

For every file (the generated hard cases of tests/videogen.py and the shipped real
clips, plus any --videos given), the reference is one plain PyAV decode from the
start with the rotation applied. Each reader then reads every frame alone
(equal / different / failed) and 40 random sets of 1-8 indices in random order
("sets": sets whose every frame equals the reference). Readers: decord 0.6 alone
(what it returns by itself), pas's decord backend (decord, or the PyAV reader for the
files decord gets wrong: marked), pas's PyAV backend, torchcodec alone (exact seek mode,
frames asked as given) and pas's torchcodec backend (marked where the PyAV reader reads).

    python benchmarks/bench_frame_exact.py [--videos FILE ...] [--markdown]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from videogen import HARD_VIDEOS, make, sequential_decode  # noqa: E402

from pas_models.data.backends import READERS, VideoUnreadable, decord_available, open_video  # noqa: E402
from pas_models.data.torchcodec_reader import torchcodec_status  # noqa: E402


class RawDecord:
    """decord 0.6 alone, without the hand-off to the exact reader: what decord itself returns."""

    def __init__(self, path: Path) -> None:
        import decord

        self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
        self.num_frames = len(self._vr)

    def frames(self, idx: list[int]) -> np.ndarray:
        try:
            out = self._vr.get_batch(idx).asnumpy()
            self._vr.seek(0)
            return out
        except Exception as exc:
            raise VideoUnreadable("", str(exc)) from exc

    def close(self) -> None:
        self._vr = None


class RawTorchcodec:
    """torchcodec alone (exact seek mode), frames asked as given: what it returns by itself."""

    def __init__(self, path: Path) -> None:
        from torchcodec.decoders import VideoDecoder

        self._dec = VideoDecoder(str(path), seek_mode="exact", dimension_order="NHWC")
        self.num_frames = int(self._dec.metadata.num_frames or 0)

    def frames(self, idx: list[int]) -> np.ndarray:
        try:
            return self._dec.get_frames_at(indices=idx).data.numpy()  # type: ignore[no-any-return]
        except Exception as exc:
            raise VideoUnreadable("", str(exc)) from exc

    def close(self) -> None:
        self._dec = None


RAW = {"decord alone": RawDecord, "torchcodec alone": RawTorchcodec}


def compare(path: Path, backend: str, ref: list[np.ndarray], sets: int = 40) -> str:
    try:
        reader = RAW[backend](path) if backend in RAW else open_video(path, backend)
    except VideoUnreadable as exc:
        return f"cannot open ({exc.reason[:40]})"
    try:
        n = reader.num_frames
        eq = diff = fail = 0
        for i in range(min(n, len(ref))):
            try:
                got = reader.frames([i])[0]
                same = got.shape == ref[i].shape and np.array_equal(got, ref[i])
                eq, diff = (eq + 1, diff) if same else (eq, diff + 1)
            except VideoUnreadable:
                fail += 1
        rng = np.random.default_rng(0)
        good = 0
        for _ in range(sets):
            idx = [int(x) for x in rng.integers(0, min(n, len(ref)), int(rng.integers(1, 9)))]
            try:
                got = reader.frames(idx)
                good += all(np.array_equal(g, ref[i]) for g, i in zip(got, idx, strict=True))
            except VideoUnreadable:
                pass
    finally:
        reader.close()
    count = "" if n == len(ref) else f" (counts {n} frames)"
    via = " (PyAV reader)" if getattr(reader, "exact_by", None) else ""
    return f"{eq}/{diff}/{fail}, sets {good}/{sets}{count}{via}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", nargs="*", type=Path, default=[], help="more files to compare")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import av
    av.logging.set_level(None)
    with tempfile.TemporaryDirectory() as tmp:
        files = [(make(name, Path(tmp)), what) for name, (what, _) in HARD_VIDEOS.items()]
        files += [(p, "shipped real clip") for p in sorted((ROOT / "tests" / "data" / "videos").glob("*.*"))]
        files += [(p, "given") for p in args.videos]
        columns = (["decord alone"] if decord_available() else []) + [b for b in READERS if b != "torchcodec"]
        if torchcodec_status()[0] is not None:
            columns += ["torchcodec alone", "torchcodec"]
        print("| file | what | frames | " + " | ".join(f"{b}: equal/different/failed" for b in columns) + " |")
        print("|---|---|---|" + "---|" * len(columns))
        for path, what in files:
            ref = sequential_decode(path)
            cells = [compare(path, b, ref) for b in columns]
            print(f"| {path.name} | {what} | {len(ref)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
