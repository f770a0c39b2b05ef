"""The ledger's tables (SQLAlchemy 2 declarative). One ledger file holds one search.

Rows never leave ``pas_orchestrator.ledger``: callers get the frozen records of records.py.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Enum, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pas_orchestrator.ledger.records import AttemptRec, SearchRec
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState

SCHEMA_VERSION = 5
# upgrades of an older ledger, applied in order when it is opened for writing: version -> SQL
MIGRATIONS: dict[int, list[str]] = {
    2: ["ALTER TABLE attempt ADD COLUMN node VARCHAR(256)"],  # where the job ran (SLURM NodeList)
    3: [],  # attempt state INTERRUPTED (a pas that does not know it must not read the ledger)
    4: ["ALTER TABLE hypothesis ADD COLUMN rung INTEGER",  # successive halving (hypothesis state STOPPED)
        "ALTER TABLE hypothesis ADD COLUMN rung_results TEXT",
        "ALTER TABLE hypothesis ADD COLUMN stopped_rung INTEGER",
        "ALTER TABLE attempt ADD COLUMN rung INTEGER",
        "ALTER TABLE attempt ADD COLUMN compute_hours FLOAT",  # compute accounting
        "ALTER TABLE attempt ADD COLUMN compute_unit VARCHAR(8)"],
    5: ["ALTER TABLE hypothesis ADD COLUMN eval_videos INTEGER",  # the test videos behind top-1 (its interval)
        "UPDATE hypothesis SET eval_videos = json_extract(result, '$.eval_videos') WHERE result IS NOT NULL"],
}


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SearchRow(Base):
    __tablename__ = "search"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    definition: Mapped[str] = mapped_column(Text)  # the validated search definition, JSON
    definition_hash: Mapped[str] = mapped_column(String(16))
    cluster: Mapped[str] = mapped_column(String(64))
    state: Mapped[SearchState] = mapped_column(Enum(SearchState, native_enum=False, length=16))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)

    def record(self) -> SearchRec:
        return SearchRec(self.name, self.definition, self.definition_hash, self.cluster, self.state, self.error,
                         self.created_at, self.ended_at)


class LeaseRow(Base):
    """Who runs the controller: at most one row (id 1)."""

    __tablename__ = "lease"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(32))
    acquired_at: Mapped[float] = mapped_column(Float)
    heartbeat: Mapped[float] = mapped_column(Float)


class HypothesisRow(Base):
    __tablename__ = "hypothesis"
    __table_args__ = (UniqueConstraint("iteration", "op", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    iteration: Mapped[int] = mapped_column(Integer, index=True)  # 0: the base network
    op: Mapped[str] = mapped_column(String(16))  # operator key, or "base"
    kind: Mapped[str] = mapped_column(String(16))  # "pas" | "baseline" (without PAS, paper Table 2)
    path: Mapped[str] = mapped_column(String(256))  # operators from B, comma-separated ("" for B)
    state: Mapped[HypState] = mapped_column(Enum(HypState, native_enum=False, length=16), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    gflops: Mapped[float | None] = mapped_column(Float)  # per view, from the spec
    params: Mapped[int | None] = mapped_column(Integer)
    spec: Mapped[str | None] = mapped_column(Text)
    out_dir: Mapped[str] = mapped_column(Text)
    top1: Mapped[float | None] = mapped_column(Float)
    top5: Mapped[float | None] = mapped_column(Float)
    result: Mapped[str | None] = mapped_column(Text)  # result.json as ingested
    winner: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    # successive halving: the rung the hypothesis trains to now (None: no halving, the whole schedule), its
    # scores at each rung reached (JSON list), the rung it was stopped at
    rung: Mapped[int | None] = mapped_column(Integer)
    rung_results: Mapped[str | None] = mapped_column(Text)
    stopped_rung: Mapped[int | None] = mapped_column(Integer)
    eval_videos: Mapped[int | None] = mapped_column(Integer)  # the videos top-1 / top-5 were measured on


class AttemptRow(Base):
    __tablename__ = "attempt"
    __table_args__ = (UniqueConstraint("hypothesis_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hypothesis_id: Mapped[int] = mapped_column(ForeignKey("hypothesis.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    job_name: Mapped[str] = mapped_column(String(128), unique=True)  # unique per attempt
    batch: Mapped[str] = mapped_column(String(128), index=True)  # the array / submission it went in
    array_index: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    state: Mapped[AttemptState] = mapped_column(Enum(AttemptState, native_enum=False, length=16), index=True)
    scheduler_state: Mapped[str | None] = mapped_column(String(32))  # last raw state (sacct / local)
    reason: Mapped[str | None] = mapped_column(Text)
    requeues: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    submitted_at: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    node: Mapped[str | None] = mapped_column(String(256))  # where it ran / runs (SLURM NodeList), last seen
    rung: Mapped[int | None] = mapped_column(Integer)  # the rung this attempt trains to (halving)
    compute_hours: Mapped[float | None] = mapped_column(Float)  # used so far (all runs of a requeued job)
    compute_unit: Mapped[str | None] = mapped_column(String(8))  # GPU-h | CPU-h

    def record(self) -> AttemptRec:
        return AttemptRec(self.id, self.hypothesis_id, self.number, self.job_name, self.batch, self.array_index,
                          self.job_id, self.state, self.scheduler_state, self.reason, self.requeues, self.created_at,
                          self.submitted_at, self.started_at, self.ended_at, self.node, rung=self.rung,
                          compute_hours=self.compute_hours, compute_unit=self.compute_unit)


class EventRow(Base):
    __tablename__ = "event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[float] = mapped_column(Float, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    hypothesis_id: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
