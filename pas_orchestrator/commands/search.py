"""``pas search``: start a PAS search, or resume it from its ledger (the same command).

The controller runs in the foreground until the search ends; kill it at any time
(Ctrl-C, SIGKILL, a lost login node) and run the same command again: it resumes from
``runs/NAME/ledger.sqlite``, finds the jobs that were running, and submits nothing twice.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pas_models.errors import PasError
from pas_models.layout import RunLayout

if TYPE_CHECKING:
    from pas_orchestrator.config.cluster import ClusterProfile
    from pas_orchestrator.config.search import SearchDef

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="start or resume a PAS search", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--job", required=True, type=Path, help="search definition (jobs/NAME.yaml)")
    p.add_argument("--cluster", default="local", help="profile name (cluster_profiles/NAME.yaml) or path")
    p.add_argument("--name", help="search name (default: the definition's); runs/NAME holds everything")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder of all searches (default runs/)")
    p.add_argument("--poll", type=float, help="seconds between polls (default: the profile's poll_seconds)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress (default: a status line and the events on a terminal, the events elsewhere)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the sbatch script of the first array and the GPU-hours bound; submit nothing")
    p.set_defaults(func=run)


def dry_run(search: SearchDef, profile: ClusterProfile, layout: RunLayout) -> str:
    """What the search would cost (expected and worst case, with the formulas) and, on SLURM, the sbatch
    script of its first hypothesis array. Reads the dataset lists (and this search's ledger, when it has
    one: the throughput its jobs measured); writes and submits nothing."""
    from pas_orchestrator.estimate import estimate

    if search.strategy == "gradient":
        return _dry_run_gradient(search, profile, layout)
    res = profile.resources_for(search.backbone)
    x = _estimate_inputs(search, profile, layout)
    est = estimate(x)
    n = len(x.iteration1_gflops)
    head = [f"# search {search.name}: {search.backbone}, {search.iterations} iterations x "
            f"{len(search.operators)} operators ({n} applicable to B) + the base network "
            + ("(imported: evaluated only)" if search.base.checkpoint else "(trained)")
            + (" + a without-PAS baseline per iteration" if search.baselines else "")
            + (f"; successive halving eta {search.halving.eta}, {search.halving.rungs} rungs" if search.halving
               else "")
            + (f"; a teacher cache (B over {search.distill.cache.clips_per_video} clips per training video, "
               f"{search.distill.cache.shards} shard jobs of 1 process"
               + (", 1 GPU" if res.gpus_per_node else "") + " each) before iteration 1"
               if search.distill.cache else ""),
            f"# each job: {res.nodes} node(s) x {res.tasks_per_node} task(s), {res.gpus_per_node} GPU(s) per node, "
            f"time limit {res.time_min} min" + ("; a latency measurement per iteration: 1 process, "
                                               + ("1 GPU, " if res.gpus_per_node else "") + "a node of its own"
                                               if search.eval.latency_passes > 0 else ""),
            *(f"# {line}" for line in est.lines)]
    if profile.executor != "slurm":
        return "\n".join([*head, f"# executor {profile.executor}: local processes, no sbatch script"])
    from pas_orchestrator.executors.slurm import sbatch_script

    size = min(max(n, 1), res.max_array_size)
    batch = f"pas-{search.name}-i1-b2"
    script = sbatch_script(profile, search.backbone, layout.batch_folder(batch), batch, size)
    return "\n".join([*head, f"# the first hypothesis array ({batch}: iteration 1, one task per hypothesis; "
                              "B goes first as a plain job with the same resources):", script])


def _dry_run_gradient(search: SearchDef, profile: ClusterProfile, layout: RunLayout) -> str:
    """strategy gradient: the stages, the expected and worst-case compute, the supernet array's sbatch script."""
    from pas_models.nas.space import SearchSpace
    from pas_orchestrator.estimate import GradientInputs, estimate_gradient

    g = search.gradient
    assert g is not None
    res = profile.resources_for(search.backbone)
    space = SearchSpace.of(search.base_spec())
    lo, hi = target_range(search)
    h = search.candidate_halving()
    est = estimate_gradient(GradientInputs(_estimate_inputs(search, profile, layout), g.targets_gflops, g.epochs,
                                           g.holdout, g.warmup, g.cycles, (h.eta, h.rungs, search.halving is None)))
    n = len(g.targets_gflops)
    head = [f"# search {search.name}: {search.backbone}, strategy gradient: the base network "
            + ("(imported: evaluated only)" if search.base.checkpoint else "(trained)")
            + f", then {n} supernet job(s), one per target ({', '.join(f'{t:g}' for t in g.targets_gflops)} GFLOPs; "
              f"the space: {len(space.decisions)} decisions, {space.count():,} networks, {lo:.4g} to {hi:.4g} "
              f"GFLOPs), {g.epochs} epochs, {g.cycles} cycle(s) -> up to {g.cycles} candidate(s) per target, "
              f"each trained {1 / h.eta:.0%} of the recipe first"
            + (" and the best to the end" if search.halving is None else f" (halving eta {h.eta}, {h.rungs} rungs)"),
            f"# each job: {res.nodes} node(s) x {res.tasks_per_node} task(s), {res.gpus_per_node} GPU(s) per node, "
            f"time limit {res.time_min} min",
            *(f"# {line}" for line in est.lines)]
    if profile.executor != "slurm":
        return "\n".join([*head, f"# executor {profile.executor}: local processes, no sbatch script"])
    from pas_orchestrator.executors.slurm import sbatch_script

    size = min(n, res.max_array_size)
    batch = f"pas-{search.name}-i{n}-b2"
    script = sbatch_script(profile, search.backbone, layout.batch_folder(batch), batch, size)
    return "\n".join([*head, f"# the supernet array ({batch}: one task per target; B goes first as a plain job "
                              "with the same resources):", script])


