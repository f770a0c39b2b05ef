"""The supernet job: one gradient-based search for one target cost (``SupernetTask`` -> ``supernet.json``).

Per optimizer step (first order, alternating, as DARTS / GDAS):

1. *weights*: an architecture is sampled from the current distribution (Gumbel-max), its network is cut
   from the supernet, and one SGD step trains those slices on a batch of the training videos minus the
   hold-out, with the search's distillation loss (CE + alpha t^2 KL to B on B's full view; the student
   sees its own view, cut from the same decoded clip: the first T' frames, resized to its crop);
2. *architecture* (after the warm-up): one Adam step on the architecture parameters with a batch of the
   hold-out videos: the same distillation loss of a sampled network, plus ``penalty x log(E[GFLOPs] /
   target)^2`` with E[GFLOPs] exact under the distribution (``pas_models.nas.cost``).

The estimator of step 2 and its gates: pas_models.nas.gates; the candidates: pas_models.nas.candidates.

The diversity mechanism (pas's reading of PV-NAS's learning-rate scheduler that "keeps the searched
models diverse"): the weights' learning rate follows cosine annealing with warm restarts over
``cycles`` cycles, the Gumbel temperature anneals from tau_max to tau_min within each cycle and restarts
with it, and the most likely architecture within [0.8, 1] x the target at each cycle's end is recorded as a
candidate (``most_likely_within``; its weights cut from the supernet then). Each restart re-explores from a higher
learning rate and temperature; ``cycles: 1`` is the search without it (one candidate).

Resumable at the exact step (``last.pt``: supernet, architecture parameters, both optimizers, the
baseline, candidates so far); the samples are drawn from generators seeded by (seed, step), so every
rank samples the same network and a resumed run draws what the uninterrupted one would have.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
import torch.nn.functional as F

from pas_models import __version__
from pas_models.data.dataset import ClipDataset, ClipLoader, collate_clips
from pas_models.data.formats import load_video_list
from pas_models.errors import PasError
from pas_models.layout import HypFiles
from pas_models.nas.candidates import candidate
from pas_models.nas.cost import CostTable, additivity_error
from pas_models.nas.gates import gates, sample, step_generator, student_view
from pas_models.nas.result import Candidate, SupernetResult, SupernetTask
from pas_models.nas.space import SearchSpace
from pas_models.nas.supernet import Supernet
from pas_models.nets import build_model
from pas_models.spec import ArchSpec
from pas_models.train import distributed, signals
from pas_models.train.accel import Feeding, sgd
from pas_models.train.checkpoint import load_checkpoint, save_checkpoint, write_json
from pas_models.train.frame import run_once
from pas_models.train.loss import distillation_loss
from pas_models.train.sampler import ResumableSampler
from pas_models.train.schedule import base_lr
from pas_models.train.task import Recipe
from pas_models.train.teacher import frozen_teacher, load_weights

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 5.0
COST_CHECK_ARCHS = 6  # whole derived networks counted by fvcore against the table (the largest + random)


@dataclass
class SearchState:
    step: int = 0  # optimizer steps done (weights)
    arch_steps: int = 0
    baseline: float | None = None
    clips_seen: int = 0
    train_seconds: float = 0.0
    candidates: list[dict[str, Any]] = field(default_factory=list)
    skipped_w: int = 0  # steps whose loss was not finite (nothing updated)
    skipped_a: int = 0


def split_holdout(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(weight videos, hold-out videos): a seeded random ``fraction`` of the n training videos held out
    (at least one each)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919)).tolist()
    k = min(n - 1, max(1, round(n * fraction)))
    return sorted(order[k:]), sorted(order[:k])


def run(task: SupernetTask) -> SupernetResult:
    out = Path(task.out_dir)
    files = HypFiles(out)
    out.mkdir(parents=True, exist_ok=True)
    return run_once(files, lambda: SupernetResult.read(files.supernet) if files.supernet.exists() else None,
                    lambda env, device: _Search(task, env, device, out).run())


def _loader(ds: ClipDataset, sampler: ResumableSampler, recipe: Recipe, epoch: int, start: int, seed: int,
            feeding: Feeding) -> Any:
    ds.set_epoch(epoch)
    sampler.set_epoch(epoch, start * recipe.batch_per_gpu)
    return iter(ClipLoader(ds, batch_size=recipe.batch_per_gpu, sampler=sampler, drop_last=True,
                           num_workers=feeding.num_workers, collate_fn=collate_clips, persistent_workers=False,
                           pin_memory=feeding.pin_memory,
                           generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)))


def _allreduce_grads(params: list[torch.Tensor], world: int) -> None:
    if world <= 1:
        return
    for p in params:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= world


def _finite_everywhere(value: float, world: int, device: torch.device) -> bool:
    """Whether ``value`` is finite on every rank (one decision for all of them)."""
    ok = torch.tensor([1.0 if math.isfinite(value) else 0.0], device=device)
    if world > 1:
        torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
    return bool(ok.item())


@dataclass
class _Data:
    """The weights' videos and the hold-out's (the architecture's), each with its resumable sampler."""

    w_ds: ClipDataset
    a_ds: ClipDataset
    w_sampler: ResumableSampler
    a_sampler: ResumableSampler
    w_spe: int  # steps per epoch
    a_spe: int


def _data(task: SupernetTask, env: distributed.DistEnv, feeding: Feeding) -> _Data:
    recipe = task.recipe
    samples = load_video_list(task.data, "train").samples
    w_ids, a_ids = split_holdout(len(samples), task.gradient.holdout, task.seed)
    kw = dict(train=True, clips=recipe.clips_per_video, backend=task.data.backend, mean=task.data.mean,
              std=task.data.std, hflip=task.data.hflip, seed=task.seed, decode_device=feeding.decode_device)
    w_ds = ClipDataset([samples[i] for i in w_ids], task.base, None, **kw)
    a_ds = ClipDataset([samples[i] for i in a_ids], task.base, None, **{**kw, "seed": task.seed + 1})
    w_sampler = ResumableSampler(len(w_ds), env.world, env.rank, task.seed)
    a_sampler = ResumableSampler(len(a_ds), env.world, env.rank, task.seed + 1)
    w_spe, a_spe = w_sampler.per_rank // recipe.batch_per_gpu, a_sampler.per_rank // recipe.batch_per_gpu
    if w_spe == 0 or a_spe == 0:
        raise PasError(f"{task.hypothesis}: {len(w_ds)} training and {len(a_ds)} hold-out clips cannot each fill "
                       f"one batch of {recipe.batch_per_gpu} x {env.world} processes (gradient.holdout "
                       f"{task.gradient.holdout:g}); lower recipe.batch_per_gpu or change the hold-out")
    return _Data(w_ds, a_ds, w_sampler, a_sampler, w_spe, a_spe)


def _cost_table(task: SupernetTask, space: SearchSpace) -> tuple[CostTable, float]:
    """The space's cost table, checked against fvcore on a few whole networks (its largest error), and the target
    checked against the space's range."""
    t0 = time.monotonic()
    table = CostTable(space)
    rng = torch.Generator().manual_seed(task.seed)
    check = [space.largest] + [tuple(int(torch.randint(len(d), (1,), generator=rng)) for d in space.decisions)
                               for _ in range(COST_CHECK_ARCHS - 1)]
    cost_error = additivity_error(table, check)
    largest_gf = table.gflops(space.largest)
    smallest_gf = table.gflops(tuple(len(d) - 1 for d in space.decisions))
    log.info("%s: %d decisions, %s networks, %.4g..%.4g GFLOPs, target %.4g; cost table %.1f s, largest error "
             "against fvcore %.2g", task.hypothesis, len(space.decisions), f"{space.count():,}", smallest_gf,
             largest_gf, task.target_gflops, time.monotonic() - t0, cost_error)
    if not smallest_gf <= task.target_gflops <= largest_gf:
        raise PasError(f"{task.hypothesis}: target {task.target_gflops:g} GFLOPs is outside this search space "
                       f"({smallest_gf:.4g} to {largest_gf:.4g} GFLOPs per view for {task.base.label})")
    return table, cost_error


class _Search:
    """One supernet job: built (data, cost table, supernet from B, teacher, architecture parameters, optimizers,
    the checkpoint resumed), then stepped: weights, architecture, the step's records."""

    def __init__(self, task: SupernetTask, env: distributed.DistEnv, device: torch.device, out: Path) -> None:
        self.task, self.env, self.device = task, env, device
        self.cfg, self.recipe, self.files = task.gradient, task.recipe, HypFiles(out)
        torch.manual_seed(task.seed)
        self.feeding = Feeding.of(task.recipe, device)
        self.data = _data(task, env, self.feeding)
        self.space = SearchSpace.of(task.base)
        self.table, self.cost_error = _cost_table(task, self.space)
        model = build_model(task.base)
        model.load_state_dict(load_weights(task.base_checkpoint), strict=True)
        self.supernet = Supernet(task.base, model).to(device).train()
        self.teacher = frozen_teacher(task.base, task.base_checkpoint, task.distill.teacher_bn, device,
                                      task.distill.teacher_dropout)
        self.logits = [torch.zeros(len(d), device=device, requires_grad=True) for d in self.space.decisions]
        self.w_params = list(self.supernet.parameters())
        self.peak = base_lr(self.recipe, self.recipe.batch_per_gpu * env.world, True, self.cfg.lr_divisor)
        self.w_opt = sgd(self.w_params, self.peak, self.recipe)
        self.a_opt = torch.optim.Adam(self.logits, lr=self.cfg.arch_lr, betas=(0.5, 0.999), weight_decay=1e-3)
        self.total = self.cfg.epochs * self.data.w_spe
        self.warm = int(self.cfg.warmup * self.total / self.cfg.cycles)
        self.state = self._resume()
        self.w_iter: Any = None
        self.a_iter: Any = None

    def _resume(self) -> SearchState:
        task, last = self.task, self.files.last
        if not last.exists():
            return SearchState()
        ck = load_checkpoint(last)
        if ck["config_hash"] != task.config_hash():
            raise PasError(f"{last} was written by a different task (config {ck['config_hash']}, this task "
                           f"{task.config_hash()}); use another output folder or delete it")
        self.supernet.net.load_state_dict(ck["model"])
        for lg, v in zip(self.logits, ck["logits"], strict=True):
            lg.data.copy_(v)
        self.w_opt.load_state_dict(ck["w_opt"])
        self.a_opt.load_state_dict(ck["a_opt"])
        state = SearchState(**ck["state"])
        log.info("%s: resuming at step %d of %d", task.hypothesis, state.step, self.total)
        return state

    def checkpoint(self) -> None:
        if self.env.is_main:
            save_checkpoint({"model": self.supernet.net.state_dict(),
                             "logits": [lg.detach().cpu() for lg in self.logits], "w_opt": self.w_opt.state_dict(),
                             "a_opt": self.a_opt.state_dict(), "config_hash": self.task.config_hash(),
                             "state": asdict(self.state)}, self.files.last)

    def kd(self, x_full: torch.Tensor, y: torch.Tensor, child: ArchSpec,
           g: dict[str, torch.Tensor] | None) -> torch.Tensor:
        with torch.no_grad():
            t_logits = self.teacher(x_full)
        s_logits = self.supernet(student_view(x_full, child), child, g)
        d = self.task.distill
        return distillation_loss(s_logits, y, t_logits, d.temperature, d.alpha, d.kl_reduction).total

    def run(self) -> SupernetResult:
        metrics = self.files.metrics.open("a", buffering=1) if self.env.is_main else None
        t_start = time.monotonic() - self.state.train_seconds
        clocks = {"checkpoint": time.monotonic(), "progress": time.monotonic()}
        try:
            with signals.deferred():
                while self.state.step < self.total:
                    self._step(metrics, t_start, clocks)
        finally:
            if metrics is not None:
                metrics.close()
        if self.state.skipped_w or self.state.skipped_a:
            log.warning("%s: %d weight step(s) and %d architecture step(s) were not finite and updated nothing",
                        self.task.hypothesis, self.state.skipped_w, self.state.skipped_a)
        return self._result()

    def _step(self, metrics: IO[str] | None, t_start: float, clocks: dict[str, float]) -> None:
        s, cfg = self.state.step, self.cfg
        cycle = min(cfg.cycles - 1, s * cfg.cycles // self.total)
        u = (s * cfg.cycles - cycle * self.total) / self.total  # position within the cycle, 0..1
        lr = self.peak * 0.5 * (1 + math.cos(math.pi * u))
        tau = cfg.tau_max * (cfg.tau_min / cfg.tau_max) ** u
        row = self._weights(s, cycle, lr, tau)
        if s >= self.warm:
            self._architecture(s, tau, row)
        self.state.step = s + 1
        now = time.monotonic()
        self.state.train_seconds = now - t_start
        if metrics is not None:
            metrics.write(json.dumps(row) + "\n")
        self._records(cycle, lr, row, now, clocks)

    def _weights(self, s: int, cycle: int, lr: float, tau: float) -> dict[str, Any]:
        """Step 1: a network sampled (uniformly during the warm-up), its slices trained one SGD step."""
        d, task = self.data, self.task
        if self.w_iter is None or s % d.w_spe == 0:
            self.w_iter = _loader(d.w_ds, d.w_sampler, self.recipe, s // d.w_spe, s % d.w_spe, task.seed, self.feeding)
        batch = next(self.w_iter)
        arch_w, _ = sample([lg.detach() if s >= self.warm else torch.zeros_like(lg) for lg in self.logits], tau,
                           step_generator(task.seed, s, 0))
        child = self.space.derive(arch_w)
        x, y = batch["student"].to(self.device, non_blocking=True), batch["label"].to(self.device, non_blocking=True)
        for group in self.w_opt.param_groups:
            group["lr"] = lr
        self.w_opt.zero_grad(set_to_none=True)
        loss_w = self.kd(x, y, child, None)
        loss_w.backward()
        _allreduce_grads(self.w_params, self.env.world)
        row: dict[str, Any] = {"step": s, "cycle": cycle + 1, "lr": lr, "tau": tau, "loss_w": loss_w.item(),
                               "gflops_w": self.table.gflops(arch_w)}
        # DARTS's guard on the weights' steps (a sampled narrow network's gradients can spike); the norm is of the
        # all-reduced gradients, so every rank takes the same decision
        norm = float(torch.nn.utils.clip_grad_norm_(self.w_params, self.cfg.grad_clip or math.inf))
        row["grad_norm_w"] = norm
        if math.isfinite(norm):
            self.w_opt.step()
        else:  # nothing learnt from it; counted and logged
            self.state.skipped_w += 1
            log.warning("%s: step %d: non-finite gradients on %s, weights not updated", task.hypothesis, s,
                        self.space.describe(arch_w))
        self.state.clips_seen += len(y) * self.env.world
        return row

    def _architecture(self, s: int, tau: float, row: dict[str, Any]) -> None:
        """Step 2: a network sampled from the distribution, one Adam step on the architecture parameters with a
        hold-out batch (distillation loss through the gates, the cost penalty, the views' score function)."""
        d, task, state, logits = self.data, self.task, self.state, self.logits
        a = state.arch_steps
        if self.a_iter is None or a % d.a_spe == 0:
            self.a_iter = _loader(d.a_ds, d.a_sampler, self.recipe, a // d.a_spe, a % d.a_spe, task.seed + 1,
                                  self.feeding)
        batch = next(self.a_iter)
        arch_a, hs = sample(logits, tau, step_generator(task.seed, s, 1))
        child = self.space.derive(arch_a)
        x, y = batch["student"].to(self.device, non_blocking=True), batch["label"].to(self.device, non_blocking=True)
        loss_a = self.kd(x, y, child, gates(self.space, self.table, arch_a, hs))
        if not _finite_everywhere(loss_a.item(), self.env.world, self.device):
            state.skipped_a += 1
            state.arch_steps += 1  # its batch is spent: the loaders stay where a resume puts them
            log.warning("%s: step %d: non-finite loss on %s, architecture not updated", task.hypothesis, s,
                        self.space.describe(arch_a))
            return
        probs = [F.softmax(lg, dim=0) for lg in logits]
        expected = self.table.expected_gflops([p.double() for p in probs])
        pen = self.cfg.penalty * torch.log(expected / task.target_gflops) ** 2
        value = loss_a.detach().item()
        baseline = value if state.baseline is None else state.baseline
        score = sum(F.log_softmax(logits[i], dim=0)[arch_a[i]] for i, dec in enumerate(self.space.decisions)
                    if dec.kind in ("frames", "crop"))
        total_a = loss_a + pen.to(loss_a) + (value - baseline) * score
        grads = torch.autograd.grad(total_a, logits, allow_unused=True)
        self.a_opt.zero_grad(set_to_none=True)
        for lg, g in zip(logits, grads, strict=True):
            lg.grad = torch.zeros_like(lg) if g is None else g
        _allreduce_grads(logits, self.env.world)
        self.a_opt.step()
        state.baseline = 0.9 * baseline + 0.1 * value
        state.arch_steps += 1
        row.update({"loss_a": value, "expected_gflops": expected.item(), "penalty": pen.item(),
                    "gflops_a": self.table.gflops(arch_a)})

    def _records(self, cycle: int, lr: float, row: dict[str, Any], now: float, clocks: dict[str, float]) -> None:
        """After a step: the cycle's candidate at its end, the progress file, the checkpoint (and a deferred
        signal fired once it is written)."""
        task, cfg, state = self.task, self.cfg, self.state
        end_of_cycle = state.step == self.total or (state.step * cfg.cycles // self.total) > cycle
        if end_of_cycle:
            state.candidates.append(candidate(task, self.space, self.table, self.supernet, self.logits, cycle + 1,
                                              self.files, self.env.is_main))
            log.info("%s: cycle %d/%d ends: %s (%.4g GFLOPs, target %.4g)", task.hypothesis, cycle + 1, cfg.cycles,
                     state.candidates[-1]["description"], state.candidates[-1]["gflops"], task.target_gflops)
        if self.env.is_main and now - clocks["progress"] >= PROGRESS_SECONDS:
            write_json({"hypothesis": task.hypothesis, "attempt": task.attempt, "step": state.step,
                        "steps": self.total, "cycle": cycle + 1, "cycles": cfg.cycles, "loss": row["loss_w"],
                        "lr": lr, "expected_gflops": row.get("expected_gflops"), "clips_seen": state.clips_seen,
                        "time": time.time()}, self.files.progress)
            clocks["progress"] = now
        if end_of_cycle or now - clocks["checkpoint"] >= self.recipe.checkpoint_minutes * 60 or signals.pending():
            self.checkpoint()
            clocks["checkpoint"] = now
            signals.fire()

    def _result(self) -> SupernetResult:
        task, state, space = self.task, self.state, self.space
        probs = [F.softmax(lg.detach(), dim=0).double().cpu() for lg in self.logits]
        result = SupernetResult(
            hypothesis=task.hypothesis, attempt=task.attempt, target_gflops=task.target_gflops,
            candidates=tuple(Candidate(**{**c, "arch": tuple(c["arch"])}) for c in state.candidates),
            decisions=tuple(d.name for d in space.decisions),
            probabilities=tuple(tuple(round(float(v), 6) for v in p) for p in probs), space_size=space.count(),
            cost_error=self.cost_error, weight_steps=state.step, arch_steps=state.arch_steps,
            train_seconds=state.train_seconds, clips_seen=state.clips_seen,
            versions={"pas": __version__, "torch": torch.__version__, "python": platform.python_version()})
        result = SupernetResult.from_dict(json.loads(result.to_json()), "supernet result")
        if self.env.is_main:
            write_json(result.to_dict(), self.files.supernet)
        return result
