"""The ledger: one SQLite file (WAL) per search, written only by the controller that holds its lease.

Every public method is one short transaction; driver errors become LedgerError; every state
change goes through ``states.check``; callers get frozen records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pas_orchestrator.errors import LedgerError
from pas_orchestrator.ledger import states
from pas_orchestrator.ledger.records import AttemptRec, EventRec, HypRec, SearchRec, Snapshot
from pas_orchestrator.ledger.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AttemptRow,
    Base,
    EventRow,
    HypothesisRow,
    LeaseRow,
    Meta,
    SearchRow,
)
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState

LEASE_STALE_SECONDS = 120.0  # a lease not renewed for this long (controller on another host) is taken over


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create(path: Path) -> None:
    """Create an empty ledger at ``path`` atomically: tables and schema row are built in a temporary
    file that is then hard-linked into place, so a reader (``pas status`` in the first instant of a
    search) sees either no ledger or a whole one, and two controllers racing to create it get one."""
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    engine = create_engine(f"sqlite:///{tmp}")
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(Meta.__table__.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        engine.dispose()
        try:
            os.link(tmp, path)  # exclusive: fails if another process created it first, which is fine
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    except SQLAlchemyError as exc:
        raise LedgerError(f"{path}: cannot create the ledger ({exc.__class__.__name__}: {exc})") from exc
    finally:
        engine.dispose()
        tmp.unlink(missing_ok=True)


class Ledger:
    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise LedgerError(f"{self.path}: no ledger here (start the search with `pas search`)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not readonly and not self.path.exists():
            _create(self.path)
        self._engine = create_engine(f"sqlite:///{self.path}")
        self._readonly = readonly
        self._token: str | None = None

        @event.listens_for(self._engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's own is deferred, too late)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
            cur.close()

        @event.listens_for(self._engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        try:
            if not readonly:
                Base.metadata.create_all(self._engine)
            self._check_schema()
        except SQLAlchemyError as exc:
            raise LedgerError(f"{self.path}: cannot open the ledger ({exc.__class__.__name__}: {exc})") from exc

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as s:
                yield s
        except SQLAlchemyError as exc:
            raise LedgerError(f"{self.path}: {exc.__class__.__name__}: {exc}") from exc

    def _check_schema(self) -> None:
        with self._tx() as s:
            row = s.get(Meta, "schema_version")
            if row is None:
                if self._readonly:
                    raise LedgerError(f"{self.path}: not a pas ledger (no schema version)")
                s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(row.value) > SCHEMA_VERSION:
                raise LedgerError(f"{self.path}: written by a newer pas (ledger schema {row.value}, this pas "
                                  f"reads up to {SCHEMA_VERSION}); upgrade pas")
            elif int(row.value) < SCHEMA_VERSION:
                if self._readonly:
                    raise LedgerError(f"{self.path}: ledger schema {row.value} is older than this pas's "
                                      f"({SCHEMA_VERSION}); resume the search with `pas search` once to upgrade it")
                for version in range(int(row.value) + 1, SCHEMA_VERSION + 1):  # in the same transaction
                    for sql in MIGRATIONS[version]:
                        s.execute(text(sql))
                row.value = str(SCHEMA_VERSION)

    # ---------------------------------------------------------------- lease
    def acquire_lease(self, stale_seconds: float = LEASE_STALE_SECONDS) -> None:
        """Become the only controller of this ledger, or raise LedgerError naming the holder. A lease
        whose process is gone (same host) or not renewed for ``stale_seconds`` (other host) is taken over."""
        host, pid, now = socket.gethostname(), os.getpid(), time.time()
        with self._tx() as s:
            lease = s.get(LeaseRow, 1)
            if lease is not None and not (lease.host == host and lease.pid == pid):
                dead = (lease.host == host and not _pid_alive(lease.pid)) or now - lease.heartbeat > stale_seconds
                if not dead:
                    raise LedgerError(
                        f"{self.path}: another controller runs this search (pid {lease.pid} on {lease.host}, "
                        f"heartbeat {now - lease.heartbeat:.0f} s ago). Stop it first, or wait: a lease not renewed "
                        f"for {stale_seconds:.0f} s is taken over")
                s.add(EventRow(time=now, kind="lease", message=f"took over the lease of pid {lease.pid} on "
                                                                 f"{lease.host} (no longer running)"))
            self._token = uuid.uuid4().hex
            if lease is None:
                s.add(LeaseRow(id=1, host=host, pid=pid, token=self._token, acquired_at=now, heartbeat=now))
            else:
                lease.host, lease.pid, lease.token = host, pid, self._token
                lease.acquired_at = lease.heartbeat = now

    def heartbeat(self) -> None:
        with self._tx() as s:
            lease = s.get(LeaseRow, 1)
            if lease is None or lease.token != self._token:
                raise LedgerError(f"{self.path}: this controller lost its lease (another one took over)")
            lease.heartbeat = time.time()

    def release_lease(self) -> None:
        if self._token is None:
            return
        with self._tx() as s:
            lease = s.get(LeaseRow, 1)
            if lease is not None and lease.token == self._token:
                s.delete(lease)
        self._token = None

    def lease_holder(self) -> tuple[str, int, float] | None:
        """(host, pid, heartbeat time) of the controller, if any."""
        with self._tx() as s:
            lease = s.get(LeaseRow, 1)
            return None if lease is None else (lease.host, lease.pid, lease.heartbeat)

    # ---------------------------------------------------------------- search
    def init_search(self, name: str, definition: dict[str, Any], definition_hash: str, cluster: str) -> SearchRec:
        """Create the search row, or check that the existing one has the same definition."""
        with self._tx() as s:
            row = s.scalars(select(SearchRow)).one_or_none()
            if row is None:
                row = SearchRow(name=name, definition=json.dumps(definition, sort_keys=True),
                                definition_hash=definition_hash, cluster=cluster, state=SearchState.RUNNING,
                                created_at=time.time())
                s.add(row)
                s.add(EventRow(time=time.time(), kind="search", message=f"search {name} started on {cluster}"))
            elif row.name != name:
                raise LedgerError(f"{self.path} holds search {row.name!r}, not {name!r}")
            elif row.definition_hash != definition_hash:
                raise LedgerError(f"search {name}: the search definition changed since the search started "
                                  f"(ledger {row.definition_hash}, now {definition_hash}); revert the file, or "
                                  "start a new search with --name")
            s.flush()
            return _search(row)

    def search(self) -> SearchRec:
        with self._tx() as s:
            row = s.scalars(select(SearchRow)).one_or_none()
            if row is None:
                raise LedgerError(f"{self.path}: no search yet (its controller is starting it; look again in a moment)")
            return _search(row)

    def set_search_state(self, new: SearchState, error: str | None = None) -> None:
        with self._tx() as s:
            row = s.scalars(select(SearchRow)).one()
            if row.state == new:
                return
            states.check(f"search {row.name}", row.state, new)
            row.state, row.error = new, error
            row.ended_at = None if new == SearchState.RUNNING else time.time()
            s.add(EventRow(time=time.time(), kind="search", message=f"search {new.value.lower()}"
                                                                    + (f": {error}" if error else "")))

    # ---------------------------------------------------------------- hypotheses
    def add_hypotheses(self, new: Sequence[NewHypothesis]) -> None:
        """Insert planned hypotheses; those already there (same iteration, op, kind) are left as they are."""
        with self._tx() as s:
            for h in new:
                exists = s.scalars(select(HypothesisRow.id).where(
                    HypothesisRow.iteration == h.iteration, HypothesisRow.op == h.op,
                    HypothesisRow.kind == h.kind)).first()
                if exists is not None:
                    continue
                row = HypothesisRow(**h.__dict__, winner=False, created_at=time.time())
                if h.state == HypState.NOT_APPLICABLE:
                    row.ended_at = row.created_at
                s.add(row)
                s.flush()
                s.add(EventRow(time=time.time(), kind="plan", hypothesis_id=row.id,
                               message=f"{h.iteration}-{h.op} ({h.kind}) {h.state.value.lower()}"
                                       + (f": {h.reason}" if h.reason else "")))

    def set_hyp_state(self, hyp_id: int, new: HypState, reason: str | None = None) -> None:
        with self._tx() as s:
            row = s.get(HypothesisRow, hyp_id)
            assert row is not None
            if row.state == new:
                return
            states.check(f"hypothesis {row.iteration}-{row.op}", row.state, new)
            row.state = new
            if reason is not None:
                row.reason = reason
            if new in states.TERMINAL_HYP:
                row.ended_at = time.time()
            s.add(EventRow(time=time.time(), kind="hypothesis", hypothesis_id=hyp_id,
                           message=f"{row.iteration}-{row.op} ({row.kind}) {new.value.lower()}"
                                   + (f": {reason}" if reason else "")))

    def ingest_result(self, hyp_id: int, attempt_id: int, result: dict[str, Any]) -> bool:
        """Record a finished attempt's result.json; False (and nothing changes) when already ingested."""
        with self._tx() as s:
            hyp, att = s.get(HypothesisRow, hyp_id), s.get(AttemptRow, attempt_id)
            assert hyp is not None and att is not None
            if hyp.state == HypState.DONE:
                return False
            for what, row, new in ((f"attempt {att.job_name}", att, AttemptState.COMPLETED),
                                   (f"hypothesis {hyp.iteration}-{hyp.op}", hyp, HypState.DONE)):
                if row.state != new:
                    states.check(what, row.state, new)
                    row.state = new
            now = time.time()
            att.ended_at = att.ended_at or now
            hyp.ended_at = now
            hyp.top1, hyp.top5 = float(result["top1"]), float(result["top5"])
            hyp.gflops, hyp.params = float(result["gflops_per_view"]), int(result["params"])
            hyp.result = json.dumps(result, sort_keys=True)
            s.add(EventRow(time=now, kind="result", hypothesis_id=hyp_id,
                           message=f"{hyp.iteration}-{hyp.op} ({hyp.kind}): top-1 {hyp.top1:.2f}%, top-5 "
                                   f"{hyp.top5:.2f}%, {hyp.gflops:.4g} GFLOPs/view"))
            return True

    def mark_winner(self, hyp_id: int, why: str) -> None:
        with self._tx() as s:
            row = s.get(HypothesisRow, hyp_id)
            assert row is not None and row.state == HypState.DONE
            others = s.scalars(select(HypothesisRow).where(HypothesisRow.iteration == row.iteration,
                                                           HypothesisRow.kind == row.kind,
                                                           HypothesisRow.winner.is_(True))).all()
            if any(o.id != hyp_id for o in others):
                raise LedgerError(f"iteration {row.iteration} already has a winner")
            if not row.winner:
                row.winner = True
                s.add(EventRow(time=time.time(), kind="winner", hypothesis_id=hyp_id,
                               message=f"iteration {row.iteration}: {row.op} wins ({why})"))

    # ---------------------------------------------------------------- attempts
    def create_attempts(self, hyp_ids: Sequence[int], batch_prefix: str) -> list[AttemptRec]:
        """New attempts (committed before anything is submitted), one batch: job names
        ``<batch>_<index>`` where ``<batch>`` is ``<batch_prefix>-b<serial>`` (the SLURM job name)."""
        with self._tx() as s:
            serial = (s.scalar(select(func.count(func.distinct(AttemptRow.batch)))) or 0) + 1
            batch = f"{batch_prefix}-b{serial}"
            now, out = time.time(), []
            for index, hyp_id in enumerate(hyp_ids):
                hyp = s.get(HypothesisRow, hyp_id)
                assert hyp is not None
                if hyp.state == HypState.PLANNED:
                    states.check(f"hypothesis {hyp.iteration}-{hyp.op}", hyp.state, HypState.RUNNING)
                    hyp.state = HypState.RUNNING
                number = (s.scalar(select(func.max(AttemptRow.number)).where(AttemptRow.hypothesis_id == hyp_id))
                          or 0) + 1
                row = AttemptRow(hypothesis_id=hyp_id, number=number, job_name=f"{batch}_{index}", batch=batch,
                                 array_index=index, state=AttemptState.CREATED, requeues=0, created_at=now)
                s.add(row)
                s.flush()
                out.append(_attempt(row))
            return out

    def set_job_ids(self, job_ids: dict[int, str]) -> None:
        """attempt id -> scheduler job id, right after submission (or found again by name)."""
        with self._tx() as s:
            for att_id, job_id in job_ids.items():
                row = s.get(AttemptRow, att_id)
                assert row is not None
                if row.state == AttemptState.CREATED:
                    row.state, row.job_id, row.submitted_at = AttemptState.SUBMITTED, job_id, time.time()
                    s.add(EventRow(time=row.submitted_at, kind="submit", hypothesis_id=row.hypothesis_id,
                                   message=f"{row.job_name}: job {job_id}"))

    def update_attempt(self, att_id: int, state: AttemptState | None = None, scheduler_state: str | None = None,
                       reason: str | None = None, node: str | None = None,
                       requeues: tuple[int, str] | None = None) -> None:
        """Record what the scheduler says of an attempt; ``reason`` is kept when the attempt ends;
        ``requeues`` = (how many times the job was requeued so far, after what), logged when it grows."""
        with self._tx() as s:
            row = s.get(AttemptRow, att_id)
            assert row is not None
            now = time.time()
            if scheduler_state is not None:
                row.scheduler_state = scheduler_state
                if row.state in states.ACTIVE_ATTEMPT:  # while active: the scheduler's why (pending reason)
                    row.reason = reason
            if node:
                row.node = node
            if requeues is not None and requeues[0] > row.requeues:
                row.requeues = requeues[0]
                s.add(EventRow(time=now, kind="requeue", hypothesis_id=row.hypothesis_id,
                               message=f"{row.job_name} (job {row.job_id}) requeued ({requeues[0]}): {requeues[1]}"))
            if state is not None and state != row.state:
                states.check(f"attempt {row.job_name}", row.state, state)
                row.state = state
                if state == AttemptState.RUNNING:
                    row.started_at = row.started_at or now
                elif state not in states.ACTIVE_ATTEMPT:
                    row.ended_at = now
                    row.reason = reason
                s.add(EventRow(time=now, kind="attempt", hypothesis_id=row.hypothesis_id,
                               message=f"{row.job_name} (job {row.job_id}) {state.value.lower()}"
                                       + (f": {reason}" if reason else "")))

    def cancel_all(self, reason: str) -> list[AttemptRec]:
        """Cancel the search: active attempts and unfinished hypotheses become CANCELLED (one
        transaction); returns the attempts that were active (their jobs are to be cancelled)."""
        with self._tx() as s:
            now, out = time.time(), []
            for att in s.scalars(select(AttemptRow).where(AttemptRow.state.in_(states.ACTIVE_ATTEMPT))):
                out.append(_attempt(att))
                states.check(f"attempt {att.job_name}", att.state, AttemptState.CANCELLED)
                att.state, att.reason, att.ended_at = AttemptState.CANCELLED, reason, now
            for hyp in s.scalars(select(HypothesisRow).where(
                    HypothesisRow.state.in_((HypState.PLANNED, HypState.RUNNING)))):
                states.check(f"hypothesis {hyp.iteration}-{hyp.op}", hyp.state, HypState.CANCELLED)
                hyp.state, hyp.reason, hyp.ended_at = HypState.CANCELLED, reason, now
            row = s.scalars(select(SearchRow)).one()
            if row.state != SearchState.CANCELLED:
                states.check(f"search {row.name}", row.state, SearchState.CANCELLED)
                row.state, row.error, row.ended_at = SearchState.CANCELLED, reason, now
            s.add(EventRow(time=now, kind="search", message=f"cancelled: {reason} ({len(out)} jobs)"))
            return out

    def reopen_cancelled(self) -> int:
        """Resuming a cancelled search: its cancelled hypotheses are planned again; returns how many."""
        with self._tx() as s:
            rows = s.scalars(select(HypothesisRow).where(HypothesisRow.state == HypState.CANCELLED)).all()
            for hyp in rows:
                states.check(f"hypothesis {hyp.iteration}-{hyp.op}", hyp.state, HypState.PLANNED)
                hyp.state, hyp.reason, hyp.ended_at = HypState.PLANNED, None, None
            return len(rows)

    # ---------------------------------------------------------------- reads
    def snapshot(self) -> Snapshot:
        """The whole search in one read transaction. Rows are read as plain tuples (Core, not ORM
        objects): `pas status` on 10,000 attempts stays well under 0.3 s."""
        with self._tx() as s:
            row = s.scalars(select(SearchRow)).one_or_none()
            if row is None:
                raise LedgerError(f"{self.path}: no search yet (its controller is starting it; look again in a moment)")
            attempts: dict[int, list[AttemptRec]] = {}
            a_table = AttemptRow.__table__
            for r in s.execute(select(*[a_table.c[f] for f in _ATTEMPT_FIELDS])
                               .order_by(a_table.c.hypothesis_id, a_table.c.number)):
                attempts.setdefault(r.hypothesis_id, []).append(
                    AttemptRec(*r[:7], AttemptState(r.state), *r[8:]))
            h_table = HypothesisRow.__table__
            hyps = tuple(HypRec(*r[:5], HypState(r.state), *r[6:], attempts=tuple(attempts.get(r.id, ())))
                         for r in s.execute(select(*[h_table.c[f] for f in _HYP_FIELDS])
                                            .order_by(h_table.c.iteration, h_table.c.id)))
            return Snapshot(_search(row), hyps)

    def events(self, limit: int = 20) -> list[EventRec]:
        with self._tx() as s:
            rows = s.scalars(select(EventRow).order_by(EventRow.id.desc()).limit(limit)).all()
            return [EventRec(r.time, r.kind, r.hypothesis_id, r.message) for r in reversed(rows)]

    def log_event(self, kind: str, message: str, hyp_id: int | None = None) -> None:
        with self._tx() as s:
            s.add(EventRow(time=time.time(), kind=kind, hypothesis_id=hyp_id, message=message))


_ATTEMPT_FIELDS = [f.name for f in dataclasses.fields(AttemptRec)]
_HYP_FIELDS = [f.name for f in dataclasses.fields(HypRec) if f.name != "attempts"]


def _search(r: SearchRow) -> SearchRec:
    return SearchRec(r.name, r.definition, r.definition_hash, r.cluster, r.state, r.error, r.created_at, r.ended_at)


def _attempt(r: AttemptRow) -> AttemptRec:
    return AttemptRec(r.id, r.hypothesis_id, r.number, r.job_name, r.batch, r.array_index, r.job_id, r.state,
                      r.scheduler_state, r.reason, r.requeues, r.created_at, r.submitted_at, r.started_at, r.ended_at,
                      r.node)
