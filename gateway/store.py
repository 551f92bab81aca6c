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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from intelshare.audit.log import AuditLog, FieldValue
from intelshare.v1 import receipt_pb2

metadata = MetaData()

messages = Table(
    "gw_messages",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("sender", String(128), nullable=False),
    Column("treaty_id", String(128), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("envelope_sha256", LargeBinary(32), nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Column("receipt", LargeBinary, nullable=False),
    Column("accept_ms", BigInteger, nullable=False),
    Column("expire_ms", BigInteger, nullable=False),
)

queues = Table(
    "gw_queues",
    metadata,
    Column("agency_id", String(128), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False, default=0),
    Column("acked_sequence", BigInteger, nullable=False, default=0),
)

inbox = Table(
    "gw_inbox",
    metadata,
    Column("agency_id", String(128), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column(
        "message_id",
        String(64),
        ForeignKey("gw_messages.message_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("expire_ms", BigInteger, nullable=False),
    Column("delivered_ms", BigInteger, nullable=True),
)
Index("gw_inbox_expiry", inbox.c.expire_ms)

directories = Table(
    "gw_directories",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("signed", LargeBinary, nullable=False),
    Column("publish_ms", BigInteger, nullable=False),
)

treaties = Table(
    "gw_treaties",
    metadata,
    Column("treaty_id", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("signed", LargeBinary, nullable=False),
    Column("publish_ms", BigInteger, nullable=False),
)


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
class InboxRow:
    sequence: int
    message_id: str
    envelope: bytes
    receipt: bytes
    delivered: bool


def _insert_ignore(conn: Connection, table: Table, values: dict[str, object]) -> None:
    """INSERT that does nothing if the primary key exists (both dialects)."""
    stmt: object
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    conn.execute(stmt)


class GatewayStore:
    """Transactions over the gateway tables and its audit log."""

    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit

    # --- messages -------------------------------------------------------

    def find_message(self, message_id: str) -> StoredMessage | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    messages.c.message_id,
                    messages.c.envelope_sha256,
                    messages.c.log_index,
                    messages.c.receipt,
                ).where(messages.c.message_id == message_id)
            ).first()
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
    ) -> Accepted | StoredMessage:
        """Store an envelope, queue it for each recipient, log it and sign its
        receipt, all in one transaction.

        Returns the already stored message instead when another submit of the
        same message id won (possibly on another gateway process).
        """
        try:
            with self.engine.begin() as conn:
                # Lock order, the same in every transaction here: queue rows
                # (sorted by agency), then inbox and message rows, then the
                # audit log's state row last — it serializes every writer, so
                # holding it while waiting for another lock would deadlock.
                sequences: dict[str, int] = {}
                for agency in sorted(recipients):
                    sequences[agency] = self._next_sequence(conn, agency)
                log_index = self.audit.append(conn, "accepted", audit_fields)
                head = self.audit.sign_head(conn)
                receipt = receipt_pb2.Receipt(
                    message_id=message_id,
                    envelope_sha256=envelope_sha256,
                    log_index=log_index,
                    tree_head=head,
                    inclusion_proof=self.audit.inclusion_proof(
                        log_index, head.tree_size, conn=conn
                    ),
                    leaf=self.audit.leaf(log_index, conn=conn),
                    accept_time=Timestamp(
                        seconds=now_ms // 1000, nanos=(now_ms % 1000) * 1_000_000
                    ),
                ).SerializeToString()
                conn.execute(
                    insert(messages).values(
                        message_id=message_id,
                        sender=sender,
                        treaty_id=treaty_id,
                        envelope=envelope,
                        envelope_sha256=envelope_sha256,
                        log_index=log_index,
                        receipt=receipt,
                        accept_ms=now_ms,
                        expire_ms=expire_ms,
                    )
                )
                if sequences:
                    conn.execute(
                        insert(inbox),
                        [
                            {
                                "agency_id": agency,
                                "sequence": seq,
                                "message_id": message_id,
                                "expire_ms": expire_ms,
                                "delivered_ms": None,
                            }
                            for agency, seq in sequences.items()
                        ],
                    )
        except IntegrityError:
            existing = self.find_message(message_id)
            if existing is None:
                raise
            return existing
        return Accepted(message_id, log_index, sequences, receipt)

    def _next_sequence(self, conn: Connection, agency: str) -> int:
        """Allocate ``agency``'s next sequence number in one statement.

        An upsert creates the queue on its first entry and otherwise
        increments it; either way the row stays locked until commit, so
        concurrent submits (on any replica) get consecutive numbers and
        commit in that order. One round trip instead of an INSERT-if-missing
        followed by an UPDATE, on the submit hot path.
        """
        dml = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = (
            dml(queues)
            .values(agency_id=agency, last_sequence=1, acked_sequence=0)
            .on_conflict_do_update(
                index_elements=[queues.c.agency_id],
                set_={"last_sequence": queues.c.last_sequence + 1},
            )
            .returning(queues.c.last_sequence)
        )
        return int(conn.execute(stmt).scalar_one())

    # --- queues ---------------------------------------------------------

    def position(self, agency: str) -> tuple[int, int]:
        """(last allocated sequence, acknowledged floor) of ``agency``'s queue."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(queues.c.last_sequence, queues.c.acked_sequence).where(
                    queues.c.agency_id == agency
                )
            ).first()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def read_inbox(self, agency: str, after: int, limit: int, now_ms: int) -> list[InboxRow]:
        """Unexpired entries after ``after``, in order, with their envelopes."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    inbox.c.sequence,
                    inbox.c.message_id,
                    messages.c.envelope,
                    messages.c.receipt,
                    inbox.c.delivered_ms,
                )
                .join(messages, messages.c.message_id == inbox.c.message_id)
                .where(
                    inbox.c.agency_id == agency,
                    inbox.c.sequence > after,
                    inbox.c.expire_ms > now_ms,
                )
                .order_by(inbox.c.sequence)
                .limit(limit)
            ).all()
        return [InboxRow(int(r[0]), r[1], bytes(r[2]), bytes(r[3]), r[4] is not None) for r in rows]

    def mark_delivered(self, agency: str, rows: Iterable[InboxRow], now_ms: int) -> list[int]:
        """Record first deliveries, with one audit entry per envelope.

        Returns the sequences this call marked (delivered for the first time).

        One UPDATE marks the whole batch and returns the rows it changed, so
        an entry another stream (or replica) marked first is not audited
        twice; the audit appends follow, in sequence order, as late as
        possible in the transaction as the audit log asks.
        """
        fresh = [r.sequence for r in rows if not r.delivered]
        if not fresh:
            return []
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(inbox)
                .where(
                    inbox.c.agency_id == agency,
                    inbox.c.sequence.in_(fresh),
                    inbox.c.delivered_ms.is_(None),
                )
                .values(delivered_ms=now_ms)
                .returning(inbox.c.sequence, inbox.c.message_id)
            ).all()
            marked = sorted((int(q), str(m)) for q, m in changed)
            for seq, message_id in marked:
                self.audit.append(
                    conn,
                    "delivered",
                    {"message_id": message_id, "recipient": agency, "sequence": seq},
                )
        return [seq for seq, _ in marked]

    def acknowledge(self, agency: str, sequence: int) -> int:
        """Release entries up to ``sequence``; returns the new floor.

        Idempotent: acknowledging a position at or below the floor changes
        nothing. A position beyond what was allocated is clamped to it, so
        a confused client cannot release entries that do not exist yet.
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                select(queues.c.last_sequence, queues.c.acked_sequence)
                .where(queues.c.agency_id == agency)
                .with_for_update()
            ).first()
            if row is None:
                return 0
            last, acked = int(row[0]), int(row[1])
            target = min(sequence, last)
            if target <= acked:
                return acked
            released = conn.execute(
                select(inbox.c.sequence, inbox.c.message_id)
                .where(
                    inbox.c.agency_id == agency,
                    inbox.c.sequence > acked,
                    inbox.c.sequence <= target,
                )
                .order_by(inbox.c.sequence)
            ).all()
            conn.execute(
                delete(inbox).where(inbox.c.agency_id == agency, inbox.c.sequence <= target)
            )
            conn.execute(
                update(queues).where(queues.c.agency_id == agency).values(acked_sequence=target)
            )
            self._drop_orphans(conn, [m for _, m in released])
            # Audit last: see the lock order in accept().
            for seq, message_id in released:
                self.audit.append(
                    conn,
                    "acknowledged",
                    {"message_id": message_id, "recipient": agency, "sequence": int(seq)},
                )
        return target

    def purge_expired(self, now_ms: int) -> int:
        """Drop expired queue entries and messages no queue refers to any more."""
        with self.engine.begin() as conn:
            expired = conn.execute(
                select(inbox.c.agency_id, inbox.c.sequence, inbox.c.message_id).where(
                    inbox.c.expire_ms <= now_ms
                )
            ).all()
            if expired:
                keys = [(a, int(q)) for a, q, _ in expired]
                conn.execute(
                    delete(inbox).where(tuple_(inbox.c.agency_id, inbox.c.sequence).in_(keys))
                )
            self._drop_orphans(conn, [m for _, _, m in expired])
            # Audit last: see the lock order in accept().
            for agency, seq, message_id in expired:
                self.audit.append(
                    conn,
                    "expired",
                    {"message_id": message_id, "recipient": agency, "sequence": int(seq)},
                )
        return len(expired)

    def _drop_orphans(self, conn: Connection, message_ids: Sequence[str]) -> None:
        """Forget envelopes once no recipient still needs them.

        The message row (id, digest, receipt) outlives its envelope so that a
        replayed message id is still recognised; only the bytes are dropped.
        """
        for message_id in set(message_ids):
            still = conn.execute(
                select(func.count()).select_from(inbox).where(inbox.c.message_id == message_id)
            ).scalar_one()
            if not still:
                conn.execute(
                    update(messages).where(messages.c.message_id == message_id).values(envelope=b"")
                )

    # --- directory and treaties --------------------------------------

    def latest_directory(self) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(directories.c.signed).order_by(directories.c.version.desc()).limit(1)
            ).first()
        return None if row is None else bytes(row[0])

    def save_directory(self, version: int, signed: bytes, now_ms: int) -> None:
        with self.engine.begin() as conn:
            _insert_ignore(
                conn, directories, {"version": version, "signed": signed, "publish_ms": now_ms}
            )

    def save_treaty(self, treaty_id: str, version: int, signed: bytes, now_ms: int) -> None:
        """Store a treaty version; a later, better-signed copy replaces it."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(treaties)
                .where(treaties.c.treaty_id == treaty_id, treaties.c.version == version)
                .values(signed=signed, publish_ms=now_ms)
            ).rowcount
            if not changed:
                _insert_ignore(
                    conn,
                    treaties,
                    {
                        "treaty_id": treaty_id,
                        "version": version,
                        "signed": signed,
                        "publish_ms": now_ms,
                    },
                )

    def all_treaties(self) -> list[tuple[str, int, bytes]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(treaties.c.treaty_id, treaties.c.version, treaties.c.signed).order_by(
                    treaties.c.treaty_id, treaties.c.version
                )
            ).all()
        return [(r[0], int(r[1]), bytes(r[2])) for r in rows]
