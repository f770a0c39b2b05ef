"""``pas study``: the paper's other experiments on a finished search, as arrays run by the same controller.

Each study plans its trainings once into the search's ledger (their own kind: ``pas status --study``
shows them), runs them like a search's hypotheses (retries, requeue, compute accounting; killed, the same
command resumes it) and writes its table in the paper's layout (Markdown and CSV) under the search's
``report/`` (``pas report`` writes it again with the search's):

  ablation     Table 4: s, t, f children of one iteration with KD + fine-tuning (the search's), fine-tuning
               without KD, KD without fine-tuning
  teacher-bn   Table 7: every operator of one iteration with the teacher's batch norms in train vs eval mode
  distill      Table 6: one hypothesis with logits-only KD, + a stage-output MSE, + Heo et al.'s margin ReLU
  baselines    Tables 2 and 8: every winner trained without PAS (scratch, cross-entropy, B's recipe)
  transfer     Table 5: B and every winner fine-tuned on another dataset's splits (--job jobs/transfer_*.yaml)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pas_models.errors import PasError
from pas_models.layout import RunLayout

if TYPE_CHECKING:
    from pas_orchestrator.config.cluster import ClusterProfile
    from pas_orchestrator.config.search import SearchDef
    from pas_orchestrator.ledger.records import Snapshot
    from pas_orchestrator.studies import Study

log = logging.getLogger(__name__)

HELP = {"ablation": "Table 4: what distillation and fine-tuning each contribute (s, t, f of one iteration)",
        "teacher-bn": "Table 7: every operator of one iteration with the teacher's BN in train vs eval mode",
        "distill": "Table 6: logits-only KD vs + MSE vs + margin-ReLU feature distillation (one hypothesis)",
        "baselines": "Tables 2 and 8: every winner without PAS (random weights, cross-entropy, B's recipe)",
        "transfer": "Table 5: B and every winner fine-tuned on another dataset's splits"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="the paper's other experiments on a finished search", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    studies = p.add_subparsers(dest="study", metavar="STUDY", required=True)
    for name, text in HELP.items():
        s = studies.add_parser(name, help=text, description=text)
        s.add_argument("--search", required=True, help="the finished search (runs/NAME)")
        if name == "transfer":
            s.add_argument("--job", required=True, type=Path,
                           help="the transfer definition (jobs/transfer_ucf101.yaml: dataset, splits, recipe)")
        if name not in ("baselines", "transfer"):
            s.add_argument("--iteration", type=int,
                           help="the iteration studied (default: ablation the last one, the others 1)")
        if name == "distill":
            s.add_argument("--op", default="l", help="the hypothesis of that iteration (default l, as the paper)")
            s.add_argument("--feature-weight", type=float, default=1.0,
                           help="weight of the feature loss beside the logits' KD (default 1)")
        s.add_argument("--runs", type=Path, default=Path("runs"), help="folder of all searches (default runs/)")
        s.add_argument("--cluster", help="profile name or path (default: the one the search ran on)")
        s.add_argument("--poll", type=float, help="seconds between polls (default: the profile's poll_seconds)")
        s.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
        s.add_argument("--dry-run", action="store_true", help="print the trainings it would run and their expected "
                                                              "compute; submit nothing")
        s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pas_orchestrator.config.cluster import load_profile
    from pas_orchestrator.config.synthetic import ensure_data
    from pas_orchestrator.executors import make_executor
    from pas_orchestrator.foreground import run_foreground
    from pas_orchestrator.ledger import SearchState
    from pas_orchestrator.ledger.store import Ledger
    from pas_orchestrator.progress import Progress
    from pas_orchestrator.studies import StudyStrategy
    from pas_orchestrator.studies.controller import StudyController
    from pas_orchestrator.studies.report import write_study

    path, snap, search = _finished_search(args)
    layout, rec = RunLayout(path.parent), snap.search
    study = _study_of(args, snap, search, layout)
    profile = load_profile(args.cluster or rec.cluster)
    mine = [h for h in snap.hypotheses if study.owns(h)]
    planned = mine or [StudyStrategy(study, layout).advance(snap)[0]]
    if args.dry_run:
        print(dry_run_text(study, snap, planned, search, profile, layout))
        return 0
    ledger = Ledger(path)
    controller: StudyController | None = None

    def body() -> Snapshot:
        nonlocal controller
        data = ensure_data(search)
        executor = make_executor(profile, layout, search.backbone)
        controller = StudyController(search, profile, layout, ledger, executor, data, study)
        log.info("study %s of search %s: controller pid %d on %s (watch it with: pas status --search %s --study)",
                 study.slug, rec.name, os.getpid(), profile.name, rec.name)
        progress = Progress(ledger.events_after, max(snap.last_iteration, 0), None, quiet=args.quiet,
                            start=ledger.last_event_id())
        try:
            return controller.run(args.poll, observe=progress.update)
        finally:
            progress.close()

    done = run_foreground(
        ledger, body, lambda why: controller.interrupt(why) if controller is not None else 0,
        lambda why, stopped: f"pas study: {study.slug} of {rec.name} interrupted ({why})"
        + (f"; {stopped} local job(s) stopped, they resume from their checkpoints" if stopped else "")
        + "; run the same command to resume")
    if done is None:
        return 130
    files = write_study(study, done, layout.report)
    print(files["table"].read_text())
    print("wrote " + ", ".join(str(p) for p in files.values()))
    ended = controller.ended if controller is not None else None
    if ended is None or ended.state != SearchState.DONE:
        print(f"pas study: {study.slug}: {ended.reason if ended else 'did not end'}")
        return 1
    return 0


def _finished_search(args: argparse.Namespace) -> tuple[Path, Snapshot, SearchDef]:
    """The ledger, snapshot and recorded definition of the finished PAS search a study is run on."""
    from pas_orchestrator.config.search import search_from_dict
    from pas_orchestrator.ledger import SearchState
    from pas_orchestrator.ledger.store import Ledger
    from pas_orchestrator.runs import find_ledger

    path = find_ledger(args.runs.resolve(), args.search)
    reader = Ledger(path, readonly=True)
    try:
        snap = reader.snapshot()
    finally:
        reader.close()
    rec = snap.search
    if rec.state != SearchState.DONE:
        raise PasError(f"search {rec.name} is {rec.state.value.lower()}: a study needs a finished search (resume it "
                       "with `pas search` first)")
    search = search_from_dict(json.loads(rec.definition), f"{path} (the search's recorded definition)")
    if search.strategy != "coordinate_descent":
        raise PasError(f"search {rec.name} ran strategy {search.strategy}: the studies are about PAS's iterations")
    return path, snap, search


def _study_of(args: argparse.Namespace, snap: Snapshot, search: SearchDef, layout: RunLayout) -> Study:
    """The study the command line names, on the iteration it names (ablation: the last; the others: 1)."""
    from pas_orchestrator.studies.registry import make_study

    given = getattr(args, "iteration", None)
    iteration = given if given is not None else (max(1, snap.last_iteration) if args.study == "ablation" else 1)
    weight = getattr(args, "feature_weight", None)
    if weight is not None and weight <= 0:
        raise PasError(f"--feature-weight {weight:g}: must be > 0")
    if args.study == "transfer":
        return _transfer(args.job, layout, search, args.dry_run)
    return make_study(args.study, iteration, json.loads(snap.search.definition), getattr(args, "op", None), weight)


def _transfer(job: Path, layout: RunLayout, search: SearchDef, dry_run: bool) -> Study:
    """The transfer study of ``job``: its definition (recorded on first run, a resume must match it) and the frame
    counts of its splits' videos (read once, kept beside the definition, read again for a video that changed)."""
    from dataclasses import replace

    from pas_models.data.formats import load_video_list
    from pas_models.data.tools import frame_counts
    from pas_orchestrator.config.recorded import without_accel
    from pas_orchestrator.config.transfer import load_transfer
    from pas_orchestrator.runs import definition_changes
    from pas_orchestrator.studies.transfer import Transfer

    t = load_transfer(job)
    study = Transfer(t.name, t, {}, seed=search.seed)
    recorded = json.loads(json.dumps(t.recorded(), default=str))
    path = layout.study_file(study.slug, "definition")
    if path.is_file():
        changes = definition_changes(without_accel(json.loads(path.read_text())), without_accel(recorded))
        if changes:
            raise PasError(f"study {study.slug}: {job} differs from the definition it was started with "
                           f"({'; '.join(changes[:5])}); revert it, or give the study another name (transfer:)")
    elif not dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    if not Path(t.data.root).is_dir():
        if dry_run:
            print(f"# {t.data.root} is not there: the short-video check runs with the study")
            return study
        raise PasError(f"{job}: data.root: folder {t.data.root} does not exist")
    cache_path = layout.study_file(study.slug, "frames")
    cache: dict[str, list[int]] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    counts: dict[int, tuple[int, ...]] = {}
    for k in t.splits:
        paths = [s.path for subset in ("train", "val") for s in load_video_list(t.split(k), subset).samples]
        stats = {p: os.stat(p) if os.path.exists(p) else None for p in paths}
        todo = [p for p in paths if stats[p] is not None and cache.get(p, [None])[:2] != [stats[p].st_size,
                                                                                      stats[p].st_mtime_ns]]
        if todo:
            log.info("study %s: reading the frame counts of %d videos of split %d", study.slug, len(todo), k)
            for p, n in zip(todo, frame_counts(todo, t.data.backend), strict=True):
                if n is not None:
                    cache[p] = [stats[p].st_size, stats[p].st_mtime_ns, n]  # type: ignore[union-attr]
        counts[k] = tuple(cache[p][2] for p in paths if p in cache)
    if not dry_run:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache) + "\n")
    return replace(study, counts=counts)


