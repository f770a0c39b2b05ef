"""The four annotation formats parsed from small fixture files; errors name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pas_models.data.formats import (
    AnnotationError,
    DatasetConfig,
    dataset_config_from_dict,
    load_dataset_config,
    load_video_list,
)
from pas_models.errors import UnknownNameError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_kinetics_csv_finds_files_in_class_folders_and_flat(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "riding a bike,abc,10,20,train\nabseiling,def,0,10,train\nabseiling,gone,5,15,train\n")
    (tmp_path / "val.csv").write_text("label,youtube_id,time_start,time_end,split\nriding a bike,xyz,30,40,val\n")
    touch(tmp_path / "train" / "riding a bike" / "abc_000010_000020.mp4")
    touch(tmp_path / "def_000000_000010.mp4")
    touch(tmp_path / "val" / "xyz_000030_000040.mp4")
    cfg = DatasetConfig(format="kinetics400", root=str(tmp_path), annotations={"train": "train.csv", "val": "val.csv"})
    train = load_video_list(cfg, "train")
    assert train.classes == ("abseiling", "riding a bike")
    assert sorted((Path(s.path).name, s.label) for s in train.samples) == [
        ("abc_000010_000020.mp4", 1), ("def_000000_000010.mp4", 0)]
    assert train.missing == ("gone_000005_000015.mp4",)
    val = load_video_list(cfg, "val")
    assert [(Path(s.path).name, s.label) for s in val.samples] == [("xyz_000030_000040.mp4", 1)]


def test_kinetics_bad_header_and_unknown_val_label(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("label,id\nx,y\n")
    cfg = DatasetConfig(format="kinetics400", root=str(tmp_path), annotations={"train": "train.csv", "val": "v.csv"})
    with pytest.raises(AnnotationError, match=r"train\.csv: header must have"):
        load_video_list(cfg, "train")
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\na,b,1,2,train\n")
    (tmp_path / "v.csv").write_text("label,youtube_id,time_start,time_end,split\nzzz,b,1,2,val\n")
    with pytest.raises(AnnotationError, match=r"v.csv:2: label 'zzz' is not in the train CSV"):
        load_video_list(cfg, "val")


def test_ucf101_splits(tmp_path: Path) -> None:
    ann = tmp_path / "ucfTrainTestlist"
    ann.mkdir()
    (ann / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (ann / "trainlist02.txt").write_text("Archery/v_Archery_g01_c01.avi 2\nApplyEyeMakeup/v_A_g01_c01.avi 1\n")
    (ann / "testlist02.txt").write_text("Archery/v_Archery_g07_c01.avi\n")
    cfg = DatasetConfig(format="ucf101", root=str(tmp_path / "UCF-101"), annotations={"dir": str(ann)}, split=2)
    train = load_video_list(cfg, "train")
    assert train.classes == ("ApplyEyeMakeup", "Archery")
    assert [(Path(s.path).parent.name, s.label) for s in train.samples] == [("Archery", 1), ("ApplyEyeMakeup", 0)]
    assert [s.label for s in load_video_list(cfg, "val").samples] == [1]
    with pytest.raises(AnnotationError, match=r"testlist01\.txt: annotation file not found"):
        load_video_list(DatasetConfig(**{**cfg.__dict__, "split": 1}), "val")
    with pytest.raises(AnnotationError, match=r"data\.split: ucf101 has splits 1, 2, 3; got 4"):
        load_video_list(DatasetConfig(**{**cfg.__dict__, "split": 4}), "val")


def test_hmdb51_split_tags(tmp_path: Path) -> None:
    ann = tmp_path / "splits"
    ann.mkdir()
    (ann / "brush_hair_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    (ann / "cartwheel_test_split1.txt").write_text("d.avi 2\ne.avi 1\n")
    cfg = DatasetConfig(format="hmdb51", root=str(tmp_path / "videos"), annotations={"dir": str(ann)})
    train = load_video_list(cfg, "train")
    assert train.classes == ("brush_hair", "cartwheel")
    assert [(Path(s.path).relative_to(tmp_path / "videos").as_posix(), s.label) for s in train.samples] == [
        ("brush_hair/a.avi", 0), ("cartwheel/e.avi", 1)]
    assert [Path(s.path).name for s in load_video_list(cfg, "val").samples] == ["b.avi", "d.avi"]
    (ann / "cartwheel_test_split1.txt").write_text("d.avi 7\n")
    with pytest.raises(AnnotationError, match=r"cartwheel_test_split1.txt:1: expected '<video> <0\|1\|2>'"):
        load_video_list(cfg, "train")


def test_plain_list(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("videos/a b.mp4 0\nvideos/c.mp4 2\n")
    cfg = DatasetConfig(format="list", root=str(tmp_path), annotations={"train": "train.txt", "val": "val.txt"})
    vl = load_video_list(cfg, "train")
    assert [(Path(s.path).name, s.label) for s in vl.samples] == [("a b.mp4", 0), ("c.mp4", 2)]
    assert vl.classes == ("0", "1", "2")
    (tmp_path / "val.txt").write_text("videos/x.mp4\n")
    with pytest.raises(AnnotationError, match=r"val.txt:1: expected 'relative/path label'"):
        load_video_list(cfg, "val")
    with pytest.raises(AnnotationError, match=r"train.txt:2: label 2 outside \[0, 2\)"):
        load_video_list(DatasetConfig(**{**cfg.__dict__, "num_classes": 2}), "train")
    assert len(load_video_list(DatasetConfig(**{**cfg.__dict__, "num_classes": 5}), "train").classes) == 5


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"data: unknown key.s. colour; valid keys: format"):
        dataset_config_from_dict({"format": "list", "root": ".", "annotations": {}, "colour": 1})
    with pytest.raises(AnnotationError, match=r"data\.format: 'avi' is not one of kinetics400, ucf101, hmdb51, list"):
        dataset_config_from_dict({"format": "avi", "root": ".", "annotations": {}})
    with pytest.raises(AnnotationError, match=r"data\.backend: 'opencv' is not one of auto, decord, pyav, torchcodec"):
        dataset_config_from_dict({"format": "list", "root": ".", "annotations": {}, "backend": "opencv"})
    with pytest.raises(AnnotationError, match=r"data: missing key\(s\) root"):
        dataset_config_from_dict({"format": "list", "annotations": {}})
    with pytest.raises(AnnotationError, match=r"data\.hflip: expected bool, got 'yes'"):
        dataset_config_from_dict({"format": "list", "root": ".", "annotations": {}, "hflip": "yes"})
    with pytest.raises(AnnotationError, match=r"data\.mean: expected 3 values, got 2"):
        dataset_config_from_dict({"format": "list", "root": ".", "annotations": {}, "mean": [0.5, 0.5]})
    with pytest.raises(AnnotationError, match="dataset config not found"):
        load_dataset_config(tmp_path / "nope.yaml")
    with pytest.raises(UnknownNameError, match="valid subsets: train, val"):
        load_video_list(DatasetConfig(format="list", root=".", annotations={}), "test")


def test_config_file_root_is_relative_to_the_file(synth_dir: Path) -> None:
    cfg = load_dataset_config(synth_dir / "dataset.yaml")
    assert cfg.root == str(synth_dir.resolve()) and cfg.hflip is False and cfg.num_classes == 4
    vl = load_video_list(cfg, "train")
    assert len(vl.samples) == 12 and vl.classes[0] == "square-right-slow"
    assert all(Path(s.path).is_file() for s in vl.samples)
