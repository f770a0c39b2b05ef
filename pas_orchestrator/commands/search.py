"""``pas search``: start a PAS search, or resume it from its ledger (the same command).

The controller runs in the foreground until the search ends; kill it at any time
(Ctrl-C, SIGKILL, a lost login node) and run the same command again: it resumes from
``runs/NAME/ledger.sqlite``, finds the jobs that were running, and submits nothing twice.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from dataclasses import asdict, replace
from pathlib import Path

from pas_models.errors import PasError
from pas_orchestrator.config.cluster import ClusterProfile, load_profile
from pas_orchestrator.config.search import NAME_RE, SearchDef, ensure_data, load_search
from pas_orchestrator.controller import Controller, definition_hash
from pas_orchestrator.executors.base import Executor
from pas_orchestrator.executors.local import LocalExecutor
from pas_orchestrator.executors.slurm import SlurmExecutor, sbatch_script
from pas_orchestrator.ledger import Ledger, SearchState

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


def make_executor(profile: ClusterProfile, run_dir: Path, backbone: str) -> Executor:
    if profile.executor == "slurm":
        return SlurmExecutor(run_dir / "submitit", profile, backbone, min_query_s=min(10.0, profile.poll_seconds))
    return LocalExecutor(run_dir / "submitit", profile, backbone)


def dry_run(search: SearchDef, profile: ClusterProfile, run_dir: Path) -> str:
    """The first array's sbatch script and an upper bound of the search's GPU-hours."""
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
    script = sbatch_script(profile, search.backbone, run_dir / "submitit" / batch, batch, 1)
    return "\n".join([*head, f"# the first job ({batch}: the base network; each later iteration is an array, "
                              "one task per hypothesis):", script])


def _sigterm_to_exit(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def run(args: argparse.Namespace) -> int:
    search = load_search(args.job)
    if args.name:
        if not NAME_RE.match(args.name):
            raise PasError(f"--name {args.name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        search = replace(search, name=args.name)
    profile = load_profile(args.cluster)
    run_dir = (args.runs / search.name).resolve()
    if args.dry_run:
        print(dry_run(search, profile, run_dir))
        return 0
    ledger = Ledger(run_dir / "ledger.sqlite")
    ledger.acquire_lease()
    signal.signal(signal.SIGTERM, _sigterm_to_exit)  # release the lease on `kill` too
    try:
        definition = {k: v for k, v in asdict(search).items() if k != "source"}
        rec = ledger.init_search(search.name, definition, definition_hash(search), profile.name)
        if rec.state in (SearchState.CANCELLED, SearchState.FAILED):
            log.info("search %s was %s: resuming it", search.name, rec.state.value.lower())
            ledger.set_search_state(SearchState.RUNNING)
            ledger.reopen_cancelled()
        data = ensure_data(search)
        executor = make_executor(profile, run_dir, search.backbone)
        controller = Controller(search, profile, run_dir, ledger, executor, data)
        log.info("search %s: controller pid %d on %s, ledger %s (watch it with: pas status --search %s)",
                 search.name, os.getpid(), profile.name, ledger.path, search.name)
        snap = controller.run(args.poll)
    finally:
        ledger.release_lease()
        ledger.close()
    from pas_orchestrator.commands.status import render

    print(render(snap))
    if snap.search.state != SearchState.DONE:
        print(f"pas search: {snap.search.name} {snap.search.state.value.lower()}: {snap.search.error}")
        return 1
    return 0