def dry_run_text(study: Study, snap: Snapshot, planned: list[Any], search: SearchDef, profile: ClusterProfile,
                 layout: RunLayout) -> str:
    """The trainings the study runs and what they are expected to cost (each as long as the search's recipe
    at the throughput the search's own trainings measured)."""
    from pas_orchestrator.core.actions import AddHypotheses

    rows = list(planned[0].hypotheses) if planned and isinstance(planned[0], AddHypotheses) else planned
    hours, unit, how = _per_training(snap)
    scale, why = _transfer_scale(study, search)
    if hours is not None and scale is not None and why:
        hours, how = hours * scale, f"{how}, x {scale:.3g}: {why}"
    elif scale is None and why:
        hours, how = None, why
    na = [h for h in rows if h.state.value == "NOT_APPLICABLE"]
    rows = [h for h in rows if h not in na]
    lines = [f"# study {study.slug} of search {snap.search.name}: {len(rows)} training(s), one array "
             "(each as long as one of the search's own trainings, the rest as below)"]
    for h in rows:
        lines.append(f"#   {h.iteration}-{h.op}  path {h.path or '-'}  {h.gflops or 0:.4g} GFLOPs/view")
    for h in na:
        lines.append(f"#   {h.iteration}-{h.op}  not applicable: {h.reason}")
    if hours is not None:
        lines.append(f"# expected: {len(rows) * hours:.3g} {unit} ({len(rows)} x {hours:.3g}: {how})")
    else:
        lines.append(f"# expected: not known ({how})")
    res = profile.resources_for(search.backbone)
    lines.append(f"# each job: {res.nodes} node(s) x {res.tasks_per_node} task(s), {res.gpus_per_node} GPU(s) per "
                 f"node, time limit {res.time_min} min; executor {profile.executor}")
    if profile.executor != "slurm" or not rows:
        return "\n".join(lines)
    from pas_orchestrator.executors.slurm import sbatch_script

    size = min(len(rows), res.max_array_size)
    batch = f"pas-{snap.search.name}-{study.slug}-b1"
    lines.append(f"# the study's array ({batch}: one task per training, {size} in the first array):")
    lines.append(sbatch_script(profile, search.backbone, layout.batch_folder(batch), batch, size))
    return "\n".join(lines)