def _estimate_inputs(search: SearchDef, profile: ClusterProfile, layout: RunLayout) -> Any:
    from pas_models.flops import count_cost
    from pas_orchestrator.estimate import Inputs
    from pas_orchestrator.planning import plan_iteration

    res = profile.resources_for(search.backbone)
    base = search.base_spec()
    g_base = count_cost(base).gflops
    planned = []
    for p in plan_iteration(base, (), search.operators, search.tucker):
        if p.spec is not None and p.gflops:
            planned.append(p.gflops)
    train_videos, val_videos, size_note = _dataset_size(search)
    train_clips = train_videos * search.recipe.clips_per_video if train_videos is not None else None
    per_job = res.nodes * (res.gpus_per_node or res.tasks_per_node)
    throughput, source = profile.throughput_gflops, f"the profile's throughput_gflops, {profile.source}"
    cache = search.distill.cache
    live = search.distill.alpha > 0 and cache is None  # the hypotheses run B on every training clip
    measured = _measured_throughput(layout, g_base, live, per_job)
    if measured is not None:
        throughput, source = measured
    return Inputs(train_clips=train_clips, val_videos=val_videos, views=search.eval.clips * search.eval.crops,
                  base_gflops=g_base, iteration1_gflops=tuple(planned), iterations=search.iterations,
                  base_epochs=0 if search.base.checkpoint else search.base_recipe.epochs,
                  epochs=search.recipe.epochs, distill=live, baselines=search.baselines,
                  baseline_epochs=search.base_recipe.epochs,
                  halving=(search.halving.eta, search.halving.rungs) if search.halving else None,
                  throughput=throughput, throughput_source=source, gpus_per_job=res.nodes * res.gpus_per_node,
                  processes_per_job=res.nodes * res.tasks_per_node, time_limit_h=res.time_min / 60,
                  max_retries=search.max_retries, max_requeues=res.max_requeues,
                  measure=search.eval.latency_passes > 0,
                  cache_clips=train_videos * cache.clips_per_video if cache and train_videos is not None else None,
                  cache_shards=cache.shards if cache else 0, scheduler=profile.executor == "slurm",
                  size_note=size_note, replicas=search.replicas)


