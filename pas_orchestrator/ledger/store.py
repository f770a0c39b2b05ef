"""The ledger: one SQLite file (WAL) per search, written only by the controller that holds its lease.

Every public method is one short transaction; driver errors become LedgerError; every state
change goes through ``states.check``; callers get frozen records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pas_models.train.result import JobResult
from pas_orchestrator.core.actions import (
    AbandonAttempt,
    AddHypotheses,
    CancelSearch,
    CreateAttempts,
    EndSearch,
    FailAttempt,
    IngestResult,
    IngestRung,
    InterruptAttempt,
    LedgerAction,
    LogEvent,
    MarkWinner,
    NoteScheduler,
    ObserveAttempt,
    PromoteRung,
    RecordJobIds,
    ResumeSearch,
)
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.errors import LedgerConflict, LedgerError
from pas_orchestrator.kinds import kind_of
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
        with engine.connect() as conn:  # WAL from birth (it is kept in the file): switching a shared file to WAL
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")  # needs it alone, and SQLite does not wait for that
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
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


SQLITE_MAGIC = b"SQLite format 3\x00"


def identify(path: Path) -> None:
    """LedgerError naming the file and what it is, unless ``path`` is a pas ledger (or could be one
    being created: an SQLite file with no tables yet). Reads the header and the table names only."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size == 0:
        raise LedgerError(f"{path}: an empty file (0 bytes), not a pas ledger: remove it, or give the search "
                          "another --name")
    if head != SQLITE_MAGIC:
        raise LedgerError(f"{path}: not an SQLite database ({size} bytes of something else), so not a pas ledger: "
                          "move it away, or give the search another --name")
    try:
        con = sqlite3.connect(_uri(path, readonly=True), uri=True)
        try:
            tables = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise LedgerError(f"{path}: an unreadable SQLite database ({exc}), not a pas ledger") from None
    if tables and "meta" not in tables:
        shown = ", ".join(tables[:8]) + (f", ... ({len(tables)} tables)" if len(tables) > 8 else "")
        raise LedgerError(f"{path}: the SQLite database of another application (tables: {shown}), not a pas "
                          "ledger: move it away, or give the search another --name")


def _writable(path: Path) -> bool:
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _uri(path: Path, readonly: bool) -> str:
    """An SQLite URI for ``path``: ``mode=ro`` to only read; ``immutable=1`` as well when the folder or
    file cannot be written (a finished search on a read-only share: WAL needs a writable -shm file)."""
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    if readonly:
        uri += "?mode=ro" + ("" if _writable(path) else "&immutable=1")
    return uri


