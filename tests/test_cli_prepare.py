"""``pas data prepare`` as a subprocess: short side, resume, settings stamps, collisions, rotation, and a
UCF101-layout folder of AVI files prepared, checked and trained on with the same dataset config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import DATA, MP4
from test_cli_data import pas
from tinyjob import TINY_RECIPE
from videogen import encode, make, sequential_decode

from pas_models.data.backends import open_video, read_frames


def test_prepare_reencodes_to_a_short_side_resumes_and_redoes_other_settings(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(DATA, src)
    (src / "notes.txt").write_text("not a video")
    res = pas("data", "prepare", src, tmp_path / "dst", "--short-side", "128", "--keyint", "8")
    assert res.returncode == 0, res.stderr
    assert "2 re-encoded, 0 already done, 0 failed" in res.stderr
    out = tmp_path / "dst" / "mmaction2_test.mp4"
    reader = open_video(out)
    assert reader.num_frames == 300 and reader.frames([0]).shape == (1, 128, 170, 3)
    a = read_frames(MP4, [150]).astype(float).mean()
    assert abs(reader.frames([150]).astype(float).mean() - a) < 3  # same picture, smaller
    mapping = (tmp_path / "dst" / "prepare-map.tsv").read_text().splitlines()
    assert mapping[1:] == ["flipping_a_pancake.mkv\tflipping_a_pancake.mp4\tok",
                           "mmaction2_test.mp4\tmmaction2_test.mp4\tok"]
    again = pas("data", "prepare", src, tmp_path / "dst", "--short-side", "128", "--keyint", "8")
    assert "0 re-encoded, 2 already done" in again.stderr
    other = pas("data", "prepare", src, tmp_path / "dst", "--short-side", "96", "--keyint", "8")
    assert "2 re-encoded (2 with other settings or a changed source), 0 already done" in other.stderr
    assert open_video(out).frames([0]).shape == (1, 96, 128, 3)
    assert not list((tmp_path / "dst").glob("*.part"))


def test_two_sources_for_one_output_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "k").mkdir(parents=True)
    shutil.copy(MP4, src / "k" / "a.mp4")
    shutil.copy(MP4, src / "k" / "a.avi")
    res = pas("data", "prepare", src, tmp_path / "dst", "--short-side", "64", "--workers", "2")
    assert res.returncode == 2
    assert res.stderr.strip() == ("pas data prepare: error: 1 output(s) would be written by two sources "
                                  "(k/a.avi and k/a.mp4 -> k/a.mp4); rename or remove one of each")
    assert not (tmp_path / "dst").exists()


def test_rotation_is_kept_in_the_pixels(tmp_path: Path) -> None:
    if not hasattr(__import__("av").video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display matrix (PyAV >= 17 can)")
    src = tmp_path / "src"
    make("mov_h264_rot90.mov", src)
    res = pas("data", "prepare", src, tmp_path / "dst", "--short-side", "64")
    assert res.returncode == 0, res.stderr
    ref = sequential_decode(src / "mov_h264_rot90.mov")
    for backend in ("decord", "pyav"):
        got = read_frames(tmp_path / "dst" / "mov_h264_rot90.mp4", [0, 59], backend)
        assert got.shape == (2, 96, 64, 3)  # portrait, as shown (short side 64 already)
        assert np.abs(got[1].astype(float) - ref[59]).mean() < 6  # the same picture, re-encoded


def _ucf101(root: Path) -> Path:
    """A UCF101-layout folder: 3 classes x 4 AVI files (MPEG-4 Part 2 with B-frames), split 1."""
    classes = ["ApplyEyeMakeup", "Basketball", "CliffDiving"]
    train, test = [], []
    for c, name in enumerate(classes):
        for g in range(4):
            rel = f"{name}/v_{name}_g{g + 1:02d}_c01.avi"
            encode(root / rel, "avi", "mpeg4", n=24, max_b_frames=2, size=(48, 64))
            (train if g < 3 else test).append((rel, c + 1))
    ann = root / "ucfTrainTestlist"
    ann.mkdir()
    (ann / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(classes)))
    (ann / "trainlist01.txt").write_text("".join(f"{r} {c}\n" for r, c in train))
    (ann / "testlist01.txt").write_text("".join(f"{r}\n" for r, _ in test))
    config = root / "ucf101.yaml"
    config.write_text("format: ucf101\nroot: .\nannotations: {dir: ucfTrainTestlist}\nsplit: 1\n")
    return config


def test_ucf101_avi_prepared_checked_and_trained_with_the_same_config(tmp_path: Path) -> None:
    src, dst = tmp_path / "UCF-101", tmp_path / "UCF-101-128"
    config = _ucf101(src)
    res = pas("data", "prepare", src, dst, "--short-side", "32", "--config", config)
    assert res.returncode == 0, res.stderr
    assert "12 re-encoded" in res.stderr and (dst / "Basketball" / "v_Basketball_g01_c01.mp4").is_file()
    assert (dst / "ucfTrainTestlist" / "trainlist01.txt").read_text().startswith(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.mp4 1\n")
    same = dst / "ucf101.yaml"
    shutil.copy(config, same)  # the user's config, unchanged, next to the prepared copy
    check = pas("data", "check", same)
    assert check.returncode == 0 and "12 of 12 videos readable" in check.stderr, check.stderr
    assert yaml.safe_load((dst / "dataset.yaml").read_text())["annotations"] == {"dir": "ucfTrainTestlist"}
    job = {"name": "ucf", "backbone": "r2plus1d_tiny", "base": {"train": True},
           "data": {"format": "ucf101", "root": str(dst), "annotations": {"dir": "ucfTrainTestlist"}, "split": 1,
                    "num_classes": 3},
           "recipe": {**TINY_RECIPE, "batch_per_gpu": 3}, "eval": {"clips": 1}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    train = pas("train", "--job", tmp_path / "job.yaml", "--base", "--json")
    assert train.returncode == 0, train.stderr
    result = json.loads(train.stdout)
    assert result["epochs"] == 1 and result["eval_videos"] == 3 and result["videos_skipped"] == 0
