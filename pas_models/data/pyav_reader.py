"""Frame-exact random access with PyAV, for any file PyAV can open.

**What frame i is.** The i-th frame that one plain sequential decode from the start of
the file outputs (PyAV, presentation order), with the container's rotation applied
(its display matrix, counter-clockwise, as players and decord show it). Both backends
return exactly these frames (decord only where it is exact, see ``decord_trusted``).

**The index** (one pass over the packets, no decoding; cached per process by path, size
and modification time, so a clip costs one demux pass per file, not one per clip):

- *timestamp mode*: every packet carries a presentation timestamp (pts), all distinct,
  and the container stores them (MP4/MOV, Matroska/WebM, AVI without B-frames, ...).
  Frame i is the packet with the i-th smallest pts, and a decoded frame is recognised by
  its pts: identity, never timestamp arithmetic. To read a set of frames, decoding starts
  at the latest keyframe that precedes every wanted frame both in decode order and in
  presentation order (so the leading pictures of an open GOP are decoded from the GOP
  before, which they reference). After the seek the reader checks where the demuxer
  landed (the first packet's pts names it) and steps back a keyframe, or to the start,
  when it landed too late. A decoded frame whose pts is not in the index switches the
  file to counting mode.
- *counting mode*: AVI with B-frames (AVI stores no presentation timestamps: what the
  demuxer reports with B-frames are guesses), or packets without / with repeated pts.
  Frames are decoded from the start of the file and counted: exact by construction; the
  cost grows with the position in the file (``pas data prepare`` rewrites such files as
  MP4 with real timestamps, where reads seek).
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from pas_models.data.errors import (
    VideoUnreadable,
    check_file,
    check_indices,
    failing_frames,
    first_failing,
    first_line,
)
from pas_models.data.swscale import Converter

TIMESTAMPS, COUNTING = "timestamps", "counting"
AVI = "avi"
_CACHE_SIZE = 256  # a worker reads a video a few times in a row (clips x crops), rarely again later
_cache: OrderedDict[tuple[str, int, int], StreamIndex] = OrderedDict()


@dataclass(frozen=True)
class StreamIndex:
    """What one demux pass tells about a file's first video stream.

    pts: presentation timestamps of the frames in presentation order (timestamp mode);
    decode_of: pts -> position of its packet in decode order; keyframes: decode positions of
    the keyframes; keyframe_pts: their pts, same order. mode: TIMESTAMPS or COUNTING, and
    ``why`` says why counting. open_gop: a keyframe is followed (decode order) by frames shown
    before it. bframes: the stream reorders frames.
    """

    container: str
    codec: str
    num_frames: int
    fps: float
    mode: str
    why: str
    pts: tuple[int, ...]
    decode_of: dict[int, int]
    keyframes: tuple[int, ...]
    keyframe_pts: tuple[int, ...]
    open_gop: bool
    bframes: bool

    def describe(self) -> str:
        """One line: container, codec and how frames are found."""
        traits = [t for t, on in (("B-frames", self.bframes), ("open GOP", self.open_gop)) if on]
        how = "seeks by timestamp" if self.mode == TIMESTAMPS else f"decodes from the start ({self.why})"
        return f"{self.container.split(',')[0]}/{self.codec}{', ' + ', '.join(traits) if traits else ''}: {how}"


def decord_trusted(index: StreamIndex) -> str | None:
    """None when decord returns exact frames for this kind of file, else why not.

    Measured (benchmarks/bench_frame_exact.py): decord 0.6 returns other frames than a sequential
    decode on AVI with B-frames (up to 10 frames off) and on open-GOP H.264 (MP4 and Matroska);
    it is exact on closed-GOP MP4/Matroska (with B-frames, variable frame rate, rotation) and on
    AVI without B-frames. Files it is not trusted on are read by the PyAV reader.
    """
    if index.mode == COUNTING:
        return f"decord seeks by guessed timestamps here ({index.why})"
    if index.open_gop:
        return "decord returns wrong frames on open-GOP video"
    return None


def _open_container(path: str, threads: bool = True):  # type: ignore[no-untyped-def]
    import av

    try:
        container = av.open(path)
    except Exception as exc:
        raise VideoUnreadable(path, f"PyAV cannot open it ({first_line(exc)})") from exc
    if not container.streams.video:
        container.close()
        raise VideoUnreadable(path, "no video stream")
    stream = container.streams.video[0]
    if threads:
        stream.thread_type = "AUTO"
    return container, stream


def build_index(path: str) -> StreamIndex:
    """Index ``path`` by one pass over its packets (no decoding)."""
    container, stream = _open_container(path)
    try:
        packets: list[tuple[int | None, bool]] = []
        try:
            for p in container.demux(stream):
                if p.size > 0:
                    packets.append((p.pts, bool(p.is_keyframe)))
        except Exception as exc:
            raise VideoUnreadable(path, f"PyAV cannot read packets ({first_line(exc)})") from exc
        rate = stream.average_rate or stream.guessed_rate
        fmt, codec = container.format.name, stream.codec_context.name
        bframes = bool(getattr(stream.codec_context, "has_b_frames", False))
    finally:
        container.close()
    if not packets:
        raise VideoUnreadable(path, "no video frames")
    pts = [p for p, _ in packets]
    why = ""
    if any(p is None for p in pts):
        why = "packets without presentation timestamps"
    elif len(set(pts)) != len(pts):
        why = "repeated presentation timestamps"
    elif AVI in fmt.split(",") and bframes:
        why = "AVI with B-frames stores no presentation timestamps"
    keyframes = tuple(i for i, (_, key) in enumerate(packets) if key) or (0,)
    if why:
        return StreamIndex(fmt, codec, len(packets), float(rate) if rate else 0.0, COUNTING, why, (), {},
                           keyframes, (), False, bframes)
    known: list[int] = [p for p in pts if p is not None]
    open_gop, shown_later = False, None
    for i in range(len(known) - 1, -1, -1):  # suffix minimum of pts in decode order
        if packets[i][1] and i > 0 and shown_later is not None and shown_later < known[i]:
            open_gop = True
        shown_later = known[i] if shown_later is None else min(shown_later, known[i])
    reordered = any(b < a for a, b in pairwise(known))
    return StreamIndex(fmt, codec, len(known), float(rate) if rate else 0.0, TIMESTAMPS, "",
                       tuple(sorted(known)), {p: i for i, p in enumerate(known)}, keyframes,
                       tuple(known[k] for k in keyframes), open_gop, bframes or reordered)


def stream_index(path: str) -> StreamIndex:
    """The cached index of ``path`` (rebuilt when the file's size or modification time change)."""
    check_file(path)
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    index = _cache.get(key)
    if index is None:
        index = build_index(path)
        _cache[key] = index
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return index


def rotation_of(frame) -> int:  # type: ignore[no-untyped-def]
    """Quarter turns counter-clockwise the display matrix asks for (0-3)."""
    return round(float(getattr(frame, "rotation", 0) or 0)) // 90 % 4


def to_rgb(frame, converter: Converter) -> np.ndarray:  # type: ignore[no-untyped-def]
    """uint8 RGB (H, W, 3) of ``frame``, rotation applied, converted by ``converter`` (see swscale)."""
    arr = converter.rgb(frame)
    k = rotation_of(frame)
    return np.ascontiguousarray(np.rot90(arr, k)) if k else arr


class PyAVReader:
    """Exact frames of one file: ``num_frames``, ``fps``, ``frames(indices)``, ``close()``."""

    def __init__(self, path: str) -> None:
        check_file(path)
        self.path = path
        self.index = stream_index(path)
        self.num_frames, self.fps = self.index.num_frames, self.index.fps
        self._container, self._stream = _open_container(path)
        self._rgb = Converter()

    @property
    def counts_from_start(self) -> bool:
        """True when every read decodes from the start of the file (counting mode)."""
        return self.index.mode == COUNTING

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 RGB (N, H, W, 3), in the order asked (repeats allowed)."""
        idx = check_indices(self.path, indices, self.num_frames)
        try:
            got = self._by_timestamp(set(idx)) if self.index.mode == TIMESTAMPS else self._by_counting(set(idx))
        except _Inconsistent:  # from now on, in this process, the file is read by counting
            self.index = _counting(self.index, "decoded timestamps differ from the packets'")
            _cache_put(self.path, self.index)
            got = self._by_counting(set(idx))
        except VideoUnreadable:
            raise
        except Exception as exc:  # FFmpeg errors while decoding: the root cause from its log
            _, _, cause = diagnose(self.path, max(idx))
            first = first_failing(lambda: PyAVReader(self.path), idx)
            raise VideoUnreadable(self.path, f"PyAV cannot decode {failing_frames(first, idx, self.num_frames)} "
                                             f"({cause or first_line(exc)})") from exc
        missing = sorted(set(idx) - set(got))
        if missing:
            raise VideoUnreadable(self.path, f"PyAV cannot decode frame {missing[0]} of {self.num_frames} (the "
                                             "decoder ends before it: damaged or truncated file?)")
        return np.stack([got[i] for i in idx])

    # timestamp mode ------------------------------------------------------------------------
    def _start_keyframe(self, wanted: set[int]) -> int:
        """Position (in self.index.keyframes) of the keyframe to decode from."""
        ix = self.index
        best = len(ix.keyframes) - 1
        for i in wanted:
            p = ix.pts[i]
            d = ix.decode_of[p]
            k = bisect.bisect_right(ix.keyframes, d) - 1
            while k > 0 and ix.keyframe_pts[k] > p:
                k -= 1
            best = min(best, max(k, 0))
        return best

    def _seek_to(self, k: int) -> Iterator:  # type: ignore[type-arg]
        """Packets from keyframe number ``k`` (or earlier) on, in decode order."""
        ix = self.index
        want = ix.keyframes[k]
        for ts in (ix.keyframe_pts[k], *(ix.keyframe_pts[j] for j in (k - 1, k - 2) if j >= 0)):
            if want == 0:
                break
            self._container.seek(ts, stream=self._stream, backward=True, any_frame=False)
            packets = self._container.demux(self._stream)
            for first in packets:
                if first.size == 0:
                    continue
                landed = ix.decode_of.get(first.pts) if first.pts is not None else None
                if landed is not None and landed <= want and landed in ix.keyframes:
                    return _chain(first, packets)
                break
        self._reopen()
        return iter(self._container.demux(self._stream))

    def _by_timestamp(self, wanted: set[int]) -> dict[int, np.ndarray]:
        ix = self.index
        by_pts = {ix.pts[i]: i for i in wanted}
        last_pts = max(by_pts)
        last_decode = max(ix.decode_of[p] for p in by_pts)
        got: dict[int, np.ndarray] = {}
        fed = -1
        for packet in self._seek_to(self._start_keyframe(wanted)):
            if packet.size > 0:
                fed = ix.decode_of.get(packet.pts, fed) if packet.pts is not None else fed
            for frame in packet.decode():
                if frame.pts not in ix.decode_of:
                    raise _Inconsistent
                i = by_pts.get(frame.pts)
                if i is not None and i not in got:
                    got[i] = to_rgb(frame, self._rgb)
                if len(got) == len(by_pts):
                    return got
                if frame.pts > last_pts and fed >= last_decode:
                    return got  # past every wanted frame: the missing ones do not decode
        return got

    # counting mode -------------------------------------------------------------------------
    def _by_counting(self, wanted: set[int]) -> dict[int, np.ndarray]:
        self._reopen()
        last = max(wanted)
        got: dict[int, np.ndarray] = {}
        n = 0
        for frame in self._container.decode(self._stream):
            if n in wanted:
                got[n] = to_rgb(frame, self._rgb)
            n += 1
            if n > last:
                break
        return got

    def _reopen(self) -> None:
        self._container.close()
        self._container, self._stream = _open_container(self.path)

    def close(self) -> None:
        self._container.close()


class _Inconsistent(Exception):
    """A decoded frame's pts is not one of the packets' (timestamps are not identities here)."""


def _counting(index: StreamIndex, why: str) -> StreamIndex:
    return StreamIndex(index.container, index.codec, index.num_frames, index.fps, COUNTING, why, (), {},
                       index.keyframes, (), index.open_gop, index.bframes)


def _cache_put(path: str, index: StreamIndex) -> None:
    st = os.stat(path)
    _cache[(os.path.abspath(path), st.st_size, st.st_mtime_ns)] = index


def _chain(first, rest) -> Iterator:  # type: ignore[no-untyped-def,type-arg]
    yield first
    yield from rest


def decode_all(path: str) -> Iterator[np.ndarray]:
    """Every frame of ``path`` by one sequential decode (rotation applied); raises VideoUnreadable."""
    container, stream = _open_container(path)
    converter = Converter()
    try:
        for frame in container.decode(stream):
            yield to_rgb(frame, converter)
    except Exception as exc:
        raise VideoUnreadable(path, f"PyAV cannot decode it ({first_line(exc)})") from exc
    finally:
        container.close()


_CONSEQUENCES = ("error while decoding MB", "concealing", "Error splitting the input")


def diagnose(path: str, upto: int | None = None) -> tuple[int, int, str | None]:
    """Decode ``path`` from the start (to frame ``upto``, or to the end) with FFmpeg's error log captured.

    Returns (frames decoded, frame at which the first error was logged or the decode stopped, and the
    root cause: FFmpeg's first error message, e.g. "h264: Invalid NAL unit size (-1 > 1640)", or None).
    """
    import av

    old = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    n, first, cause = 0, -1, None
    try:
        with av.logging.Capture() as logs:
            try:
                container, stream = _open_container(path, threads=False)  # logs come from this thread
                opening = len(logs)  # what probing the file logged: not a frame's error
                try:
                    for _ in container.decode(stream):
                        if len(logs) > opening and first < 0:
                            first = n
                        n += 1
                        if upto is not None and n > upto:
                            break
                finally:
                    container.close()
            except VideoUnreadable as exc:
                cause = exc.reason
            except Exception as exc:
                cause = first_line(exc)
                first = n if first < 0 else first
        if logs:  # "error while decoding MB" / "concealing" follow from the cause, which is logged with them
            causes = [m for m in logs if not m[2].startswith(_CONSEQUENCES)] or logs
            _, name, message = causes[0]
            cause = f"{name}: {message.strip()}"
    finally:
        av.logging.set_level(old)
    return n, first, cause
