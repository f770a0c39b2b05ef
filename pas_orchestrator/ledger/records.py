"""Frozen snapshots of ledger rows: what the ledger returns (rows never leave it)."""

from __future__ import annotations

from dataclasses import dataclass

from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState


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
    attempts: tuple[AttemptRec, ...] = ()

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
