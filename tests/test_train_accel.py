"""How a training uses the accelerator (pas_models.train.accel): the policies, and a real training with them."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from pas_models.nets import build_model
from pas_models.presets import preset
from pas_models.train.accel import Feeding, Precision, compiled, sgd
from pas_models.train.run import run
from pas_models.train.task import Recipe
from pas_orchestrator.config.recorded import definition_dict, definition_hash
from pas_orchestrator.config.search import load_search
from pas_orchestrator.errors import ConfigError

FAST = {"compile": "max-autotune", "fused_optimizer": True, "gpu_decode": True}


def test_gpu_decode_feeds_from_the_gpu_without_workers_and_cpu_decode_keeps_the_recipes() -> None:
    cuda, cpu = torch.device("cuda:1"), torch.device("cpu")
    assert Feeding.of(Recipe(num_workers=6, gpu_decode=True), cuda) == Feeding("cuda:1", 0, False)
    assert Feeding.of(Recipe(num_workers=6), cuda) == Feeding("cpu", 6, True)  # pinned for the copy to the GPU
    assert Feeding.of(Recipe(num_workers=6, gpu_decode=True), cpu) == Feeding("cpu", 6, False)  # a CPU run


def test_on_a_cpu_the_gpu_options_are_named_and_left_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "pas_models.train.accel"):
        p = Precision.of(Recipe(amp="bf16", channels_last=True, **FAST), torch.device("cpu"), "h1")
    assert p == Precision(False, None, torch.contiguous_format)
    assert "h1: on CPU: amp, channels_last, compile, gpu_decode left off (GPU options)" in caplog.text
    model = build_model(preset("r2plus1d_tiny", 4))
    assert compiled(model, "default", gpu=False) is model and compiled(model, "none", gpu=True) is model
    with pytest.raises(ValueError, match="compile mode 'fast'"):
        compiled(model, "fast", gpu=True)


def test_the_compiled_forward_is_the_modules_and_its_weights_keep_their_names() -> None:
    """The dynamo front end as training uses it (backend "eager": no C++ compiler needed); the wrapper is what
    steps, the module what checkpoints read."""
    torch.manual_seed(0)
    spec = preset("r2plus1d_tiny", 4)
    model = build_model(spec).eval()
    fast = compiled(model, "default", gpu=True, backend="eager")
    assert fast is not model
    x = torch.randn(2, *spec.input_shape(train=False))
    assert torch.allclose(fast(x), model(x), atol=1e-6)
    assert set(model.state_dict()) == set(build_model(spec).state_dict())  # no "_orig_mod." prefix


def test_the_fused_sgd_takes_the_same_step() -> None:
    torch.manual_seed(0)
    spec = preset("r2plus1d_tiny", 4)
    models = [build_model(spec) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    x, y = torch.randn(3, *spec.input_shape(train=True)), torch.tensor([0, 1, 3])
    opts = [sgd(m.parameters(), 0.1, Recipe(fused_optimizer=f)) for m, f in zip(models, (False, True), strict=True)]
    assert opts[1].defaults["fused"] is True and not opts[0].defaults["fused"]
    for _ in range(2):
        for m, opt in zip(models, opts, strict=True):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_training_with_the_options_trains_what_one_without_them_trains(synth_dir: Path, tmp_path: Path) -> None:
    """The options change how the step runs, not what is trained: the same config hash (what ``last.pt`` must
    match: a checkpoint written without them resumes with them), the same losses on a CPU, and the result
    records the recipe as run."""
    from pas_models.data.formats import load_dataset_config
    from pas_models.train.task import EvalConfig, TrainTask

    recipe = Recipe(epochs=2, batch_per_gpu=4, lr=0.05, reference_batch=4, warmup_epochs=0.5, schedule="cosine",
                    clips_per_video=1, num_workers=0)
    data = load_dataset_config(synth_dir / "dataset.yaml")
    plain = TrainTask("h", preset("r2plus1d_tiny", 4), data, str(tmp_path / "plain"), recipe=recipe,
                      eval=EvalConfig(clips=1, latency_passes=0))
    fast = replace(plain, out_dir=str(tmp_path / "fast"), recipe=replace(recipe, **FAST))
    assert fast.config_hash() == plain.config_hash()
    results = [run(t) for t in (plain, fast)]
    losses = [[json.loads(line)["loss"] for line in (Path(t.out_dir) / "metrics.jsonl").read_text().splitlines()]
              for t in (plain, fast)]
    # the steps before and right after the first update agree closely (fused and foreach SGD round differently);
    # later ones drift apart as a tiny network amplifies rounding, more so where threads reduce in another order
    assert len(losses[0]) == 6 and losses[1][:3] == pytest.approx(losses[0][:3], rel=1e-4)
    assert losses[1] == pytest.approx(losses[0], rel=0.05)
    assert results[1].recipe["fused_optimizer"] is True and results[1].recipe["compile"] == "max-autotune"


def _search(tmp_path: Path, recipe: dict, **more: object) -> Path:
    raw = {"name": "accel", "backbone": "r2plus1d_tiny", "base": {"train": True},
           "data": {"format": "list", "root": str(tmp_path), "annotations": {"train": "t.txt", "val": "v.txt"},
                    "num_classes": 4, **more.pop("data", {})},  # type: ignore[dict-item]
           "recipe": recipe, **more}
    path = tmp_path / "accel.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_definition_records_the_options_only_where_set_and_a_resume_may_switch_them(tmp_path: Path) -> None:
    plain = load_search(_search(tmp_path, {"epochs": 2}))
    fast = load_search(_search(tmp_path, {"epochs": 2, **FAST}))
    assert not set(FAST) & set(definition_dict(plain)["recipe"])  # a search recorded before them still resumes
    assert {k: definition_dict(fast)["recipe"][k] for k in FAST} == FAST
    assert definition_hash(fast) == definition_hash(plain)  # what a resume must match
    assert definition_hash(load_search(_search(tmp_path, {"epochs": 3, **FAST}))) != definition_hash(plain)


@pytest.mark.parametrize(("recipe", "more", "message"), [
    ({"compile": "fast"}, {}, "recipe.compile"),
    ({"gpu_decode": True}, {"data": {"backend": "decord"}}, "recipe.gpu_decode: decoding on the GPU is torchcodec's"),
    ({"compile": "default"}, {"strategy": "gradient", "gradient": {"targets_gflops": [0.001]}},
     "recipe.compile: strategy gradient steps a different sampled network"),
])
def test_option_errors_name_the_key_and_the_fix(tmp_path: Path, recipe: dict, more: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_search(_search(tmp_path, recipe, **more))


@pytest.mark.parametrize(("backbone", "ops"), [("r2plus1d_tiny", "cf"), ("slowfast_tiny", "cs"), ("x3d_tiny", "ct"),
                                               ("r2plus1d_tiny", "k")])
def test_every_family_compiles_to_one_graph(backbone: str, ops: str) -> None:
    """``compile`` pays off only where dynamo captures the network whole: a graph break (Python it cannot trace)
    splits it into graphs run one after the other, each a launch and a round trip through Python."""
    import torch._dynamo as dynamo

    from pas_models.reductions import apply_sequence

    spec = apply_sequence(preset(backbone), list(ops))[-1]
    dynamo.reset()
    explained = dynamo.explain(build_model(spec).train())(torch.randn(2, *spec.input_shape(train=True)))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