class Ledger:
    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise LedgerError(f"{self.path}: no ledger here (start the search with `pas search`)")
        if not readonly:
            folder = self.path.parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(f"{folder}: cannot create the search folder ({exc.strerror or exc})") from None
            if not _writable(self.path):
                raise LedgerError(f"{folder}: read-only, so the search cannot run here (`pas status`, `report` and "
                                  "`export` can read it); copy the folder to writable storage to resume it")
        if self.path.exists():
            identify(self.path)
        elif not readonly:
            _create(self.path)
        uri = _uri(self.path, readonly)
        self._engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True,
                                                                                   check_same_thread=False))
        self._readonly = readonly
        self._token: str | None = None

        @event.listens_for(self._engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's own is deferred, too late)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                # a ledger is created in WAL mode; one written by an older pas is switched once (a busy
                # switch is not retried by SQLite: controllers racing to open it would fail)
                if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
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
                additive = all(not MIGRATIONS[v] for v in range(int(row.value) + 1, SCHEMA_VERSION + 1))
                if self._readonly and additive:
                    return  # nothing this pas reads is missing
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
        """Create the search row, or return the existing one (the caller compares its definition)."""
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
            s.flush()
            return _search(row)

    def search(self) -> SearchRec:
        with self._tx() as s:
            row = s.scalars(select(SearchRow)).one_or_none()
            if row is None:
                raise LedgerError(f"{self.path}: no search yet (its controller is starting it; look again in a moment)")
            return _search(row)

    # ---------------------------------------------------------------- changes
    def apply(self, action: LedgerAction) -> Applied:
        """Apply one action of the decision core in one transaction: the only place a state is assigned.
        Compare-and-set: an action that expects a row in a state it is no longer in raises LedgerConflict
        and changes nothing; a missing row raises LedgerError."""
        handler = _HANDLERS.get(type(action))
        if handler is None:
            raise LedgerError(f"{type(action).__name__} is not a ledger action")
        with self._tx() as s:
            return handler(s, action, time.time())

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

    def last_activity(self) -> float:
        """When the search last did something: its controller's heartbeat or its last event (epoch seconds;
        not the file's mtime, which a running search leaves alone while it writes the -wal file)."""
        with self._tx() as s:
            times = [s.scalar(select(func.max(EventRow.time))), s.scalar(select(func.max(LeaseRow.heartbeat))),
                     s.scalar(select(func.max(SearchRow.created_at)))]
            return max((t for t in times if t is not None), default=0.0)

    def events(self, limit: int = 20) -> list[EventRec]:
        with self._tx() as s:
            rows = s.scalars(select(EventRow).order_by(EventRow.id.desc()).limit(limit)).all()
            return [EventRec(r.time, r.kind, r.hypothesis_id, r.message) for r in reversed(rows)]


_ATTEMPT_FIELDS = [f.name for f in dataclasses.fields(AttemptRec)]
_HYP_FIELDS = [f.name for f in dataclasses.fields(HypRec) if f.name != "attempts"]


def _search(r: SearchRow) -> SearchRec:
    return SearchRec(r.name, r.definition, r.definition_hash, r.cluster, r.state, r.error, r.created_at, r.ended_at)


def _attempt(r: AttemptRow) -> AttemptRec:
    return AttemptRec(r.id, r.hypothesis_id, r.number, r.job_name, r.batch, r.array_index, r.job_id, r.state,
                      r.scheduler_state, r.reason, r.requeues, r.created_at, r.submitted_at, r.started_at, r.ended_at,
                      r.node, rung=r.rung, compute_hours=r.compute_hours, compute_unit=r.compute_unit)


# ==================================================================== action handlers
# Each runs inside the transaction of ``Ledger.apply`` (BEGIN IMMEDIATE: no other writer between the
# read of a row's state and its change) and returns what changed.


@dataclass(frozen=True)
class Applied:
    changed: bool  # a state, a winner, a row or a requeue count changed (the core may decide anew)
    attempts: tuple[AttemptRec, ...] = ()  # CreateAttempts: the new attempts; CancelSearch: those cancelled


def _get_attempt(s: Session, att_id: int) -> AttemptRow:
    row = s.get(AttemptRow, att_id)
    if row is None:
        raise LedgerError(f"no attempt with id {att_id} in the ledger")
    return row


def _get_hyp(s: Session, hyp_id: int) -> HypothesisRow:
    row = s.get(HypothesisRow, hyp_id)
    if row is None:
        raise LedgerError(f"no hypothesis with id {hyp_id} in the ledger")
    return row


def _expect(what: str, row: Any, expected: Any) -> None:
    states_ok = expected if isinstance(expected, (tuple, frozenset, set)) else (expected,)
    if row.state not in states_ok:
        raise LedgerConflict(f"{what}: expected {'/'.join(sorted(x.value for x in states_ok))}, but it is "
                             f"{row.state.value} now (changed by another writer): refused")


def _set(what: str, row: Any, new: Any) -> None:
    states.check(what, row.state, new)
    row.state = new


def _event(s: Session, now: float, kind: str, message: str, hyp_id: int | None = None) -> None:
    s.add(EventRow(time=now, kind=kind, hypothesis_id=hyp_id, message=message))


def _attempt_name(row: AttemptRow) -> str:
    return f"{row.job_name} (job {row.job_id})" if row.job_id else row.job_name


def _scheduler_info(s: Session, row: AttemptRow, outcome: JobOutcome | None, now: float,
                    note: str | None = None) -> bool:
    """Record what the scheduler said (display, node, requeues); True when the requeue count grew."""
    if outcome is None:
        return False
    row.scheduler_state = outcome.shown
    if row.state in states.ACTIVE_ATTEMPT:  # while active: the scheduler's why (pending reason) or our note
        row.reason = note or outcome.reason
    if outcome.node:
        row.node = outcome.node
    if outcome.compute_hours is not None and outcome.compute_hours >= (row.compute_hours or 0.0):
        row.compute_hours, row.compute_unit = outcome.compute_hours, outcome.compute_unit  # it only grows
    if outcome.requeues > row.requeues:
        row.requeues = outcome.requeues
        _event(s, now, "requeue", f"{_attempt_name(row)} requeued ({outcome.requeues}): "
                                  f"{outcome.requeue_why or 'by the scheduler'}", row.hypothesis_id)
        return True
    return False


def _end_attempt(s: Session, row: AttemptRow, new: AttemptState, reason: str | None, now: float) -> None:
    _set(f"attempt {row.job_name}", row, new)
    row.ended_at, row.reason = now, reason
    _event(s, now, "attempt", f"{_attempt_name(row)} {new.value.lower()}" + (f": {reason}" if reason else ""),
           row.hypothesis_id)


def _record_job_ids(s: Session, a: RecordJobIds, now: float) -> Applied:
    changed = False
    for att_id, job_id in a.pairs:
        row = _get_attempt(s, att_id)
        if row.state != AttemptState.CREATED and row.job_id == job_id:
            continue  # recorded already
        _expect(f"attempt {row.job_name}", row, AttemptState.CREATED)
        _set(f"attempt {row.job_name}", row, AttemptState.SUBMITTED)
        row.job_id, row.submitted_at = job_id, now
        _event(s, now, "reconcile" if a.found else "submit",
               f"{row.job_name}: " + (f"found job {job_id}" if a.found else f"job {job_id}"), row.hypothesis_id)
        changed = True
    return Applied(changed)


def _abandon(s: Session, a: AbandonAttempt, now: float) -> Applied:
    row = _get_attempt(s, a.attempt_id)
    _expect(f"attempt {row.job_name}", row, AttemptState.CREATED)
    _end_attempt(s, row, AttemptState.ABANDONED, a.reason, now)
    return Applied(True)


def _observe(s: Session, a: ObserveAttempt, now: float) -> Applied:
    row = _get_attempt(s, a.attempt_id)
    _expect(f"attempt {row.job_name}", row, a.expect)
    changed = _scheduler_info(s, row, a.outcome, now, a.note)
    if a.outcome.phase == Phase.RUNNING and row.state == AttemptState.SUBMITTED:
        _set(f"attempt {row.job_name}", row, AttemptState.RUNNING)
        row.started_at = row.started_at or now
        _event(s, now, "attempt", f"{_attempt_name(row)} running" + (f" on {row.node}" if row.node else ""),
               row.hypothesis_id)
        changed = True
    return Applied(changed)


def _note(s: Session, a: NoteScheduler, now: float) -> Applied:
    row = _get_attempt(s, a.attempt_id)
    row.scheduler_state = a.outcome.shown
    if a.outcome.node:
        row.node = a.outcome.node
    if a.outcome.compute_hours is not None and a.outcome.compute_hours >= (row.compute_hours or 0.0):
        row.compute_hours, row.compute_unit = a.outcome.compute_hours, a.outcome.compute_unit
    return Applied(False)


def _ingest(s: Session, a: IngestResult, now: float) -> Applied:
    hyp, att = _get_hyp(s, a.hypothesis_id), _get_attempt(s, a.attempt_id)
    if att.hypothesis_id != hyp.id:
        raise LedgerError(f"attempt {att.job_name} is not an attempt of hypothesis {hyp.iteration}-{hyp.op}")
    if hyp.state == HypState.DONE and att.state == AttemptState.COMPLETED:
        return Applied(False)  # ingested already
    label = f"hypothesis {hyp.iteration}-{hyp.op}"
    _expect(f"attempt {att.job_name}", att, (AttemptState.SUBMITTED, AttemptState.RUNNING))
    _expect(label, hyp, HypState.RUNNING)
    _scheduler_info(s, att, a.outcome, now)
    _end_attempt(s, att, AttemptState.COMPLETED, None, now)
    _set(label, hyp, HypState.DONE)
    r, kind = a.result, kind_of(hyp.kind)
    hyp.ended_at = now
    hyp.result = json.dumps(r.to_dict(), sort_keys=True)
    where = f"{hyp.iteration}-{hyp.op}"
    if kind.network:  # a trained network's figures
        assert isinstance(r, JobResult)
        hyp.top1, hyp.top5, hyp.gflops, hyp.params = r.top1, r.top5, r.gflops_per_view, r.params
        where += f" ({hyp.kind})"
    _event(s, now, "result", kind.summary(where, r), hyp.id)
    return Applied(True)


def _ingest_rung(s: Session, a: IngestRung, now: float) -> Applied:
    """A rung's cheap evaluation: the attempt COMPLETED, the score kept; the hypothesis waits (RUNNING, no
    attempt) for the iteration's rung decision."""
    hyp, att = _get_hyp(s, a.hypothesis_id), _get_attempt(s, a.attempt_id)
    label = f"hypothesis {hyp.iteration}-{hyp.op}"
    if att.hypothesis_id != hyp.id:
        raise LedgerError(f"attempt {att.job_name} is not an attempt of {label}")
    r = a.result
    scores = json.loads(hyp.rung_results) if hyp.rung_results else []
    if att.state == AttemptState.COMPLETED and any(x["rung"] == r.rung for x in scores):
        return Applied(False)  # ingested already
    _expect(f"attempt {att.job_name}", att, (AttemptState.SUBMITTED, AttemptState.RUNNING))
    _expect(label, hyp, HypState.RUNNING)
    if hyp.rung != r.rung or att.rung != r.rung:
        raise LedgerConflict(f"{label}: a rung {r.rung} result for an attempt of rung {att.rung} (the hypothesis is "
                             f"at rung {hyp.rung}): refused")
    _scheduler_info(s, att, a.outcome, now)
    _end_attempt(s, att, AttemptState.COMPLETED, None, now)
    scores = [x for x in scores if x["rung"] != r.rung] + [
        {"rung": r.rung, "top1": r.top1, "top5": r.top5, "steps": r.steps, "total_steps": r.total_steps}]
    hyp.rung_results = json.dumps(sorted(scores, key=lambda x: x["rung"]))
    _event(s, now, "rung", f"{hyp.iteration}-{hyp.op}: rung {r.rung}/{r.rungs} after {r.steps} of {r.total_steps} "
                           f"steps: top-1 {r.top1:.2f}%, top-5 {r.top5:.2f}% ({r.views} view(s))", hyp.id)
    return Applied(True)


def _promote(s: Session, a: PromoteRung, now: float) -> Applied:
    """The rung decision of one iteration, all or nothing: the promoted go on to the next rung (a new attempt
    each, resuming from last.pt), the others are STOPPED with their rank and score."""
    for hyp_id in a.promoted + tuple(h for h, _ in a.stopped):
        hyp = _get_hyp(s, hyp_id)
        label = f"hypothesis {hyp.iteration}-{hyp.op}"
        _expect(label, hyp, HypState.RUNNING)
        if hyp.iteration != a.iteration or hyp.rung != a.rung:
            raise LedgerConflict(f"{label} is at rung {hyp.rung} of iteration {hyp.iteration}, not rung {a.rung} "
                                 f"of iteration {a.iteration}: rung decision refused")
        busy = s.scalars(select(AttemptRow.job_name).where(AttemptRow.hypothesis_id == hyp_id,
                                                           AttemptRow.state.in_(states.ACTIVE_ATTEMPT))).first()
        if busy is not None:
            raise LedgerConflict(f"{label} still has an active attempt ({busy}): rung decision refused")
    names = []
    for hyp_id in a.promoted:
        hyp = _get_hyp(s, hyp_id)
        hyp.rung = a.rung + 1
        names.append(hyp.op)
    for hyp_id, why in a.stopped:
        hyp = _get_hyp(s, hyp_id)
        _set(f"hypothesis {hyp.iteration}-{hyp.op}", hyp, HypState.STOPPED)
        hyp.stopped_rung, hyp.reason, hyp.ended_at = a.rung, why, now
    _event(s, now, "rung", f"iteration {a.iteration}, rung {a.rung}: promoted {', '.join(names)}; stopped "
                           f"{len(a.stopped)}")
    return Applied(True)


def _end_observed(s: Session, a: FailAttempt | InterruptAttempt, new: AttemptState, now: float) -> AttemptRow:
    """An active attempt ends as the executor observed it (compare-and-set on the state ``a`` expects)."""
    att = _get_attempt(s, a.attempt_id)
    _expect(f"attempt {att.job_name}", att, a.expect)
    _scheduler_info(s, att, a.outcome, now)
    _end_attempt(s, att, new, a.reason, now)
    return att


def _fail(s: Session, a: FailAttempt, now: float) -> Applied:
    att = _end_observed(s, a, AttemptState.FAILED, now)
    if a.fail_hypothesis is not None:
        hyp = _get_hyp(s, att.hypothesis_id)
        label = f"hypothesis {hyp.iteration}-{hyp.op}"
        _expect(label, hyp, HypState.RUNNING)
        _set(label, hyp, HypState.FAILED)
        hyp.reason, hyp.ended_at = a.fail_hypothesis, now
        _event(s, now, "hypothesis", f"{hyp.iteration}-{hyp.op} ({hyp.kind}) failed: {a.fail_hypothesis}", hyp.id)
    return Applied(True)


def _interrupt(s: Session, a: InterruptAttempt, now: float) -> Applied:
    _end_observed(s, a, AttemptState.INTERRUPTED, now)
    return Applied(True)


def _create_attempts(s: Session, a: CreateAttempts, now: float) -> Applied:
    serial = (s.scalar(select(func.count(func.distinct(AttemptRow.batch)))) or 0) + 1
    batch = f"{a.batch_prefix}-b{serial}"
    out = []
    for index, hyp_id in enumerate(a.hypothesis_ids):
        hyp = _get_hyp(s, hyp_id)
        label = f"hypothesis {hyp.iteration}-{hyp.op}"
        _expect(label, hyp, (HypState.PLANNED, HypState.RUNNING))
        busy = s.scalars(select(AttemptRow.job_name).where(AttemptRow.hypothesis_id == hyp_id,
                                                           AttemptRow.state.in_(states.ACTIVE_ATTEMPT))).first()
        if busy is not None:
            raise LedgerConflict(f"{label} already has an active attempt ({busy}): refused a second one")
        if hyp.state == HypState.PLANNED:
            _set(label, hyp, HypState.RUNNING)
        number = (s.scalar(select(func.max(AttemptRow.number)).where(AttemptRow.hypothesis_id == hyp_id)) or 0) + 1
        row = AttemptRow(hypothesis_id=hyp_id, number=number, job_name=f"{batch}_{index}", batch=batch,
                         array_index=index, state=AttemptState.CREATED, requeues=0, created_at=now, rung=hyp.rung)
        s.add(row)
        s.flush()
        out.append(_attempt(row))
    return Applied(True, tuple(out))


def _mark_winner(s: Session, a: MarkWinner, now: float) -> Applied:
    row = _get_hyp(s, a.hypothesis_id)
    _expect(f"hypothesis {row.iteration}-{row.op}", row, HypState.DONE)
    others = s.scalars(select(HypothesisRow).where(HypothesisRow.iteration == row.iteration,
                                                   HypothesisRow.kind == row.kind,
                                                   HypothesisRow.winner.is_(True))).all()
    if any(o.id != row.id for o in others):
        raise LedgerConflict(f"iteration {row.iteration} already has a winner: refused a second one")
    if row.winner:
        return Applied(False)
    row.winner = True
    _event(s, now, "winner", f"iteration {row.iteration}: {row.op} wins ({a.why})", row.id)
    return Applied(True)


def _add_hypotheses(s: Session, a: AddHypotheses, now: float) -> Applied:
    """Planned hypotheses; those already there (same iteration, op, kind) are left as they are."""
    changed = False
    for h in a.hypotheses:
        exists = s.scalars(select(HypothesisRow.id).where(
            HypothesisRow.iteration == h.iteration, HypothesisRow.op == h.op, HypothesisRow.kind == h.kind)).first()
        if exists is not None:
            continue
        if h.state not in (HypState.PLANNED, HypState.NOT_APPLICABLE):
            raise LedgerError(f"hypothesis {h.iteration}-{h.op}: a new hypothesis is PLANNED or NOT_APPLICABLE, "
                              f"not {h.state.value}")
        row = HypothesisRow(**h.__dict__, winner=False, created_at=now)
        if h.state == HypState.NOT_APPLICABLE:
            row.ended_at = now
        s.add(row)
        s.flush()
        _event(s, now, "plan", f"{h.iteration}-{h.op} ({h.kind}) {h.state.value.lower()}"
                               + (f": {h.reason}" if h.reason else ""), row.id)
        changed = True
    return Applied(changed)


def _search_row(s: Session) -> SearchRow:
    row = s.scalars(select(SearchRow)).one_or_none()
    if row is None:
        raise LedgerError("the ledger has no search row")
    return row


def _end_search(s: Session, a: EndSearch, now: float) -> Applied:
    row = _search_row(s)
    if row.state == a.state:
        return Applied(False)
    _expect(f"search {row.name}", row, SearchState.RUNNING)
    if a.cancel_unfinished is not None:
        unfinished = s.scalars(select(HypothesisRow).where(HypothesisRow.state.in_(
            (HypState.PLANNED, HypState.RUNNING)))).all()
        for hyp in unfinished:
            busy = s.scalars(select(AttemptRow.job_name).where(AttemptRow.hypothesis_id == hyp.id,
                                                               AttemptRow.state.in_(states.ACTIVE_ATTEMPT))).first()
            if busy is not None:
                raise LedgerConflict(f"hypothesis {hyp.iteration}-{hyp.op} has an active attempt ({busy}): the "
                                     "search cannot end yet")
            _set(f"hypothesis {hyp.iteration}-{hyp.op}", hyp, HypState.CANCELLED)
            hyp.reason, hyp.ended_at = a.cancel_unfinished, now
    _set(f"search {row.name}", row, a.state)
    row.error, row.ended_at = a.reason, now
    _event(s, now, "search", f"search {a.state.value.lower()}" + (f": {a.reason}" if a.reason else ""))
    return Applied(True)


def _cancel(s: Session, a: CancelSearch, now: float) -> Applied:
    """Active attempts and unfinished hypotheses become CANCELLED; the attempts that were active are
    returned (their jobs are to be cancelled)."""
    out = []
    for att in s.scalars(select(AttemptRow).where(AttemptRow.state.in_(states.ACTIVE_ATTEMPT))):
        out.append(_attempt(att))
        _set(f"attempt {att.job_name}", att, AttemptState.CANCELLED)
        att.reason, att.ended_at = a.reason, now
        if att.scheduler_state is not None:
            att.scheduler_state = "CANCELLED"
    for hyp in s.scalars(select(HypothesisRow).where(HypothesisRow.state.in_((HypState.PLANNED, HypState.RUNNING)))):
        _set(f"hypothesis {hyp.iteration}-{hyp.op}", hyp, HypState.CANCELLED)
        hyp.reason, hyp.ended_at = a.reason, now
    row = _search_row(s)
    if row.state != SearchState.CANCELLED:
        _set(f"search {row.name}", row, SearchState.CANCELLED)
        row.error, row.ended_at = a.reason, now
    _event(s, now, "search", f"cancelled: {a.reason} ({len(out)} jobs)")
    return Applied(True, tuple(out))


def _resume(s: Session, a: ResumeSearch, now: float) -> Applied:
    row = _search_row(s)
    if row.state == SearchState.RUNNING:
        return Applied(False)
    _expect(f"search {row.name}", row, (SearchState.CANCELLED, SearchState.FAILED))
    was = row.state
    _set(f"search {row.name}", row, SearchState.RUNNING)
    row.error, row.ended_at = None, None
    hyps = s.scalars(select(HypothesisRow).where(HypothesisRow.state == HypState.CANCELLED)).all()
    for hyp in hyps:
        _set(f"hypothesis {hyp.iteration}-{hyp.op}", hyp, HypState.PLANNED)
        hyp.reason, hyp.ended_at = None, None
    _event(s, now, "search", f"resumed (was {was.value.lower()}; {len(hyps)} cancelled hypotheses planned again)")
    return Applied(True)


def _log(s: Session, a: LogEvent, now: float) -> Applied:
    _event(s, now, a.kind, a.message, a.hypothesis_id)
    return Applied(False)


_HANDLERS: dict[type, Callable[[Session, Any, float], Applied]] = {
    RecordJobIds: _record_job_ids, AbandonAttempt: _abandon, ObserveAttempt: _observe, NoteScheduler: _note,
    IngestResult: _ingest, IngestRung: _ingest_rung, PromoteRung: _promote,
    FailAttempt: _fail, InterruptAttempt: _interrupt, CreateAttempts: _create_attempts, MarkWinner: _mark_winner,
    AddHypotheses: _add_hypotheses, EndSearch: _end_search, CancelSearch: _cancel, ResumeSearch: _resume,
    LogEvent: _log,
}
