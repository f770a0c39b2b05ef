"""Local subprocesses through submitit's local executor: real processes, the embedded default.

Job ids are process ids. A controller that restarts finds its jobs again from the files submitit
writes (``<id>_submitted.pkl`` per job, ``<id>_0_result.pkl`` when it ends); jobs started by an
earlier controller keep running on their own and are followed by process id.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Sequence
from pathlib import Path

import submitit

from pas_models.train.job import TrainJob
from pas_models.train.task import TrainTask
from pas_orchestrator.config.cluster import ClusterProfile
from pas_orchestrator.executors.base import JobRef, JobStatus, job_error


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process reusing the pid
        return True
    return True


class LocalExecutor:
    def __init__(self, folder: Path, profile: ClusterProfile, backbone: str) -> None:
        self.folder = folder
        self.profile = profile
        self.resources = profile.resources_for(backbone)
        self._jobs: dict[str, submitit.local.local.LocalJob] = {}  # started by this process: reaped by polling

    def submit(self, batch: str, tasks: Sequence[TrainTask]) -> list[str]:
        ex = submitit.LocalExecutor(folder=self.folder / batch, max_num_timeout=self.resources.max_requeues)
        # setup lines run through a shell whose pid becomes the job id; the profile's env is passed directly
        ex.update_parameters(timeout_min=self.resources.time_min, tasks_per_node=self.resources.tasks_per_node,
                             signal_delay_s=self.resources.signal_delay_s, setup=list(self.profile.setup),
                             gpus_per_node=self.resources.gpus_per_node)
        saved = {k: os.environ.get(k) for k in self.profile.env}
        os.environ.update(self.profile.env)
        try:
            jobs = [ex.submit(TrainJob(), task) for task in tasks]
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        for job in jobs:
            self._jobs[job.job_id] = job
        return [job.job_id for job in jobs]

    def states(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        return {ref.job_id: self._state(ref) for ref in jobs}

    def _state(self, ref: JobRef) -> JobStatus:
        result = self.folder / ref.batch / f"{ref.job_id}_0_result.pkl"
        job = self._jobs.get(ref.job_id)
        running = job.get_info().get("jobState") == "RUNNING" if job is not None else _alive(int(ref.job_id))
        if running:
            return JobStatus("RUNNING")
        if result.is_file():
            try:
                outcome, _ = pickle.loads(result.read_bytes())
            except Exception:  # a torn file: the job died while writing it (job_error says so)
                outcome = "error"
            if outcome == "success":
                return JobStatus("COMPLETED")
            return JobStatus("FAILED", job_error(self.folder / ref.batch, ref.job_id) or "error")
        return JobStatus("FAILED", f"process {ref.job_id} ended without a result (killed?); log: "
                                   f"{self.folder / ref.batch / f'{ref.job_id}_0_log.err'}")

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

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        for ref in jobs:
            job = self._jobs.get(ref.job_id)
            if job is not None:
                job.cancel(check=False)
            elif _alive(int(ref.job_id)):
                os.kill(int(ref.job_id), signal.SIGINT)
