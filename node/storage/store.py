"""Transactions, the event log and idempotency records of the node.

Every change the node makes goes through :meth:`Store.write`, a unit of
work that gives three guarantees the rest of the node relies on:

* **Events in the same transaction.** ``w.event(...)`` queues an event row
  that is inserted just before commit, in the transaction that made the
  change. The ``node_events`` table is both the transactional outbox (what
  the notifier must still fan out: ``notified_ms IS NULL``) and the feed
  log that ``WatchAlerts`` replays; a change without its event, or an event
  without its change, cannot exist.
* **Sequence numbers in commit order.** Event ``seq`` values come from a
  counter row incremented inside the transaction
  (``UPDATE node_counters SET value = value + n WHERE name = 'events'
  RETURNING value``). The row lock is held until commit, so a transaction
  that allocated a lower ``seq`` has committed before any higher ``seq``
  becomes visible: a reader that saw ``seq = 41`` and asks "after 41" can
  never miss a late-committing 40. An autoincrement column does not give
  this (ids are handed out at insert and commit in any order). The price is
  that event-writing transactions serialize on the counter from the moment
  they allocate; allocation therefore happens last, just before the audit
  entry and the commit, and the audit entry comes after it so every
  transaction takes the two locks in the same order (no deadlock).
* **Wake-ups after commit.** Callbacks (wake the sender thread, wake feed
  streams) run only once the transaction is durable, never for a rollback.
  A commit with events wakes :data:`EVENTS_TOPIC`, which feed streams
  follow (here at once, in other processes through Redis; the notifier's
  ``fan_out`` task wakes it too, for every process), and the outbox relay of
  this process (:meth:`Store.wait_commit`), which only commits wake: the
  confirmation of an event it already handed over must not send it to the
  database again.

The write path is the node's hottest code, so its statements are built once
(module constants, bound parameters) and executed with parameter sets: no
statement is constructed, hashed for the compiled cache or compiled per call.
On PostgreSQL the event counter and the event rows are one statement (a
data-modifying CTE), together with the new rows a mutation handed to
:meth:`Writer.insert_later` (rows nothing reads back before commit: an
issued alert, its views, deliveries and outbox rows, the idempotency
record); all audit entries of a transaction are appended as one batch by
the database itself (:meth:`AuditLog.append_statement`, one function call).
Those two statements take the rows every writer of the node waits for (the
event counter, the audit state), so they leave together with the
``COMMIT``, in one round trip (:func:`intelshare.db.pg_execute_and_commit`):
the rows stay locked for the server's work and the WAL flush only, never
while this process waits for an answer or for the interpreter. Issuing an
alert thus sends everything it writes and its ``COMMIT`` in one round trip. On SQLite the
database write lock is the whole transaction's anyway, and the audit batch
is appended in Python (:meth:`AuditLog.append_many`). There a unit of work
first takes its turn in the engine's :class:`~intelshare.db.WriterQueue`
and holds it until its commit: the node's writers reach SQLite one at a
time, in arrival order, rather than sleeping in SQLite's busy handler and
retrying while newcomers go first (the long tail of issue 22; measured by
``bench/concurrency.py``). Waiting there holds no pooled connection.

Committed events are also kept in memory for a while (:meth:`Store.feed_after`):
committed sequence numbers have no gaps (a rolled-back allocation is rolled
back with its counter), so a feed whose cursor is followed by events this
process committed can send them without reading them back.

Events carry ids only — alert id, case id, partner agency — never content:
whoever is notified fetches the record and is checked for access then.

Event types (``type``): ``alert.issued``, ``alert.received``,
``alert.updated``, ``alert.revoked``, ``alert.acknowledged``,
``alert.hit_reported``, ``alert.delivered``, ``alert.delivery_failed``,
``alert.expired``, ``alert.purged``; ``case.*`` for cases.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Row, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from intelshare.audit import AuditLog, FieldValue
from intelshare.db import Statement, pg_execute_and_commit, pipelines, writer_queue
from intelshare.errors import RequestIdReused
from intelshare.pagetokens import PageTokens
from intelshare.wakeup import WakeupHub
from node.storage import tables as t

if TYPE_CHECKING:
    from node.metrics import NodeMetrics

#: Wake-up topic for anything appended to the event log (feeds wait on it).
EVENTS_TOPIC = "node:events"
#: Committed events a process keeps in memory for its feeds.
RECENT_EVENTS = 4096

EVENT_TYPES = frozenset(
    {
        "alert.issued",
        "alert.received",
        "alert.updated",
        "alert.revoked",
        "alert.acknowledged",
        "alert.hit_reported",
        "alert.delivered",
        "alert.delivery_failed",
        "alert.expired",
        "alert.purged",
        # review before release and onward sharing (node.kinds.reviews, .forwarding)
        "alert.review_pending",
        "alert.approved",
        "alert.rejected",
        "alert.forward_requested",
        "alert.forwarded",
        "alert.forward_refused",
        "alert.forward_recalled",
        "alert.consent_requested",
        "alert.consent_granted",
        "alert.consent_refused",
    }
)


#: Families of event types beside :data:`EVENT_TYPES`: cases, generic records, the
#: identifier index's links, and the IPR kinds (node.kinds.recordations, .detentions).
EVENT_FAMILIES = (
    "case.",
    "record.",
    "link.",
    "recordation.",
    "detention.",
    "detention_report.",
)

#: Record ids one ``read`` audit entry names at most (leaves are capped at 16 KiB).
AUDIT_IDS_PER_ENTRY = 200


def now_ms() -> int:
    return int(time.time() * 1000)


def dumps(value: Any) -> str:
    """Canonical JSON text: sorted keys, compact, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes(value: Any) -> bytes:
    return dumps(value).encode("utf-8")


