"""ClipDataset on real files: teacher and student views from one decode, augmentation, unreadable videos."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MKV, MP4

from pas_models.data.backends import read_frames
from pas_models.data.dataset import ClipDataset, ClipLoader, NoReadableVideo, collate_clips
from pas_models.data.formats import Sample
from pas_models.data.sampling import plan_views, random_starts, uniform_starts, views_span
from pas_models.data.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    crop_resize,
    eval_boxes,
    resize_frames,
    to_clip,
    train_box,
)
from pas_models.presets import preset
from pas_models.reductions import apply_sequence

TEACHER = preset("r2plus1d_18", num_classes=2)
SAMPLES = [Sample(str(MP4), 0), Sample(str(MKV), 1)]


def _expected_eval_views(student, path: Path, clip: int, clips: int):
    """The same views computed by hand: decode the frames, cut the teacher's box at each view's size."""
    n = 300 if path == MP4 else 310
    start = uniform_starts(n, views_span(student, TEACHER), clips)[clip]
    plan = plan_views(student, TEACHER, start, n)
    frames = read_frames(path, plan.decode)
    box = eval_boxes(frames.shape[1], frames.shape[2], TEACHER.view)[0]
    union = crop_resize(frames, box, TEACHER.view.crop_test)
    teacher = to_clip(union[list(plan.teacher)], KINETICS_MEAN, KINETICS_STD)
    student_view = crop_resize(frames[list(plan.student)], box, student.view.crop_test)  # the same box, straight
    return teacher, to_clip(student_view, KINETICS_MEAN, KINETICS_STD)


@pytest.mark.parametrize("ops", [["f"], ["s"], ["s", "f", "t"], ["c", "t"]])
def test_views_are_cut_from_one_decode(ops: list[str]) -> None:
    student = apply_sequence(TEACHER, ops)[-1]
    ds = ClipDataset(SAMPLES, student, TEACHER, train=False, clips=3)
    for index in (0, 2, 4):
        item = ds[index]
        video, clip = divmod(index, 3)
        teacher, expected_student = _expected_eval_views(student, Path(SAMPLES[video].path), clip, 3)
        assert item["teacher"].shape == TEACHER.input_shape()
        assert item["student"].shape == student.input_shape()
        assert torch.allclose(item["teacher"], teacher, atol=1e-6)
        assert torch.allclose(item["student"], expected_student, atol=1e-6)


def test_without_s_the_student_frames_are_exactly_selected_teacher_frames() -> None:
    student = apply_sequence(TEACHER, ["f", "t"])[-1]  # frames 0, 2, 4, 6 of the teacher's 16
    item = ClipDataset(SAMPLES, student, TEACHER, train=True, clips=1, seed=3)[1]
    assert torch.equal(item["student"], item["teacher"][:, [0, 2, 4, 6]])


def test_with_s_the_student_is_the_teachers_box_resized_straight_from_the_source() -> None:
    """Not B's view resized again: that would keep what B's resize aliased to lower frequencies, which the
    student's own evaluation view (the box resized straight) does not have."""
    student = apply_sequence(TEACHER, ["s"])[-1]
    item = ClipDataset(SAMPLES, student, TEACHER, train=True, clips=1, seed=3)[0]
    assert item["student"].shape == (3, 16, 80, 80)
    rng = np.random.default_rng((3, 0, 0))  # the dataset's draws for seed 3, epoch 0, item 0: start, then box
    start = random_starts(300, views_span(student, TEACHER), 1, rng)[0]
    plan = plan_views(student, TEACHER, start, 300)
    frames = read_frames(MP4, plan.decode)
    box, flip = train_box(frames.shape[1], frames.shape[2], TEACHER.view, rng)
    expected = to_clip(crop_resize(frames[list(plan.student)], box, 80, flip), KINETICS_MEAN, KINETICS_STD)
    assert torch.allclose(item["student"], expected, atol=1e-5)
    mean = torch.tensor(KINETICS_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD).view(3, 1, 1, 1)
    teacher_u8 = ((item["teacher"] * std + mean) * 255).round().clamp(0, 255).byte().permute(1, 0, 2, 3)
    again = to_clip(resize_frames(teacher_u8, 80), KINETICS_MEAN, KINETICS_STD)
    assert not torch.allclose(item["student"], again, atol=1e-3)


