"""The ledger: one SQLite file (WAL) per search, written only by the controller that holds its lease.

Every public method is one short transaction; driver errors become LedgerError; every state
change goes through ``states.check``; callers get frozen records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import sqlite3
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pas_orchestrator.core.actions import (
    LedgerAction,
)
from pas_orchestrator.errors import LedgerError
from pas_orchestrator.ledger.handlers import HANDLERS, Applied
from pas_orchestrator.ledger.records import LEASE_STALE_SECONDS, AttemptRec, EventRec, HypRec, SearchRec, Snapshot
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
            conn.execute(insert(Meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
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
        self._private: Path | None = None  # a copy read instead of the ledger (read-only storage with a WAL)
        uri = _uri(self._readable_copy() if readonly else self.path, readonly)
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
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    def _readable_copy(self, tries: int = 3) -> Path:
        """What a reader opens: the ledger itself, or, on storage it cannot write with transactions still in the
        ``-wal`` file (a search copied while it ran, or killed), a private copy of both (SQLite reads a WAL only
        where it can make its ``-shm`` index, and ignores it in the immutable mode that read-only storage
        needs). A copy that changed while it was made (its search runs elsewhere) is made again."""
        wal = self.path.with_name(self.path.name + "-wal")
        if _writable(self.path) or not wal.is_file() or wal.stat().st_size == 0:
            return self.path
        self._private = Path(tempfile.mkdtemp(prefix="pas-ledger-"))
        for _ in range(tries):
            before = [(p.stat().st_size, p.stat().st_mtime_ns) for p in (self.path, wal)]
            for p in (self.path, wal):
                shutil.copyfile(p, self._private / p.name)
            if [(p.stat().st_size, p.stat().st_mtime_ns) for p in (self.path, wal)] == before:
                return self._private / self.path.name
        shutil.rmtree(self._private, ignore_errors=True)
        self._private = None
        raise LedgerError(f"{self.path}: changed while it was read (its search writes it elsewhere, and this "
                          "storage is read-only here): look again in a moment")

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
            return row.record()

    def search(self) -> SearchRec:
        with self._tx() as s:
            row = s.scalars(select(SearchRow)).one_or_none()
            if row is None:
                raise LedgerError(f"{self.path}: no search yet (its controller is starting it; look again in a moment)")
            return row.record()

    # ---------------------------------------------------------------- changes
    def apply(self, action: LedgerAction) -> Applied:
        """Apply one action of the decision core in one transaction: the only place a state is assigned.
        Compare-and-set: an action that expects a row in a state it is no longer in raises LedgerConflict
        and changes nothing; a missing row raises LedgerError."""
        handler = HANDLERS.get(type(action))
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
            rows: Any = s.execute(select(*[a_table.c[f] for f in _ATTEMPT_FIELDS])  # plain tuples, in field order
                                  .order_by(a_table.c.hypothesis_id, a_table.c.number))
            for r in rows:
                attempts.setdefault(r.hypothesis_id, []).append(
                    AttemptRec(**{**dict(zip(_ATTEMPT_FIELDS, r, strict=True)), "state": AttemptState(r.state)}))
            h_table = HypothesisRow.__table__
            rows = s.execute(select(*[h_table.c[f] for f in _HYP_FIELDS]).order_by(h_table.c.iteration, h_table.c.id))
            hyps = tuple(HypRec(**{**dict(zip(_HYP_FIELDS, r, strict=True)), "state": HypState(r.state)},
                                attempts=tuple(attempts.get(r.id, ()))) for r in rows)
            return Snapshot(row.record(), hyps)

    def last_activity(self) -> float:
        """When the search last did something: its controller's heartbeat or its last event (epoch seconds;
        not the file's mtime, which a running search leaves alone while it writes the -wal file)."""
        with self._tx() as s:
            times = [s.scalar(select(func.max(EventRow.time))), s.scalar(select(func.max(LeaseRow.heartbeat))),
                     s.scalar(select(func.max(SearchRow.created_at)))]
            return max((t for t in times if t is not None), default=0.0)

    def last_event_id(self) -> int:
        """The id of the newest event (0: none yet): where a follower that wants only news starts."""
        with self._tx() as s:
            return int(s.scalar(select(func.max(EventRow.id))) or 0)

    def events_after(self, event_id: int, limit: int = 1000) -> tuple[int, list[EventRec]]:
        """The events recorded after event ``event_id`` (0: from the first), oldest first, at most ``limit``, and the
        id of the last one returned (``event_id`` when there is none): a follower's next call starts there."""
        with self._tx() as s:
            rows = s.scalars(select(EventRow).where(EventRow.id > event_id).order_by(EventRow.id).limit(limit)).all()
            last = rows[-1].id if rows else event_id
            return last, [EventRec(r.time, r.kind, r.hypothesis_id, r.message) for r in rows]

    def events(self, limit: int = 20) -> list[EventRec]:
        with self._tx() as s:
            rows = s.scalars(select(EventRow).order_by(EventRow.id.desc()).limit(limit)).all()
            return [EventRec(r.time, r.kind, r.hypothesis_id, r.message) for r in reversed(rows)]


_ATTEMPT_FIELDS = [f.name for f in dataclasses.fields(AttemptRec)]
_HYP_FIELDS = [f.name for f in dataclasses.fields(HypRec) if f.name != "attempts"]
