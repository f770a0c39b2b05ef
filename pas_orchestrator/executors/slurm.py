"""SLURM through submitit: one array per batch (one task per hypothesis, each task ``nodes`` x
``tasks_per_node`` processes), state polling with one ``sacct`` call for all jobs (with backoff
when SLURM does not answer), reconciliation by job name, ``scancel``.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import submitit
from submitit.slurm.slurm import _make_sbatch_string

from pas_orchestrator.config.cluster import ClusterProfile, Resources
from pas_orchestrator.core.decide import Capacity
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.errors import SubmissionError
from pas_orchestrator.executors.base import JobRef, Task, job_error, job_for
from pas_orchestrator.executors.sacct import SACCT_FORMAT, JobStatus, array_index, parse_sacct, run_label
from pas_orchestrator.runner import run_cmd

log = logging.getLogger(__name__)

# SLURM's job states, and what each means to pas (everything else is shown and waited on, never guessed)
QUEUED = ("PENDING", "CONFIGURING", "SUSPENDED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SPECIAL_EXIT")
RUNNING = ("RUNNING", "COMPLETING", "RESIZING", "STAGE_OUT", "SIGNALING")
REQUEUED = ("REQUEUED", "REQUEUE_FED")
# TIMEOUT / PREEMPTED normally never show: submitit requeues the checkpointable job (REQUEUED, then
# PENDING); they end an attempt only when requeueing failed (too many timeouts)
FAILURE_STATES = ("FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "TIMEOUT", "PREEMPTED", "LOST")
# sbatch errors that say the request itself is wrong: retrying cannot help (everything else is retried)
PERMANENT_SBATCH = ("invalid account", "invalid partition", "invalid qos", "invalid generic resource",
                    "invalid feature", "invalid node name", "invalid job array", "invalid --", "invalid user",
                    "requested node configuration is not available", "more processors requested than permitted",
                    "job violates accounting/qos policy", "qosmax", "unrecognized option", "unknown option",
                    "not allowed to", "access denied", "memory specification can not be satisfied",
                    "node count specification invalid", "requested time limit is invalid")


def is_permanent(message: str) -> bool:
    """Whether an sbatch error says the request is wrong (bad account, partition, ...), not that SLURM is busy."""
    low = message.lower()
    return any(p in low for p in PERMANENT_SBATCH)


def to_outcome(st: JobStatus) -> JobOutcome:
    """SLURM's word for a job -> pas's (``sacct -D``: every earlier run of the job is a requeue: submitit's at
    a time limit (REQUEUED), SLURM's own after a node failure (NODE_FAIL on node2))."""
    runs = len(st.history) + (st.state in REQUEUED)
    why = f"previous run {st.history[-1] if st.history else st.state}" if runs else None
    common: dict[str, Any] = {"node": st.node, "requeues": runs, "requeue_why": why, "label": st.state,
              "compute_hours": st.compute_hours, "compute_unit": st.compute_unit}
    if st.state == "UNKNOWN":
        return JobOutcome(Phase.UNKNOWN)
    if st.state in QUEUED:
        return JobOutcome(Phase.QUEUED, st.reason, **common)
    if st.state in RUNNING:
        return JobOutcome(Phase.RUNNING, **common)
    if st.state in REQUEUED:
        return JobOutcome(Phase.REQUEUED, st.reason, **common)
    if st.state == "COMPLETED":
        return JobOutcome(Phase.SUCCEEDED, **common)
    if st.state == "CANCELLED":  # pas cancel records its own cancellations first: this was scancel by a person
        return JobOutcome(Phase.INTERRUPTED, "cancelled outside pas (scancel)" + (f": {st.reason}" if st.reason
                                                                               else ""), **common)
    if st.state in FAILURE_STATES:
        return JobOutcome(Phase.FAILED, st.state + (f": {st.reason}" if st.reason else ""), **common)
    return JobOutcome(Phase.UNKNOWN, st.reason, **common)


def _mem(gb: float) -> str:
    return f"{int(gb)}GB" if gb == int(gb) else f"{int(gb * 1024)}MB"


def slurm_parameters(profile: ClusterProfile, res: Resources, batch: str, size: int) -> dict[str, object]:
    """submitit SlurmExecutor parameters for one array of ``size`` tasks called ``batch``."""
    setup = [f"export {k}={shlex.quote(v)}" for k, v in sorted(profile.env.items())] + list(profile.setup)
    params: dict[str, object] = {
        "job_name": batch, "time": res.time_min, "nodes": res.nodes, "ntasks_per_node": res.tasks_per_node,
        "cpus_per_task": res.cpus_per_task, "signal_delay_s": res.signal_delay_s, "setup": setup,
        "array_parallelism": min(size, res.array_parallelism or size), "additional_parameters": dict(res.additional),
    }
    optional = {"partition": res.partition, "account": res.account, "qos": res.effective_qos(),
                "constraint": res.constraint, "mem": _mem(res.mem_gb) if res.mem_gb else None,
                "gres": res.gres, "gpus_per_node": None if res.gres else res.gpus_per_node or None,
                "exclusive": True if res.exclusive else None}
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def sbatch_script(profile: ClusterProfile, backbone: str, folder: Path, batch: str, size: int,
                  python: str | None = None) -> str:
    """The sbatch file submitit writes for such a batch (an array when size > 1; ``--dry-run``, golden tests)."""
    params = slurm_parameters(profile, profile.resources_for(backbone), batch, size)
    command = f"{python or profile.python or sys.executable} -u -m submitit.core._submit {shlex.quote(str(folder))}"
    return _make_sbatch_string(command=command, folder=folder, map_count=size if size > 1 else None,
                               **params)  # type: ignore[arg-type]


class SlurmExecutor:
    def __init__(self, folder: Path, profile: ClusterProfile, backbone: str, min_query_s: float = 10.0) -> None:
        self.folder, self.profile, self.backbone = folder, profile, backbone
        self.resources = profile.resources_for(backbone)
        self.capacity = Capacity(max_array=self.resources.max_array_size)
        self.stops_with_controller = False  # jobs run on the cluster whatever happens to the controller
        self._cache: dict[str, JobStatus] = {}
        self._next_query = 0.0
        self._backoff = min_query_s
        self._min_query = min_query_s

    def submit(self, batch: str, tasks: Sequence[Task]) -> list[str]:
        if len(tasks) > self.resources.max_array_size:
            raise SubmissionError(f"{len(tasks)} tasks exceed max_array_size {self.resources.max_array_size}")
        job, res = job_for(tasks[0], self.resources)  # a measurement: alone on its node (--exclusive)
        ex = submitit.SlurmExecutor(folder=self.folder / batch, python=self.profile.python,
                                    max_num_timeout=res.max_requeues)
        ex.update_parameters(**slurm_parameters(self.profile, res, batch, len(tasks)))
        try:  # a batch of one (a retry, the base network) is a plain job, not an array
            jobs = [ex.submit(job, tasks[0])] if len(tasks) == 1 else ex.map_array(job, list(tasks))
        except Exception as exc:  # submitit raises on sbatch errors with sbatch's message
            text = " ".join(str(exc).split())
            raise SubmissionError(f"sbatch of {batch} failed: {text}", permanent=is_permanent(text)) from exc
        self._next_query = 0.0
        return [job.job_id for job in jobs]

    def _sacct(self, args: list[str]) -> dict[str, tuple[str, JobStatus]]:
        return parse_sacct(run_cmd(["sacct", "-P", "-n", "-X", "-D", f"--format={SACCT_FORMAT}", *args]))

    def _squeue(self, args: list[str]) -> dict[str, JobStatus] | None:
        """Jobs slurmctld still holds (pending, running, completing: one line per array task); None when
        squeue does not answer. squeue knows a job the instant sbatch returns, sacct a moment later."""
        try:
            out = run_cmd(["squeue", "-h", "-r", "-o", "%i|%T|%N|%r", *args])
        except SubmissionError as exc:
            if "Invalid job id" in str(exc):  # none of them is queued any more
                return {}
            log.warning("squeue failed: %s", exc)
            return None
        found = {}
        for line in out.splitlines():
            jid, state, node, reason = [*line.split("|"), "", "", ""][:4]
            if jid.strip():
                found[jid.strip()] = JobStatus(state, reason if state == "PENDING" and reason != "None" else None,
                                               node=node or None)
        return found

    def outcomes(self, jobs: Sequence[JobRef]) -> dict[str, JobOutcome]:
        return {jid: to_outcome(st) for jid, st in self.states(jobs).items()}

    def states(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        """One sacct call for every job (array tasks of the same array share one id); at most one call per
        ``min_query_s``; when sacct fails, the last answer is kept and the next try waits twice as long.

        squeue is asked too (one call) when some job is pending or has failed: sacct has no pending
        reason (its Reason stays None until the job starts), and a failure state is confirmed before it
        is reported: SLURM requeues a job whose node failed (NODE_FAIL, then PENDING again), and sacct
        may show the failed run before the new one."""
        now = time.monotonic()
        if now >= self._next_query and jobs:
            arrays = sorted({ref.job_id.split("_")[0] for ref in jobs})
            try:
                rows = self._sacct(["-j", ",".join(arrays)])
            except SubmissionError as exc:
                self._backoff = min(self._backoff * 2, 600.0)
                log.warning("sacct failed (next try in %.0f s): %s", self._backoff, exc)
                self._next_query = now + self._backoff
            else:
                self._backoff = self._min_query
                self._next_query = now + self._min_query
                ours = {ref.job_id: ref for ref in jobs}
                fresh = {jid: st for jid, (_, st) in rows.items() if jid in ours}
                ended = sorted(jid for jid, st in fresh.items() if st.state in (*FAILURE_STATES, "CANCELLED"))
                pending = sorted(jid for jid, st in fresh.items() if st.state == "PENDING")
                if ended or pending:
                    queued = self._squeue(["-j", ",".join(sorted({j.split("_")[0] for j in ended + pending}))])
                    for jid in pending:
                        if queued and jid in queued:  # the live state and why it waits
                            fresh[jid] = replace(queued[jid], history=fresh[jid].history,
                                                 compute_hours=fresh[jid].compute_hours,
                                                 compute_unit=fresh[jid].compute_unit)
                    for jid in ended:
                        if queued is None:  # cannot tell: ask again next time
                            fresh.pop(jid)
                        elif jid in queued:  # requeued by SLURM: still alive
                            q = queued[jid]
                            was = fresh[jid]
                            fresh[jid] = JobStatus(q.state, q.reason, node=q.node,
                                                   history=(*was.history, run_label(was.state, was.node)),
                                                   compute_hours=was.compute_hours, compute_unit=was.compute_unit)
                        else:
                            fresh[jid] = self._with_error(ours[jid], fresh[jid])
                self._cache.update(fresh)
        return {ref.job_id: self._cache.get(ref.job_id, JobStatus("UNKNOWN")) for ref in jobs}

    def _with_error(self, ref: JobRef, st: JobStatus) -> JobStatus:
        """A failed job's reason with the job's own last words (its Python error), when it left any."""
        error = job_error(self.folder / ref.batch, ref.job_id)
        return replace(st, reason="; ".join(x for x in (st.reason, error) if x) or None)

    def find(self, batch: str, keys: Sequence[tuple[int, str]], since: float) -> dict[int, str]:
        # squeue (live, knows a job the instant sbatch returned) and sacct (also ended jobs); sacct only
        # since the attempts were committed: an older search of the same name reused these batch names
        queued = self._squeue(["--name", batch])
        if queued is None:
            raise SubmissionError(f"squeue does not answer: cannot tell whether {batch} was submitted")
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 60))
        jids = list(self._sacct(["--name", batch, "-S", start])) + list(queued)
        found = {}
        for jid in jids:
            if "[" in jid:
                continue
            idx = array_index(jid)
            found[0 if idx is None else idx] = jid  # a plain job is the single task of its batch
        return {i: found[i] for i, _ in keys if i in found}

    def cancel(self, jobs: Sequence[JobRef]) -> list[str]:
        if jobs:
            run_cmd(["scancel", *sorted({ref.job_id for ref in jobs})])
        return []


def check_accounting(timeout: float = 20.0) -> None:
    """SubmissionError (sacct's own words) unless SLURM's job accounting answers: pas follows its jobs by it."""
    run_cmd(["sacct", "-n", "-X", "-S", "now-1hours", "--format=JobID"], timeout=timeout)
