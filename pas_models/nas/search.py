"""The supernet job: one gradient-based search for one target cost (``SupernetTask`` -> ``supernet.json``).

Per optimizer step (first order, alternating, as DARTS / GDAS):

1. *weights*: an architecture is sampled from the current distribution (Gumbel-max), its network is cut
   from the supernet, and one SGD step trains those slices on a batch of the training videos minus the
   hold-out, with the search's distillation loss (CE + alpha t^2 KL to B on B's full view; the student
   sees its own view, cut from the same decoded clip: the first T' frames, resized to its crop);
2. *architecture* (after the warm-up): one Adam step on the architecture parameters with a batch of the
   hold-out videos: the same distillation loss of a sampled network, plus ``penalty x log(E[GFLOPs] /
   target)^2`` with E[GFLOPs] exact under the distribution (``pas_models.nas.cost``).

The estimator (pas's choice; PV-NAS does not publish its own): straight-through Gumbel-softmax on a
single path (GDAS, Dong & Yang 2019): the sampled network alone is computed; each network decision's
one-hot sample is replaced, for the backward pass, by ``hard - soft.detach() + soft`` with soft =
softmax((logits + Gumbel) / tau), and reaches the loss through gates whose value is 1 on the sampled
network: a width choice gates the channels of every batch norm it narrows (channel c by the summed
weights of the choices that keep c, FBNetV2's masks restricted to the computed channels), a depth
choice gates each kept block's last batch norm, a temporal kernel of 3 gates the kernel's side taps
(Single-Path NAS's superkernel; a sampled kernel of 1 sends no gradient). Gates sit on batch-norm
scales and kernel taps because a uniform scale in front of a batch norm has no gradient. The view
decisions (frames, crop) have no place for such a gate: they get the score-function gradient
(loss - moving average baseline) x d log p(sample), on the same loss.

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
from typing import Any

import torch
import torch.nn.functional as F

from pas_models import __version__
from pas_models.data.dataset import ClipDataset, ClipLoader, collate_clips
from pas_models.data.formats import load_video_list
from pas_models.errors import PasError
from pas_models.layout import HypFiles
from pas_models.nas.cost import CostTable, additivity_error
from pas_models.nas.result import Candidate, SupernetResult, SupernetTask
from pas_models.nas.space import Arch, SearchSpace
from pas_models.nas.supernet import Supernet
from pas_models.nets import build_model
from pas_models.spec import ArchSpec
from pas_models.train import distributed, signals
from pas_models.train.checkpoint import load_checkpoint, save_checkpoint, write_json
from pas_models.train.loss import distillation_loss
from pas_models.train.run import run_once
from pas_models.train.sampler import ResumableSampler
from pas_models.train.schedule import base_lr
from pas_models.train.task import Recipe
from pas_models.train.teacher import frozen_teacher, load_weights

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 5.0
COST_CHECK_ARCHS = 6  # whole derived networks counted by fvcore against the table (the largest + random)


# ---- sampling and gates -------------------------------------------------------------------------
def _generator(seed: int, step: int, what: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 4 + what)


def sample(logits: list[torch.Tensor], tau: float, gen: torch.Generator) -> tuple[Arch, list[torch.Tensor]]:
    """A Gumbel-max sample of every decision, and the straight-through one-hots (value: the one-hot; gradient:
    the Gumbel-softmax at temperature ``tau``)."""
    arch, hs = [], []
    for lg in logits:
        u = torch.rand(lg.shape, generator=gen, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
        gumbel = (-torch.log(-torch.log(u))).to(lg)
        soft = F.softmax((lg + gumbel) / tau, dim=0)
        k = int(torch.argmax(lg.detach() + gumbel))
        hard = F.one_hot(torch.tensor(k), lg.numel()).to(soft)
        arch.append(k)
        hs.append(hard - soft.detach() + soft)
    return tuple(arch), hs


def _block_keys(spec: ArchSpec, stage: int, pathway: int, block: int) -> tuple[str, list[str]]:
    """(the block's last batch norm, the block's temporal convolutions' weight keys)."""
    if spec.family == "r2plus1d":
        p = f"layer{stage + 1}.{block}"
        return f"{p}.conv2.1", [f"{p}.conv1.0.3.weight", f"{p}.conv2.0.3.weight"]
    p = f"stages.{stage}.{pathway}.{block}"
    return f"{p}.branch.7", [f"{p}.branch.0.weight"]


def gates(space: SearchSpace, table: CostTable, arch: Arch, hs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The gates of the sampled network ``arch`` (see the module docstring), per state-dict key."""
    decisions = space.decisions
    out: dict[str, torch.Tensor] = {}

    def gate(key: str, g: torch.Tensor) -> None:
        out[key] = out[key] * g if key in out else g

    widths = {i for i, d in enumerate(decisions) if d.kind == "width"}
    for grp in table.groups:
        ws = [pos for pos, i in enumerate(grp.deps) if i in widths]
        if not ws:
            continue
        idx = [arch[i] for i in grp.deps]
        for r, (module, kind) in enumerate(zip(grp.modules, grp.kinds, strict=True)):
            c = int(grp.channels[(r, *idx)])
            if kind != "bn" or c == 0:
                continue
            vec = None
            for pos in ws:
                i = grp.deps[pos]
                sizes = torch.stack([grp.channels[(r, *idx[:pos], k, *idx[pos + 1:])]
                                     for k in range(len(decisions[i]))])
                keeps = (sizes[:, None] > torch.arange(c)[None, :]).to(hs[i])  # (choices, channels)
                g = hs[i] @ keeps
                vec = g if vec is None else vec * g
            assert vec is not None
            gate(f"{module}.weight", vec)
            gate(f"{module}.bias", vec)
    child = space.derive(arch)
    for i, d in enumerate(decisions):
        if d.kind == "blocks":
            for b in range(1, child.stage_blocks[d.stage]):  # block 0 is always there
                g = hs[i][[k for k, v in enumerate(d.values) if v > b]].sum()
                for j in range(len(space.base.pathways)):
                    bn, _ = _block_keys(space.base, d.stage, j, b)
                    gate(f"{bn}.weight", g)
                    gate(f"{bn}.bias", g)
        elif d.kind == "kt" and d.values[arch[i]] == 3:
            h3 = hs[i][arch[i]]
            taps = torch.stack([h3, torch.ones_like(h3), h3]).view(1, 1, 3, 1, 1)
            for b in range(child.stage_blocks[d.stage]):
                for key in _block_keys(space.base, d.stage, d.pathway, b)[1]:
                    gate(key, taps)
    return out


def student_view(x: torch.Tensor, child: ArchSpec, train: bool = True) -> torch.Tensor:
    """The child's input cut from the base's input batch (B, 3, T, H, W): its first frames (operator t's
    rule), resized to its crop (bilinear, antialiased, as the data pipeline's student views)."""
    x = x[:, :, :child.input_frames]
    side = child.crop(train)
    if x.shape[-1] != side or x.shape[-2] != side:
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        frames = F.interpolate(frames, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        x = frames.reshape(b, t, c, side, side).permute(0, 2, 1, 3, 4).contiguous()
    return x


# ---- the job ------------------------------------------------------------------------------------
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
                    lambda env, device: _search(task, env, device, out))


def _loader(ds: ClipDataset, sampler: ResumableSampler, recipe: Recipe, epoch: int, start: int, seed: int,
            gpu: bool) -> Any:
    ds.set_epoch(epoch)
    sampler.set_epoch(epoch, start * recipe.batch_per_gpu)
    return iter(ClipLoader(ds, batch_size=recipe.batch_per_gpu, sampler=sampler, drop_last=True,
                           num_workers=recipe.num_workers, collate_fn=collate_clips, persistent_workers=False,
                           pin_memory=gpu, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)))


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


def _search(task: SupernetTask, env: distributed.DistEnv, device: torch.device, out: Path) -> SupernetResult:
    cfg, recipe, files = task.gradient, task.recipe, HypFiles(out)
    torch.manual_seed(task.seed)
    samples = load_video_list(task.data, "train").samples
    w_ids, a_ids = split_holdout(len(samples), cfg.holdout, task.seed)
    kw = dict(train=True, clips=recipe.clips_per_video, backend=task.data.backend, mean=task.data.mean,
              std=task.data.std, hflip=task.data.hflip, seed=task.seed)
    w_ds = ClipDataset([samples[i] for i in w_ids], task.base, None, **kw)
    a_ds = ClipDataset([samples[i] for i in a_ids], task.base, None, **{**kw, "seed": task.seed + 1})
    w_sampler = ResumableSampler(len(w_ds), env.world, env.rank, task.seed)
    a_sampler = ResumableSampler(len(a_ds), env.world, env.rank, task.seed + 1)
    w_spe, a_spe = w_sampler.per_rank // recipe.batch_per_gpu, a_sampler.per_rank // recipe.batch_per_gpu
    if w_spe == 0 or a_spe == 0:
        raise PasError(f"{task.hypothesis}: {len(w_ds)} training and {len(a_ds)} hold-out clips cannot each fill "
                       f"one batch of {recipe.batch_per_gpu} x {env.world} processes (gradient.holdout "
                       f"{cfg.holdout:g}); lower recipe.batch_per_gpu or change the hold-out")
    space = SearchSpace.of(task.base)
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
    model = build_model(task.base)
    model.load_state_dict(load_weights(task.base_checkpoint), strict=True)
    supernet = Supernet(task.base, model).to(device).train()
    teacher = frozen_teacher(task.base, task.base_checkpoint, task.distill.teacher_bn, device,
                             task.distill.teacher_dropout)
    logits = [torch.zeros(len(d), device=device, requires_grad=True) for d in space.decisions]
    w_params = list(supernet.parameters())
    peak = base_lr(recipe, recipe.batch_per_gpu * env.world, True, cfg.lr_divisor)
    w_opt = torch.optim.SGD(w_params, lr=peak, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                            nesterov=recipe.nesterov)
    a_opt = torch.optim.Adam(logits, lr=cfg.arch_lr, betas=(0.5, 0.999), weight_decay=1e-3)

    total = cfg.epochs * w_spe
    warm = int(cfg.warmup * total / cfg.cycles)

    state = SearchState()
    if files.last.exists():
        ck = load_checkpoint(files.last)
        if ck["config_hash"] != task.config_hash():
            raise PasError(f"{files.last} was written by a different task (config {ck['config_hash']}, this task "
                           f"{task.config_hash()}); use another output folder or delete it")
        supernet.net.load_state_dict(ck["model"])
        for lg, v in zip(logits, ck["logits"], strict=True):
            lg.data.copy_(v)
        w_opt.load_state_dict(ck["w_opt"])
        a_opt.load_state_dict(ck["a_opt"])
        state = SearchState(**ck["state"])
        log.info("%s: resuming at step %d of %d", task.hypothesis, state.step, total)

    def checkpoint() -> None:
        if env.is_main:
            save_checkpoint({"model": supernet.net.state_dict(), "logits": [lg.detach().cpu() for lg in logits],
                             "w_opt": w_opt.state_dict(), "a_opt": a_opt.state_dict(),
                             "config_hash": task.config_hash(), "state": asdict(state)}, files.last)

    def kd(x_full: torch.Tensor, y: torch.Tensor, child: ArchSpec, g: dict[str, torch.Tensor] | None) -> torch.Tensor:
        with torch.no_grad():
            t_logits = teacher(x_full)
        s_logits = supernet(student_view(x_full, child), child, g)
        return distillation_loss(s_logits, y, t_logits, task.distill.temperature, task.distill.alpha,
                                 task.distill.kl_reduction).total

    gpu = device.type == "cuda"
    metrics = files.metrics.open("a", buffering=1) if env.is_main else None
    t_start = time.monotonic() - state.train_seconds
    last_ckpt = last_progress = time.monotonic()
    w_iter = a_iter = None
    try:
        with signals.deferred():
            while state.step < total:
                s = state.step
                cycle = min(cfg.cycles - 1, s * cfg.cycles // total)
                u = (s * cfg.cycles - cycle * total) / total  # position within the cycle, 0..1
                lr = peak * 0.5 * (1 + math.cos(math.pi * u))
                tau = cfg.tau_max * (cfg.tau_min / cfg.tau_max) ** u
                # 1. weights
                if w_iter is None or s % w_spe == 0:
                    w_iter = _loader(w_ds, w_sampler, recipe, s // w_spe, s % w_spe, task.seed, gpu)
                batch = next(w_iter)
                arch_w, _ = sample([lg.detach() if s >= warm else torch.zeros_like(lg) for lg in logits], tau,
                                   _generator(task.seed, s, 0))
                child = space.derive(arch_w)
                x, y = batch["student"].to(device, non_blocking=True), batch["label"].to(device, non_blocking=True)
                for group in w_opt.param_groups:
                    group["lr"] = lr
                w_opt.zero_grad(set_to_none=True)
                loss_w = kd(x, y, child, None)
                loss_w.backward()
                _allreduce_grads(w_params, env.world)
                row: dict[str, Any] = {"step": s, "cycle": cycle + 1, "lr": lr, "tau": tau, "loss_w": loss_w.item(),
                                       "gflops_w": table.gflops(arch_w)}
                # DARTS's guard on the weights' steps (a sampled narrow network's gradients can spike); the norm is
                # of the all-reduced gradients, so every rank takes the same decision
                norm = float(torch.nn.utils.clip_grad_norm_(w_params, cfg.grad_clip or math.inf))
                row["grad_norm_w"] = norm
                if math.isfinite(norm):
                    w_opt.step()
                else:  # nothing learnt from it; counted and logged
                    state.skipped_w += 1
                    log.warning("%s: step %d: non-finite gradients on %s, weights not updated", task.hypothesis, s,
                                space.describe(arch_w))
                state.clips_seen += len(y) * env.world
                # 2. architecture
                if s >= warm:
                    a = state.arch_steps
                    if a_iter is None or a % a_spe == 0:
                        a_iter = _loader(a_ds, a_sampler, recipe, a // a_spe, a % a_spe, task.seed + 1, gpu)
                    batch = next(a_iter)
                    arch_a, hs = sample(logits, tau, _generator(task.seed, s, 1))
                    child = space.derive(arch_a)
                    x, y = batch["student"].to(device, non_blocking=True), batch["label"].to(device, non_blocking=True)
                    loss_a = kd(x, y, child, gates(space, table, arch_a, hs))
                    if not _finite_everywhere(loss_a.item(), env.world, device):
                        state.skipped_a += 1
                        state.arch_steps += 1  # its batch is spent: the loaders stay where a resume puts them
                        log.warning("%s: step %d: non-finite loss on %s, architecture not updated", task.hypothesis,
                                    s, space.describe(arch_a))
                        loss_a = None
                if s >= warm and loss_a is not None:
                    probs = [F.softmax(lg, dim=0) for lg in logits]
                    expected = table.expected_gflops([p.double() for p in probs])
                    pen = cfg.penalty * torch.log(expected / task.target_gflops) ** 2
                    value = loss_a.detach().item()
                    baseline = value if state.baseline is None else state.baseline
                    score = sum(F.log_softmax(logits[i], dim=0)[arch_a[i]] for i, d in enumerate(space.decisions)
                                if d.kind in ("frames", "crop"))
                    total_a = loss_a + pen.to(loss_a) + (value - baseline) * score
                    grads = torch.autograd.grad(total_a, logits, allow_unused=True)
                    a_opt.zero_grad(set_to_none=True)
                    for lg, g in zip(logits, grads, strict=True):
                        lg.grad = torch.zeros_like(lg) if g is None else g
                    _allreduce_grads(logits, env.world)
                    a_opt.step()
                    state.baseline = 0.9 * baseline + 0.1 * value
                    state.arch_steps += 1
                    row.update({"loss_a": value, "expected_gflops": expected.item(), "penalty": pen.item(),
                                "gflops_a": table.gflops(arch_a)})
                state.step = s + 1
                now = time.monotonic()
                state.train_seconds = now - t_start
                if metrics is not None:
                    metrics.write(json.dumps(row) + "\n")
                end_of_cycle = state.step == total or (state.step * cfg.cycles // total) > cycle
                if end_of_cycle:
                    state.candidates.append(_candidate(task, space, table, supernet, logits, cycle + 1, files,
                                                       env.is_main))
                    log.info("%s: cycle %d/%d ends: %s (%.4g GFLOPs, target %.4g)", task.hypothesis, cycle + 1,
                             cfg.cycles, state.candidates[-1]["description"], state.candidates[-1]["gflops"],
                             task.target_gflops)
                if env.is_main and now - last_progress >= PROGRESS_SECONDS:
                    write_json({"hypothesis": task.hypothesis, "attempt": task.attempt, "step": state.step,
                                "steps": total, "cycle": cycle + 1, "cycles": cfg.cycles, "loss": row["loss_w"],
                                "lr": lr, "expected_gflops": row.get("expected_gflops"),
                                "clips_seen": state.clips_seen, "time": time.time()}, files.progress)
                    last_progress = now
                if end_of_cycle or now - last_ckpt >= recipe.checkpoint_minutes * 60 or signals.pending():
                    checkpoint()
                    last_ckpt = now
                    signals.fire()
    finally:
        if metrics is not None:
            metrics.close()
    if state.skipped_w or state.skipped_a:
        log.warning("%s: %d weight step(s) and %d architecture step(s) were not finite and updated nothing",
                    task.hypothesis, state.skipped_w, state.skipped_a)
    probs = [F.softmax(lg.detach(), dim=0).double().cpu() for lg in logits]
    result = SupernetResult(
        hypothesis=task.hypothesis, attempt=task.attempt, target_gflops=task.target_gflops,
        candidates=tuple(Candidate(**{**c, "arch": tuple(c["arch"])}) for c in state.candidates),
        decisions=tuple(d.name for d in space.decisions),
        probabilities=tuple(tuple(round(float(v), 6) for v in p) for p in probs), space_size=space.count(),
        cost_error=cost_error, weight_steps=state.step, arch_steps=state.arch_steps,
        train_seconds=state.train_seconds, clips_seen=state.clips_seen,
        versions={"pas": __version__, "torch": torch.__version__, "python": platform.python_version()})
    result = SupernetResult.from_dict(json.loads(result.to_json()), "supernet result")
    if env.is_main:
        write_json(result.to_dict(), files.supernet)
    return result


CANDIDATE_SAMPLES = 4096
CANDIDATE_BAND = 0.8  # a candidate's GFLOPs are in [0.8, 1] x the target where the samples allow


def most_likely_within(probs: list[torch.Tensor], table: CostTable, target: float, seed: int = 0) -> Arch:
    """The candidate at the end of a cycle (pas's rule): among each decision's most likely choice and 4,096
    architectures sampled from the distribution (seeded), the most likely one whose GFLOPs are in [0.8, 1] x
    the target; if none is, the one closest to the target from below; if none is below, the smallest network.
    (Each decision's most likely choice alone ignores the cost: on the demo it left the candidates at up to
    twice their target.)"""
    logp = [torch.log(p.clamp_min(1e-12)) for p in probs]
    gen = torch.Generator().manual_seed(seed)
    drawn = torch.stack([torch.multinomial(p.float(), CANDIDATE_SAMPLES, replacement=True, generator=gen)
                         for p in probs], dim=1).tolist()
    archs = sorted({tuple(int(torch.argmax(p)) for p in probs), *(tuple(a) for a in drawn)})
    chosen = torch.tensor(archs, dtype=torch.long)
    loglik = sum((lp[chosen[:, i]] for i, lp in enumerate(logp)), torch.zeros(len(archs), dtype=logp[0].dtype))
    scored = list(zip(loglik.tolist(), table.gflops_of(archs), archs, strict=True))
    below = [x for x in scored if x[1] <= target]
    band = [x for x in below if x[1] >= CANDIDATE_BAND * target]
    if band:
        return max(band, key=lambda x: (x[0], x[1], x[2]))[2]
    if below:
        return max(below, key=lambda x: (x[1], x[0], x[2]))[2]
    return tuple(len(p) - 1 for p in probs)


def _candidate(task: SupernetTask, space: SearchSpace, table: CostTable, supernet: Supernet,
               logits: list[torch.Tensor], cycle: int, files: HypFiles, main: bool) -> dict[str, Any]:
    probs = [F.softmax(lg.detach(), dim=0).double().cpu() for lg in logits]
    arch = most_likely_within(probs, table, task.target_gflops, seed=task.seed * 1_000_003 + cycle)
    child = space.derive(arch)
    path = files.candidate(space.code(arch), cycle)
    if main:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint({"model": supernet.state_of(child), "spec": child.to_json()}, path)
    return {"cycle": cycle, "arch": list(arch), "code": space.code(arch), "description": space.describe(arch),
            "gflops": table.gflops(arch), "expected_gflops": float(table.expected_gflops(probs)),
            "probability": float(math.prod(float(p[k]) for p, k in zip(probs, arch, strict=True))),
            "spec": child.to_dict(), "weights": str(path)}
