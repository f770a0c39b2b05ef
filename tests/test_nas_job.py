"""The supernet job (pas_models.nas.search): its candidates, its exact resume after a requeue signal, its refusals,
its clipped weight steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pas_models.flops import count_cost
from pas_models.nas.result import GradientConfig, SupernetResult, SupernetTask
from pas_models.nas.search import run
from pas_models.nets import build_model
from pas_models.presets import PRESETS
from pas_models.spec import ArchSpec
from pas_models.train import signals
from pas_models.train.checkpoint import load_checkpoint, save_checkpoint
from pas_models.train.task import Distill, Recipe


def _task(synth_dir: Path, out: Path, base_ckpt: Path, **kw: object) -> SupernetTask:
    from pas_models.data.formats import load_dataset_config

    base = PRESETS["r2plus1d_tiny"](4)
    return SupernetTask("1-supernet", base, str(base_ckpt), kw.pop("target", 0.6 * count_cost(base).gflops),
                        load_dataset_config(synth_dir / "dataset.yaml"), str(out),
                        recipe=Recipe(epochs=2, batch_per_gpu=2, lr=0.1, reference_batch=2, num_workers=0,
                                      clips_per_video=1),
                        distill=Distill(alpha=1.0),
                        gradient=kw.pop("gradient", GradientConfig(epochs=2, cycles=2, warmup=0.25, arch_lr=0.05)),
                        **kw)


def test_supernet_job_candidates_and_exact_resume(synth_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    base = PRESETS["r2plus1d_tiny"](4)
    torch.manual_seed(0)
    ckpt = tmp_path / "b.pt"
    save_checkpoint({"model": build_model(base).state_dict(), "spec": base.to_json()}, ckpt)
    whole = run(_task(synth_dir, tmp_path / "whole", ckpt))
    assert isinstance(whole, SupernetResult) and len(whole.candidates) == 2
    assert whole.arch_steps > 0 and whole.weight_steps > whole.arch_steps and whole.cost_error < 1e-9
    for c in whole.candidates:
        spec = ArchSpec.from_dict(c.spec)
        net = build_model(spec)
        net.load_state_dict(load_checkpoint(c.weights)["model"], strict=True)
    assert SupernetResult.read(Path(tmp_path / "whole" / "supernet.json")) == whole
    assert run(_task(synth_dir, tmp_path / "whole", ckpt)) == whole  # done: returned as is

    # the same search stopped by a requeue signal at step 3, then run again: the same result
    calls = {"n": 0}

    def pending() -> bool:
        calls["n"] += 1
        return calls["n"] == 3

    class Requeued(Exception):
        pass

    def fire() -> None:
        if calls["n"] == 3:
            calls["n"] += 100
            raise Requeued

    monkeypatch.setattr(signals, "pending", pending)
    monkeypatch.setattr(signals, "fire", fire)
    with pytest.raises(Requeued):
        run(_task(synth_dir, tmp_path / "resumed", ckpt))
    assert not (tmp_path / "resumed" / "supernet.json").exists() and (tmp_path / "resumed" / "last.pt").exists()
    monkeypatch.undo()
    resumed = run(_task(synth_dir, tmp_path / "resumed", ckpt))
    assert "resuming at step" in (tmp_path / "resumed" / "train.log").read_text()
    assert resumed.probabilities == whole.probabilities
    assert [c.code for c in resumed.candidates] == [c.code for c in whole.candidates]
    a = load_checkpoint(whole.candidates[-1].weights)["model"]
    b = load_checkpoint(resumed.candidates[-1].weights)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_supernet_job_refuses_a_target_outside_the_space(synth_dir: Path, tmp_path: Path) -> None:
    from pas_models.errors import PasError

    base = PRESETS["r2plus1d_tiny"](4)
    ckpt = tmp_path / "b.pt"
    save_checkpoint({"model": build_model(base).state_dict(), "spec": base.to_json()}, ckpt)
    with pytest.raises(PasError, match="outside this search space"):
        run(_task(synth_dir, tmp_path / "o", ckpt, target=1.0))


def test_supernet_weight_steps_are_clipped_and_a_non_finite_one_updates_nothing(synth_dir: Path, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    """gradient.grad_clip bounds every weight step's gradient norm (the norm before clipping is logged); a step
    whose gradients are not finite changes no weight, and the job goes on."""
    import json

    import pas_models.nas.search as search_mod

    base = PRESETS["r2plus1d_tiny"](4)
    torch.manual_seed(0)
    ckpt = tmp_path / "b.pt"
    save_checkpoint({"model": build_model(base).state_dict(), "spec": base.to_json()}, ckpt)
    clipped = torch.nn.utils.clip_grad_norm_
    seen: list[float] = []

    def clip(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
        seen.append(max_norm)
        if len(seen) == 2:  # the second weight step: its gradients are not finite
            for p in params:
                if p.grad is not None:
                    p.grad.fill_(float("nan"))
        return clipped(params, max_norm)

    monkeypatch.setattr(search_mod.torch.nn.utils, "clip_grad_norm_", clip)
    task = _task(synth_dir, tmp_path / "s", ckpt, gradient=GradientConfig(epochs=2, cycles=1, warmup=0.5,
                                                                         arch_lr=0.05, grad_clip=0.5))
    result = run(task)
    assert set(seen) == {0.5} and len(seen) == result.weight_steps
    rows = [json.loads(line) for line in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert not torch.isfinite(torch.tensor(rows[1]["grad_norm_w"])) and all(
        torch.isfinite(torch.tensor(r["grad_norm_w"])) for i, r in enumerate(rows) if i != 1)
    assert "1 weight step(s) and 0 architecture step(s) were not finite" in (tmp_path / "s" / "train.log").read_text()
    for c in result.candidates:  # every weight stayed finite
        assert all(torch.isfinite(v).all() for v in load_checkpoint(c.weights)["model"].values()
                   if v.dtype.is_floating_point)
