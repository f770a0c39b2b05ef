"""Training works on videos of the default synthetic set (8 classes, chance 12.5%), measured so that the
verdict does not depend on the machine:

- a tiny R(2+1)D trained on 16 of its videos (2 per class) for 30 epochs fits them: top-1 on those videos
  far above chance (measured on seeds 0-4: 87.5-100%);
- the mechanism behind the paper's Table 2: its `f` child (half the GFLOPs), distilled from it and
  fine-tuned from its weights for 4 epochs, keeps much of what it learned, where the same child trained
  from scratch with cross-entropy only and the same recipe stays near chance (measured, seeds 0-4: 62.5-93.75%
  against 12.5-25%).

Why not held-out videos: a held-out top-1 of this tiny network after 10 epochs on the whole set is a coin
flip between machines and seeds (measured on one machine, seeds 0-3: 17, 30, 48, 38%; 12.5% for one seed
of another recipe), so a threshold there fails on some machine. The held-out figures are the demo's
(docs/training.md), from 25 epochs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pas_models.data.formats import load_dataset_config
from pas_models.data.synth import SynthConfig, generate
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_models.train.run import run
from pas_models.train.task import Distill, EvalConfig, Recipe, TrainTask

CHANCE = 100 / 8


def _recipe(epochs: int, lr: float) -> Recipe:
    return Recipe(epochs=epochs, batch_per_gpu=16, lr=lr, reference_batch=16, warmup_epochs=1, schedule="cosine",
                  clips_per_video=4, num_workers=0, nesterov=True)  # no worker processes: the same clips


@pytest.fixture(scope="module")
def trained_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("learns")
    generate(root / "data", SynthConfig(videos_per_class=2, val_per_class=1))
    config = root / "data" / "dataset.yaml"
    spec = json.loads(config.read_text())
    spec["annotations"]["val"] = "train.txt"  # evaluated on the videos it trained on
    config.write_text(json.dumps(spec))
    data = load_dataset_config(config)
    result = run(TrainTask("base", preset("r2plus1d_tiny", 8), data, str(root / "base"), recipe=_recipe(30, 0.05),
                           eval=EvalConfig(clips=4), measure_latency=False))
    return root, result


@pytest.mark.slow
def test_tiny_r2plus1d_fits_videos_of_the_default_synthetic_set(trained_base: tuple[Path, Any]) -> None:
    _, result = trained_base
    assert result.eval_videos == 16
    assert result.top1 >= 6 * CHANCE, result.top1


@pytest.mark.slow
def test_distilled_fine_tuned_student_keeps_what_the_scratch_student_does_not_learn(
        trained_base: tuple[Path, Any]) -> None:
    root, base = trained_base
    data = load_dataset_config(root / "data" / "dataset.yaml")
    teacher = preset("r2plus1d_tiny", 8)
    student = apply_op(teacher, "f")
    common = {"student": student, "data": data, "recipe": _recipe(4, lr=0.1), "eval": EvalConfig(clips=4),
              "measure_latency": False}
    pas = run(TrainTask("f", out_dir=str(root / "f"), teacher=teacher, teacher_checkpoint=base.checkpoint,
                        parent=teacher, parent_checkpoint=base.checkpoint, distill=Distill(alpha=10), **common))
    scratch = run(TrainTask("f-scratch", out_dir=str(root / "f-scratch"), **common))
    assert pas.finetuned_from_parent and not scratch.finetuned_from_parent
    assert pas.teacher_source == "live" and scratch.teacher_source == "none"
    assert pas.gflops_per_view == scratch.gflops_per_view < base.gflops_per_view / 1.9
    assert pas.top1 > scratch.top1 + 2 * CHANCE, (pas.top1, scratch.top1)
