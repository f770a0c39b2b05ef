"""Every kind of job a search runs, registered once: what the controller and the executors need to know of it.

A ledger row's ``kind`` names its kind. Each ``JobKind`` says how its task is built from the snapshot (the
builders below), which file its job writes last and how that file is read (and the error a bad one raises),
the callable submitit runs and the resources it gets, how its ingested result reads in the event log, and
how it is batched: with the trainings, in a batch of its own (the teacher cache's shards), or alone on its
machine (the latency measurement).

- ``TRAINING`` (row kind ``pas``: B, a hypothesis, a gradient candidate), ``BASELINE`` (``baseline``: without
  PAS), ``REPLICA`` (``replica``: replica r >= 1 of B or a hypothesis) and ``STUDY`` (``study-NAME``): a
  ``TrainTask``, result.json (``JobResult``), ``TrainJob``, the profile's resources (multi-node DDP);
- ``MEASUREMENT`` (``latency``): a ``MeasureTask``, result.json (``MeasureResult``), ``MeasureJob``, one node
  to itself;
- ``CACHE_SHARD`` (``teacher_cache``): a ``CacheShardTask``, result.json (``CacheShardResult``), ``CacheJob``,
  one process and GPU, a batch of its own;
- ``SUPERNET`` (``supernet``): a ``SupernetTask``, supernet.json (``SupernetResult``), ``SupernetJob``, the
  profile's resources.

A training kind (``network``) may stop at a rung: its job then writes ``rung-K.json`` (``RungResult``) instead.
Adding a kind: a ``JobKind`` here (with its task builder), its task and result types and its job in
``pas_models``, and, when it is planned by a rule of its own, that rule in ``core/decide.py`` or a strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from pas_models.data.formats import DatasetConfig
from pas_models.halving import RungInvalid, RungResult
from pas_models.layout import HypFiles, RunLayout
from pas_models.measure import MeasureInvalid, MeasureJob, MeasureResult, MeasureTask
from pas_models.nas.result import SupernetResult, SupernetResultInvalid, SupernetTask
from pas_models.spec import ArchSpec
from pas_models.teacher_cache.config import CacheInvalid, CacheShardResult, CacheShardTask
from pas_models.train.result import JobResult, ResultInvalid
from pas_models.train.task import TrainTask
from pas_orchestrator import replicas
from pas_orchestrator.config.cluster import Resources, measure_resources, single_gpu_resources
from pas_orchestrator.config.search import HalvingSection, SearchDef
from pas_orchestrator.ledger.records import STUDY_PREFIX, AttemptRec, HypRec, Snapshot
from pas_orchestrator.ledger.states import HypState
from pas_orchestrator.studies import Study
from pas_orchestrator.studies.registry import study_of
from pas_orchestrator.tasks import base_task, baseline_task, hypothesis_task

Task = TrainTask | MeasureTask | CacheShardTask | SupernetTask


class Result(Protocol):
    """What a job's result file is read into (``to_dict``: what the ledger keeps)."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TaskContext:
    """What a row's task is built from besides the snapshot: the search as it runs."""

    search: SearchDef
    data: DatasetConfig
    layout: RunLayout
    rungs: HalvingSection | None = None  # the rungs a training stops at (halving, a gradient search's candidates)
    study: Study | None = None  # the study a study controller runs: its rows' tasks are its own


@dataclass(frozen=True)
class JobKind:
    name: str  # the ledger row's kind (a study's: the prefix of study-NAME)
    task_type: type
    build: Callable[[TaskContext, Snapshot, HypRec], Task]
    result_file: Callable[[HypFiles], Path]  # written last by the job
    read: Callable[[Path], Result]  # raises ``invalid``
    invalid: type[Exception]
    job: Callable[[], Any]  # the callable submitit runs (imports the job's code when called: torch)
    resources: Callable[[Resources], Resources]  # from the profile's
    summary: Callable[[str, Any], str]  # the event line of an ingested result (``where``: "I-OP (kind)")
    network: bool = True  # trains a network: may stop at rungs, and its result's figures go into the row
    own_batch: bool = False  # submitted in a batch of its own kind (its own resources)
    alone: bool = False  # runs alone on its machine (SLURM: --exclusive; where that cannot be: nothing beside it)


