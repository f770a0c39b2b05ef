"""Small video files with the properties that make random access hard, written with PyAV.

Each frame carries its number as a bit pattern plus per-frame noise, so two
different frames never compare equal. ``HARD_VIDEOS`` names every kind; ``make``
writes one (deterministically) and returns its path.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np


def numbered_frames(n: int, h: int = 64, w: int = 96, seed: int = 0) -> list[np.ndarray]:
    """uint8 RGB frames; frame i shows i in binary in its top row of blocks."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        f = np.full((h, w, 3), 40, np.uint8)
        block = w // 8
        for b in range(8):
            if (i >> b) & 1:
                f[: h // 4, b * block:(b + 1) * block] = 230
        f[h // 3:] = rng.integers(0, 64, (h - h // 3, w, 3), dtype=np.uint8) + (i * 3) % 128
        out.append(f)
    return out


def encode(path: Path, fmt: str, codec: str, *, n: int = 60, options: dict[str, str] | None = None,
           max_b_frames: int | None = None, gop: int | None = None, rotation: int | None = None,
           pts_ms: list[int] | None = None, size: tuple[int, int] = (64, 96), rate: int = 25) -> Path:
    """Write ``n`` numbered frames to ``path`` with container ``fmt`` and encoder ``codec``."""
    import av

    h, w = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"threads": "1", **(options or {})}
        stream.thread_count = 1
        if max_b_frames is not None:
            stream.codec_context.max_b_frames = max_b_frames
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)  # PyAV >= 17: a display matrix in the container
        tb = Fraction(1, 1000)
        if pts_ms is not None:
            stream.time_base = stream.codec_context.time_base = tb
        for i, f in enumerate(numbered_frames(n, h, w)):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def _vfr(n: int) -> list[int]:
    steps = np.random.default_rng(1).integers(15, 95, n)  # 15-95 ms between frames
    return [int(x) for x in np.cumsum(steps)]


OPEN_GOP = {"x264-params": "open-gop=1:bframes=3:keyint=10:min-keyint=10:scenecut=0"}

HARD_VIDEOS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    # name: (what it is, writer)
    "avi_mpeg4_bframes.avi": ("MPEG-4 Part 2 in AVI, 2 B-frames",
                              lambda p: encode(p, "avi", "mpeg4", max_b_frames=2)),
    "avi_mpeg4_ip.avi": ("MPEG-4 Part 2 in AVI, no B-frames",
                         lambda p: encode(p, "avi", "mpeg4", max_b_frames=0, gop=12)),
    "avi_h264_bframes.avi": ("H.264 in AVI, 3 B-frames (no presentation timestamps)",
                             lambda p: encode(p, "avi", "libx264", options={"bf": "3", "g": "12"})),
    "mp4_h264_bframes.mp4": ("H.264 in MP4, B-frames, closed GOP",
                             lambda p: encode(p, "mp4", "libx264", options={"g": "12"})),
    "mp4_h264_open_gop.mp4": ("H.264 in MP4, open GOP", lambda p: encode(p, "mp4", "libx264", options=OPEN_GOP)),
    "mkv_h264_open_gop.mkv": ("H.264 in Matroska, open GOP",
                              lambda p: encode(p, "matroska", "libx264", options=OPEN_GOP)),
    "mp4_h264_vfr.mp4": ("H.264 in MP4, variable frame rate, B-frames",
                         lambda p: encode(p, "mp4", "libx264", pts_ms=_vfr(60), options={"g": "12"})),
    "mkv_h264_vfr.mkv": ("H.264 in Matroska, variable frame rate",
                         lambda p: encode(p, "matroska", "libx264", pts_ms=_vfr(60))),
    "mov_h264_rot90.mov": ("H.264 in QuickTime, rotated 90 (portrait)",
                           lambda p: encode(p, "mov", "libx264", rotation=90, options={"g": "12"})),
    "mp4_h264_rot270.mp4": ("H.264 in MP4, rotated -90", lambda p: encode(p, "mp4", "libx264", rotation=-90)),
}


def make(name: str, folder: Path) -> Path:
    """Write the hard video ``name`` (a key of HARD_VIDEOS) into ``folder``, unless it is there."""
    path = folder / name
    if not path.exists():
        HARD_VIDEOS[name][1](path)
    return path


def sequential_decode(path: Path) -> list[np.ndarray]:
    """Every frame of ``path`` by one plain PyAV decode from the start, in output order, with the
    container's rotation applied (counter-clockwise, as players and decord show it): the reference."""
    import av

    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            arr = frame.to_ndarray(format="rgb24")
            k = round(float(getattr(frame, "rotation", 0) or 0)) // 90 % 4
            out.append(np.ascontiguousarray(np.rot90(arr, k)) if k else arr)
    return out
