"""``run(task) -> result``: train one hypothesis (or the base network) and evaluate it.

Idempotent and resumable: an existing ``result.json`` is returned as is; an
existing ``last.pt`` (written atomically after every epoch and every
``checkpoint_minutes``) is resumed from, at the exact step, when its config
hash matches the task's. Files in ``task.out_dir``:

- ``last.pt``: model, optimizer, epoch, step, counters, RNG state (weights_only-loadable)
- ``model.pt``: the final weights and spec (what the next iteration and ``pas export`` read)
- ``progress.json``: epoch, step, loss, lr, clips/s, time; rewritten every few seconds (a heartbeat)
- ``metrics.jsonl``: one line per step: epoch, step, loss (mean over ranks), ce, kl, lr
- ``predictions.npz``: the final evaluation's per-video scores (``pas_models.predictions``), before the result
- ``result.json``: the job result (``pas_models.train.result.JobResult``), written last
- ``train.log``: the job's log
- ``tensorboard/``: scalars (train/loss, train/lr per step; epoch/loss, epoch/clips_per_s, val/top1 ...)
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from pas_models import __version__
from pas_models.data.dataset import ClipLoader, NoReadableVideo, collate_clips
from pas_models.errors import PasError
from pas_models.flops import count_cost
from pas_models.halving import RungResult, rung_end
from pas_models.latency import measure
from pas_models.layout import HypFiles
from pas_models.train import distributed, signals
from pas_models.train.checkpoint import load_checkpoint, save_checkpoint, write_json
from pas_models.train.evaluate import evaluate
from pas_models.train.features import FeatureStudent
from pas_models.train.frame import run_once
from pas_models.train.loss import distillation_loss
from pas_models.train.result import JobResult
from pas_models.train.scalars import Scalars
from pas_models.train.schedule import lr_at
from pas_models.train.setup import Training, setup
from pas_models.train.task import TrainTask

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 5.0
# tests only: every optimizer step lasts at least this many seconds (the job sleeps what is left of it), so
# a test of a scheduler's time limit or of a node going down gets a training of a known wall time, whatever
# else runs on the machine, for almost no CPU. Unset in normal use; a training that reads it says so in its log
STEP_SECONDS_ENV = "PAS_TEST_STEP_SECONDS"


class CheckpointMismatch(PasError):
    """``last.pt`` in the output folder belongs to a different task."""


def _done(task: TrainTask, files: HypFiles) -> JobResult | RungResult | None:
    """What an earlier run of this very task wrote already (its result, or this rung's), else None."""
    if files.result.exists():
        return JobResult.read(files.result)
    if task.rung is not None and not task.rung.last and files.rung(task.rung.k).exists():
        return RungResult.read(files.rung(task.rung.k))
    return None


def run(task: TrainTask) -> JobResult | RungResult:
    """Train and evaluate ``task`` (resuming from ``last.pt``); a rung of a halving search ends at the rung's
    step with a cheap evaluation (``RungResult``, rung-K.json), the whole schedule with a ``JobResult``."""
    out = Path(task.out_dir)
    files = HypFiles(out)
    out.mkdir(parents=True, exist_ok=True)
    return run_once(files, lambda: _done(task, files), lambda env, device: _train_and_evaluate(task, env, device, out))


@dataclass
class TrainState:
    """Where a training is (what ``last.pt`` carries besides weights and optimizer): resumed exactly."""

    epoch: int = 0  # the epoch in progress (== epochs when done)
    step: int = 0  # steps done in that epoch
    clips_seen: int = 0
    train_seconds: float = 0.0
    skipped: set[int] = field(default_factory=set)  # training samples found unreadable

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "clips_seen": self.clips_seen,
                "train_seconds": self.train_seconds, "skipped": sorted(self.skipped)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        return cls(int(d["epoch"]), int(d["step"]), int(d["clips_seen"]), float(d["train_seconds"]),
                   set(d["skipped"]))


def _train_and_evaluate(task: TrainTask, env: distributed.DistEnv, device: torch.device,
                        out: Path) -> JobResult | RungResult:
    tr = setup(task, env, device, out)
    state = _resume(out, task, tr.trained, tr.optimizer, tr.scaler)
    tr.dataset.exclude(sorted(state.skipped))  # found unreadable before the resume: still excluded
    scalars = Scalars(out, enabled=env.is_main)
    rung = task.rung if task.rung is not None and not task.rung.last else None
    total = task.recipe.epochs * tr.steps_per_epoch
    end = rung_end(total, rung.eta, rung.rungs, rung.k) if rung is not None else total
    try:
        _train(tr, state, scalars, until=divmod(end, tr.steps_per_epoch))
        ev_cfg = task.eval if rung is None else replace(task.eval, clips=rung.clips, crops=rung.crops)
        ev = evaluate(tr.model, tr.val_list.samples, tr.spec, task.data, ev_cfg, device, env.world, env.rank,
                      decode_device=tr.feeding.decode_device)
        if rung is None:
            scalars.add({"val/top1": ev.top1, "val/top5": ev.top5}, task.recipe.epochs)
        else:
            scalars.add({f"val/top1_rung{rung.k}": ev.top1, f"val/top5_rung{rung.k}": ev.top5}, end)
    finally:
        scalars.close()
        tr.teacher.close()
    if rung is not None:
        result = RungResult(task.hypothesis, task.attempt, rung.k, rung.rungs, end, total, float(ev.top1),
                            float(ev.top5), ev_cfg.clips * ev_cfg.crops, ev.videos, state.train_seconds,
                            state.clips_seen,
                            ev.predictions.per_video().to_dict() if ev.predictions is not None else {})
        log.info("%s: rung %d/%d ends after %d of %d steps: top-1 %.2f%% (%d clip(s) x %d crop(s))", task.hypothesis,
                 rung.k, rung.rungs, end, total, ev.top1, ev_cfg.clips, ev_cfg.crops)
        if env.is_main:
            if ev.predictions is not None:
                ev.predictions.write(HypFiles(out).rung_predictions(rung.k))
            write_json(result.to_dict(), HypFiles(out).rung(rung.k))
        return result
    skipped_files = ({tr.train_list.samples[i].path for i in state.skipped}
                     | {tr.val_list.samples[i].path for i in ev.skipped_ids})
    return _finish(out, task, tr.model, state, len(skipped_files), ev, env, device, tr.finetuned, tr.teacher.source)


def step_seconds() -> float:
    """$PAS_TEST_STEP_SECONDS (0 when unset): the least wall time of one optimizer step."""
    raw = os.environ.get(STEP_SECONDS_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise PasError(f"${STEP_SECONDS_ENV}={raw!r}: expected seconds >= 0 (tests only; unset it)")
    return value


def _train(tr: Training, state: TrainState, scalars: Scalars, until: tuple[int, int]) -> TrainState:
    """Train from ``state`` to ``until`` = (epoch, step) of the full schedule (the learning-rate schedule is
    always the full run's: stopping early and resuming later is exactly the uninterrupted run). Checkpoints
    every epoch and every ``checkpoint_minutes``; a quick evaluation every ``eval.every_epochs``."""
    # one line per step (rank 0): epoch, step, loss (mean over ranks), ce, kl, feat, lr; after a resume the
    # steps since the last checkpoint appear twice: readers keep the last line of each (epoch, step)
    metrics = HypFiles(tr.out).metrics.open("a", buffering=1) if tr.env.is_main else None
    t_start = time.monotonic() - state.train_seconds
    with signals.deferred():  # a requeue signal is taken at a step boundary (train/signals.py)
        try:
            _epochs(tr, state, scalars, until, metrics, t_start)
        finally:
            if metrics is not None:
                metrics.close()
    return state


def _epochs(tr: Training, state: TrainState, scalars: Scalars, until: tuple[int, int], metrics: Any,
            t_start: float) -> None:
    task, env, recipe = tr.task, tr.env, tr.task.recipe
    fmt = tr.precision.memory_format
    last_ckpt = last_progress = time.monotonic()
    pace = step_seconds()
    if pace and env.is_main:
        log.warning("%s: every step lasts at least %g s ($%s, for tests)", task.hypothesis, pace, STEP_SECONDS_ENV)
    for epoch in range(state.epoch, min(until[0] + (until[1] > 0), recipe.epochs)):
        start_step = state.step if epoch == state.epoch else 0
        end_step = until[1] if epoch == until[0] and until[1] > 0 else tr.steps_per_epoch
        tr.dataset.set_epoch(epoch)
        tr.sampler.set_epoch(epoch, start_step * recipe.batch_per_gpu)
        # the loader's own generator (its workers' seeds): without one it draws them from torch's global
        # generator, which dropout also draws from, and a loader made mid-epoch on a resume would shift every
        # later dropout mask: a resumed run (a rung, a requeue) would not be the uninterrupted one
        seeds = torch.Generator().manual_seed(task.seed * 1_000_003 + epoch)
        loader = ClipLoader(tr.dataset, batch_size=recipe.batch_per_gpu, sampler=tr.sampler, drop_last=True,
                            num_workers=tr.feeding.num_workers, collate_fn=collate_clips,
                            persistent_workers=False, pin_memory=tr.feeding.pin_memory, generator=seeds)
        bar = tqdm(loader, desc=f"{task.hypothesis} epoch {epoch + 1}/{recipe.epochs}", unit="batch",
                   initial=start_step, total=tr.steps_per_epoch, disable=not env.is_main or None, leave=False)
        t_epoch, clips_epoch, loss, loss_sum, n_steps = time.monotonic(), 0, float("nan"), 0.0, 0
        for step, batch in _one_line_errors(enumerate(bar, start=start_step)):
            if step >= end_step:
                break
            lr = lr_at(recipe, tr.peak_lr, epoch + step / tr.steps_per_epoch)
            t_step = time.monotonic()
            loss, parts, feat = _step(tr, batch, lr, fmt)
            if pace:
                time.sleep(max(0.0, pace - (time.monotonic() - t_step)))
            loss_sum, n_steps = loss_sum + loss, n_steps + 1
            state.skipped.update(batch["skipped"])
            state.clips_seen += len(batch["label"]) * env.world
            clips_epoch += len(batch["label"]) * env.world
            now = time.monotonic()
            state.epoch, state.step, state.train_seconds = epoch, step + 1, now - t_start
            if metrics is not None:
                metrics.write(json.dumps({"epoch": epoch, "step": step, "loss": loss, "ce": parts.ce.item(),
                                          "kl": parts.kl.item(), "feat": feat.item(), "lr": lr}) + "\n")
                scalars.add({"train/loss": loss, "train/lr": lr}, epoch * tr.steps_per_epoch + step)
            if env.is_main and now - last_progress >= PROGRESS_SECONDS:
                _progress(tr.out, task, state, loss, lr, clips_epoch / max(now - t_epoch, 1e-9))
                last_progress = now
            if now - last_ckpt >= recipe.checkpoint_minutes * 60:
                _checkpoint(tr.out, task, tr.trained, tr.optimizer, tr.scaler, state, env)
                last_ckpt = now
            if signals.pending():  # a requeue signal: checkpoint this very step, then requeue
                _checkpoint(tr.out, task, tr.trained, tr.optimizer, tr.scaler, state, env)
                signals.fire()
        if end_step < tr.steps_per_epoch:  # stopped inside the epoch (a step budget): resumable exactly there
            state.train_seconds = time.monotonic() - t_start
            _checkpoint(tr.out, task, tr.trained, tr.optimizer, tr.scaler, state, env)
            break
        state.epoch, state.step, state.train_seconds = epoch + 1, 0, time.monotonic() - t_start
        _checkpoint(tr.out, task, tr.trained, tr.optimizer, tr.scaler, state, env)
        last_ckpt = time.monotonic()
        _end_of_epoch(tr, epoch, scalars, loss_sum / max(n_steps, 1),
                      clips_epoch / max(time.monotonic() - t_epoch, 1e-9))
        signals.fire()  # one that came during the epoch's checkpoint or evaluation


def _step(tr: Training, batch: dict[str, Any], lr: float,
          fmt: torch.memory_format) -> tuple[float, Any, torch.Tensor]:
    """One optimizer step: (loss averaged over ranks, loss parts, feature loss)."""
    task, device, amp = tr.task, tr.device, tr.precision.amp_dtype
    for group in tr.optimizer.param_groups:
        group["lr"] = lr
    x = batch["student"].to(device, non_blocking=True, memory_format=fmt)
    y = batch["label"].to(device, non_blocking=True)
    feat = torch.zeros((), device=device)
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        t_logits = tr.teacher.logits(batch, device, fmt)
        if tr.teacher.tap is not None:
            logits, feat = tr.train_model(x, tr.teacher.tap.take())
        else:
            logits = tr.train_model(x)
    parts = distillation_loss(logits, y, t_logits, task.distill.temperature, task.distill.alpha,
                              task.distill.kl_reduction)  # in fp32 (the loss upcasts AMP logits)
    total = parts.total + task.distill.feature_weight * feat if tr.teacher.tap is not None else parts.total
    tr.optimizer.zero_grad(set_to_none=True)
    tr.scaler.scale(total).backward()
    tr.scaler.step(tr.optimizer)
    tr.scaler.update()
    return _mean_over_ranks(total.detach(), tr.env.world), parts, feat


def _end_of_epoch(tr: Training, epoch: int, scalars: Scalars, mean_loss: float, rate: float) -> None:
    task = tr.task
    epoch_scalars = {"epoch/loss": mean_loss, "epoch/clips_per_s": rate}
    every = task.eval.every_epochs
    if every and (epoch + 1) % every == 0 and epoch + 1 < task.recipe.epochs:
        quick = evaluate(tr.model, tr.val_list.samples, tr.spec, task.data, replace(task.eval, clips=1, crops=1),
                         tr.device, tr.env.world, tr.env.rank, decode_device=tr.feeding.decode_device)
        epoch_scalars.update({"val/top1_1clip": quick.top1, "val/top5_1clip": quick.top5})
    scalars.add(epoch_scalars, epoch + 1)
    log.info("%s: epoch %d/%d done, %s", task.hypothesis, epoch + 1, task.recipe.epochs,
             ", ".join(f"{k.split('/')[1]} {v:.4g}" for k, v in epoch_scalars.items()))


def _mean_over_ranks(value: torch.Tensor, world: int) -> float:
    if world > 1:
        value = value.clone()
        torch.distributed.all_reduce(value)
        value /= world
    return value.item()


def _parts(trained: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """(student, feature adapters or None) of what the optimizer trains."""
    if isinstance(trained, FeatureStudent):
        return trained.student, trained.adapters
    return trained, None


def _resume(out: Path, task: TrainTask, model: nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler) -> TrainState:
    path = HypFiles(out).last
    if not path.exists():
        return TrainState()
    ckpt = load_checkpoint(path)
    if ckpt["config_hash"] != task.config_hash():
        raise CheckpointMismatch(f"{path} was written by a different task (config {ckpt['config_hash']}, this "
                                 f"task {task.config_hash()}); use another output folder or delete it")
    student, adapters = _parts(model)
    student.load_state_dict(ckpt["model"])
    if adapters is not None:
        adapters.load_state_dict(ckpt["adapters"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng"])
    log.info("%s: resuming at epoch %d step %d from %s", task.hypothesis, ckpt["epoch"], ckpt["step"], path)
    return TrainState.from_dict(ckpt)


def _checkpoint(out: Path, task: TrainTask, model: nn.Module, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler, state: TrainState, env: distributed.DistEnv) -> None:
    if not env.is_main:
        return
    student, adapters = _parts(model)
    save_checkpoint({"model": student.state_dict(), "optimizer": optimizer.state_dict(),
                     "adapters": adapters.state_dict() if adapters is not None else {},
                     "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                     "config_hash": task.config_hash(), "rng": torch.get_rng_state(),
                     **state.to_dict()}, HypFiles(out).last)


def _progress(out: Path, task: TrainTask, state: TrainState, loss: float, lr: float, rate: float) -> None:
    write_json({"hypothesis": task.hypothesis, "attempt": task.attempt, "epoch": state.epoch,
                "epochs": task.recipe.epochs, "step": state.step, "loss": loss, "lr": lr, "clips_per_s": rate,
                "clips_seen": state.clips_seen, "time": time.time()}, HypFiles(out).progress)


def _one_line_errors(batches: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    """The batches; a NoReadableVideo raised in a DataLoader worker comes back as its own one line
    (PyTorch re-raises it with the worker's whole traceback as the message)."""
    try:
        yield from batches
    except NoReadableVideo as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise NoReadableVideo(lines[-1].split("NoReadableVideo: ", 1)[-1] if lines else str(exc)) from None


def _finish(out: Path, task: TrainTask, model: nn.Module, state: TrainState, skipped_files: int, ev: Any,
            env: distributed.DistEnv, device: torch.device, finetuned: bool, teacher_source: str) -> JobResult:
    files = HypFiles(out)
    cost = count_cost(task.student)
    latency: tuple[dict[str, Any], ...] = ()
    if env.is_main and task.measure_latency and task.eval.latency_passes > 0:
        latency = tuple(measure(task.student, device, b, passes=task.eval.latency_passes, model=model).to_dict()
                        for b in task.eval.latency_batches)
        log.info("%s: latency %s", task.hypothesis, ", ".join(
            f"{x['ms_per_view']:.3g} ms/view at batch {x['batch']}" for x in latency))
    per_video = ev.predictions.per_video().to_dict() if ev.predictions is not None else {}
    result = JobResult(
        hypothesis=task.hypothesis, attempt=task.attempt, top1=float(ev.top1), top5=float(ev.top5),
        gflops_per_view=cost.gflops, views=task.eval.clips * task.eval.crops, params=cost.params,
        epochs=state.epoch, train_seconds=state.train_seconds,
        gpu_hours=state.train_seconds * env.world / 3600 if device.type == "cuda" else 0.0,
        clips_seen=state.clips_seen, videos_skipped=skipped_files, eval_videos=ev.videos,
        checkpoint=str(files.model), spec=task.student.to_dict(), finetuned_from_parent=finetuned,
        versions={"pas": __version__, "torch": torch.__version__, "python": platform.python_version()},
        recipe=json.loads(json.dumps(asdict(task.recipe))), teacher_source=teacher_source, latency=latency,
        distill=json.loads(json.dumps(asdict(task.distill))) if task.teacher is not None else {},
        per_video=per_video)
    result = JobResult.from_dict(json.loads(result.to_json()), "result")  # exactly what result.json holds
    if env.is_main:
        save_checkpoint({"model": model.state_dict(), "spec": task.student.to_json()}, files.model)
        if ev.predictions is not None:  # before the result: a result has its predictions
            ev.predictions.write(files.predictions)
        write_json(result.to_dict(), files.result)
    return result