# ---------------------------------------------------------------- task builders


def train_row_task(ctx: TaskContext, snap: Snapshot, h: HypRec) -> TrainTask:
    """B, a hypothesis, a candidate or a baseline as the search trains it: to its rung's end when it trains in
    rungs; never timed (the latency measurement job times the iteration's networks alone)."""
    task = replace(_search_task(ctx, snap, h), measure_latency=False)
    if h.rung is not None and ctx.rungs is not None:
        task = replace(task, rung=ctx.rungs.rung(h.rung))
    return task


def replica_row_task(ctx: TaskContext, snap: Snapshot, h: HypRec) -> TrainTask:
    """Replica r of a row (pas_orchestrator/replicas.py): the row's own task with seed + r, B's replica r as its
    teacher (B where B was imported: one B for every replica) and its teacher cache, the parent's replica r as
    the weights it starts from, and its own rung and folder."""
    src = replicas.source(snap, h)
    _, r = replicas.source_op(h.op)
    task = replace(_search_task(ctx, snap, src), hypothesis=h.label, out_dir=h.out_dir, seed=ctx.search.seed + r,
                   measure_latency=False, rung=None)
    if h.rung is not None and ctx.rungs is not None:
        task = replace(task, rung=ctx.rungs.rung(h.rung))
    if h.iteration == 0:
        return task
    base = snap.iteration(0)[0]
    teacher = replicas.replica(snap, base, r) or base
    parent = snap.winner(h.iteration - 1) if h.iteration > 1 else base
    assert parent is not None
    own_parent = replicas.replica(snap, parent, r) or (parent if h.iteration == 1 else None)
    if own_parent is None:
        raise LookupError(f"{h.label}: iteration {h.iteration - 1}'s winner has no replica {r}")
    if task.teacher_cache is not None:  # the cache of the B that teaches it: B's replica r, or the one imported B
        b = replicas.source_op(teacher.op)[1]
        task = replace(task, teacher_cache=str(cache_folder(ctx.layout, b)), teacher_cache_seed=ctx.search.seed + b)
    return replace(task, teacher_checkpoint=str(HypFiles.of(teacher.out_dir).model),
                   parent_checkpoint=str(HypFiles.of(own_parent.out_dir).model) if task.parent_checkpoint else None)


def cache_folder(layout: RunLayout, replica: int = 0) -> Path:
    """Where B's replica ``replica`` keeps its soft labels (``teacher_cache``, ``teacher_cache-r1``, ...)."""
    return layout.teacher_cache if replica == 0 else layout.teacher_cache.with_name(f"teacher_cache-r{replica}")


def study_row_task(ctx: TaskContext, snap: Snapshot, h: HypRec) -> TrainTask:
    """A study's training: the search's own task of the row it varies, changed as its study says."""
    study = ctx.study if ctx.study is not None and ctx.study.owns(h) else study_of(h, snap)
    return replace(study.task(snap, h, lambda src: _search_task(ctx, snap, src)), measure_latency=False)


def measure_row_task(ctx: TaskContext, snap: Snapshot, h: HypRec) -> MeasureTask:
    """Iteration ``h.iteration``'s measurement: B first, then every network the iteration trained."""
    base = snap.iteration(0)[0]
    nets = [base] + [x for x in snap.iteration(h.iteration) if x.state == HypState.DONE]
    ev = ctx.search.eval
    return MeasureTask(h.label, h.out_dir, tuple((x.label, x.spec or "") for x in nets), ev.latency_batches,
                       ev.latency_passes, ev.latency_rounds)


def cache_row_task(ctx: TaskContext, snap: Snapshot, h: HypRec) -> CacheShardTask:
    """Shard K's job (op ``cache-K``; ``cache-K.rR``: B's replica R's cache, its recipes drawn with seed + R as
    its trainings draw theirs): B (trained or imported: iteration 0's weights) over K recipes of its videos."""
    s = ctx.search
    assert s.distill.cache is not None
    _, r = replicas.source_op(h.op)
    base = snap.iteration(0)[0]
    base = replicas.replica(snap, base, r) or base
    return CacheShardTask(h.label, h.out_dir, str(cache_folder(ctx.layout, r)), cache_shard(h.op), s.base_spec(),
                          str(HypFiles.of(base.out_dir).model), ctx.data, s.distill.cache, s.distill.teacher_bn,
                          s.recipe.batch_per_gpu, s.recipe.num_workers, s.seed + r,
                          teacher_dropout=s.distill.teacher_dropout, gpu_decode=s.recipe.gpu_decode)


