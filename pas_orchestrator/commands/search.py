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
import signal
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

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
    p.add_argument("--dry-run", action="store_true",
                   help="print the sbatch script of the first array and the GPU-hours bound; submit nothing")
    p.set_defaults(func=run)


def dry_run(search: SearchDef, profile: ClusterProfile, layout: RunLayout) -> str:
    """The first array's sbatch script and an upper bound of the search's GPU-hours."""
    from pas_orchestrator.executors.slurm import sbatch_script

    res = profile.resources_for(search.backbone)
    jobs = 1 + search.iterations * len(search.operators) + (search.iterations if search.baselines else 0)
    gpus = res.nodes * max(res.gpus_per_node, 0)
    bound = jobs * gpus * res.time_min / 60
    batch = f"pas-{search.name}-i0-b1"
    head = [f"# search {search.name}: {search.backbone}, {search.iterations} iterations x "
            f"{len(search.operators)} operators + the base network"
            + (" + a without-PAS baseline per iteration" if search.baselines else ""),
            f"# each job: {res.nodes} node(s) x {res.tasks_per_node} task(s), {res.gpus_per_node} GPU(s) per node, "
            f"time limit {res.time_min} min",
            f"# at most {jobs} jobs; GPU-hours bound (every job using its whole time limit once): {bound:,.0f}"
            if gpus else f"# at most {jobs} jobs (CPU only)"]
    if profile.executor != "slurm":
        return "\n".join([*head, f"# executor {profile.executor}: local processes, no sbatch script"])
    script = sbatch_script(profile, search.backbone, layout.batch_folder(batch), batch, 1)
    return "\n".join([*head, f"# the first job ({batch}: the base network; each later iteration is an array, "
                              "one task per hypothesis):", script])


class Interrupted(Exception):
    """SIGTERM (or SIGHUP) reached the controller: stop like Ctrl-C."""


def _on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    from pas_orchestrator.config.cluster import load_profile
    from pas_orchestrator.config.search import NAME_RE, ensure_data, load_search
    from pas_orchestrator.controller import Controller, definition_dict, definition_hash
    from pas_orchestrator.core.actions import ResumeSearch
    from pas_orchestrator.executors import make_executor
    from pas_orchestrator.ledger import SearchState
    from pas_orchestrator.ledger.store import Ledger
    from pas_orchestrator.runs import definition_changes
    from pas_orchestrator.views import render

    search = load_search(args.job)
    if args.name:
        if not NAME_RE.match(args.name):
            raise PasError(f"--name {args.name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        search = replace(search, name=args.name)
    profile = load_profile(args.cluster)
    layout = RunLayout.of(args.runs.resolve(), search.name)
    if args.dry_run:
        print(dry_run(search, profile, layout))
        return 0
    ledger = Ledger(layout.ledger)
    ledger.acquire_lease()
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    previous[signal.SIGINT] = signal.getsignal(signal.SIGINT)
    controller = None
    try:
        definition = definition_dict(search)
        rec = ledger.init_search(search.name, definition, definition_hash(search), profile.name)
        if rec.definition_hash != definition_hash(search):
            changes = definition_changes(json.loads(rec.definition), definition)
            if changes:
                raise PasError(f"search {search.name}: {args.job} differs from the definition it was started with "
                               f"({'; '.join(changes[:5])}{'; ...' if len(changes) > 5 else ''}); revert it, or "
                               "start a new search with --name")
        if rec.state in (SearchState.CANCELLED, SearchState.FAILED):
            log.info("search %s was %s: resuming it", search.name, rec.state.value.lower())
            ledger.apply(ResumeSearch())
        data = ensure_data(search)
        executor = make_executor(profile, layout, search.backbone)
        controller = Controller(search, profile, layout, ledger, executor, data)
        log.info("search %s: controller pid %d on %s, ledger %s (watch it with: pas status --search %s)",
                 search.name, os.getpid(), profile.name, ledger.path, search.name)
        snap = controller.run(args.poll)
    except (KeyboardInterrupt, Interrupted) as exc:
        why = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else str(exc)
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(s, signal.SIG_IGN)
        stopped = controller.interrupt(f"controller interrupted ({why})") if controller is not None else 0
        print(f"pas search: {search.name} interrupted ({why})"
              + (f"; {stopped} local job(s) stopped, they resume from their checkpoints" if stopped else "")
              + f"; run the same command to resume (`pas status --search {search.name}` shows where it is)")
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        ledger.release_lease()
        ledger.close()
    print(render(snap))
    if snap.search.state != SearchState.DONE:
        print(f"pas search: {snap.search.name} {snap.search.state.value.lower()}: {snap.search.error}")
        return 1
    return 0
