"""``pas data synth | check | prepare`` as subprocesses, on real files."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import MP4, PYAV_ONLY

from pas_models.data.backends import open_video


def pas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pas_orchestrator", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_synth_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    args = ["--classes", "3", "--videos-per-class", "2", "--val-per-class", "1", "--frames", "20"]
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        res = pas("data", "synth", "--out", tmp_path / name, *args, "--seed", seed)
        assert res.returncode == 0, res.stderr
    a, b, c = (digest(tmp_path / n) for n in "abc")
    assert len([k for k in a if k.endswith(".mp4")]) == 9
    assert a == b
    assert {k: v for k, v in a.items() if k.endswith(".mp4")} != {k: v for k, v in c.items() if k.endswith(".mp4")}
    video = next((tmp_path / "a").rglob("*.mp4"))
    reader = open_video(video)
    assert (reader.num_frames, reader.fps) == (20, 25.0)
    assert (tmp_path / "a" / "train.txt").read_text().count("\n") == 6


def test_synth_rejects_bad_class_count(tmp_path: Path) -> None:
    res = pas("data", "synth", "--out", tmp_path, "--classes", "99")
    assert res.returncode == 2 and "--classes" in res.stderr


def test_check_lists_unreadable_videos_and_writes_a_clean_list(synth_dir: Path, tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(synth_dir, ds)
    res = pas("data", "check", ds / "dataset.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "16 of 16 videos readable" in res.stderr
    victims = sorted(ds.rglob("*.mp4"))[:2]
    victims[0].write_bytes(b"")
    victims[1].write_bytes(victims[1].read_bytes()[:500])
    res = pas("data", "check", ds / "dataset.yaml", "--write-clean", tmp_path / "clean.txt", "--workers", "2")
    assert res.returncode == 1
    lines = res.stdout.strip().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == [str(v) for v in victims]
    assert "empty file (0 bytes)" in res.stdout
    clean = (tmp_path / "clean.txt").read_text().splitlines()
    assert len(clean) == 14 and not any(v.name in line for v in victims for line in clean)


def test_check_bad_config_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text("format: list\nroot: .\nannotations: {train: t.txt}\nbogus: 1\n")
    res = pas("data", "check", tmp_path / "d.yaml")
    assert res.returncode == 1 and "unknown key(s) bogus" in res.stderr


def test_deep_check_names_the_first_bad_frame_and_notes_what_quick_cannot_see(tmp_path: Path) -> None:
    import sys as _sys
    _sys.path.insert(0, str(Path(__file__).parent))
    from videogen import make

    data = bytearray(MP4.read_bytes())
    half = bytearray(data)
    half[len(half) // 2: len(half) // 2 + 20_000] = b"\xff" * 20_000  # NAL sizes become garbage
    (tmp_path / "half.mp4").write_bytes(bytes(half))
    rng = np.random.default_rng(0)
    noisy = bytearray(data)
    noisy[len(noisy) // 2: len(noisy) // 2 + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (tmp_path / "noisy.mp4").write_bytes(bytes(noisy))  # decodes, with concealed errors
    shutil.copy(MP4, tmp_path / "good.mp4")
    make("avi_mpeg4_bframes.avi", tmp_path)
    (tmp_path / "dir.mp4").mkdir()
    names = ["good.mp4", "half.mp4", "noisy.mp4", "avi_mpeg4_bframes.avi", "dir.mp4"]
    (tmp_path / "train.txt").write_text("".join(f"{n} {i % 2}\n" for i, n in enumerate(names)))
    (tmp_path / "val.txt").write_text("good.mp4 0\n")
    (tmp_path / "ds.yaml").write_text("format: list\nroot: .\nannotations: {train: train.txt, val: val.txt}\n")
    deep = pas("data", "check", tmp_path / "ds.yaml", "--deep", "--workers", "2")
    assert deep.returncode == 1
    out = dict(line.split("\t", 1) for line in deep.stdout.strip().splitlines() if "\tnote:" not in line)
    assert out[str(tmp_path / "half.mp4")] == ("frame 138 of 300 does not decode "
                                                "(h264: Invalid NAL unit size (-1 > 1640).); frames 0-137 do")
    assert out[str(tmp_path / "dir.mp4")] == "not a regular file"
    notes = [line for line in deep.stdout.splitlines() if "\tnote:" in line]
    assert any("noisy.mp4\tnote: damaged but decodable: decoder errors from about frame" in n for n in notes)
    assert "3 of 5 videos readable; 2 unreadable" in deep.stderr
    if not PYAV_ONLY:  # decord hands the AVI with B-frames to the exact reader, and says so
        assert any("avi_mpeg4_bframes.avi\tnote: read by the exact PyAV reader" in n for n in notes)
        assert "2 unreadable; 1 read by the exact PyAV reader" in deep.stderr
    quick = pas("data", "check", tmp_path / "ds.yaml")
    assert "noisy.mp4" not in quick.stdout and "--deep decodes every frame" in quick.stderr


def test_the_clean_list_of_both_subsets_has_each_video_once_and_an_overlap_is_said(synth_dir: Path,
                                                                                   tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(synth_dir, ds)
    train = (ds / "train.txt").read_text().splitlines()
    (ds / "val.txt").write_text((ds / "val.txt").read_text() + train[0] + "\n")  # a training video in val too
    res = pas("data", "check", ds / "dataset.yaml", "--write-clean", tmp_path / "clean.txt", "--workers", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    clean = (tmp_path / "clean.txt").read_text().splitlines()
    assert len(clean) == len(set(clean)) == 16
    assert "1 video is in both train and val" in res.stderr
