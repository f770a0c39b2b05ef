"""Frame-exact random access: both backends against a full sequential decode, frame by frame.

The files are written here with the properties that break timestamp seeking (B-frames
in AVI, open GOPs, variable frame rate, no presentation timestamps, rotation), plus
the shipped real clips. The reference is one plain PyAV decode from the start, with the
rotation applied (tests/videogen.py), independent of the readers under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import BACKEND_PARAMS, BACKENDS_HERE, MKV, MP4, needs_decord, needs_torchcodec
from videogen import HARD_VIDEOS, encode, make, sequential_decode

from pas_models.data import pyav_reader
from pas_models.data.backends import DecordReader, TorchcodecReader, open_video, read_frames


@pytest.fixture(scope="module")
def hard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hard")


def _file(name: str, folder: Path) -> Path:
    if "rot" in name and not hasattr(__import__("av").video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display matrix (PyAV >= 17 can)")
    return make(name, folder)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("name", sorted(HARD_VIDEOS))
def test_every_frame_alone_and_random_sets_equal_a_sequential_decode(hard_dir: Path, name: str,
                                                                     backend: str) -> None:
    path = _file(name, hard_dir)
    ref = sequential_decode(path)
    reader = open_video(path, backend)
    try:
        assert reader.num_frames == len(ref)
        for i in range(len(ref)):  # every frame alone: the access pattern that fails most
            assert np.array_equal(reader.frames([i])[0], ref[i]), f"{name} frame {i} ({backend})"
        rng = np.random.default_rng(1)
        for _ in range(25):  # any set, any order, repeats
            idx = [int(x) for x in rng.integers(0, len(ref), int(rng.integers(2, 10)))]
            got = reader.frames(idx)
            assert all(np.array_equal(g, ref[i]) for g, i in zip(got, idx, strict=True)), f"{name} {idx}"
        for i in (0, len(ref) // 2, len(ref) - 1):  # alone again, after unordered sets (torchcodec once returned
            assert np.array_equal(reader.frames([i])[0], ref[i]), f"{name} frame {i} after sets"  # frame i-1)
    finally:
        reader.close()


@pytest.mark.parametrize("path", [MP4, MKV])
def test_shipped_clips_sampled_frames_equal_a_sequential_decode(path: Path) -> None:
    ref = sequential_decode(path)
    idx = [0, 1, 37, 150, 151, 299, 64, 3, 120, 121, 122, 123]
    for backend in BACKENDS_HERE:
        got = read_frames(path, idx, backend)
        assert all(np.array_equal(g, ref[i]) for g, i in zip(got, idx, strict=True)), backend


def test_rotation_is_applied_by_every_backend(hard_dir: Path) -> None:
    path = _file("mov_h264_rot90.mov", hard_dir)
    a, *others = (read_frames(path, [0, 30], be) for be in BACKENDS_HERE)
    assert a.shape == (2, 96, 64, 3)  # stored 96 wide x 64 high, shown portrait
    assert all(np.array_equal(a, b) for b in others)


@needs_decord
@pytest.mark.parametrize(("name", "why"), [
    ("avi_mpeg4_bframes.avi", "AVI with B-frames"), ("avi_h264_bframes.avi", "AVI with B-frames"),
    ("mp4_h264_open_gop.mp4", "open-GOP"), ("mkv_h264_open_gop.mkv", "open-GOP")])
def test_decord_hands_the_files_it_gets_wrong_to_the_exact_reader(hard_dir: Path, name: str, why: str) -> None:
    reader = DecordReader(str(_file(name, hard_dir)))
    try:
        assert reader.exact_by is not None and why in reader.exact_by
    finally:
        reader.close()


@needs_decord
@pytest.mark.parametrize("name", ["mp4_h264_bframes.mp4", "avi_mpeg4_ip.avi", "mkv_h264_vfr.mkv"])
def test_decord_keeps_the_files_it_reads_exactly(hard_dir: Path, name: str) -> None:
    reader = DecordReader(str(_file(name, hard_dir)))
    assert reader.exact_by is None
    reader.close()


@needs_torchcodec
@pytest.mark.parametrize(("name", "exact"), [
    ("avi_mpeg4_bframes.avi", False), ("avi_h264_bframes.avi", False), ("mp4_h264_open_gop.mp4", True),
    ("mkv_h264_open_gop.mkv", True), ("avi_mpeg4_ip.avi", True), ("mp4_h264_vfr.mp4", True)])
def test_torchcodec_hands_avi_with_b_frames_to_the_exact_reader_and_keeps_the_rest(hard_dir: Path, name: str,
                                                                                    exact: bool) -> None:
    reader = TorchcodecReader(str(_file(name, hard_dir)))
    try:
        assert (reader.exact_by is None) == exact, reader.exact_by
        if not exact:
            assert "AVI with B-frames" in str(reader.exact_by)
    finally:
        reader.close()


def test_index_modes(hard_dir: Path) -> None:
    idx = {n: pyav_reader.stream_index(str(_file(n, hard_dir))) for n in
           ("avi_mpeg4_bframes.avi", "avi_mpeg4_ip.avi", "mp4_h264_open_gop.mp4", "mp4_h264_bframes.mp4")}
    assert idx["avi_mpeg4_bframes.avi"].mode == pyav_reader.COUNTING
    assert idx["avi_mpeg4_ip.avi"].mode == pyav_reader.TIMESTAMPS
    assert idx["mp4_h264_open_gop.mp4"].open_gop and not idx["mp4_h264_bframes.mp4"].open_gop
    assert "decodes from the start" in idx["avi_mpeg4_bframes.avi"].describe()


def test_the_index_follows_a_rewritten_file(tmp_path: Path) -> None:
    path = encode(tmp_path / "v.mp4", "mp4", "libx264", n=20)
    assert open_video(path, "pyav").num_frames == 20
    encode(tmp_path / "w.mp4", "mp4", "libx264", n=30).replace(path)
    assert open_video(path, "pyav").num_frames == 30


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_deep_check_of_a_damaged_avi_read_from_the_start_names_where_it_stops(hard_dir: Path, tmp_path: Path,
                                                                               backend: str) -> None:
    import av

    from pas_models.data.tools import probe

    src = _file("avi_h264_bframes.avi", hard_dir)
    with av.open(str(src)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size > 0]
    data = bytearray(src.read_bytes())
    for pos, size in packets[30:32]:  # two frames' payload overwritten, the AVI structure intact
        data[pos + 8: pos + size] = b"\xff" * (size - 8)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(data))
    reader = open_video(bad, backend)
    assert reader.counts_from_start and reader.num_frames == 60  # AVI with B-frames: decoded from the start
    reader.close()
    result = probe(str(bad), backend, deep=True)
    # the frame, then FFmpeg's words for it (its log is the process's: a decode elsewhere in it can supply them)
    assert result.error is not None and " of 60 does not decode (" in result.error, result
    first_bad = int(result.error.split()[1])
    assert 20 <= first_bad <= 31 and result.error.endswith(f"frames 0-{first_bad - 1} do")
