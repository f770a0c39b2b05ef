"""An executor and a clock the tests move by hand: the controller driven in this process, one ``step()`` at a time.

``FakeExecutor`` keeps its jobs in memory (submit, outcomes, find, cancel, capacity, as ``executors.base.Executor``
says); a test ends a job with ``succeed`` (its result file written, as the real job writes it last), ``fail``,
``interrupt`` or ``forget`` (the scheduler lost it). ``FakeClock`` is the controller's time: ``sleep`` moves it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tinyjob import tiny_job

from pas_models.data.formats import DatasetConfig
from pas_models.layout import HypFiles, RunLayout
from pas_models.teacher_cache.config import CacheShardResult, CacheShardTask
from pas_models.train.result import JobResult
from pas_models.train.task import TrainTask
from pas_orchestrator.config.cluster import load_profile
from pas_orchestrator.config.recorded import definition_dict, definition_hash
from pas_orchestrator.config.search import load_search
from pas_orchestrator.controller import Clock, Controller
from pas_orchestrator.core.decide import Capacity
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.errors import SubmissionError
from pas_orchestrator.executors.base import JobRef
from pas_orchestrator.kinds import Task
from pas_orchestrator.ledger.store import Ledger


@dataclass
class FakeJob:
    batch: str
    index: int
    task: Task
    outcome: JobOutcome = field(default_factory=lambda: JobOutcome(Phase.QUEUED, label="PENDING"))


class FakeExecutor:
    stops_with_controller = False

    def __init__(self, capacity: Capacity | None = None) -> None:
        self.capacity = capacity or Capacity(max_array=64)
        self.jobs: dict[str, FakeJob] = {}
        self.batches: list[tuple[str, list[str]]] = []  # (batch, job ids) in submission order
        self.refuse: list[SubmissionError] = []  # the next submissions raise these, in order
        self.during_submit: Callable[[], None] | None = None  # runs inside submit (another process acting meanwhile)
        self.cancelled: list[str] = []
        self.calls: list[str] = []
        self._next = 9_000_000  # no process has such a pid (pid_max <= 2^22): a real executor never signals one

    # ---------------------------------------------------------------- the Executor interface
    def submit(self, batch: str, tasks: Sequence[Task]) -> list[str]:
        self.calls.append("submit")
        if self.during_submit is not None:
            hook, self.during_submit = self.during_submit, None
            hook()
        if self.refuse:
            raise self.refuse.pop(0)
        ids = []
        for i, task in enumerate(tasks):
            self._next += 1
            ids.append(str(self._next))
            self.jobs[ids[-1]] = FakeJob(batch, i, task)
        self.batches.append((batch, ids))
        return ids

    def outcomes(self, jobs: Sequence[JobRef]) -> dict[str, JobOutcome]:
        self.calls.append("outcomes")
        return {j.job_id: self.jobs[j.job_id].outcome for j in jobs if j.job_id in self.jobs}

    def find(self, batch: str, keys: Sequence[tuple[int, str]], since: float) -> dict[int, str]:
        self.calls.append("find")
        return {job.index: jid for jid, job in self.jobs.items() if job.batch == batch
                and (job.index, job.task.out_dir) in set(keys)}

    def cancel(self, jobs: Sequence[JobRef]) -> list[str]:
        for j in jobs:
            self.cancelled.append(j.job_id)
            if j.job_id in self.jobs:
                self.jobs[j.job_id].outcome = JobOutcome(Phase.INTERRUPTED, "cancelled", label="CANCELLED")
        return []

    # ---------------------------------------------------------------- what the test makes happen
    def active(self) -> list[str]:
        return [jid for jid, job in self.jobs.items() if job.outcome.active]

    def run(self, job_id: str, node: str = "node1") -> None:
        self.jobs[job_id].outcome = JobOutcome(Phase.RUNNING, node=node, label="RUNNING")

    def succeed(self, job_id: str, top1: float = 50.0, gflops: float | None = None,
                still_running: bool = False, videos: int = 0) -> None:
        """The job's training wrote its result.json (``still_running``: its process has not exited yet;
        ``videos``: measured on that many test videos, with its per-video record)."""
        task = self.jobs[job_id].task
        if isinstance(task, CacheShardTask):
            write_shard_result(task)
        else:
            write_result(task, top1, gflops, videos)
        self.jobs[job_id].outcome = (JobOutcome(Phase.RUNNING, label="RUNNING") if still_running
                                     else JobOutcome(Phase.SUCCEEDED, label="COMPLETED"))

    def fail(self, job_id: str, reason: str = "Traceback: boom") -> None:
        self.jobs[job_id].outcome = JobOutcome(Phase.FAILED, reason, label="FAILED")

    def interrupt(self, job_id: str) -> None:
        self.jobs[job_id].outcome = JobOutcome(Phase.INTERRUPTED, "preempted", label="PREEMPTED")

    def forget(self, job_id: str) -> None:
        del self.jobs[job_id]


def write_shard_result(task: CacheShardTask) -> Path:
    """A teacher-cache shard's result.json as ``pas_models.teacher_cache.shard`` writes it (no shard file)."""
    out = Path(task.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = CacheShardResult(label=task.label, attempt=task.attempt, shard=task.shard, shards=task.config.shards,
                              path=str(Path(task.cache_dir) / f"shard-{task.shard:03d}.npz"), videos=1, clips=1,
                              unreadable=0, bytes=1, seconds=1.0, teacher_seconds=1.0, device="cpu")
    (out / "result.json").write_text(json.dumps(result.to_dict()))
    return out / "result.json"


def write_result(task: Task, top1: float, gflops: float | None = None, videos: int = 0) -> Path:
    """A training's result.json as ``pas_models.train.run`` writes it (the figures given); with ``videos``, measured on
    that many test videos with its per-video record (the first round(top1 %) of them right)."""
    from pas_models.predictions import PerVideo

    assert isinstance(task, TrainTask)
    files = HypFiles.of(task.out_dir)
    files.root.mkdir(parents=True, exist_ok=True)
    right = round(top1 * videos / 100)
    per = PerVideo(videos, (True,) * videos, tuple(i < right for i in range(videos)), (True,) * videos) if videos \
        else None
    result = JobResult(hypothesis=task.hypothesis, attempt=task.attempt, top1=100 * right / videos if videos else top1,
                       top5=min(100.0, top1 + 20) if not videos else 100.0,
                       gflops_per_view=gflops if gflops is not None else 1.0, views=1, params=1000, epochs=1,
                       train_seconds=1.0, gpu_hours=0.0, clips_seen=12, videos_skipped=0, eval_videos=videos or 4,
                       checkpoint=str(files.model), spec={}, finetuned_from_parent=False, versions={}, recipe={},
                       per_video=per.to_dict() if per else {})
    files.result.write_text(result.to_json())
    return files.result


class FakeClock:
    """Monotonic seconds that move only when the controller sleeps or a test says so."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds

    @property
    def clock(self) -> Clock:
        return Clock(self.now, self.sleep)


def controller(tmp_path: Path, executor: FakeExecutor | None = None, clock: FakeClock | None = None,
               **overrides: object) -> Controller:
    """A new search (or the one already in tmp_path: a restart) with two operators and one iteration."""
    job = tiny_job("inproc", **{"iterations": 1, "operators": {"s": 2.0, "c": 2.0}, "max_retries": 1, **overrides})
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    search = load_search(tmp_path / "job.yaml")
    profile = load_profile("local")
    layout = RunLayout.of(tmp_path / "runs", search.name)
    ledger = Ledger(layout.ledger)
    ledger.init_search(search.name, definition_dict(search), definition_hash(search), profile.name)
    ledger.acquire_lease()
    data = DatasetConfig("list", str(tmp_path / "data"), {"train": "train.txt", "val": "val.txt"}, num_classes=4)
    return Controller(search, profile, layout, ledger, executor or FakeExecutor(),
                      data, (clock or FakeClock()).clock)


def drive(c: Controller, limit: int = 50) -> int:
    """Rounds until one changes nothing (what ``run`` does before it sleeps); how many changed."""
    for n in range(limit):
        if not c.step():
            return n
    raise AssertionError(f"the controller still changes the ledger after {limit} rounds")