def rows_by(conn: Connection, query: Any, key: str) -> dict[Any, list[Row[Any]]]:
    """The rows of ``query``, in its order, grouped by their column ``key``.

    How a page of records gathers its children (deliveries, hits, members)
    in one statement instead of one per record.
    """
    out: dict[Any, list[Row[Any]]] = {}
    for row in conn.execute(query):
        out.setdefault(getattr(row, key), []).append(row)
    return out


@dataclass(frozen=True)
class Event:
    seq: int
    event_id: str
    type: str
    alert_id: str | None
    case_id: str | None
    agency_id: str | None
    created_ms: int
    notified_ms: int | None
    entry_id: str | None = None
    #: the generic record an event is about (record.* events; node.sharing.records)
    record_id: str | None = None


@dataclass
class Writer:
    """One open write transaction; see the module docstring."""

    conn: Connection
    _events: list[dict[str, Any]] = field(default_factory=list)
    _audits: list[tuple[str, Mapping[str, FieldValue]]] = field(default_factory=list)
    _after: list[Callable[[], None]] = field(default_factory=list)
    _later: list[tuple[Table, list[dict[str, Any]]]] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    created_ms: int = 0
    _inbox: int | None = None

    def event(
        self,
        type_: str,
        *,
        alert_id: str | None = None,
        case_id: str | None = None,
        agency_id: str | None = None,
        entry_id: str | None = None,
        record_id: str | None = None,
    ) -> None:
        """Record that something happened, in this transaction."""
        if type_ not in EVENT_TYPES and not type_.startswith(EVENT_FAMILIES):
            raise ValueError(f"unknown event type {type_!r}")
        self._events.append(
            {
                "event_id": str(uuid.uuid4()),
                "type": type_,
                "alert_id": alert_id,
                "case_id": case_id,
                "agency_id": agency_id,
                "entry_id": entry_id,
                "record_id": record_id,
            }
        )

    def audit(self, event: str, fields: Mapping[str, FieldValue]) -> None:
        """Append an audit entry in this transaction (metadata only, never content)."""
        self._audits.append((event, dict(fields)))

    def audit_reads(
        self, officer_id: str, field: str, ids: Sequence[str], **context: FieldValue
    ) -> None:
        """Record that an officer read received records: ``read`` entries naming them all.

        At most :data:`AUDIT_IDS_PER_ENTRY` ids an entry (leaves are capped at
        16 KiB), so a page of any size is audited whole; nothing for no ids.
        """
        for start in range(0, len(ids), AUDIT_IDS_PER_ENTRY):
            entry: dict[str, FieldValue] = {"officer_id": officer_id}
            entry[field] = list(ids[start : start + AUDIT_IDS_PER_ENTRY])
            entry.update(context)
            self.audit("read", entry)

    def insert_later(
        self, table: Table, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert ``rows`` (all with the same columns) when the transaction ends.

        They are written just before the events, in the order given, and on
        PostgreSQL in the same statement as the events: a mutation's new rows
        cost one round trip instead of one each. Only for rows that nothing
        in this transaction reads back (they are not there before the end);
        a constraint they break fails the transaction at its end.
        """
        batch = [dict(rows)] if isinstance(rows, Mapping) else [dict(r) for r in rows]
        if batch:
            self._later.append((table, batch))

    def advance_inbox(self, sequence: int) -> None:
        """Move the inbox cursor forward to ``sequence`` when the transaction ends.

        Never backward (a cursor already further stays). On PostgreSQL it is
        part of the statement with the events and the rows inserted later:
        an inbox batch costs no round trip of its own for its cursor.
        """
        if self._inbox is None or sequence > self._inbox:
            self._inbox = sequence

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after.append(callback)

    def _flush(self, audit: AuditLog | None) -> None:
        created = now_ms()
        if self._audits and audit is None:
            raise RuntimeError("this store has no audit log")
        if pipelines(self.conn):
            # The statements that take the locks every writer of the node
            # waits for (the event counter, the audit state) go last, with
            # the COMMIT, in one round trip: see pg_execute_and_commit.
            statements = []
            if self._events or self._later or self._inbox is not None:
                statements.append(
                    _pg_flush_statement(self._later, self._events, created, self._inbox)
                )
            if self._audits and audit is not None:
                statements.append(audit.append_statement(self._audits))
            if statements:
                results = pg_execute_and_commit(self.conn, statements)
                if self._events:
                    self.seqs = _seqs(results[0], len(self._events))
                    self.created_ms = created
            return
        for table, rows in self._later:
            self.conn.execute(_insert_of(table), rows[0] if len(rows) == 1 else rows)
        if self._inbox is not None:
            self.conn.execute(_ADVANCE_INBOX, {"new_sequence": self._inbox, "at": created})
        if self._events:
            self.seqs = _insert_events(self.conn, self._events, created)
            self.created_ms = created
        if self._audits and audit is not None:
            audit.append_many(self.conn, self._audits)


# --- statements of the write path, built once --------------------------------------

_EVENT_KEYS = ("event_id", "type", "alert_id", "case_id", "agency_id", "entry_id", "record_id")

_ALLOCATE = (
    update(t.counters)
    .where(t.counters.c.name == "events")
    .values(value=t.counters.c.value + bindparam("n"))
    .returning(t.counters.c.value)
)
_INSERT_EVENTS = insert(t.events)
_ADVANCE_INBOX = (
    update(t.inbox)
    .where(t.inbox.c.id == 1, t.inbox.c.sequence < bindparam("new_sequence"))
    .values(sequence=bindparam("new_sequence"), updated_ms=bindparam("at"))
)
_PG_ADVANCE_INBOX = (
    f"UPDATE {t.inbox.name} SET sequence = %(inbox_seq)s, updated_ms = %(ev_created_ms)s "  # noqa: S608
    "WHERE id = 1 AND sequence < %(inbox_seq)s"
)

# PostgreSQL: the rows inserted later and the events go in one statement of
# data-modifying CTEs; the counter's row lock is taken by its UPDATE and held
# until commit, exactly as with a statement of its own. Constraints (foreign
# keys too) are checked at the end of the statement, when every row is there.
_PG_EVENTS_CTE = (
    "c AS (UPDATE node_counters SET value = value + %(ev_n)s WHERE name = 'events' RETURNING value)"
)
_PG_ONE_EVENT = (
    "INSERT INTO node_events (seq, event_id, type, alert_id, case_id, agency_id, entry_id, "
    "record_id, created_ms) "
    "SELECT c.value, %(ev_event_id)s, %(ev_type)s, %(ev_alert_id)s, %(ev_case_id)s, "
    "%(ev_agency_id)s, %(ev_entry_id)s, %(ev_record_id)s, %(ev_created_ms)s FROM c RETURNING seq"
)
_PG_EVENTS = (
    "INSERT INTO node_events (seq, event_id, type, alert_id, case_id, agency_id, entry_id, "
    "record_id, created_ms) "
    "SELECT c.value - %(ev_n)s + e.ord, e.event_id, e.type, e.alert_id, e.case_id, e.agency_id, "
    "e.entry_id, e.record_id, %(ev_created_ms)s FROM c, "
    "unnest(%(ev_event_id)s::text[], %(ev_type)s::text[], %(ev_alert_id)s::text[], "
    "%(ev_case_id)s::text[], %(ev_agency_id)s::text[], %(ev_entry_id)s::text[], "
    "%(ev_record_id)s::text[]) "
    "WITH ORDINALITY AS e(event_id, type, alert_id, case_id, agency_id, entry_id, record_id, ord) "
    "RETURNING seq"
)
#: statement text per shape (tables, columns, one row or several, events)
_pg_sql: dict[tuple[Any, ...], str] = {}


def _pg_insert(table: Table, columns: tuple[str, ...], name: str) -> str:
    # One JSON parameter per table, whatever the number of rows and columns:
    # the statement text stays the same for every call of one shape, and so
    # few parameters keep psycopg's parsed-query cache working (it skips
    # queries of more than 50). Identifiers come from the table definition
    # only (an unknown column is a KeyError here); values are never inlined.
    cols = ", ".join(table.c[c].name for c in columns)
    return (
        f"INSERT INTO {table.name} ({cols}) SELECT {cols} "  # noqa: S608
        f"FROM json_populate_recordset(NULL::{table.name}, %({name})s::json)"
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()  # bytea's hex input format
    return value


def _grouped(
    later: list[tuple[Table, list[dict[str, Any]]]],
) -> list[tuple[Table, list[dict[str, Any]]]]:
    """The rows of one table (with the same columns) together, tables in first-seen order.

    A batch of inbox entries hands over rows for the same few tables once per
    entry; grouped, the statement has one part per table whatever the batch
    size (the same text for every batch, few parameters). Rows keep their
    order within a table. Safe for foreign keys: a row's referenced row was
    handed over before it (so its table was seen first), and PostgreSQL
    checks the constraints of a statement at its end anyway.
    """
    if len(later) < 2:
        return later
    groups: dict[tuple[str, tuple[str, ...]], tuple[Table, list[dict[str, Any]]]] = {}
    for table, rows in later:
        key = (table.name, tuple(rows[0]))
        group = groups.get(key)
        if group is None:
            groups[key] = (table, list(rows))
        else:
            group[1].extend(rows)
    return list(groups.values())


def _pg_flush_statement(
    later: list[tuple[Table, list[dict[str, Any]]]],
    events: list[dict[str, Any]],
    created: int,
    inbox: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """One statement: the rows inserted later, the inbox cursor and the events.

    It returns the events' ``seq`` values (one row each), when there are events.
    """
    params: dict[str, Any] = {}
    shape: list[Any] = []
    later = _grouped(later)
    for i, (table, rows) in enumerate(later):
        columns = tuple(rows[0])
        shape.append((table.name, columns))
        params[f"l{i}"] = json.dumps(
            [{c: _json_value(r[c]) for c in columns} for r in rows],
            separators=(",", ":"),
            ensure_ascii=False,
        )
    n = len(events)
    shape.append(min(n, 2))
    shape.append(inbox is not None)
    if inbox is not None:
        params["inbox_seq"] = inbox
        params["ev_created_ms"] = created
    if n:
        params["ev_n"] = n
        params["ev_created_ms"] = created
        for k in _EVENT_KEYS:
            params[f"ev_{k}"] = events[0][k] if n == 1 else [e[k] for e in events]
    key = tuple(shape)
    sql = _pg_sql.get(key)
    if sql is None:
        parts = [
            (f"l{i}", _pg_insert(table, tuple(rows[0]), f"l{i}"))
            for i, (table, rows) in enumerate(later)
        ]
        if inbox is not None:
            parts.append(("i", _PG_ADVANCE_INBOX))
        if n:
            ctes = [f"{name} AS ({part})" for name, part in parts] + [_PG_EVENTS_CTE]
            main = _PG_ONE_EVENT if n == 1 else _PG_EVENTS
        else:
            ctes = [f"{name} AS ({part})" for name, part in parts[:-1]]
            main = parts[-1][1]
        sql = f"WITH {', '.join(ctes)} {main}" if ctes else main
        _pg_sql[key] = sql
    return sql, params


def _seqs(returned: Sequence[Any], n: int) -> list[int]:
    seqs = sorted(int(r[0]) for r in returned)
    if len(seqs) != n:  # the counter row is created by the first migration
        raise RuntimeError("the event counter is missing")
    return seqs


_INSERTS: dict[str, Any] = {}


def _insert_of(table: Table) -> Any:
    statement = _INSERTS.get(table.name)
    if statement is None:
        statement = _INSERTS[table.name] = insert(table)
    return statement


def _insert_events(conn: Connection, events: list[dict[str, Any]], created: int) -> list[int]:
    n = len(events)
    last = int(conn.execute(_ALLOCATE, {"n": n}).scalar_one())
    first = last - n + 1
    rows = [
        {**e, "seq": first + i, "created_ms": created, "notified_ms": None}
        for i, e in enumerate(events)
    ]
    conn.execute(_INSERT_EVENTS, rows[0] if n == 1 else rows)
    return list(range(first, last + 1))


class Store:
    """The node's database: an engine, its audit log and its wake-up hub."""

    def __init__(self, engine: Engine, audit: AuditLog | None, hub: WakeupHub) -> None:
        self.engine = engine
        self.audit = audit
        self.hub = hub
        #: counts committed events and audited outcomes (node.metrics), when set
        self.metrics: NodeMetrics | None = None
        #: the listings' page tokens; the node keys them with its agency key (node.server)
        self.page_tokens = PageTokens.ephemeral()
        # events this process committed, by seq (see feed_after)
        self._recent: dict[int, Event] = {}
        self._recent_order: deque[int] = deque()
        self._recent_lock = threading.Lock()
        self._newest_local = 0  # the newest event this process committed
        # commits with events made by this process (see wait_commit)
        self._commits = 0
        self._commit_cond = threading.Condition()
        #: SQLite: the writers' turns (see the module docstring); None on PostgreSQL
        self.writers = writer_queue(engine)

    def _turn(self) -> AbstractContextManager[None]:
        return self.writers.turn() if self.writers is not None else nullcontext()

    @contextmanager
    def write(self) -> Iterator[Writer]:
        """A unit of work: commit on success with its events and audit entries."""
        with self._turn(), self.engine.begin() as conn:
            w = Writer(conn)
            yield w
            w._flush(self.audit)
        if w._events:
            # Feeds first: waking a thread does not run it, and the threads
            # woken earlier are first in line for the interpreter.
            self._remember(w)
            self.hub.notify(EVENTS_TOPIC)
        for callback in w._after:
            callback()
        if w._events:
            self.wake_committed()
        if self.metrics is not None:
            self.metrics.committed([(e["type"], e["agency_id"]) for e in w._events], w._audits)

    # --- events ----------------------------------------------------------------

    def commit_generation(self) -> int:
        """How many transactions with events this process committed; pass it to wait_commit."""
        with self._commit_cond:
            return self._commits

    def wait_commit(self, seen: int, timeout: float) -> bool:
        """Block until this process committed events after generation ``seen``, or timeout.

        Only commits (and :meth:`wake_committed`) end the wait, never a
        wake-up from another process: the outbox relay waits here, and a
        confirmation published by a worker means nothing new to relay.
        """
        deadline = time.monotonic() + timeout
        with self._commit_cond:
            while self._commits == seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._commit_cond.wait(remaining)
            return True

    def wake_committed(self) -> None:
        with self._commit_cond:
            self._commits += 1
            self._commit_cond.notify_all()

    def _remember(self, w: Writer) -> None:
        events = [
            Event(seq=seq, created_ms=w.created_ms, notified_ms=None, **e)
            for seq, e in zip(w.seqs, w._events, strict=True)
        ]
        with self._recent_lock:
            for e in events:
                self._recent[e.seq] = e
                self._recent_order.append(e.seq)
                self._newest_local = max(self._newest_local, e.seq)
            while len(self._recent_order) > RECENT_EVENTS:
                self._recent.pop(self._recent_order.popleft(), None)

    def newest_local_seq(self) -> int:
        """The newest event this process committed (0 before its first)."""
        with self._recent_lock:
            return self._newest_local

    def feed_after(
        self, cursor: int, limit: int, *, alert_only: bool = False, memory_only: bool = False
    ) -> list[Event]:
        """What :meth:`events_after` returns, from memory when this process committed it.

        Events are served from memory only while they follow the cursor without
        a gap: committed sequence numbers have none, so an event missing from
        memory is one another process committed (or one forgotten), and then
        the database is read. ``notified_ms`` is not kept up to date here;
        feeds do not show it.
        """
        out: list[Event] = []
        seq = cursor + 1
        with self._recent_lock:
            recent = self._recent
            while len(out) < limit:
                e = recent.get(seq)
                if e is None:
                    break
                if not alert_only or e.alert_id is not None:
                    out.append(e)
                seq += 1
        if out or memory_only:
            return out
        return self.events_after(cursor, limit, alert_only=alert_only)

    def events_after(self, cursor: int, limit: int, *, alert_only: bool = False) -> list[Event]:
        """Committed events with ``seq > cursor``, in order."""
        statement = _EVENTS_AFTER_ALERTS if alert_only else _EVENTS_AFTER
        with self.engine.connect() as conn:
            rows = statement.execute(conn, {"cursor": cursor, "limit": limit}).rows
        return [_event_of(*r) for r in rows]

    def head_seq(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(_HEAD).scalar_one()
        return int(value)

    def unnotified(self, limit: int = 100) -> list[Event]:
        """Events the notifier has not confirmed yet (the outbox view)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.events)
                .where(t.events.c.notified_ms.is_(None))
                .order_by(t.events.c.seq)
                .limit(limit)
            ).all()
        return [_event(r) for r in rows]

    def mark_notified(self, seqs: Sequence[int]) -> int:
        """Confirm fan-out of these events (idempotent)."""
        if not seqs:
            return 0
        with self._turn(), self.engine.begin() as conn:
            done = conn.execute(
                update(t.events)
                .where(t.events.c.seq.in_(list(seqs)), t.events.c.notified_ms.is_(None))
                .values(notified_ms=now_ms())
            )
        return int(done.rowcount or 0)

    # --- idempotency ---------------------------------------------------------------

    def stored_response(
        self,
        request_id: str,
        *,
        officer_id: str,
        method: str,
        fingerprint: str,
        conn: Connection | None = None,
    ) -> bytes | None:
        """The response first given for ``request_id``, or None for a new request.

        The same id with another officer, method or request body is
        ``REQUEST_ID_REUSED``: answering it with the first response would
        hide from the caller that their second request was never executed.
        Pass ``conn`` to look inside an open transaction (the mutation's own).
        """
        if conn is None:
            with self.engine.connect() as own:
                row = _STORED_RESPONSE.execute(own, {"request_id": request_id}).first()
        else:
            row = _STORED_RESPONSE.execute(conn, {"request_id": request_id}).first()
        if row is None:
            return None
        stored_officer, stored_method, stored_fingerprint, response = row
        if (
            stored_officer != officer_id
            or stored_method != method
            or stored_fingerprint != fingerprint
        ):
            raise RequestIdReused(
                f"request_id {request_id} was already used for a different request",
                metadata={"request_id": request_id},
            )
        return bytes(response)

    @staticmethod
    def save_response(
        w: Writer,
        request_id: str,
        *,
        officer_id: str,
        method: str,
        fingerprint: str,
        response: bytes,
    ) -> None:
        """Store the response inside the mutation's own transaction (at its end)."""
        w.insert_later(
            t.requests,
            {
                "request_id": request_id,
                "officer_id": officer_id,
                "method": method,
                "fingerprint": fingerprint,
                "response": response,
                "created_ms": now_ms(),
            },
        )


# Feeds read after every wake-up and every mutation with a request_id looks
# up its id: on PostgreSQL psycopg's own execute (intelshare.db.Statement).
_EVENT_COLUMNS = (
    "seq",
    "event_id",
    "type",
    "alert_id",
    "case_id",
    "agency_id",
    "entry_id",
    "created_ms",
    "notified_ms",
    "record_id",
)
_EVENTS_AFTER = Statement(
    select(*(t.events.c[c] for c in _EVENT_COLUMNS))
    .where(t.events.c.seq > bindparam("cursor"))
    .order_by(t.events.c.seq)
    .limit(bindparam("limit")),
    postgresql=f"SELECT {', '.join(_EVENT_COLUMNS)} FROM {t.events.name} "  # noqa: S608
    "WHERE seq > %(cursor)s ORDER BY seq LIMIT %(limit)s",
)
_EVENTS_AFTER_ALERTS = Statement(
    select(*(t.events.c[c] for c in _EVENT_COLUMNS))
    .where(t.events.c.seq > bindparam("cursor"), t.events.c.alert_id.is_not(None))
    .order_by(t.events.c.seq)
    .limit(bindparam("limit")),
    postgresql=f"SELECT {', '.join(_EVENT_COLUMNS)} FROM {t.events.name} "  # noqa: S608
    "WHERE seq > %(cursor)s AND alert_id IS NOT NULL ORDER BY seq LIMIT %(limit)s",
)
_HEAD = select(t.counters.c.value).where(t.counters.c.name == "events")
_STORED_RESPONSE = Statement(
    select(
        t.requests.c.officer_id,
        t.requests.c.method,
        t.requests.c.fingerprint,
        t.requests.c.response,
    ).where(t.requests.c.request_id == bindparam("request_id")),
    postgresql=f"SELECT officer_id, method, fingerprint, response FROM {t.requests.name} "  # noqa: S608
    "WHERE request_id = %(request_id)s",
)


def request_fingerprint(method: str, request_bytes: bytes) -> str:
    return hashlib.sha256(method.encode() + b"\x00" + request_bytes).hexdigest()


def is_unique_violation(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return "unique" in text or "duplicate" in text


def _event_of(
    seq: int,
    event_id: str,
    type_: str,
    alert_id: str | None,
    case_id: str | None,
    agency_id: str | None,
    entry_id: str | None,
    created_ms: int,
    notified_ms: int | None,
    record_id: str | None = None,
) -> Event:
    """An event from a row of the columns in :data:`_EVENT_COLUMNS`' order."""
    return Event(
        seq=int(seq),
        event_id=event_id,
        type=type_,
        alert_id=alert_id,
        case_id=case_id,
        agency_id=agency_id,
        entry_id=entry_id,
        created_ms=int(created_ms),
        notified_ms=None if notified_ms is None else int(notified_ms),
        record_id=record_id,
    )


def _event(r: Any) -> Event:
    return Event(
        seq=int(r.seq),
        event_id=r.event_id,
        type=r.type,
        alert_id=r.alert_id,
        case_id=r.case_id,
        agency_id=r.agency_id,
        entry_id=r.entry_id,
        created_ms=int(r.created_ms),
        notified_ms=None if r.notified_ms is None else int(r.notified_ms),
        record_id=r.record_id,
    )
