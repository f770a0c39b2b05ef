"""Frozen snapshots of ledger rows: what the ledger returns (rows never leave it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pas_models.intervals import percent_interval
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState

LEASE_STALE_SECONDS = 120.0  # a lease not renewed for this long (controller on another host) is taken over
STUDY_PREFIX = "study-"  # the ledger kind of a study's rows: study-NAME (pas_orchestrator.studies)


def is_study(kind: str) -> bool:
    return kind.startswith(STUDY_PREFIX)


@dataclass(frozen=True)
class NewHypothesis:
    iteration: int
    op: str
    kind: str
    path: str
    out_dir: str
    state: HypState = HypState.PLANNED
    reason: str | None = None
    gflops: float | None = None
    params: int | None = None
    spec: str | None = None
    rung: int | None = None  # successive halving: the first rung it trains to


@dataclass(frozen=True)
class RungScore:
    """A hypothesis' cheap evaluation at the end of a rung (pas_models.halving)."""

    rung: int
    top1: float
    top5: float
    steps: int
    total_steps: int
    eval_videos: int | None = None  # the videos of the rung's evaluation (None: recorded before it was kept)
    per_video: dict[str, Any] | None = None  # pas_models.predictions.PerVideo's dict, where the result had one

    @property
    def top1_interval(self) -> tuple[float, float] | None:
        """The rung's top-1 95% interval in percent (Wilson), where its videos are known."""
        return percent_interval(self.top1, self.eval_videos) if self.eval_videos else None


@dataclass(frozen=True)
class SearchRec:
    name: str
    definition: str
    definition_hash: str
    cluster: str
    state: SearchState
    error: str | None
    created_at: float
    ended_at: float | None


@dataclass(frozen=True)
class AttemptRec:
    id: int
    hypothesis_id: int
    number: int
    job_name: str
    batch: str
    array_index: int
    job_id: str | None
    state: AttemptState
    scheduler_state: str | None
    reason: str | None
    requeues: int
    created_at: float
    submitted_at: float | None
    started_at: float | None
    ended_at: float | None
    node: str | None = None  # where the job ran (SLURM NodeList), last seen
    rung: int | None = None  # the rung this attempt trains to (successive halving)
    compute_hours: float | None = None  # used so far, all runs of the job (see compute_unit)
    compute_unit: str | None = None  # GPU-h (SLURM: elapsed x GPUs) | CPU-h (wall time x processes)


@dataclass(frozen=True)
class HypRec:
    id: int
    iteration: int
    op: str
    kind: str
    path: str
    state: HypState
    reason: str | None
    gflops: float | None
    params: int | None
    spec: str | None
    out_dir: str
    top1: float | None
    top5: float | None
    result: str | None
    winner: bool
    created_at: float
    ended_at: float | None
    rung: int | None = None  # the rung it trains to now (None: no halving)
    rung_results: str | None = None  # JSON list of RungScore
    stopped_rung: int | None = None
    eval_videos: int | None = None  # the test videos behind top1 / top5 (None: not a trained network's result)
    attempts: tuple[AttemptRec, ...] = ()

    @property
    def top1_interval(self) -> tuple[float, float] | None:
        """The 95% interval of top-1 in percent (Wilson, pas_models.intervals), where it was measured."""
        if self.top1 is None or not self.eval_videos:
            return None
        return percent_interval(self.top1, self.eval_videos)

    @property
    def top5_interval(self) -> tuple[float, float] | None:
        """The 95% interval of top-5 in percent (Wilson), where it was measured."""
        if self.top5 is None or not self.eval_videos:
            return None
        return percent_interval(self.top5, self.eval_videos)

    @property
    def rung_scores(self) -> tuple[RungScore, ...]:
        return tuple(RungScore(**x) for x in json.loads(self.rung_results)) if self.rung_results else ()

    def score(self, rung: int) -> RungScore | None:
        return next((x for x in self.rung_scores if x.rung == rung), None)

    @property
    def waiting(self) -> bool:
        """At the end of its current rung, waiting for the rung decision (no attempt needed)."""
        return self.rung is not None and self.score(self.rung) is not None

    @property
    def ops(self) -> list[str]:
        return self.path.split(",") if self.path else []

    @property
    def label(self) -> str:
        return f"{self.iteration}-{self.op}" + ("-scratch" if self.kind == "baseline" else "")


@dataclass(frozen=True)
class EventRec:
    time: float
    kind: str
    hypothesis_id: int | None
    message: str


@dataclass(frozen=True)
class Snapshot:
    """The whole search at one instant (one read transaction)."""

    search: SearchRec
    hypotheses: tuple[HypRec, ...]

    def iteration(self, i: int, kind: str = "pas") -> list[HypRec]:
        return [h for h in self.hypotheses if h.iteration == i and h.kind == kind]

    @property
    def last_iteration(self) -> int:
        return max((h.iteration for h in self.hypotheses if h.kind == "pas"), default=-1)

    def winner(self, i: int) -> HypRec | None:
        return next((h for h in self.iteration(i) if h.winner), None)

    def compute(self, studies: bool = False) -> dict[str, float]:
        """The compute every attempt of the search used so far, per unit (``{"GPU-h": 12.5}``; CPU-h for CPU
        jobs); with ``studies``, that of the studies run on it (rows of kind ``study-*``) instead."""
        out: dict[str, float] = {}
        for h in self.hypotheses:
            if is_study(h.kind) != studies:
                continue
            for a in h.attempts:
                if a.compute_hours is not None and a.compute_unit:
                    out[a.compute_unit] = out.get(a.compute_unit, 0.0) + a.compute_hours
        return out
