"""Database engines, chosen by URL: SQLite (embedded default) or PostgreSQL.

The same SQLAlchemy code runs on both. SQLite gets WAL journaling, a busy
timeout and enforced foreign keys on every connection, because its defaults
(rollback journal, no waiting, foreign keys off) suit neither a server with
concurrent readers nor the integrity the stores rely on. It also gets
``synchronous=FULL``: every commit is on disk before it returns, as
PostgreSQL's default ``synchronous_commit=on`` makes it. WAL's usual
``NORMAL`` survives a killed process but may roll back the last
transactions on a power loss or a kernel crash, and the services commit
exactly before they make a promise to another party (a signed receipt, an
inbox acknowledgement that lets the gateway release an envelope): losing
such a commit would lose a message that its sender was told is safe. For the
same reason a PostgreSQL session whose role or database turned
``synchronous_commit`` off has it turned back on. A bare
``postgresql://`` URL is mapped to the psycopg 3 driver.

SQLite has one writer at a time, and a writer that finds the database
locked sleeps in SQLite's busy handler (1, 2, 5, 10, ... up to 100 ms at a
time) and tries again: not in order, and never woken when the lock is
freed, so under a few concurrent writers some wait through many sleeps
while newcomers go first (issue 22: a p99 of 0.5-1.1 s for ``CreateAlert``
at 8 concurrent callers, against 27-38 ms one at a time). Each SQLite
engine therefore has a :class:`WriterQueue` (:func:`writer_queue`): a
service's units of work take their turn in it before they open their
transaction, so the threads of one process reach SQLite one at a time, in
arrival order, each woken the moment the previous one committed. SQLite's
busy handler is left for what the queue cannot order: other processes (a
worker, a command) and writes outside a unit of work.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Executable, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, StatementError

log = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """Map ``postgresql://`` / ``postgres://`` to the psycopg 3 dialect."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def private_database_file(path: Path) -> None:
    """Make an SQLite database file readable by its owner only, its folder too.

    The file holds opened records (names, passport numbers, case evidence):
    no other local user may read it. Its folder is made 0700 when this
    creates it, the file 0600 before SQLite first opens it, and SQLite gives
    its ``-wal`` and ``-shm`` files the database file's mode. An existing
    file that others can read is narrowed to 0600 (it is the service's own).
    """
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):  # mkdir(parents=True) would make the upper ones 0755
        folder.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the per-dialect settings the stores rely on.

    ``hide_parameters``: a failed statement's message (which ends up in a
    logged traceback) names no bound values — they can be payloads, envelopes
    or sealed secrets.
    """
    url = normalize_url(url)
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            private_database_file(Path(database).expanduser())
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # see the module docstring
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.close()

        _WRITER_QUEUES[engine] = WriterQueue()
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _pg_durable_commits(dbapi_conn: Any, _record: Any) -> None:
        # PostgreSQL's default already waits for the WAL flush, but a role or
        # database may have been set to ``synchronous_commit = off`` (a
        # common tuning) and every receipt would then promise what a crash
        # can take back. Only ``off`` is raised: ``local`` flushes locally
        # too, and the replication levels (``remote_write``, ``on`` with
        # standbys, ``remote_apply``) are stricter, so they stay.
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True  # a SET inside a transaction would be rolled back
        try:
            with dbapi_conn.cursor() as cur:  # one round trip, whatever the setting
                cur.execute(
                    "SELECT set_config('synchronous_commit', 'on', false) "
                    "WHERE current_setting('synchronous_commit') = 'off'"
                )
        finally:
            dbapi_conn.autocommit = autocommit

    return engine


#: How long an SQLite writer waits for the database (busy handler and writer queue alike).
BUSY_TIMEOUT_MS = 30_000


class WriterQueue:
    """The writers of one SQLite database in one process, served in arrival order.

    A lock handed from one holder directly to the longest waiter (no
    barging: a thread arriving as the lock is released queues behind those
    already waiting), each waiter woken when its turn comes rather than
    polling. Re-entrant for the thread that holds it, because a unit of
    work that opens another one inside itself did so before there was a
    queue (SQLite orders those two, as ever).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiting: deque[tuple[int, threading.Lock]] = deque()

    def acquire(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the turn; False when it did not come."""
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None and not self._waiting:
                self._owner, self._depth = me, 1
                return True
            gate = threading.Lock()
            gate.acquire()
            entry = (me, gate)
            self._waiting.append(entry)
        if gate.acquire(timeout=timeout):
            return True  # handed over by release(): _owner is already us
        with self._mutex:
            if self._owner == me:  # handed over just as the wait ended
                return True
            self._waiting.remove(entry)
            return False

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("the writer queue is released by a thread not holding it")
            self._depth -= 1
            if self._depth:
                return
            if self._waiting:
                self._owner, gate = self._waiting.popleft()
                self._depth = 1
                gate.release()
            else:
                self._owner = None

    def waiting(self) -> int:
        """How many threads wait for their turn (for metrics and tests)."""
        with self._mutex:
            return len(self._waiting)

    @contextmanager
    def turn(self, timeout: float = BUSY_TIMEOUT_MS / 1000) -> Iterator[None]:
        """Hold the queue for a block; ``OperationalError``-like refusal after ``timeout``."""
        if not self.acquire(timeout):
            raise DatabaseBusy(
                f"the database stayed busy for {timeout:g} s ({self.waiting()} writers waiting)"
            )
        try:
            yield
        finally:
            self.release()


class DatabaseBusy(sqlite3.OperationalError):
    """A writer's turn did not come within the busy timeout (what SQLite reports as locked)."""


_WRITER_QUEUES: weakref.WeakKeyDictionary[Engine, WriterQueue] = weakref.WeakKeyDictionary()


def writer_queue(engine: Engine) -> WriterQueue | None:
    """The writer queue of an SQLite engine made by :func:`make_engine` (None otherwise)."""
    return _WRITER_QUEUES.get(engine)


def write_turn(engine: Engine) -> AbstractContextManager[None]:
    """Wrap a write transaction opened outside a unit of work: its turn on SQLite, else nothing.

    ``with write_turn(engine), engine.begin() as conn: ...``
    """
    queue = writer_queue(engine)
    return queue.turn() if queue is not None else nullcontext()


def warm_pool(engine: Engine, tables: Sequence[str]) -> int:
    """Open the pool's connections now, each with ``tables`` (and their indexes) looked at.

    Why: a pool opens connections only when concurrency first needs them,
    and a new PostgreSQL connection is slow at first: the server starts a
    backend, and each table and index it touches is loaded into that
    backend's caches on first use. Under a first burst of load (the first
    busy minute after a start) those first uses land on the requests of the
    moment, and on a node on the transactions every other writer waits for:
    in the latency bench, the first eight seconds at 100 alerts/s opened four
    connections at the issuing node and had a p99 of 74 to 83 ms, against
    24 to 31 ms once they were open. Planning ``SELECT 1 FROM t LIMIT 0``
    loads a table and all its indexes and reads no row. Returns how many
    connections were opened; nothing for SQLite (no pool to grow).
    """
    if engine.dialect.name != "postgresql":
        return 0
    size = int(getattr(engine.pool, "size", lambda: 0)())
    held: list[Connection] = []
    try:
        for _ in range(size):  # all at once: the pool must open that many
            conn = engine.connect()
            held.append(conn)
            for table in tables:
                conn.exec_driver_sql(f"SELECT 1 FROM {table} LIMIT 0")  # noqa: S608
            conn.rollback()
    finally:
        for conn in held:
            conn.close()
    return len(held)


# --- statements ----------------------------------------------------------------------
#
# One idiom for every statement of the stores: a :class:`Statement`, a module
# constant holding what runs on each database. Its portable form is a
# SQLAlchemy construct; a dialect gets text of its own only where the
# construct cannot say it (a data-modifying CTE, an upsert, JSON taken
# apart in SQL) or where a measurement showed the driver's own cursor pays
# (a hot statement: SQLAlchemy's execute costs about 100 µs of CPU against
# psycopg's 25 for a short UPDATE). Which form runs is decided here and
# nowhere else: callers execute a statement and get rows.


@dataclass(frozen=True, slots=True)
class Ran:
    """What a statement did: the rows it changed (``rowcount``) and the rows it returned."""

    rowcount: int
    rows: list[Any]

    def first(self) -> Any:
        """The first row returned, or None."""
        return self.rows[0] if self.rows else None

    def scalars(self) -> list[Any]:
        """The first column of every row returned."""
        return [r[0] for r in self.rows]


#: a statement's form: a SQLAlchemy construct, or driver text
Form = Executable | str


class Statement:
    """One statement of a store, written in one place with its per-dialect forms.

    ``portable`` is a SQLAlchemy construct that runs on any database the
    statement has no form of its own for. ``postgresql`` and ``sqlite`` are
    that database's own form: a construct (a dialect's ``insert(...)
    .on_conflict_do_nothing()``), or text run on the driver's own cursor,
    with named parameters in psycopg's style (``%(name)s``; SQLite's text is
    given the same way and turned into ``:name``). Text runs inside the
    caller's transaction, its errors raised as SQLAlchemy raises them, and
    returns tuples (``named=True``: rows with attribute access, as
    SQLAlchemy's, on PostgreSQL). ``prepare=True`` has psycopg prepare the
    text at once, for a connection kept for one lookup (a pooled
    connection loses its prepared statements at every rollback);
    ``binary=True`` has PostgreSQL send the results in binary (byte strings
    as they are, not as hex text).

    ``params`` may be a list of parameter sets: the statement then runs once
    for each (executemany) and returns no rows. Text may also take
    positional parameters (``%s``, SQLite's ``?``): one set is a tuple.
    """

    __slots__ = ("binary", "named", "portable", "postgresql", "prepare", "sqlite")

    def __init__(
        self,
        portable: Executable | None = None,
        *,
        postgresql: Form | None = None,
        sqlite: Form | None = None,
        named: bool = False,
        prepare: bool = False,
        binary: bool = False,
    ) -> None:
        self.portable = portable
        self.postgresql = postgresql
        self.sqlite = re.sub(r"%\((\w+)\)s", r":\1", sqlite) if isinstance(sqlite, str) else sqlite
        self.named = named
        self.prepare = prepare
        self.binary = binary

    def form(self, dialect: str) -> Form:
        """What runs on ``dialect`` (a SQLAlchemy dialect name)."""
        own = {"postgresql": self.postgresql, "sqlite": self.sqlite}.get(dialect)
        form = own if own is not None else self.portable
        if form is None:
            raise RuntimeError(f"this statement has no form for {dialect}")
        return form

    def execute(
        self,
        conn: Connection,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | Sequence[Any] | None = None,
    ) -> Ran:
        """Run the form for ``conn``'s database in its transaction."""
        dialect = conn.dialect.name
        form = self.form(dialect)
        many = isinstance(params, list) and bool(params)
        if not isinstance(form, str):
            result = conn.execute(form, params)
            rows = list(result.all()) if result.returns_rows else []
            return Ran(int(result.rowcount or 0), rows)
        if dialect == "postgresql":
            with pg_cursor(conn, named=self.named, binary=self.binary) as cursor:
                if many:
                    cursor.executemany(form, params)
                    return Ran(int(cursor.rowcount), [])
                cursor.execute(form, params, prepare=self.prepare or None)
                rows = cursor.fetchall() if cursor.description is not None else []
                return Ran(int(cursor.rowcount), rows)
        with sqlite_driver(conn) as driver:
            if many:
                cursor = driver.executemany(form, params)
                return Ran(int(cursor.rowcount), [])
            cursor = driver.execute(form, params if params is not None else ())
            rows = cursor.fetchall() if cursor.description is not None else []
            return Ran(int(cursor.rowcount), rows)


def pipelines(conn: Connection) -> bool:
    """Whether ``conn`` sends statements with its ``COMMIT`` (:func:`pg_execute_and_commit`).

    PostgreSQL through psycopg (pipeline mode); the one fast path of the
    write paths that is not a statement's own text (measured by
    ``bench/node_writes.py``).
    """
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


class KeptReader:
    """A connection of its own for a lookup made on every call, kept open on PostgreSQL.

    Why: a PostgreSQL pool checkout costs a ping and a reset besides the
    lookup (an officer's token on every request, the sender's look at its
    queue for nearly every message). The kept connection is in autocommit,
    so no transaction is left open between lookups; one that fails (e.g.
    the server restarted) is replaced and the lookup tried once more, as the
    pool's ping would have done. On SQLite a checkout costs nothing worth
    keeping a connection for: each lookup takes one from the pool. One
    thread at a time.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._keep = engine.dialect.name == "postgresql"
        self._lock = threading.Lock()
        #: the kept connection (PostgreSQL, once a lookup opened it)
        self.connection: Connection | None = None

    def execute(self, statement: Statement, params: Any = None) -> Ran:
        if not self._keep:
            with self.engine.connect() as conn:
                return statement.execute(conn, params)
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self.connection is None:
                        self.connection = self.engine.connect().execution_options(
                            isolation_level="AUTOCOMMIT"
                        )
                    ran = statement.execute(self.connection, params)
                    if self.connection.in_transaction():
                        self.connection.rollback()  # SQLAlchemy's bookkeeping only
                    return ran
                except Exception:
                    self._close()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                log.debug("closing a kept connection failed", exc_info=True)


# --- the drivers' own cursors (what Statement runs text on) ----------------------------


@contextmanager
def pg_cursor(conn: Connection, *, named: bool = False, binary: bool = False) -> Iterator[Any]:
    """A psycopg cursor on ``conn``'s connection, its errors raised as SQLAlchemy's.

    For the hottest statements on PostgreSQL: SQLAlchemy's execute costs
    several times what psycopg's does (about 100 against 25 µs of CPU for a
    short UPDATE). The statement runs in ``conn``'s transaction (psycopg
    begins it with the first statement; ``conn``'s commit or rollback ends
    it). A driver error is wrapped as SQLAlchemy wraps it (``IntegrityError``,
    ``OperationalError`` with the driver's error as ``orig``, without bound
    values), so callers see the same exceptions as through ``conn``; a lost
    connection is invalidated as SQLAlchemy does it, and the error says so
    (``connection_invalidated``), so retry-on-disconnect logic still works.
    Statement text in psycopg's own style (``%(name)s``); rows are tuples.

    Not ``prepare=True`` on these pooled connections: psycopg deallocates
    every prepared statement of a connection at each rollback (a read's
    return to the pool is one), and preparing costs a round trip of its own,
    so statements would mostly be prepared again and again. psycopg's own
    rule (prepare after five uses) applies, as through SQLAlchemy.
    """
    import psycopg

    raw: Any = conn.connection.driver_connection
    try:
        if named:
            from psycopg.rows import namedtuple_row

            with raw.cursor(row_factory=namedtuple_row, binary=binary) as cursor:
                yield cursor
        else:
            with raw.cursor(binary=binary) as cursor:
                yield cursor
    except psycopg.Error as exc:
        raise _as_sqlalchemy_error(conn, raw, exc) from exc


def _as_sqlalchemy_error(conn: Connection, raw: Any, exc: Exception) -> StatementError:
    import psycopg

    lost = bool(raw.broken or raw.closed)
    if lost:
        conn.invalidate(exc)
    return DBAPIError.instance(
        None,
        None,
        exc,
        psycopg.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=conn.dialect,
    )


def pg_execute_and_commit(
    conn: Connection, statements: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[list[tuple[Any, ...]]]:
    """Run ``statements`` and commit ``conn``'s transaction, in one round trip.

    Why: a transaction that holds a lock every writer needs (a counter, the
    audit state) holds it from the statement that takes it until its
    commit, and every step in between that waits for this process (for an
    answer to arrive, then for the interpreter to run the next line) is
    time the other writers wait too. psycopg's pipeline mode sends the
    statements and the ``COMMIT`` together; the server runs them back to
    back. Returns each statement's rows (empty for a statement that returns
    none). The first failure aborts the rest and the transaction and is
    raised as :func:`pg_cursor` raises it; ``conn``'s own commit afterwards
    finds nothing to do.
    """
    import psycopg

    raw: Any = conn.connection.driver_connection
    cursors: list[Any] = []
    try:
        with raw.pipeline():
            for sql, params in statements:
                cursor = raw.cursor()
                cursors.append(cursor)
                cursor.execute(sql, params)
            raw.commit()
        return [c.fetchall() if c.description is not None else [] for c in cursors]
    except psycopg.Error as exc:
        raise _as_sqlalchemy_error(conn, raw, exc) from exc
    finally:
        for cursor in cursors:
            cursor.close()


def pg_execute(
    conn: Connection, sql: str, params: Mapping[str, Any] | Sequence[Any]
) -> tuple[int, list[tuple[Any, ...]]]:
    """Run one statement on :func:`pg_cursor`: the rows it changed, and the rows it returned."""
    with pg_cursor(conn) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description is not None else []
        return int(cursor.rowcount), rows


@contextmanager
def sqlite_driver(conn: Connection) -> Iterator[Any]:
    """The pysqlite connection under ``conn``, its errors raised as SQLAlchemy's.

    For the hottest statements: a SQLAlchemy execute costs several times a
    short SQLite statement. pysqlite still begins the transaction lazily
    before the first write, and ``conn``'s commit or rollback ends it. A
    driver error is wrapped as SQLAlchemy wraps it (``IntegrityError``,
    ``OperationalError``, ... without bound values), so callers see the same
    exceptions as through ``conn``.
    """
    try:
        yield conn.connection.driver_connection
    except sqlite3.Error as exc:
        raise DBAPIError.instance(
            None, None, exc, sqlite3.Error, hide_parameters=True, dialect=conn.dialect
        ) from exc
