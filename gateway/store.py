"""The gateway's durable state: accepted messages, per-recipient queues,
directory and treaty versions.

Every recipient agency has its own queue with gap-free, strictly increasing
sequence numbers, allocated by incrementing a counter row inside the same
transaction that stores the envelope, its queue entries and its audit entry,
so a crash leaves either all of them or none. Counters are row-level updates,
so several gateway processes sharing one PostgreSQL allocate without
collisions; on SQLite the database write lock serializes them.

A queue keeps what has not been acknowledged. ``acked_sequence`` is the floor
below which entries were released: a node resuming from a cursor under that
floor asks for history the gateway no longer has, which is ``CURSOR_EXPIRED``
rather than a silent gap.

The tables are defined in :mod:`gateway.tables` and the statements run on
them in :mod:`gateway.statements`; concurrent submissions share transactions
through :mod:`gateway.group_commit`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.group_commit import GroupCommit
from gateway.statements import (
    ACKNOWLEDGE,
    ALLOCATE,
    ALLOCATE_ONE,
    DROP_ORPHANS,
    EXPIRE,
    FIND_MESSAGE,
    INSERT,
    INSERT_ONE,
    MARK,
    POSITION,
    RAISE_FLOOR,
    READ_INBOX,
    RELEASE,
    SAVE_DIRECTORY,
    SAVE_TREATY,
    SQLITE_ALLOCATE,
    SQLITE_ALLOCATE_ONE,
    SQLITE_EXISTING,
    SQLITE_INSERT_INBOX,
    SQLITE_INSERT_MESSAGE,
)
from gateway.tables import directories, queues, treaties
from intelshare import errors
from intelshare.audit import AuditLog, FieldValue
from intelshare.db import Statement
from intelshare.errors import ConfigError
from intelshare.v1 import receipt_pb2


@dataclass(frozen=True)
class StoredMessage:
    message_id: str
    envelope_sha256: bytes
    log_index: int
    receipt: bytes


@dataclass(frozen=True)
class Accepted:
    message_id: str
    log_index: int
    sequences: dict[str, int]
    receipt: bytes


@dataclass(frozen=True)
class Submission:
    """One admitted envelope to store (see :meth:`GatewayStore.accept`)."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]  # sorted, each once
    treaty_id: str
    envelope: bytes
    envelope_sha256: bytes
    now_ms: int
    expire_ms: int
    audit_fields: Mapping[str, FieldValue]


@dataclass(frozen=True)
class InboxRow:
    sequence: int
    message_id: str
    envelope: bytes
    receipt: bytes
    delivered: bool
    accept_ms: int


Outcome = Accepted | StoredMessage

#: Most submissions one transaction accepts (group commit).
MAX_GROUP = 64

X = TypeVar("X")


def _reconnecting(work: Callable[[], X]) -> X:
    """``work()``, once more if the database had dropped the connection it used.

    The engine does not ping a pooled connection before each use (a round
    trip per transaction); a connection the server closed meanwhile (a
    restart) fails its first statement instead, which invalidates the pool,
    and the second attempt runs on a new connection. Every transaction here
    is safe to run again: it either committed nothing or is idempotent.
    """
    try:
        return work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return work()