def supernet_row_task(ctx: TaskContext, snap: Snapshot, h: HypRec) -> SupernetTask:
    """Target ``h.iteration``'s supernet job: B's spec and weights (iteration 0), the search's recipes."""
    s = ctx.search
    assert s.gradient is not None
    base = snap.iteration(0)[0]
    return SupernetTask(h.label, s.base_spec(), str(HypFiles.of(base.out_dir).model),
                        s.gradient.targets_gflops[h.iteration - 1], ctx.data, h.out_dir, recipe=s.recipe,
                        distill=s.distill, gradient=s.gradient, seed=s.seed)


def _search_task(ctx: TaskContext, snap: Snapshot, h: HypRec) -> TrainTask:
    s, data = ctx.search, ctx.data
    if h.iteration == 0:
        if s.base.checkpoint is None:
            return base_task(s, data, h.out_dir)
        # an imported B is only evaluated: zero epochs from its own weights
        return replace(base_task(s, data, h.out_dir), recipe=replace(s.base_recipe, epochs=0),
                       parent=s.base_spec(), parent_checkpoint=s.base.checkpoint)
    # the specs planned and recorded, not replayed: a resumed search trains what it planned
    student = ArchSpec.from_json(h.spec or "")
    if h.kind == BASELINE.name:
        return baseline_task(s, data, student, h.out_dir, hypothesis=h.label)
    base = snap.iteration(0)[0]
    b_model = str(HypFiles.of(base.out_dir).model)
    if s.strategy == "gradient":
        return _candidate_task(ctx, snap, h, student, b_model)
    parent = snap.winner(h.iteration - 1) if h.iteration > 1 else base
    if parent is None:
        raise LookupError(f"{h.label}: iteration {h.iteration - 1} has no winner")
    return hypothesis_task(s, data, student, ArchSpec.from_json(parent.spec or ""), h.out_dir, b_model,
                           str(HypFiles.of(parent.out_dir).model), hypothesis=h.label,
                           teacher_cache=str(ctx.layout.teacher_cache) if s.distill.cache is not None else None)


def _candidate_task(ctx: TaskContext, snap: Snapshot, h: HypRec, student: ArchSpec, b_model: str) -> TrainTask:
    """A gradient search's candidate (``gradient.candidate_init``): B's weights where shapes allow (``pas``), or
    its weights cut from its target's supernet, fine-tuned at lr / ``gradient.lr_divisor``."""
    s = ctx.search
    assert s.gradient is not None
    if s.gradient.candidate_init == "pas":  # B's weights where shapes allow, else random (train.run decides)
        return hypothesis_task(s, ctx.data, student, s.base_spec(), h.out_dir, b_model, b_model, hypothesis=h.label)
    supernet = next(x for x in snap.hypotheses if x.kind == SUPERNET.name and x.iteration == h.iteration)
    weights = HypFiles.of(supernet.out_dir).candidate(h.path, candidate_cycle(h.op))
    return replace(hypothesis_task(s, ctx.data, student, student, h.out_dir, b_model, str(weights),
                                   hypothesis=h.label), lr_divisor=s.gradient.lr_divisor)


# ---------------------------------------------------------------- ops of the kinds' rows


def cache_shard_op(shard: int) -> str:
    return f"cache-{shard}"


def cache_shard(op: str) -> int:
    return int(replicas.source_op(op)[0].rsplit("-", 1)[1])


def candidate_op(cycle: int) -> str:
    """A gradient search's candidate of learning-rate cycle C: op ``cC``."""
    return f"c{cycle}"


def candidate_cycle(op: str) -> int:
    return int(op[1:])


# ---------------------------------------------------------------- jobs and event lines


def _train_job() -> Any:
    from pas_models.train.job import TrainJob  # torch: only to submit

    return TrainJob()


def _supernet_job() -> Any:
    from pas_models.nas.job import SupernetJob

    return SupernetJob()


def _cache_job() -> Any:
    from pas_models.teacher_cache.shard import CacheJob

    return CacheJob()