def _transfer_scale(study: Study, search: SearchDef) -> tuple[float | None, str]:
    """A transfer's trainings against the search's: (training clips x epochs of the target split) / (the
    search's), or None and why not; (1, "") for the other studies (the search's own trainings, changed)."""
    from pas_models.data.formats import load_video_list
    from pas_orchestrator.studies.transfer import Transfer

    if not isinstance(study, Transfer) or study.definition is None:
        return 1.0, ""
    t = study.definition
    try:
        target = len(load_video_list(t.split(t.splits[0]), "train").samples)
        own = len(load_video_list(search.data, "train").samples)
    except (PasError, OSError) as exc:
        return None, f"not estimated: the datasets' lists cannot be read ({str(exc)[:120]})"
    scale = (target * t.recipe.clips_per_video * t.recipe.epochs) / max(
        1, own * search.recipe.clips_per_video * search.recipe.epochs)
    return scale, (f"{target} training videos x {t.recipe.clips_per_video} clips x {t.recipe.epochs} epochs against "
                   f"the search's {own} x {search.recipe.clips_per_video} x {search.recipe.epochs}")


def _per_training(snap: Snapshot) -> tuple[float | None, str, str]:
    """Compute of one of the search's whole trainings of iterations >= 1 (the median over them, all attempts of
    each), its unit and where the figure comes from."""
    import statistics

    per: dict[str, list[float]] = {}
    for h in snap.hypotheses:
        if h.kind != "pas" or h.iteration < 1 or h.state.value != "DONE" or h.stopped_rung is not None:
            continue
        spent = [(a.compute_hours, a.compute_unit) for a in h.attempts
                 if a.compute_hours is not None and a.compute_unit]
        if spent and len({u for _, u in spent}) == 1:
            per.setdefault(spent[0][1] or "", []).append(sum(c for c, _ in spent))
    if not per:
        return None, "", "the search's trainings recorded no compute"
    unit, values = max(per.items(), key=lambda kv: len(kv[1]))
    return statistics.median(values), unit, f"the median of the search's {len(values)} whole trainings"
