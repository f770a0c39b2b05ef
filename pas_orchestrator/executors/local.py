"""Local subprocesses through submitit's local executor: real processes, the embedded default.

Each job is started in its own process group (its id = the job id = the pid of submitit's job
process; a terminal's Ctrl-C reaches the controller only, which stops its jobs itself), with the
console output of submitit's job process in ``<batch>/local-console.log`` (never on the controller's
terminal) and its identity (boot id and start time) in ``<batch>/<id>_identity.json``. A controller
that restarts finds its jobs again from the files submitit writes (``<id>_submitted.pkl`` per job,
``<id>_0_result.pkl`` when it ends) and follows them by pid *and* start time: a pid reused by an
unrelated process is not the job. ``cancel`` stops the job's whole process group (SIGINT and SIGTERM,
then SIGKILL after a grace period) and checks that nothing of it is left. The training process itself is
forked from a server that imported torch once (``pas_models/train/forkserver.py``; submitit's task process
is its proxy), unless the profile has setup lines or ``PAS_LOCAL_PRELOAD=0``.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, cast
from unittest import mock

import submitit
import submitit.local.local as submitit_local

from pas_models.train import forkclient
from pas_orchestrator.config.cluster import ClusterProfile
from pas_orchestrator.core.decide import Capacity
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.executors.base import JobRef, Task, job_error, job_for

log = logging.getLogger(__name__)
GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL when stopping a job
INTERRUPTIONS = ("KeyboardInterrupt", "TrainingInterrupted")  # a job's last error line that is not a failure
# a child in a process group of its own: Popen's process_group (Python 3.11); setpgid before exec on 3.10
NEW_GROUP: dict[str, Any] = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
PRELOAD_ENV = "PAS_LOCAL_PRELOAD"  # 0: every local job is a fresh interpreter (no fork server)


def process_start(pid: int) -> str | None:
    """``<boot id>:<start time in clock ticks>`` of a live process, None when there is none. Two processes
    with the same pid never share it (a pid is reused only after its process ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3
    if fields[0] == "Z":  # a zombie: ended, waiting to be reaped
        return None
    return f"{boot}:{fields[19]}"  # field 22 of stat: starttime


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's group: not ours
        return False
    return True


class _GroupExecutor(submitit.LocalExecutor):
    """submitit's local executor, with each job in a process group of its own (not a session: the kernel's
    autogroup scheduling gives each session an equal CPU share, and two 2-thread jobs in two sessions on 2
    cores measured 1,000x slower forward passes, OpenMP threads spinning for a sibling that is not
    scheduled) and its console output in a file."""

    preload: str | None = None  # the fork server's address (pas_models/train/forkserver.py), when there is one

    @property
    def _submitit_command_str(self) -> str:
        if self.preload is None:
            return super()._submitit_command_str
        return " ".join([self.python, "-u -m pas_models.train.forkserver run", shlex.quote(self.preload),
                         shlex.quote(str(self.folder))])

    def _submit_command(self, command: str) -> submitit_local.LocalJob:
        log_path = self.folder / "local-console.log"
        self.folder.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as console, \
                mock.patch.object(submitit_local.subprocess, "Popen",
                                  partial(subprocess.Popen, **NEW_GROUP, stdout=console, stderr=console,
                                          stdin=subprocess.DEVNULL)):
            return super()._submit_command(command)


class LocalExecutor:
    def __init__(self, folder: Path, profile: ClusterProfile, backbone: str) -> None:
        self.folder = folder
        self.profile = profile
        self.resources = profile.resources_for(backbone)
        # a measurement job gets this machine by running alone (core/decide.py)
        self.capacity = Capacity(max_array=self.resources.max_array_size, max_concurrent=profile.max_jobs,
                                 drain_for_exclusive=True)
        self.stops_with_controller = True
        self._jobs: dict[str, submitit_local.LocalJob] = {}  # started by this process: reaped by polling
        self._server: subprocess.Popen[bytes] | None = None  # the server this controller started, if any
        self._lease: socket.socket | None = None
        self._address = ""

    def _preload(self) -> str | None:
        """The fork server's address: the user's server, found (a controller before this one, or another
        search's, started it) or started, and leased; None where jobs start as plain submitit processes: the
        profile has setup lines, or PAS_LOCAL_PRELOAD=0."""
        if self.profile.setup or os.environ.get(PRELOAD_ENV, "1").strip() in ("0", "no", "false", "off"):
            return None
        if self._lease is not None and forkclient.holds(self._lease):
            return self._address
        if self._lease is not None:
            self._lease.close()
        self._address = forkclient.address_for(dict(self.profile.env))
        self._lease = forkclient.lease(self._address)
        if self._lease is None and (self._server is None or self._server.poll() is not None):
            self.folder.mkdir(parents=True, exist_ok=True)
            with (self.folder / "forkserver.log").open("ab") as log_file:
                self._server = subprocess.Popen(
                    [sys.executable, "-u", "-m", "pas_models.train.forkserver", "serve", self._address],
                    env={**os.environ, **self.profile.env}, **NEW_GROUP, stdin=subprocess.DEVNULL,
                    stdout=log_file, stderr=log_file)
            # it listens before it imports: the lease (and the first jobs) wait for it there
            self._lease = forkclient.lease(self._address, wait=5.0)
        return self._address

    def submit(self, batch: str, tasks: Sequence[Task]) -> list[str]:
        job, res = job_for(tasks[0], self.resources)
        ex = _GroupExecutor(folder=self.folder / batch, max_num_timeout=res.max_requeues)
        ex.preload = self._preload()
        # setup lines run through a shell whose pid becomes the job id; the profile's env is passed directly
        ex.update_parameters(timeout_min=res.time_min, tasks_per_node=res.tasks_per_node,
                             signal_delay_s=res.signal_delay_s, setup=list(self.profile.setup),
                             gpus_per_node=res.gpus_per_node)
        saved = {k: os.environ.get(k) for k in self.profile.env}
        os.environ.update(self.profile.env)
        try:
            jobs = []
            for task in tasks:
                submitted = cast(submitit_local.LocalJob, ex.submit(job, task))  # a local executor's job
                jobs.append(submitted)
                self._jobs[submitted.job_id] = submitted
                self._write_identity(batch, submitted.job_id)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return [job.job_id for job in jobs]

    def _identity_file(self, batch: str, job_id: str) -> Path:
        return self.folder / batch / f"{job_id}_identity.json"

    def _write_identity(self, batch: str, job_id: str) -> None:
        start = process_start(int(job_id))
        if start is not None:
            self._identity_file(batch, job_id).write_text(json.dumps({"pid": int(job_id), "start": start,
                                                                      "started_at": time.time()}) + "\n")

    def _compute(self, ref: JobRef, running: bool) -> dict[str, Any]:
        """Wall time x processes (GPUs when the profile gives jobs GPUs) from the job's start to now, or to its
        last output (the result pickle or a log written as it ended); {} when the start is not known."""
        try:
            started = float(json.loads(self._identity_file(ref.batch, ref.job_id).read_text())["started_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}
        end = time.time()
        if not running:
            folder = self.folder / ref.batch
            times = [p.stat().st_mtime for p in (folder / f"{ref.job_id}_0_result.pkl", folder /
                                                 f"{ref.job_id}_0_log.err", folder / f"{ref.job_id}_0_log.out")
                     if p.exists()]
            if not times:
                return {}
            end = max(times)
        gpus = self.resources.gpus_per_node
        per = gpus if gpus else self.resources.tasks_per_node
        return {"compute_hours": max(0.0, end - started) * per / 3600, "compute_unit": "GPU-h" if gpus else "CPU-h"}

    def _is_ours(self, ref: JobRef) -> bool:
        """Whether the process ``ref.job_id`` is alive and is the job (not a process that reused its pid)."""
        job = self._jobs.get(ref.job_id)
        if job is not None:
            return bool(job.get_info().get("jobState") == "RUNNING")
        start = process_start(int(ref.job_id))
        if start is None:
            return False
        try:
            recorded = json.loads(self._identity_file(ref.batch, ref.job_id).read_text())["start"]
        except (OSError, ValueError, KeyError):
            return True  # submitted by a pas that recorded no identity: the pid is all there is
        return bool(recorded == start)

    def outcomes(self, jobs: Sequence[JobRef]) -> dict[str, JobOutcome]:
        return {ref.job_id: self._outcome(ref) for ref in jobs}

    def _outcome(self, ref: JobRef) -> JobOutcome:
        result = self.folder / ref.batch / f"{ref.job_id}_0_result.pkl"
        if self._is_ours(ref):
            return JobOutcome(Phase.RUNNING, label="RUNNING", node="localhost", **self._compute(ref, True))
        return replace(self._ended(ref, result), **self._compute(ref, False))

    def _ended(self, ref: JobRef, result: Path) -> JobOutcome:
        if result.is_file():
            try:
                outcome, _ = pickle.loads(result.read_bytes())
            except Exception:  # a torn file: the job died while writing it (job_error says so)
                outcome = "error"
            if outcome == "success":
                return JobOutcome(Phase.SUCCEEDED, label="COMPLETED")
            error = job_error(self.folder / ref.batch, ref.job_id) or "error"
            if any(x in error for x in INTERRUPTIONS):
                return JobOutcome(Phase.INTERRUPTED, f"interrupted ({error})", label="INTERRUPTED")
            return JobOutcome(Phase.FAILED, error, label="FAILED")
        return JobOutcome(Phase.FAILED, f"process {ref.job_id} ended without a result (killed?); log: "
                                        f"{self.folder / ref.batch / f'{ref.job_id}_0_log.err'}", label="FAILED")

    def find(self, batch: str, keys: Sequence[tuple[int, str]], since: float) -> dict[int, str]:
        by_dir: dict[str, str] = {}
        for pkl in (self.folder / batch).glob("*_submitted.pkl"):
            job_id = pkl.name.split("_")[0]
            if not job_id.isdigit():
                continue
            try:
                delayed = pickle.loads(pkl.read_bytes())
                by_dir[delayed.args[0].out_dir] = job_id
            except Exception:  # a half-written pickle: that job never started
                continue
        return {i: by_dir[d] for i, d in keys if d in by_dir}

    def _forked_group(self, ref: JobRef) -> int | None:
        """The group of a job forked by a server of another session (not its proxy's: forkclient.group_file)."""
        try:
            info = json.loads(Path(forkclient.group_file(self.folder / ref.batch, ref.job_id)).read_text())
            stat = Path(f"/proc/{int(info['pid'])}/stat").read_text()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return int(info["pgid"]) if stat.rsplit(")", 1)[1].split()[19] == str(info["start"]) else None

    def cancel(self, jobs: Sequence[JobRef], grace_s: float = GRACE_SECONDS) -> list[str]:
        """Stop each job's whole process group (and the group of its forked job, where that is another); the ids
        of jobs whose group is still alive after SIGKILL."""
        ours = [ref for ref in jobs if self._is_ours(ref)]
        groups = [int(ref.job_id) for ref in ours] + [g for ref in ours if (g := self._forked_group(ref))]
        for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT may be ignored (started with `&`), SIGTERM
            for pgid in groups:                       # is ignored by submitit's job process: SIGKILL ends both
                try:
                    os.killpg(pgid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + grace_s
        while any(group_alive(g) for g in groups) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        for pgid in groups:
            if group_alive(pgid):
                log.info("job %d did not stop within %.0f s: SIGKILL", pgid, grace_s)
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + 5.0
        while any(group_alive(g) for g in groups) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        self._reap()
        return [ref.job_id for ref in ours if group_alive(int(ref.job_id))
                or ((g := self._forked_group(ref)) is not None and group_alive(g))]

    def _reap(self) -> None:
        """Collect the exit status of the jobs this process started (a zombie keeps its group alive)."""
        for job in self._jobs.values():
            job.get_info()