def _dataset_size(search: SearchDef) -> tuple[int | None, int | None, str | None]:
    """(training videos, validation videos, None) from the dataset lists; where they cannot be read, from the
    definition's ``dataset_size`` or a standard dataset's published size, with a note that says so."""
    from pas_models.data.formats import load_video_list
    from pas_orchestrator.estimate import standard_size

    if search.synthetic is not None and not (Path(search.synthetic.root) / "dataset.yaml").is_file():
        syn = search.synthetic  # generated on first use: its size is the definition's
        return syn.classes * syn.videos_per_class, syn.classes * syn.val_per_class, None
    try:
        return len(load_video_list(search.data, "train").samples), len(load_video_list(search.data, "val").samples), \
            None
    except (PasError, OSError) as exc:
        why = str(exc).splitlines()[0][:200]
    if search.dataset_size is not None:
        size = search.dataset_size
        return size.train, size.val, (f"assumed: the definition's dataset_size, {size.train:,} training and "
                                      f"{size.val:,} validation videos (the lists could not be read: {why})")
    std = standard_size(search.data.format, search.data.split, search.data.num_classes)
    if std is None:
        return None, None, None
    train, val, which = std
    return train, val, (f"assumed: {which} ({train:,} training, {val:,} validation videos; the lists could not be "
                        f"read: {why}; state dataset_size in the definition to use another size)")


def _measured_throughput(layout: RunLayout, g_base: float, distill: bool, per_job: int) -> tuple[float, str] | None:
    """GFLOP/s per GPU (per process) that this search's finished trainings reached, from their results."""
    from pas_orchestrator.kinds import TRAINING, kind_of
    from pas_orchestrator.ledger.store import Ledger

    if not layout.ledger.is_file():
        return None
    try:
        ledger = Ledger(layout.ledger, readonly=True)
        snap = ledger.snapshot()
        ledger.close()
    except PasError:
        return None
    work = seconds = 0.0
    jobs = 0
    for h in snap.hypotheses:
        if not kind_of(h.kind).network or not h.result or h.gflops is None:
            continue
        r = json.loads(h.result)
        if not r.get("epochs") or not r.get("train_seconds"):
            continue
        teacher = g_base if distill and h.kind == TRAINING.name and h.iteration > 0 else 0.0
        work += r["clips_seen"] * (3 * h.gflops + teacher)
        seconds += r["train_seconds"] * per_job
        jobs += 1
    if not jobs or seconds <= 0:
        return None
    return work / seconds, f"measured by {jobs} finished training(s) of this search"


def target_range(search: SearchDef) -> tuple[float, float]:
    """GFLOPs per view of the smallest and the largest network of the gradient strategy's search space."""
    from pas_models.flops import count_cost
    from pas_models.nas.space import SearchSpace

    space = SearchSpace.of(search.base_spec())
    smallest = space.derive(tuple(len(d) - 1 for d in space.decisions))
    return count_cost(smallest).gflops, count_cost(space.base).gflops


def check_targets(search: SearchDef) -> None:
    """Every target of ``gradient.targets_gflops`` lies in the search space (else one line, before anything runs)."""
    assert search.gradient is not None
    lo, hi = target_range(search)
    bad = [t for t in search.gradient.targets_gflops if not lo <= t <= hi]
    if bad:
        raise PasError(f"{search.source}: gradient.targets_gflops: {', '.join(f'{t:g}' for t in bad)} outside the "
                       f"search space of {search.backbone} ({lo:.4g} to {hi:.4g} GFLOPs per view)")


def check_holdout(search: SearchDef, data: Any, profile: ClusterProfile) -> None:
    """The supernet's two splits of the training videos (weights / hold-out) each fill a batch on every process
    (else one line now, not a job that fails its retries)."""
    from pas_models.data.formats import load_video_list
    from pas_models.nas.search import split_holdout

    assert search.gradient is not None
    n = len(load_video_list(data, "train").samples)
    res = profile.resources_for(search.backbone)
    world, batch, clips = res.nodes * res.tasks_per_node, search.recipe.batch_per_gpu, search.recipe.clips_per_video
    w, a = split_holdout(n, search.gradient.holdout, search.seed)
    for what, ids in (("training", w), ("hold-out", a)):
        if len(ids) * clips // world < batch:
            raise PasError(f"{search.source}: gradient.holdout: the supernet's {what} split has {len(ids)} of the {n} "
                           f"training videos x {clips} clips, less than one batch of {batch} on each of {world} "
                           "process(es); change gradient.holdout, recipe.batch_per_gpu or recipe.clips_per_video")


