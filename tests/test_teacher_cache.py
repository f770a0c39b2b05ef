"""The teacher cache (pas_models.teacher_cache) against the live teacher, on real synthetic videos:
a stored soft label is B's output on the recorded clip, the student's view of a recipe is the live path's,
a distillation step from the cache is the live step, and a cache made for another B, seed or dataset is
refused with the reason."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pas_models.data.dataset import ClipDataset, collate_clips
from pas_models.data.formats import load_dataset_config, load_video_list
from pas_models.data.transforms import Box
from pas_models.nets import build_model
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_models.teacher_cache.clips import load, manifest_for
from pas_models.teacher_cache.config import CacheConfig, CacheInvalid, CacheShardResult, CacheShardTask
from pas_models.teacher_cache.shard import run_shard
from pas_models.train.checkpoint import save_checkpoint
from pas_models.train.loss import distillation_loss
from pas_models.train.task import Distill, TrainTask
from pas_models.train.teacher import CachedTeacher, LiveTeacher, build_teacher

SEED = 3


def _base(tmp_path: Path, classes: int, seed: int = 0) -> tuple[Path, object]:
    torch.manual_seed(seed)
    spec = preset("r2plus1d_tiny", classes)
    net = build_model(spec)
    with torch.no_grad():  # BN statistics that are not the identity, so eval mode means something
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / f"B{seed}.pt"
    save_checkpoint({"model": net.state_dict(), "spec": spec.to_json()}, path)
    return path, spec


def _make(tmp_path: Path, synth_dir: Path, config: CacheConfig, bn: str = "eval", seed: int = 0,
          name: str = "cache") -> tuple[Path, object, object]:
    data = load_dataset_config(synth_dir / "dataset.yaml")
    weights, spec = _base(tmp_path, data.num_classes, seed)
    cache_dir = tmp_path / name
    for k in range(config.shards):
        r = run_shard(CacheShardTask(f"0-cache-{k}", str(tmp_path / f"{name}-job{k}"), str(cache_dir), k, spec,
                                     str(weights), data, config, bn, batch=4, num_workers=0, seed=SEED))
        assert isinstance(r, CacheShardResult) and r.shard == k and r.unreadable == 0
    return cache_dir, spec, data


def _expected(data: object, spec: object, weights: Path, config: CacheConfig, bn: str = "eval", seed: int = SEED):
    samples = load_video_list(data, "train").samples  # type: ignore[arg-type]
    return manifest_for(samples, data, spec, str(weights), config, seed, bn)  # type: ignore[arg-type]


def test_stored_labels_and_student_views_equal_the_live_path(tmp_path: Path, synth_dir: Path) -> None:
    config = CacheConfig(clips_per_video=3, top_k=None, shards=2)
    cache_dir, spec, data = _make(tmp_path, synth_dir, config)
    cache = load(cache_dir, _expected(data, spec, tmp_path / "B0.pt", config))
    samples = load_video_list(data, "train").samples
    assert cache.valid.all() and cache.logits.shape == (len(samples) * 3, data.num_classes)
    assert len({(int(cache.start[r]), tuple(cache.box[r])) for r in range(cache.k)}) > 1  # K different clips
    student_spec = apply_op(apply_op(spec, "t", {"t": 2}), "s", {"s": 1.4})
    live = ClipDataset(samples, student_spec, spec, train=True, backend=data.backend, mean=data.mean, std=data.std,
                       hflip=data.hflip, seed=SEED)
    cached = ClipDataset(samples, student_spec, None, train=True, clips=2, backend=data.backend, mean=data.mean,
                         std=data.std, hflip=data.hflip, seed=SEED, cache=cache)
    cached.set_epoch(1)
    task = TrainTask("1-t", spec, data, str(tmp_path), teacher=spec, teacher_checkpoint=str(tmp_path / "B0.pt"),
                     distill=Distill(teacher_bn="eval"))
    teacher = build_teacher(task, torch.device("cpu"))
    assert teacher is not None
    rows = set()
    live_items, cached_items = [], []
    for index in range(0, len(cached), 3):
        item = cached[index]
        video, clip = divmod(index, 2)
        row = cache.recipe_for(video, clip, 1, SEED)
        rows.add(row)
        same = live.clip_at(video, int(cache.start[row]), Box(*(int(x) for x in cache.box[row])),
                            bool(cache.flip[row]))
        assert torch.equal(item["student"], same["student"])  # decoded alone, cut exactly as the live path
        assert "teacher" not in item  # the teacher's view is never decoded
        with torch.no_grad():
            live_logits = teacher(same["teacher"][None])[0]
        torch.testing.assert_close(item["soft"], live_logits, rtol=2e-3, atol=2e-3)  # fp16 storage
        live_items.append({**same, "valid": True, "skipped": ()})
        cached_items.append(item)
    assert len(rows) > 1
    # one distillation step from each source, from the same weights: the same step
    torch.manual_seed(1)
    student = build_model(student_spec)
    twin = copy.deepcopy(student)
    live_batch = collate_clips(live_items)
    cached_batch = collate_clips(cached_items)
    assert torch.equal(live_batch["student"], cached_batch["student"])
    fmt = torch.contiguous_format
    for net, signal, batch in ((student, LiveTeacher(teacher, False, fmt), live_batch),
                               (twin, CachedTeacher(), cached_batch)):
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        t_logits = signal.logits(batch, torch.device("cpu"), fmt)
        loss = distillation_loss(net(batch["student"]), batch["label"], t_logits, 5.0, 10.0).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    for (name, a), b in zip(student.state_dict().items(), twin.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)
    assert CachedTeacher.source == "cache" and LiveTeacher.source == "live"


def test_top_k_keeps_the_largest_logits_and_the_mean_of_the_rest(tmp_path: Path, synth_dir: Path) -> None:
    full_cfg, top_cfg = CacheConfig(2, None, 1), CacheConfig(2, 2, 1)
    full_dir, spec, data = _make(tmp_path, synth_dir, full_cfg, name="full")
    top_dir, _, _ = _make(tmp_path, synth_dir, top_cfg, name="top")
    full = load(full_dir, _expected(data, spec, tmp_path / "B0.pt", full_cfg))
    top = load(top_dir, _expected(data, spec, tmp_path / "B0.pt", top_cfg))
    assert top.logits.shape[1] == 2 and top.indices is not None
    for row in range(len(full.valid)):
        dense, approx = full.soft(row), top.soft(row)
        best = np.argsort(-dense)[:2]
        assert sorted(top.indices[row].tolist()) == sorted(best.tolist())
        np.testing.assert_allclose(approx[best], dense[best], rtol=2e-3, atol=2e-3)
        others = [c for c in range(len(dense)) if c not in best]
        np.testing.assert_allclose(approx[others], dense[others].mean(), rtol=5e-3, atol=5e-3)


def test_train_bn_mode_uses_the_batch_statistics(tmp_path: Path, synth_dir: Path) -> None:
    config = CacheConfig(2, None, 1)
    eval_dir, spec, data = _make(tmp_path, synth_dir, config, bn="eval", name="eval")
    train_dir, _, _ = _make(tmp_path, synth_dir, config, bn="train", name="train")
    a = load(eval_dir, _expected(data, spec, tmp_path / "B0.pt", config, "eval"))
    b = load(train_dir, _expected(data, spec, tmp_path / "B0.pt", config, "train"))
    assert np.array_equal(a.start, b.start) and np.array_equal(a.box, b.box)  # the same recipes
    assert not np.allclose(a.logits.astype(np.float32), b.logits.astype(np.float32), atol=1e-2)


def test_a_cache_for_another_b_seed_or_split_is_refused(tmp_path: Path, synth_dir: Path) -> None:
    config = CacheConfig(2, None, 2)
    cache_dir, spec, data = _make(tmp_path, synth_dir, config)
    weights = tmp_path / "B0.pt"
    load(cache_dir, _expected(data, spec, weights, config))  # its own manifest: accepted
    other_b, _ = _base(tmp_path, data.num_classes, seed=1)
    with pytest.raises(CacheInvalid, match=r"shard-000-of-002\.npz: made for another B or dataset: teacher_weights"):
        load(cache_dir, _expected(data, spec, other_b, config))
    with pytest.raises(CacheInvalid, match=r"seed: 3 \(cache\) != 4 \(this training\)"):
        load(cache_dir, _expected(data, spec, weights, config, seed=4))
    with pytest.raises(CacheInvalid, match=r"clips_per_video: 2 \(cache\) != 3"):
        load(cache_dir, _expected(data, spec, weights, replace(config, clips_per_video=3)))
    with pytest.raises(CacheInvalid, match="teacher_bn: eval"):
        load(cache_dir, _expected(data, spec, weights, config, bn="train"))
    fewer = replace(data, mean=(0.5, 0.5, 0.5))
    with pytest.raises(CacheInvalid, match="dataset: "):
        load(cache_dir, _expected(fewer, spec, weights, config))
    (cache_dir / "shard-001-of-002.npz").unlink()
    with pytest.raises(CacheInvalid, match=r"shard-001-of-002\.npz: teacher cache shard missing"):
        load(cache_dir, _expected(data, spec, weights, config))
    (cache_dir / "shard-001-of-002.npz").write_bytes(b"torn")
    with pytest.raises(CacheInvalid, match="not a readable teacher cache shard"):
        load(cache_dir, _expected(data, spec, weights, config))


def test_a_finished_shard_is_not_computed_again(tmp_path: Path, synth_dir: Path) -> None:
    config = CacheConfig(2, None, 1)
    cache_dir, spec, data = _make(tmp_path, synth_dir, config)
    shard = cache_dir / "shard-000-of-001.npz"
    before = shard.stat()
    task = CacheShardTask("0-cache-0", str(tmp_path / "cache-job0"), str(cache_dir), 0, spec,
                          str(tmp_path / "B0.pt"), data, config, "eval", batch=4, num_workers=0, seed=SEED)
    again = run_shard(task)
    assert again == CacheShardResult.read(tmp_path / "cache-job0" / "result.json")
    after = shard.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize(("gres", "expected"), [(None, None), ("gpu:4", "gpu:1"), ("gpu:v100:4", "gpu:v100:1")])
def test_a_shard_job_gets_one_process_and_one_gpu(gres: str | None, expected: str | None) -> None:
    from pas_orchestrator.config.cluster import Resources, single_gpu_resources

    res = Resources(nodes=16, tasks_per_node=4, gpus_per_node=4, gres=gres, time_min=1440, array_parallelism=8,
                    exclusive=True)
    s = single_gpu_resources(res)
    assert (s.nodes, s.tasks_per_node, s.gpus_per_node, s.gres, s.exclusive, s.time_min, s.array_parallelism) == (
        1, 1, 1, expected, False, 1440, 8)  # shards go out as an array, throttled like the hypotheses


def test_a_shard_with_gpu_decode_stores_the_same_recipes(tmp_path: Path, synth_dir: Path) -> None:
    """The search's recipe.gpu_decode reaches the shard job; its recipes are drawn as on the CPU. On a GPU the
    clips are decoded by NVDEC (logits within the colour conversion's effect); without one, on the CPU, so the
    shard is the CPU's to the bit."""
    import numpy as np

    config = CacheConfig(2, None, 1)
    cache_dir, spec, data = _make(tmp_path, synth_dir, config)
    task = CacheShardTask("0-cache-0", str(tmp_path / "gpu-job0"), str(tmp_path / "gpu"), 0, spec,
                          str(tmp_path / "B0.pt"), data, config, "eval", batch=4, num_workers=0, seed=SEED,
                          gpu_decode=True)
    run_shard(task)
    cpu, gpu = (np.load(d / "shard-000-of-001.npz") for d in (cache_dir, tmp_path / "gpu"))
    assert sorted(cpu.files) == sorted(gpu.files)
    for key in cpu.files:
        if key == "logits" and torch.cuda.is_available():
            assert np.allclose(cpu[key], gpu[key], atol=0.05), key
        else:
            assert np.array_equal(cpu[key], gpu[key]), key