def test_training_clips_are_reproducible_per_epoch_and_differ_across_epochs() -> None:
    student = apply_sequence(TEACHER, ["f"])[-1]
    ds = ClipDataset(SAMPLES, student, TEACHER, train=True, clips=2, seed=11)
    a, b = ds[1]["teacher"], ds[1]["teacher"]
    assert torch.equal(a, b)
    ds.set_epoch(1)
    assert not torch.equal(a, ds[1]["teacher"])


def test_hflip_setting() -> None:
    spec = preset("r2plus1d_tiny", 2)
    flipped = ClipDataset(SAMPLES, spec, train=True, clips=16, seed=0)
    plain = ClipDataset(SAMPLES, spec, train=True, clips=16, seed=0, hflip=False)
    same = [torch.equal(flipped[i]["student"], plain[i]["student"]) for i in range(16)]
    assert 0 < sum(same) < 16  # identical boxes and starts; only the flips differ


def test_three_crop_evaluation() -> None:
    spec = preset("slowfast_tiny", 2)
    ds = ClipDataset(SAMPLES, spec, train=False, clips=2, crops=3)
    assert len(ds) == 12
    crops = [ds[i]["student"] for i in range(3)]
    assert all(c.shape == spec.input_shape() for c in crops)
    assert not torch.equal(crops[0], crops[1]) and not torch.equal(crops[1], crops[2])


def _bad_dataset(tmp_path: Path) -> list[Sample]:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(b"not a video" * 100)
    (tmp_path / "cut.mp4").write_bytes(MP4.read_bytes()[:3000])
    shutil.copy(MP4, tmp_path / "good.mp4")
    names = ["missing.mp4", "empty.mp4", "good.mp4", "garbage.mp4", "cut.mp4"]
    return [Sample(str(tmp_path / n), i % 2) for i, n in enumerate(names)]


def test_training_skips_unreadable_videos_and_reports_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = preset("r2plus1d_tiny", 2)
    ds = ClipDataset(_bad_dataset(tmp_path), spec, train=True, clips=2)
    items = [ds[i] for i in range(len(ds))]
    assert all(it["valid"] and it["video"] == 2 for it in items)  # every clip comes from the good video
    assert {v for it in items for v in it["skipped"]} == {0, 1, 3, 4}
    assert set(ds.skipped_videos) == {0, 1, 3, 4}
    warnings = [r.getMessage() for r in caplog.records if "skipping unreadable video" in r.getMessage()]
    assert len(warnings) == 4  # one per file, however often it is hit
    assert any("missing.mp4: file not found" in w for w in warnings)


def test_evaluation_marks_unreadable_videos_invalid(tmp_path: Path) -> None:
    ds = ClipDataset(_bad_dataset(tmp_path), preset("r2plus1d_tiny", 2), train=False, clips=1)
    items = [ds[i] for i in range(len(ds))]
    assert [it["valid"] for it in items] == [False, False, True, False, False]
    assert all(it["student"].shape == (3, 8, 32, 32) for it in items)


def test_dataloader_workers_gather_skipped_ids(tmp_path: Path) -> None:
    ds = ClipDataset(_bad_dataset(tmp_path), preset("r2plus1d_tiny", 2), train=True, clips=4)
    loader = ClipLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_clips)
    batches = list(loader)
    assert sum(len(b["label"]) for b in batches) == 20
    assert {v for b in batches for v in b["skipped"]} == {0, 1, 3, 4}


def test_many_bad_files_terminate_and_all_bad_is_a_clear_error(tmp_path: Path) -> None:
    samples = []
    for i in range(60):
        p = tmp_path / f"bad{i}.mp4"
        p.write_bytes(b"junk" * 64)
        samples.append(Sample(str(p), 0))
    ds = ClipDataset(samples, preset("r2plus1d_tiny", 2), train=True)
    with pytest.raises(NoReadableVideo, match="all 60 videos are unreadable"):
        ds[0]
    with pytest.raises(NoReadableVideo, match="none of the 2 videos is a non-empty file"):
        ClipDataset([Sample(str(tmp_path / "nope.mp4"), 0), Sample(str(tmp_path / "nope2.mp4"), 1)],
                    preset("r2plus1d_tiny", 2), train=True)
    good = [*samples, Sample(str(MP4), 1)]
    ds = ClipDataset(good, preset("r2plus1d_tiny", 2), train=True)
    assert ds[0]["video"] == 60 and len(ds[0]["skipped"]) == 60