def _progress(ledger: Any, search: SearchDef, quiet: bool) -> Any:
    from pas_orchestrator.progress import Progress, planned_hypotheses

    if search.strategy == "gradient":
        assert search.gradient is not None
        return Progress(ledger.events_after, len(search.gradient.targets_gflops), None, quiet=quiet,
                        start=ledger.last_event_id())
    cache = search.distill.cache
    planned = planned_hypotheses(search.iterations, len(search.operators), search.baselines,
                                 search.eval.latency_passes > 0, cache.shards if cache else 0, search.replicas,
                                 search.base_replicas)
    return Progress(ledger.events_after, search.iterations, planned, quiet=quiet, start=ledger.last_event_id())


def _watched(controller: Any, ledger: Any, search: SearchDef, layout: RunLayout, args: argparse.Namespace) -> Any:
    """The controller's rounds, shown as they go (progress) and kept in the report's page (``report.html``)."""
    from pas_orchestrator.report_html import Refresher

    progress = _progress(ledger, search, args.quiet)
    page = Refresher(ledger, layout.report)

    def observe(snap: Any) -> None:
        progress.update(snap)
        page(snap)

    try:
        return controller.run(args.poll, observe=observe)
    finally:
        progress.close()
        page.close()


def _start_or_resume(ledger: Any, search: SearchDef, profile: ClusterProfile, job: Path) -> None:
    """The search recorded in its ledger (new), or the recorded one checked against the definition (a resume); a
    cancelled or failed search runs again."""
    from pas_orchestrator.config.recorded import definition_dict, definition_hash, without_accel
    from pas_orchestrator.core.actions import ResumeSearch
    from pas_orchestrator.ledger import SearchState
    from pas_orchestrator.runs import definition_changes

    definition = definition_dict(search)
    rec = ledger.init_search(search.name, definition, definition_hash(search), profile.name)
    if rec.definition_hash != definition_hash(search):
        changes = definition_changes(without_accel(json.loads(rec.definition)), without_accel(definition))
        if changes:
            raise PasError(f"search {search.name}: {job} differs from the definition it was started with "
                           f"({'; '.join(changes[:5])}{'; ...' if len(changes) > 5 else ''}); revert it, or "
                           "start a new search with --name")
    if rec.state in (SearchState.CANCELLED, SearchState.FAILED):
        log.info("search %s was %s: resuming it", search.name, rec.state.value.lower())
        ledger.apply(ResumeSearch())


def run(args: argparse.Namespace) -> int:
    from pas_orchestrator.config.cluster import load_profile
    from pas_orchestrator.config.search import NAME_RE, load_search
    from pas_orchestrator.config.synthetic import ensure_data
    from pas_orchestrator.controller import Controller
    from pas_orchestrator.executors import make_executor
    from pas_orchestrator.foreground import run_foreground
    from pas_orchestrator.ledger import SearchState
    from pas_orchestrator.ledger.records import Snapshot
    from pas_orchestrator.ledger.store import Ledger
    from pas_orchestrator.views import render

    search = load_search(args.job)
    if args.name:
        if not NAME_RE.match(args.name):
            raise PasError(f"--name {args.name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        search = replace(search, name=args.name)
    profile = load_profile(args.cluster)
    layout = RunLayout.of(args.runs.resolve(), search.name)
    if search.strategy == "gradient":
        check_targets(search)
    if args.dry_run:
        print(dry_run(search, profile, layout))
        return 0
    ledger = Ledger(layout.ledger)
    controller: Controller | None = None

    def body() -> Snapshot:
        nonlocal controller
        _start_or_resume(ledger, search, profile, args.job)
        data = ensure_data(search)
        if search.strategy == "gradient":
            check_holdout(search, data, profile)
        executor = make_executor(profile, layout, search.backbone)
        controller = Controller(search, profile, layout, ledger, executor, data)
        log.info("search %s: controller pid %d on %s, ledger %s (watch it with: pas status --search %s)",
                 search.name, os.getpid(), profile.name, ledger.path, search.name)
        return _watched(controller, ledger, search, layout, args)

    snap = run_foreground(
        ledger, body, lambda why: controller.interrupt(why) if controller is not None else 0,
        lambda why, stopped: f"pas search: {search.name} interrupted ({why})"
        + (f"; {stopped} local job(s) stopped, they resume from their checkpoints" if stopped else "")
        + f"; run the same command to resume (`pas status --search {search.name}` shows where it is)")
    if snap is None:
        return 130
    print(render(snap))
    if snap.search.state != SearchState.DONE:
        print(f"pas search: {snap.search.name} {snap.search.state.value.lower()}: {snap.search.error}")
        return 1
    return 0