def _same(res: Resources) -> Resources:
    return res


def _trained(where: str, r: JobResult) -> str:
    return f"{where}: top-1 {r.top1:.2f}%, top-5 {r.top5:.2f}%, {r.gflops_per_view:.4g} GFLOPs/view"


def _measured(where: str, r: MeasureResult) -> str:
    flagged = [f"{t.network} b{t.batch}" for t in r.timings if t.flagged]
    return (f"{where}: {len(r.timings)} timings on {r.device}"
            + (f"; spread > 20% (not trusted): {', '.join(flagged)}" if flagged else ""))


def _cached(where: str, r: CacheShardResult) -> str:
    return (f"{where}: {r.clips} clips of {r.videos} videos" + (f" ({r.unreadable} unreadable)" if r.unreadable else "")
            + f", {r.bytes / 1e6:.3g} MB, {r.seconds:.0f} s on {r.device}")


def _searched(where: str, r: SupernetResult) -> str:
    return (f"{where} (target {r.target_gflops:g} GFLOPs): {len(r.distinct)} distinct of {len(r.candidates)} "
            "candidates: " + "; ".join(f"cycle {c.cycle} {c.code} {c.gflops:.4g} GFLOPs" for c in r.candidates))


def _result_json(files: HypFiles) -> Path:
    return files.result


def _training(name: str, build: Callable[[TaskContext, Snapshot, HypRec], TrainTask]) -> JobKind:
    return JobKind(name, TrainTask, build, _result_json, JobResult.read, ResultInvalid, _train_job, _same, _trained)


TRAINING = _training("pas", train_row_task)
BASELINE = _training("baseline", train_row_task)
STUDY = _training(STUDY_PREFIX, study_row_task)
MEASUREMENT = JobKind("latency", MeasureTask, measure_row_task, _result_json, MeasureResult.read, MeasureInvalid,
                      MeasureJob, measure_resources, _measured, network=False, own_batch=True, alone=True)
CACHE_SHARD = JobKind("teacher_cache", CacheShardTask, cache_row_task, _result_json, CacheShardResult.read,
                      CacheInvalid, _cache_job, single_gpu_resources, _cached, network=False, own_batch=True)
REPLICA = _training(replicas.KIND, replica_row_task)
SUPERNET = JobKind("supernet", SupernetTask, supernet_row_task, lambda files: files.supernet, SupernetResult.read,
                   SupernetResultInvalid, _supernet_job, _same, _searched, network=False)

KINDS = {k.name: k for k in (TRAINING, BASELINE, REPLICA, MEASUREMENT, CACHE_SHARD, SUPERNET)}


def kind_of(row_kind: str) -> JobKind:
    """The kind of a ledger row (``study-NAME``: a study's training)."""
    if row_kind.startswith(STUDY_PREFIX):
        return STUDY
    try:
        return KINDS[row_kind]
    except KeyError:
        raise LookupError(f"a ledger row of kind {row_kind!r}, which this pas does not know (kinds: "
                          f"{', '.join(KINDS)}, {STUDY_PREFIX}NAME): a newer pas wrote it") from None


def kind_of_task(task: Task) -> JobKind:
    """The kind a task is of (the training kinds share their task type, job and resources)."""
    for k in (*KINDS.values(), STUDY):
        if isinstance(task, k.task_type):
            return k
    raise TypeError(f"no job kind takes a {type(task).__name__}")


def read_result(h: HypRec, a: AttemptRec, rungs: int | None) -> Result | RungResult | str | None:
    """What attempt ``a`` of ``h`` wrote last: its kind's result, or its rung's (``rung-K.json``) for a rung before
    the last of ``rungs``; why that file is invalid; None while there is none."""
    files, kind = HypFiles.of(h.out_dir), kind_of(h.kind)
    read: Callable[[Path], Result | RungResult]
    invalid: type[Exception]
    if a.rung is not None and rungs is not None and a.rung < rungs:  # ends at a rung's evaluation
        path, read, invalid = files.rung(a.rung), RungResult.read, RungInvalid
    else:
        path, read, invalid = kind.result_file(files), kind.read, kind.invalid
    if not path.is_file():
        return None
    try:
        return read(path)
    except invalid as exc:
        return str(exc)