def test_synthetic_videos_through_the_pyav_backend(synth_dir: Path) -> None:
    from pas_models.data.formats import load_dataset_config, load_video_list

    cfg = load_dataset_config(synth_dir / "dataset.yaml")
    vl = load_video_list(cfg, "train")
    spec = preset("slowfast_tiny", 4)
    a = ClipDataset(vl.samples, spec, train=False, backend="pyav")[3]
    b = ClipDataset(vl.samples, spec, train=False, backend="decord")[3]
    assert torch.equal(a["student"], b["student"])


def _half_corrupt(path: Path) -> Path:
    """The shipped clip with 20 kB of its middle overwritten: frames 0-137 decode, later ones do not."""
    data = bytearray(MP4.read_bytes())
    data[len(data) // 2: len(data) // 2 + 20_000] = b"\xff" * 20_000
    path.write_bytes(bytes(data))
    return path


def test_a_video_failing_once_is_excluded_in_every_worker_and_later_epoch(tmp_path: Path) -> None:
    """Workers are new processes each epoch; the exclusion is shared memory the main process made."""
    bad = _half_corrupt(tmp_path / "half.mp4")
    samples = [Sample(str(bad), 0)] + [Sample(str(MP4), i % 2) for i in range(3)]
    # 4 clips of each video per epoch: seed 3 reaches the corrupt half in epoch 0 (with decord and PyAV), two
    # more epochs of new workers follow (12 clips and 4 epochs cost 24 CPU-s instead of 7 and saw the same)
    ds = ClipDataset(samples, preset("r2plus1d_tiny", 2), train=True, clips=4, seed=3)
    uses_after_failure = failed_in = None
    for epoch in range(3):
        ds.set_epoch(epoch)
        loader = ClipLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_clips, persistent_workers=False)
        for b in loader:
            if failed_in is not None and epoch > failed_in:
                uses_after_failure = (uses_after_failure or 0) + int((b["video"] == 0).sum())
        if failed_in is None and 0 in ds.skipped_videos:  # the main process sees the workers' flag
            failed_in = epoch
    assert failed_in is not None and failed_in < 2, "no clip reached the corrupt half in time for a later epoch"
    assert uses_after_failure == 0
    assert set(ds.skipped_videos) == {0}


def test_resume_keeps_earlier_exclusions_and_a_folder_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "dir.mp4").mkdir()
    ds = ClipDataset([Sample(str(tmp_path / "dir.mp4"), 0), Sample(str(MP4), 1), Sample(str(MP4), 0)],
                     preset("r2plus1d_tiny", 2), train=True)
    assert ds.skipped_videos == {0: "not a regular file"}
    ds.exclude([2])
    assert all(ds[i]["video"] == 1 for i in range(3))


def test_evaluation_leaves_out_a_partially_unreadable_video_whole(tmp_path: Path) -> None:
    from pas_models.data.formats import DatasetConfig
    from pas_models.nets import build_model
    from pas_models.train.evaluate import evaluate
    from pas_models.train.task import EvalConfig

    bad = _half_corrupt(tmp_path / "half.mp4")
    spec = preset("r2plus1d_tiny", 2)
    samples = [Sample(str(bad), 0), Sample(str(MP4), 1)]
    ds = ClipDataset(samples, spec, train=False, clips=10)
    assert {ds[i]["valid"] for i in range(10)} == {True, False}  # some views of video 0 decode, some do not
    data = DatasetConfig(format="list", root=str(tmp_path), annotations={})
    res = evaluate(build_model(spec), samples, spec, data, EvalConfig(clips=10, crops=1), torch.device("cpu"))
    assert (res.videos, res.skipped, res.skipped_ids) == (1, 1, (0,))


class _CollectsInWorkers(ClipDataset):
    def __getitem__(self, index: int):  # type: ignore[no-untyped-def]
        import gc

        gc.collect()  # what a worker's allocations trigger sooner or later
        return super().__getitem__(index)


@pytest.mark.timeout(120)
def test_workers_do_not_hang_on_a_reader_left_in_a_cycle_by_the_parent(tmp_path: Path) -> None:
    from pas_models.data.backends import open_video

    ds = _CollectsInWorkers([Sample(str(MP4), 0), Sample(str(MP4), 1)], preset("r2plus1d_tiny", 2), train=True,
                            backend="pyav")
    cycle: list[object] = [open_video(MP4, "pyav")]
    cycle[0].frames([0, 100])  # FFmpeg's frame threads are running
    cycle.append(cycle)
    del cycle  # garbage now, freed only by a collection
    batches = list(ClipLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_clips))
    assert sum(len(b["label"]) for b in batches) == 2
