"""What a search will cost, before it runs (`pas search --dry-run`): the expected compute and the worst case.

Expected (GPU-h; CPU-h on a profile without GPUs), from the recipe and the networks' FLOPs:

    training a network h for E epochs:  E x C x (3 g_h + g_T) / P       (g_T: the teacher B's forward, 0 for B,
                                                                         the "without PAS" baselines and with a
                                                                         teacher cache)
    a teacher cache (distill.cache):     videos x K x g_B / P            (B's forward, once per search)
    evaluating it:                       V x views x g_h / P

with C training clips per epoch (videos x clips_per_video), V validation videos, g GFLOPs per view
(pas_models.flops), 3 g_h a forward and a backward pass, P the training throughput in GFLOP/s per GPU
(per process on CPU): measured by this search's finished jobs when it has some, else the profile's
``throughput_gflops``. With ``replicas: N`` every network is trained N times (B once when imported; a
teacher cache per B replica); the "without PAS" baselines once. Iteration 1's hypotheses are the planned
ones; a later iteration's costs are iteration 1's times r^(i-1), r the geometric mean of iteration 1's cost
ratios to B. An imported B is only evaluated. With ``halving`` an iteration's training costs
``expected_fraction(n, eta, rungs)`` of training its n hypotheses to the end. Latency measurement jobs are
left out (seconds each).

Worst case on a scheduler: every attempt uses its whole time limit T on all its GPUs, every hypothesis fails
``max_retries`` times first, and every attempt is requeued ``max_requeues`` times (time limits):

    jobs x (1 + max_retries) x (1 + max_requeues) x T x GPUs per job

(with ``halving`` a hypothesis is one job per rung it reaches). Requeues after node failures are SLURM's
and not bounded by pas. Local processes have no queue and no scheduler to requeue them: where the longest job is
expected to end well within T, the worst case is every job failing ``max_retries`` times at its very end
(the search without halving, x (1 + max_retries)); otherwise the time-limit bound above.

The dataset's size comes from its lists; where they cannot be read (a dry run on a login node before the data
is staged), from the definition's ``dataset_size``, else from the published size of a standard dataset
(``standard_size``), and the expected figure says it is assumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pas_models.halving import expected_fraction, promoted_count


@dataclass(frozen=True)
class Inputs:
    train_clips: int | None  # C: training clips per epoch (None: the training list could not be read)
    val_videos: int | None
    views: int  # eval clips x crops
    base_gflops: float
    iteration1_gflops: tuple[float, ...]  # the applicable hypotheses of iteration 1
    iterations: int
    base_epochs: int  # 0: an imported B (evaluated only)
    epochs: int
    distill: bool  # the hypotheses run the teacher B on every clip
    baselines: bool
    baseline_epochs: int
    halving: tuple[int, int] | None  # (eta, rungs)
    throughput: float | None  # GFLOP/s per GPU (per process without GPUs)
    throughput_source: str
    gpus_per_job: int  # 0: CPU processes
    processes_per_job: int
    time_limit_h: float
    max_retries: int
    max_requeues: int
    measure: bool  # a latency measurement job per iteration
    cache_clips: int | None = None  # distill.cache: clips B runs over once (videos x K); None: no cache
    cache_shards: int = 0  # its jobs (one GPU each)
    scheduler: bool = True  # jobs go through a batch scheduler (queue, time limits, requeues); False: local
    size_note: str | None = None  # train_clips / val_videos were assumed, not read from the lists: from what
    replicas: int = 1  # every network trained this many times (B too, unless imported; a cache per B replica)

    @property
    def base_replicas(self) -> int:
        """Trainings of B: one per replica, one B when it is imported."""
        return self.replicas if self.base_epochs else 1


# published split sizes (training, validation videos) of the standard datasets, for a dry run before their lists
# can be read: Kinetics-400 as the paper states it ("approximately 240k training and 20k validation videos"), the
# official splits of UCF101 and HMDB51 (train / test list lengths)
_SIZES: dict[tuple[str, int | None, int], tuple[int, int, str]] = {
    ("kinetics400", None, 400): (240_000, 20_000, "Kinetics-400, about 240k training and 20k validation videos"),
    ("ucf101", 1, 101): (9537, 3783, "UCF101 split 1"), ("ucf101", 2, 101): (9586, 3734, "UCF101 split 2"),
    ("ucf101", 3, 101): (9624, 3696, "UCF101 split 3"),
    **{("hmdb51", k, 51): (3570, 1530, f"HMDB51 split {k}") for k in (1, 2, 3)},
}


def standard_size(fmt: str, split: int, num_classes: int | None) -> tuple[int, int, str] | None:
    """(training videos, validation videos, which dataset) of a standard dataset in this format with this many
    classes, else None."""
    classes = num_classes or {"kinetics400": 400, "ucf101": 101, "hmdb51": 51}.get(fmt, 0)
    return _SIZES.get((fmt, None, classes)) or _SIZES.get((fmt, split, classes))


@dataclass(frozen=True)
class Estimate:
    expected_hours: float | None  # None: not known (and why in ``lines``)
    worst_hours: float
    full_fraction: float | None  # with halving: the expected share of the same search without it
    unit: str
    lines: tuple[str, ...]


def _iteration_costs(x: Inputs) -> list[list[float]]:
    if not x.iteration1_gflops:
        return []
    r = math.exp(sum(math.log(g / x.base_gflops) for g in x.iteration1_gflops) / len(x.iteration1_gflops))
    return [[g * r ** (i - 1) for g in x.iteration1_gflops] for i in range(1, x.iterations + 1)]


@dataclass(frozen=True)
class _Expected:
    hours: float
    full_hours: float  # the same search without halving (every hypothesis trained to the end)
    longest_job: float  # the longest job's compute (GPU-h; CPU-h), once
    line: str


def _rung_jobs(n: int, halving: tuple[int, int] | None) -> int:
    """Jobs an iteration of n hypotheses submits at most (with halving: one per rung a hypothesis reaches)."""
    if halving is None:
        return n
    eta, rungs = halving
    jobs, alive = 0, n
    for _ in range(rungs):
        jobs, alive = jobs + alive, promoted_count(alive, eta)
    return jobs


def estimate(x: Inputs) -> Estimate:
    unit = "GPU-h" if x.gpus_per_job else "CPU-h"
    iters = _iteration_costs(x)
    exp = _expected(x, iters, unit)
    worst, worst_line = _worst(x, iters, exp, unit)
    if isinstance(exp, str):
        return Estimate(None, worst, None, unit, (f"expected: unknown ({exp})", worst_line))
    lines = [exp.line, worst_line]
    fraction = None
    if x.halving is not None:
        fraction = exp.hours / exp.full_hours if exp.full_hours else None
        eta, rungs = x.halving
        n = len(iters[0]) if iters else 0
        lines.insert(1, f"halving (eta {eta}, {rungs} rungs): an iteration of {n} trains "
                        f"{expected_fraction(n, eta, rungs):.0%} of what it would without; the whole search "
                        f"{fraction:.0%} of the same search without halving ({exp.full_hours:,.3g} {unit})")
    return Estimate(exp.hours, worst, fraction, unit, tuple(lines))


def _worst(x: Inputs, iters: list[list[float]], exp: _Expected | str, unit: str) -> tuple[float, str]:
    per_job = x.gpus_per_job if x.gpus_per_job else x.processes_per_job
    if not x.scheduler and isinstance(exp, _Expected) and exp.longest_job / per_job < x.time_limit_h:
        worst = exp.full_hours * (1 + x.max_retries)
        return worst, (f"worst case: every job fails {x.max_retries} time{'s' if x.max_retries != 1 else ''} at its "
                       f"very end: {exp.full_hours:,.3g} x (1 + {x.max_retries}) = {worst:,.3g} {unit}; local "
                       f"processes: no queue and no requeues, and the longest job ({exp.longest_job / per_job:.2g} h) "
                       f"ends well within the {x.time_limit_h:g} h limit")
    jobs = (x.base_replicas + x.replicas * sum(_rung_jobs(len(c), x.halving) for c in iters)
            + (x.iterations if x.baselines else 0))
    worst = jobs * (1 + x.max_retries) * (1 + x.max_requeues) * x.time_limit_h * per_job
    # a latency measurement: one GPU (one process without GPUs) for at most 30 minutes
    worst += x.iterations * (1 + x.max_retries) * min(x.time_limit_h, 0.5) if x.measure else 0.0
    # teacher cache shards (per B replica): one GPU (one process) each, the whole time limit
    shards = x.cache_shards * x.base_replicas
    worst += shards * (1 + x.max_retries) * (1 + x.max_requeues) * x.time_limit_h
    line = (f"worst case: {jobs} jobs x (1 + {x.max_retries} retries) x (1 + {x.max_requeues} requeues) x "
            f"{x.time_limit_h:g} h x {per_job} {'GPU(s)' if x.gpus_per_job else 'process(es)'}"
            + (f" + {x.iterations} latency jobs x (1 + {x.max_retries}) x {min(x.time_limit_h, 0.5):g} h"
               if x.measure else "")
            + (f" + {shards} teacher cache shards x (1 + {x.max_retries}) x (1 + {x.max_requeues}) x "
               f"{x.time_limit_h:g} h" if shards else "") + f" = {worst:,.0f} {unit}"
            + (" (halving: one job per rung a hypothesis reaches)" if x.halving else "")
            + (f" (replicas: {x.replicas} jobs per network)" if x.replicas > 1 else ""))
    return worst, line


def _expected(x: Inputs, iters: list[list[float]], unit: str) -> _Expected | str:
    """The expected compute, or why it cannot be known."""
    if x.train_clips is None or x.val_videos is None:
        return ("the dataset lists could not be read; state dataset_size: {train: N, val: N} in the definition to "
                "estimate before they can")
    if not x.throughput:
        return ("no throughput: set throughput_gflops in the cluster profile, or run one job of the search: its "
                "measured throughput is used")
    c, p, v = x.train_clips, x.throughput, x.val_videos * x.views

    def hours(gflop: float) -> float:
        return gflop / p / 3600

    teacher = x.base_gflops if x.distill else 0.0
    base = hours(x.base_epochs * c * 3 * x.base_gflops + v * x.base_gflops)
    jobs = [base]
    full_iter, spent_iter, baselines = 0.0, 0.0, 0.0
    for costs in iters:
        per_net = [hours(x.epochs * c * (3 * g + teacher)) + hours(v * g) for g in costs]
        train, ev = sum(hours(x.epochs * c * (3 * g + teacher)) for g in costs), sum(hours(v * g) for g in costs)
        jobs += per_net
        full_iter += train + ev
        if x.halving is None:
            spent_iter += train + ev
        else:
            eta, rungs = x.halving
            finalists = promoted_count(len(costs), eta)
            for _ in range(rungs - 2):
                finalists = promoted_count(finalists, eta)
            spent_iter += train * expected_fraction(len(costs), eta, rungs) + ev * finalists / len(costs)
        if x.baselines:
            g = sum(costs) / len(costs)
            jobs.append(hours(x.baseline_epochs * c * 3 * g + v * g))
            baselines += jobs[-1]
    cache = hours(x.cache_clips * x.base_gflops) if x.cache_clips is not None else 0.0  # B's forward, once
    if x.cache_shards:
        jobs.append(cache / x.cache_shards)
    n, nb = x.replicas, x.base_replicas  # every network n times (B nb times, a cache per B replica)
    expected = nb * (base + cache) + n * spent_iter + baselines
    times, times_b = (f" x {n} replicas" if n > 1 else ""), (f" x {nb} replicas" if nb > 1 else "")
    line = (f"expected{f' ({x.size_note})' if x.size_note else ''}: {expected:,.3g} {unit} = B {base:,.3g} ("
            + ("imported: evaluation only" if x.base_epochs == 0 else f"{x.base_epochs} epochs")
            + ")" + times_b + (f" + teacher cache {cache:,.3g}{times_b} ({x.cache_clips:,} clips x g_B)"
                               if x.cache_clips else "")
            + f" + iterations {spent_iter:,.3g}{times}"
            + (f" + baselines {baselines:,.3g}" if x.baselines else "")
            + f"; per network h: epochs x {c:,} clips x (3 g_h"
            + (" + g_B" if x.distill else "") + ") + "
              f"{x.val_videos:,} videos x {x.views} views x g_h GFLOPs, / {p:,.4g} GFLOP/s per "
            + ("GPU" if x.gpus_per_job else "process") + f" ({x.throughput_source}); iterations after "
            "the first scaled from its costs")
    return _Expected(expected, nb * (base + cache) + n * full_iter + baselines, max(jobs), line)


@dataclass(frozen=True)
class GradientInputs:
    """What ``estimate_gradient`` needs (strategy gradient): B, the targets, the supernet and candidate settings."""

    base: Inputs  # B, the data, the recipe, throughput and limits (its iteration fields are not read)
    targets: tuple[float, ...]
    supernet_epochs: int
    holdout: float
    warmup: float
    cycles: int
    rungs: tuple[int, int, bool]  # the candidates' (eta, rungs, only the best goes on)


def estimate_gradient(g: GradientInputs) -> Estimate:
    """strategy gradient: B, then per target one supernet job and at most ``cycles`` candidates trained as rungs.

        supernet j:  supernet_epochs x C (1 - holdout) x (1 + (1 - warmup / cycles)) x (3 g_j + g_B) / P
                     (a weight step and, after the warm-up, an architecture step per batch; the sampled
                     networks at the target's cost, where the penalty drives the distribution)
        candidates:  epochs x C x (3 g_j + g_B) / P x (n x b_1 + finalists x (1 - b_1)) with n = cycles (the
                     most distinct candidates), b_1 the first rung's share of the schedule (two rungs; halving's
                     expected_fraction otherwise), + the finalists' full evaluation
    """
    x = g.base
    unit = "GPU-h" if x.gpus_per_job else "CPU-h"
    per_job = x.gpus_per_job if x.gpus_per_job else x.processes_per_job
    eta, rungs, one = g.rungs
    n = g.cycles
    lines = [_gradient_worst_line(g, unit)]
    worst = _gradient_worst(g)
    if x.train_clips is None or x.val_videos is None or not x.throughput:
        why = "the dataset lists could not be read" if x.train_clips is None or x.val_videos is None else \
            "no throughput: set throughput_gflops in the cluster profile"
        return Estimate(None, worst, None, unit, (f"expected: unknown ({why})", *lines))
    c, p, gb = x.train_clips, x.throughput, x.base_gflops

    def hours(gflop: float) -> float:
        return gflop / p / 3600

    base = hours(x.base_epochs * c * 3 * gb + x.val_videos * x.views * gb)
    steps = 1 + (1 - g.warmup / g.cycles)
    if rungs == 2 and one:
        share = (n / eta + (1 - 1 / eta)) / n
    else:
        share = expected_fraction(n, eta, rungs)
    finalists = 1 if one else promoted_count(n, eta)
    supernets = sum(hours(g.supernet_epochs * c * (1 - g.holdout) * steps * (3 * t + gb)) for t in g.targets)
    candidates = sum(hours(x.epochs * c * (3 * t + gb)) * n * share + hours(x.val_videos * x.views * t) * finalists
                     for t in g.targets)
    expected = base + supernets + candidates
    full = base + supernets + sum(hours(x.epochs * c * (3 * t + gb) + x.val_videos * x.views * t) * n
                                  for t in g.targets)  # every candidate trained to the end
    longest = max([base] + [hours(g.supernet_epochs * c * (1 - g.holdout) * steps * (3 * t + gb)) for t in g.targets]
                  + [hours(x.epochs * c * (3 * t + gb) + x.val_videos * x.views * t) for t in g.targets])
    if not x.scheduler and longest / per_job < x.time_limit_h:
        worst = full * (1 + x.max_retries)
        lines = [f"worst case: every job fails {x.max_retries} time{'s' if x.max_retries != 1 else ''} at its very "
                 f"end, every candidate trained to the end: {full:,.3g} x (1 + {x.max_retries}) = {worst:,.3g} {unit};"
                 f" local processes: no queue and no requeues, and the longest job ({longest / per_job:.2g} h) ends "
                 f"well within the {x.time_limit_h:g} h limit"]
    lines.insert(0, f"expected{f' ({x.size_note})' if x.size_note else ''}: {expected:,.3g} {unit} = B {base:,.3g} ("
                 + ("imported: evaluation only" if x.base_epochs == 0 else f"{x.base_epochs} epochs")
                 + f") + {len(g.targets)} supernets {supernets:,.3g} ({g.supernet_epochs} epochs x {c:,} clips x "
                   f"{1 - g.holdout:.2g} x {steps:.3g} steps per batch x (3 g_target + g_B)) + candidates "
                   f"{candidates:,.3g} (up to {n} per target, {share:.0%} of training them all to the end); "
                   f"/ {p:,.4g} GFLOP/s per " + ("GPU" if x.gpus_per_job else "process")
                 + f" ({x.throughput_source})")
    return Estimate(expected, worst, None, unit, tuple(lines))


def _gradient_jobs(g: GradientInputs) -> tuple[int, int]:
    """(every job of a gradient search, the candidate rung jobs of one target) at most."""
    eta, rungs, one = g.rungs
    cand_jobs, alive = 0, g.cycles
    for _ in range(rungs):
        cand_jobs, alive = cand_jobs + alive, 1 if one else promoted_count(alive, eta)
    return 1 + len(g.targets) * (1 + cand_jobs), cand_jobs


def _gradient_worst(g: GradientInputs) -> float:
    x = g.base
    per_job = x.gpus_per_job if x.gpus_per_job else x.processes_per_job
    jobs, _ = _gradient_jobs(g)
    worst = jobs * (1 + x.max_retries) * (1 + x.max_requeues) * x.time_limit_h * per_job
    return worst + (len(g.targets) * (1 + x.max_retries) * min(x.time_limit_h, 0.5) if x.measure else 0.0)


def _gradient_worst_line(g: GradientInputs, unit: str) -> str:
    x = g.base
    per_job = x.gpus_per_job if x.gpus_per_job else x.processes_per_job
    jobs, cand_jobs = _gradient_jobs(g)
    return (f"worst case: {jobs} jobs (B, and per target 1 supernet + {cand_jobs} candidate rung jobs) x "
            f"(1 + {x.max_retries} retries) x (1 + {x.max_requeues} requeues) x {x.time_limit_h:g} h x {per_job} "
            f"{'GPU(s)' if x.gpus_per_job else 'process(es)'} = {_gradient_worst(g):,.0f} {unit}")