def _timestamp(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def cursor_ahead(cursor: int, last: int, acked: int) -> errors.CursorAhead:
    """The refusal of a position beyond the queue: the recipient reads again from ``acked``."""
    return errors.CursorAhead(
        f"sequence {cursor} is beyond the last sequence {last} of this queue "
        "(was the gateway's database restored?); resume after the acknowledged "
        f"position {acked}",
        metadata={"acknowledged_sequence": str(acked), "last_sequence": str(last)},
    )


class GatewayStore:
    """Transactions over the gateway tables and its audit log.

    Lock order, the same in every transaction here: queue rows (sorted by
    agency), then inbox and message rows, then the audit log's state row
    last — it serializes every writer, so holding it while waiting for
    another lock would deadlock. A submit writes its new message and inbox
    rows after its audit entries (their receipts need the entries, as
    before), which never waits: inbox keys are unique under the queue rows
    it holds, and the only other writer of a message id is another submit
    of it, which also inserts under the audit lock — so it has committed
    (the insert fails at once and the submit is retried, finding the
    message) or has not inserted yet. On SQLite the first write takes the
    database's write lock, which orders everything.
    """

    def __init__(self, engine: Engine, audit: AuditLog, *, max_group: int = MAX_GROUP) -> None:
        self.engine = engine
        self.audit = audit
        name = engine.dialect.name
        if name not in ("postgresql", "sqlite"):
            raise ConfigError(f"the gateway runs on PostgreSQL or SQLite, not {name}")
        self._pg = name == "postgresql"
        # Single reads need no transaction: on PostgreSQL that spares a
        # BEGIN and a ROLLBACK round trip each (pysqlite begins before
        # writes only, so SQLite reads never had them).
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT") if self._pg else engine
        self._group: GroupCommit[Submission, Outcome] = GroupCommit(
            self.accept_many, max_group=max_group
        )
        #: the connection submissions are accepted on, kept between their
        #: transactions (see _accept_retrying); guarded by _writer_lock
        self._writer: Connection | None = None
        self._writer_lock = threading.Lock()

    def close(self) -> None:
        """Give back the connection kept for submissions (before disposing of the engine)."""
        with self._writer_lock:
            conn, self._writer = self._writer, None
        if conn is not None:
            conn.close()

    # --- messages -------------------------------------------------------

    def find_message(self, message_id: str) -> StoredMessage | None:
        row = _reconnecting(lambda: self._read_one(FIND_MESSAGE, {"mid": message_id}))
        if row is None:
            return None
        return StoredMessage(row[0], bytes(row[1]), int(row[2]), bytes(row[3]))

    def accept(
        self,
        *,
        message_id: str,
        sender: str,
        recipients: Sequence[str],
        treaty_id: str,
        envelope: bytes,
        envelope_sha256: bytes,
        now_ms: int,
        expire_ms: int,
        audit_fields: Mapping[str, FieldValue],
    ) -> Outcome:
        """Store an envelope, queue it for each recipient, log it and sign its
        receipt, all in one transaction.

        Returns the already stored message instead when another submit of the
        same message id won (possibly on another gateway process).

        Concurrent calls share transactions (group commit, see
        :class:`GroupCommit`): whoever finds no transaction running accepts
        what is queued at that moment, its own submission first, without
        waiting for more, so a lone submit costs what it did alone.
        """
        return self._group(
            Submission(
                message_id=message_id,
                sender=sender,
                recipients=tuple(sorted(set(recipients))),
                treaty_id=treaty_id,
                envelope=envelope,
                envelope_sha256=envelope_sha256,
                now_ms=now_ms,
                expire_ms=expire_ms,
                audit_fields=audit_fields,
            )
        )

    def accept_many(self, batch: Sequence[Submission]) -> list[Outcome | Exception]:
        """Accept ``batch`` in one transaction; an outcome (or error) per submission.

        A submission that fails (a database error, a malformed audit entry)
        fails alone: the batch is then retried one submission per
        transaction. A message id that occurs twice gets the first one's
        outcome, as a duplicate.
        """
        first: dict[str, Submission] = {}
        for sub in batch:
            first.setdefault(sub.message_id, sub)
        unique = list(first.values())  # in arrival order: queue order
        outcomes: dict[str, Outcome | Exception]
        try:
            outcomes = dict(self._accept_retrying(unique))
        except Exception as exc:
            if len(unique) == 1:
                outcomes = {unique[0].message_id: exc}
            else:
                outcomes = {}
                for sub in unique:
                    try:
                        outcomes.update(self._accept_retrying([sub]))
                    except Exception as one:
                        outcomes[sub.message_id] = one
        results: list[Outcome | Exception] = []
        for sub in batch:
            outcome = outcomes[sub.message_id]
            if isinstance(outcome, Accepted) and first[sub.message_id] is not sub:
                outcome = StoredMessage(
                    outcome.message_id,
                    first[sub.message_id].envelope_sha256,
                    outcome.log_index,
                    outcome.receipt,
                )
            results.append(outcome)
        return results

    def _accept_retrying(self, subs: Sequence[Submission]) -> dict[str, Outcome]:
        """One transaction, tried again when it lost a race or a dead connection.

        A message id that another transaction (maybe another gateway) stores
        between our check and our insert fails the insert; the next attempt
        finds it stored.

        Submissions are accepted one transaction after the other (group
        commit) on one connection kept for them: no pool checkout, reset and
        checkin per transaction, and on SQLite a page cache that stays warm,
        since no other connection wrote in between. A transaction that fails
        gives the connection back to the pool, and the next one starts on a
        connection from the pool (a new one if the database had dropped it).
        """
        for attempt in range(3):
            try:
                with self._writer_lock:
                    conn = self._writer
                    if conn is None:
                        conn = self._writer = self.engine.connect()
                    try:
                        with conn.begin():
                            if self._pg:
                                return self._accept_pg(conn, subs)
                            return self._accept_sqlite(conn, subs)
                    except BaseException:
                        self._writer = None
                        with suppress(Exception):
                            conn.close()
                        raise
            except DBAPIError as exc:
                retry = isinstance(exc, IntegrityError) or exc.connection_invalidated
                if not retry or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _accept_pg(self, conn: Connection, subs: Sequence[Submission]) -> dict[str, Outcome]:
        ids = [s.message_id for s in subs]
        outcomes: dict[str, Outcome] = {}
        # 1. Queue rows: one upsert per recipient queue, in agency order,
        # counting only messages not stored yet (gap-free sequences).
        last: dict[str, int] = {}
        if len(subs) == 1:
            allocated = ALLOCATE_ONE.execute(
                conn, {"mid": ids[0], "agencies": json.dumps(subs[0].recipients)}
            ).rows
        else:
            pairs = [{"mid": s.message_id, "agency": a} for s in subs for a in s.recipients]
            allocated = ALLOCATE.execute(
                conn, {"pairs": json.dumps(pairs), "ids": json.dumps(ids)}
            ).rows
        for kind, key, number, sha, receipt in allocated:
            if kind == "q":
                last[key] = int(number)
            else:
                outcomes[key] = StoredMessage(key, bytes(sha), int(number), bytes(receipt))
        fresh = [s for s in subs if s.message_id not in outcomes]
        if not fresh:
            return outcomes
        sequences = _assign(fresh, last)
        # 2. The audit log: entries, a signed head and the proofs.
        accepted = self._log_accepted(conn, fresh, sequences)
        # 3. Message and inbox rows, with their receipts.
        if len(fresh) == 1:
            (sub,), (seqs,), (done,) = fresh, sequences, accepted
            INSERT_ONE.execute(
                conn,
                {
                    "mid": sub.message_id,
                    "sender": sub.sender,
                    "treaty": sub.treaty_id,
                    "env": sub.envelope,
                    "sha": sub.envelope_sha256,
                    "index": done.log_index,
                    "receipt": done.receipt,
                    "accept": sub.now_ms,
                    "expire": sub.expire_ms,
                    "seqs": json.dumps(seqs),
                },
            )
            outcomes[sub.message_id] = done
            return outcomes
        rows: list[dict[str, object]] = []
        inbox: list[dict[str, object]] = []
        blob = bytearray()
        for s, seqs, a in zip(fresh, sequences, accepted, strict=True):
            env_at = len(blob) + 1  # substring() counts from 1
            blob += s.envelope
            sha_at = len(blob) + 1
            blob += s.envelope_sha256
            rec_at = len(blob) + 1
            blob += a.receipt
            rows.append(
                {
                    "mid": s.message_id,
                    "sender": s.sender,
                    "treaty": s.treaty_id,
                    "idx": a.log_index,
                    "accept": s.now_ms,
                    "expire": s.expire_ms,
                    "env_at": env_at,
                    "env_len": len(s.envelope),
                    "sha_at": sha_at,
                    "sha_len": len(s.envelope_sha256),
                    "rec_at": rec_at,
                    "rec_len": len(a.receipt),
                }
            )
            inbox.extend(
                {"agency": agency, "seq": seq, "mid": s.message_id, "expire": s.expire_ms}
                for agency, seq in seqs.items()
            )
        INSERT.execute(
            conn,
            {
                "rows": json.dumps(rows),
                "blob": bytes(blob),
                "inbox": json.dumps(inbox),
            },
        )
        outcomes.update((a.message_id, a) for a in accepted)
        return outcomes

    def _accept_sqlite(self, conn: Connection, subs: Sequence[Submission]) -> dict[str, Outcome]:
        # On the driver's own cursor (Statement text): a SQLAlchemy execute
        # costs more than these short statements.
        outcomes: dict[str, Outcome] = {}
        last: dict[str, int] = {}
        if len(subs) == 1:
            (sub,) = subs
            ids = json.dumps([sub.message_id])
            for agency, seq in SQLITE_ALLOCATE_ONE.execute(
                conn, {"agencies": json.dumps(sub.recipients), "mid": sub.message_id}
            ).rows:
                last[str(agency)] = int(seq)
            stored = not last  # stored before (or it has no recipients)
        else:
            pairs = json.dumps([[s.message_id, a] for s in subs for a in s.recipients])
            ids = json.dumps([s.message_id for s in subs])
            known = 0
            for agency, seq, count in SQLITE_ALLOCATE.execute(
                conn, {"pairs": pairs, "ids": ids}
            ).rows:
                last[str(agency)] = int(seq)
                known = int(count)
            stored = bool(known) or not last  # some (or all) were stored before
        if stored:
            for mid, index, sha, receipt in SQLITE_EXISTING.execute(conn, {"ids": ids}).rows:
                outcomes[mid] = StoredMessage(mid, bytes(sha), int(index), bytes(receipt))
            fresh = [s for s in subs if s.message_id not in outcomes]
            if not fresh:
                return outcomes
        else:
            fresh = list(subs)
        sequences = _assign(fresh, last)
        # Under the database write lock since the upsert: the rows can
        # go in with their receipts, after the audit entries.
        accepted = self._log_accepted(conn, fresh, sequences)
        if len(fresh) == 1:
            (sub,), (seqs,), (done,) = fresh, sequences, accepted
            SQLITE_INSERT_MESSAGE.execute(
                conn,
                (
                    sub.message_id,
                    sub.sender,
                    sub.treaty_id,
                    sub.envelope,
                    sub.envelope_sha256,
                    done.log_index,
                    done.receipt,
                    sub.now_ms,
                    sub.expire_ms,
                ),
            )
            for agency, seq in seqs.items():
                SQLITE_INSERT_INBOX.execute(conn, (agency, seq, sub.message_id, sub.expire_ms))
        else:
            SQLITE_INSERT_MESSAGE.execute(
                conn,
                [
                    (
                        s.message_id,
                        s.sender,
                        s.treaty_id,
                        s.envelope,
                        s.envelope_sha256,
                        a.log_index,
                        a.receipt,
                        s.now_ms,
                        s.expire_ms,
                    )
                    for s, a in zip(fresh, accepted, strict=True)
                ],
            )
            SQLITE_INSERT_INBOX.execute(
                conn,
                [
                    (agency, seq, s.message_id, s.expire_ms)
                    for s, seqs in zip(fresh, sequences, strict=True)
                    for agency, seq in seqs.items()
                ],
            )
        outcomes.update((a.message_id, a) for a in accepted)
        return outcomes

    def _log_accepted(
        self, conn: Connection, fresh: Sequence[Submission], sequences: Sequence[dict[str, int]]
    ) -> list[Accepted]:
        """Audit entries for ``fresh`` and one signed head; a receipt each."""
        done = self.audit.append_many(
            conn, [("accepted", s.audit_fields) for s in fresh], sign=True
        )
        head = done.head
        accepted = []
        for s, seqs, index, leaf in zip(fresh, sequences, done.indexes, done.leaves, strict=True):
            receipt = receipt_pb2.Receipt(
                message_id=s.message_id,
                envelope_sha256=s.envelope_sha256,
                log_index=index,
                tree_head=head,
                inclusion_proof=done.inclusion_proof(index),
                leaf=leaf,
                accept_time=_timestamp(s.now_ms),
            ).SerializeToString()
            accepted.append(Accepted(s.message_id, index, seqs, receipt))
        return accepted

    # --- queues ---------------------------------------------------------

    def fence_queues(self, gap: int) -> dict[str, tuple[int, int]]:
        """Move every queue's next sequence ``gap`` ahead; ``{agency: (old last, new last)}``.

        For after a restore from backup, before nodes reconnect. The restored
        queues would hand out again the numbers allocated since the backup,
        which nodes have already read past, and a node whose cursor is not
        beyond the restored queue (so gets no ``CURSOR_AHEAD``) would skip
        the new messages numbered below its cursor and release them with its
        next acknowledgement. With the fence every new number is above any
        cursor a node can hold, so every node just reads on. The entries
        kept are untouched; the one gap it leaves is audited per queue.
        """
        if gap <= 0:
            raise ValueError("the gap must be positive")
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(queues)
                .values(last_sequence=queues.c.last_sequence + gap)
                .returning(queues.c.agency_id, queues.c.last_sequence)
            ).all()
            moved = {str(a): (int(new) - gap, int(new)) for a, new in sorted(rows)}
            self.audit.append_many(
                conn,
                [
                    ("queue_fenced", {"recipient": a, "last_sequence": old, "next_after": new})
                    for a, (old, new) in moved.items()
                ],
            )
        return moved

    def position(self, agency: str) -> tuple[int, int]:
        """(last allocated sequence, acknowledged floor) of ``agency``'s queue."""
        row = _reconnecting(lambda: self._read_one(POSITION, {"agency": agency}))
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def _read_one(self, statement: Statement, params: Mapping[str, object]) -> Any:
        with self._reads.connect() as conn:
            return statement.execute(conn, params).first()

    def read_inbox(self, agency: str, after: int, limit: int, now_ms: int) -> list[InboxRow]:
        """Unexpired entries after ``after``, in order, with their envelopes.

        Read on the driver's own cursor: a batch is a few hundred rows of
        ~2 KB, where a result wrapper costs more than the statement, and
        PostgreSQL sends binary columns as they are rather than as hex.
        """
        params = {"agency": agency, "after": after, "now": now_ms, "limit": limit}
        rows = _reconnecting(lambda: self._fetch_all(READ_INBOX, params))
        return [
            InboxRow(int(r[0]), r[1], bytes(r[2]), bytes(r[3]), r[4] is not None, int(r[5]))
            for r in rows
        ]

    def _fetch_all(self, statement: Statement, params: Mapping[str, object]) -> list[Any]:
        with self._reads.connect() as conn:
            return statement.execute(conn, params).rows

    def mark_delivered(self, agency: str, rows: Iterable[InboxRow], now_ms: int) -> list[int]:
        """Record first deliveries, with one audit entry per envelope.

        Returns the sequences this call marked (delivered for the first time).

        One UPDATE marks the whole batch and returns the rows it changed, so
        an entry another stream (or replica) marked first is not audited
        twice; the audit entries follow in one append, in sequence order.
        """
        fresh = [r.sequence for r in rows if not r.delivered]
        if not fresh:
            return []
        return _reconnecting(lambda: self._mark(agency, fresh, now_ms))

    def _mark(self, agency: str, fresh: list[int], now_ms: int) -> list[int]:
        params = {"now": now_ms, "agency": agency, "seqs": json.dumps(fresh)}
        with self.engine.begin() as conn:
            changed = MARK.execute(conn, params).rows
            marked = sorted((int(q), str(m)) for q, m in changed)
            self.audit.append_many(
                conn,
                [
                    ("delivered", {"message_id": m, "recipient": agency, "sequence": q})
                    for q, m in marked
                ],
            )
        return [q for q, _ in marked]

    def acknowledge(self, agency: str, sequence: int) -> int:
        """Release entries up to ``sequence``; returns the new floor.

        Idempotent: acknowledging a position at or below the floor changes
        nothing. A position beyond what was allocated is refused with
        :class:`~intelshare.errors.CursorAhead`, never clamped: a recipient
        only holds such a position when this queue went back (a restored
        database), and clamping would release entries allocated since, which
        it never received.
        """
        return _reconnecting(lambda: self._acknowledge(agency, sequence))

    def _acknowledge(self, agency: str, sequence: int) -> int:
        params = {"seq": sequence, "agency": agency}
        with self.engine.begin() as conn:
            target: int | None = None
            released: list[tuple[int, str, bool]] = []
            if self._pg:
                for kind, number, mid, delivered in ACKNOWLEDGE.execute(conn, params).rows:
                    if kind == "r":
                        target = int(number)
                    else:
                        released.append((int(number), str(mid), delivered is not None))
            else:
                raised = RAISE_FLOOR.execute(conn, params).first()
                if raised is not None:
                    target = int(raised[0])
                    released = [
                        (int(q), str(m), d is not None)
                        for q, m, d in RELEASE.execute(conn, params).rows
                    ]
                    self._drop_orphans(conn, [m for _, m, _ in released])
            if target is None:
                row = POSITION.execute(conn, {"agency": agency}).first()
                last, floor = (0, 0) if row is None else (int(row[0]), int(row[1]))
                if sequence > last:
                    raise cursor_ahead(sequence, last, floor)
                return floor
            released.sort()
            entries: list[tuple[str, Mapping[str, FieldValue]]] = []
            for q, m, recorded in released:
                fields: dict[str, FieldValue] = {
                    "message_id": m,
                    "recipient": agency,
                    "sequence": q,
                }
                if not recorded:
                    # Sent, and acknowledged before the stream recorded it
                    # (it records once gRPC has sent an entry, which the node
                    # may already hold): the acknowledgement proves delivery.
                    entries.append(("delivered", {**fields, "via": "acknowledgement"}))
                entries.append(("acknowledged", fields))
            self.audit.append_many(conn, entries)
        return target

    def purge_expired(self, now_ms: int) -> int:
        """Drop expired queue entries and messages no queue refers to any more."""
        return _reconnecting(lambda: self._purge(now_ms))

    def _purge(self, now_ms: int) -> int:
        with self.engine.begin() as conn:
            expired = sorted(
                (str(a), int(q), str(m)) for a, q, m in EXPIRE.execute(conn, {"now": now_ms}).rows
            )
            self._drop_orphans(conn, [m for _, _, m in expired])
            self.audit.append_many(
                conn,
                [
                    ("expired", {"message_id": m, "recipient": a, "sequence": q})
                    for a, q, m in expired
                ],
            )
        return len(expired)

    def _drop_orphans(self, conn: Connection, message_ids: Sequence[str]) -> None:
        """Forget envelopes once no recipient still needs them (one statement)."""
        if message_ids:
            ids = sorted(set(message_ids))
            DROP_ORPHANS.execute(conn, {"ids": json.dumps(ids)})

    # --- directory and treaties --------------------------------------

    def latest_directory(self) -> bytes | None:
        def read() -> bytes | None:
            with self._reads.connect() as conn:
                row = conn.execute(
                    select(directories.c.signed).order_by(directories.c.version.desc()).limit(1)
                ).first()
            return None if row is None else bytes(row[0])

        return _reconnecting(read)

    def save_directory(self, version: int, signed: bytes, now_ms: int) -> None:
        def save() -> None:
            with self.engine.begin() as conn:
                SAVE_DIRECTORY.execute(
                    conn, {"version": version, "signed": signed, "publish_ms": now_ms}
                )

        _reconnecting(save)

    def save_treaty(self, treaty_id: str, version: int, signed: bytes, now_ms: int) -> None:
        """Store a treaty version; a later, better-signed copy replaces it."""

        def save() -> None:
            with self.engine.begin() as conn:
                changed = conn.execute(
                    update(treaties)
                    .where(treaties.c.treaty_id == treaty_id, treaties.c.version == version)
                    .values(signed=signed, publish_ms=now_ms)
                ).rowcount
                if not changed:
                    SAVE_TREATY.execute(
                        conn,
                        {
                            "treaty_id": treaty_id,
                            "version": version,
                            "signed": signed,
                            "publish_ms": now_ms,
                        },
                    )

        _reconnecting(save)

    def all_treaties(self) -> list[tuple[str, int, bytes]]:
        def read() -> list[tuple[str, int, bytes]]:
            with self._reads.connect() as conn:
                rows = conn.execute(
                    select(treaties.c.treaty_id, treaties.c.version, treaties.c.signed).order_by(
                        treaties.c.treaty_id, treaties.c.version
                    )
                ).all()
            return [(r[0], int(r[1]), bytes(r[2])) for r in rows]

        return _reconnecting(read)

    def record(self, event: str, fields: Mapping[str, FieldValue]) -> int:
        """An audit entry in a transaction of its own (refusals, publications)."""
        return _reconnecting(lambda: self.audit.record(event, fields))


def _assign(fresh: Sequence[Submission], last: Mapping[str, int]) -> list[dict[str, int]]:
    """Sequence numbers of ``fresh`` in order, given each queue's new last sequence."""
    counts: dict[str, int] = {}
    for sub in fresh:
        for agency in sub.recipients:
            counts[agency] = counts.get(agency, 0) + 1
    if counts.keys() != last.keys():
        raise RuntimeError(f"queues allocated {sorted(last)}, expected {sorted(counts)}")
    following = {agency: last[agency] - n for agency, n in counts.items()}
    out: list[dict[str, int]] = []
    for sub in fresh:
        seqs: dict[str, int] = {}
        for agency in sub.recipients:
            following[agency] += 1
            seqs[agency] = following[agency]
        out.append(seqs)
    return out
