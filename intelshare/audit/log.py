"""The append-only audit log: :class:`AuditLog`, stored through SQLAlchemy Core.

The log's parts live beside it: its tables in :mod:`intelshare.audit.tables`,
the leaf format in :mod:`intelshare.audit.leaves`, the signing input and the
database-free verifiers in :mod:`intelshare.audit.heads`, the statements an
append writes with in :mod:`intelshare.audit.append`, and the tree
arithmetic in :mod:`intelshare.audit.merkle`. This module holds the log's
contract with its callers.

Appends run inside the caller's transaction so that the fact and its audit
entry commit (or vanish) together. They are serialized by the state row:
``SELECT ... FOR UPDATE`` on PostgreSQL, and on SQLite a write to the row as
the first statement, which takes the database write lock before anything is
read. The caller must therefore use PostgreSQL's default READ COMMITTED
isolation (under REPEATABLE READ a concurrent append is a serialization
failure), and append as late as possible in the transaction: the next
appender waits for its commit. On SQLite the engine must keep pysqlite's
default lazy BEGIN (as :func:`intelshare.db.make_engine` does); a
transaction that explicitly began and read before appending could not
upgrade to the write lock once another appender committed.

There are two ways to append, and only two. :meth:`AuditLog.append_many`
(both databases) locks the state row, computes the batch in Python and
writes it: the way for a caller that needs the result (in-memory inclusion
proofs, a signed head: the gateway's receipts). A service that cannot
afford to wait for the append's answer inside its transaction (a node's
writes hold other locks too) runs :meth:`AuditLog.append_statement` on
PostgreSQL instead: the same leaves, appended by a database function
(:mod:`intelshare.audit.append_v1`) under the same row lock, so the caller
sends it together with its ``COMMIT`` and holds the lock for none of its
own time (``bench/node_writes.py`` measures what that pipelining is worth).
Appends lock before they compute: computing a batch on the state this
process last wrote and checking it in the write saves a round trip for a
lone appender only, not under concurrency (``bench/gateway.py``).

Leaves are header metadata, never payloads (:mod:`intelshare.audit.leaves`):
an append-only log cannot forget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    func,
    insert,
    not_,
    or_,
    select,
    tuple_,
)

from intelshare.audit import append_v1, merkle
from intelshare.audit.append import CREATE_STATE, LOCK_STATE, leaf_index, write_batch
from intelshare.audit.heads import head_signing_input, verify_tree_head
from intelshare.audit.leaves import FieldValue, check_entry, rfc3339, stamped_leaf
from intelshare.audit.tables import (
    STATE_ID,
    audit_entries,
    audit_heads,
    audit_nodes,
    audit_state,
    head_from_row,
    head_row,
)
from intelshare.errors import AuditEntryNotFound, AuditLogInvalid, ConfigError, InvalidArgument
from intelshare.ids import key_id as compute_key_id
from intelshare.keys import raw_public
from intelshare.v1.receipt_pb2 import SignedTreeHead

# FieldValue is the type of the entries AuditLog takes: callers of this
# module may import it from here too.
__all__ = ["Appended", "AuditLog", "FieldValue", "VerifyReport"]

_AnyRow: TypeAlias = Row[*tuple[Any, ...]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_VERIFY_CHUNK = 2048


def _timestamp(t: datetime) -> Timestamp:
    """A signed head's timestamp of ``t`` (exact: a datetime has microseconds)."""
    delta = t - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`AuditLog.verify` checked (it raises instead of reporting failures)."""

    log_id: str
    tree_size: int
    root_hash: bytes
    entries_checked: int
    nodes_checked: int
    heads_checked: int


@dataclass(frozen=True)
class _State:
    log_id: str
    size: int
    frontier: bytes


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Appended:
    """What :meth:`AuditLog.append_many` wrote, and the proofs of it.

    ``head`` is the signed head over the tree that ends with this batch
    (when it was asked for); :meth:`inclusion_proof` proves any entry of
    the batch against that tree, ``tree_size`` entries, without a read.
    """

    first_index: int
    leaves: tuple[bytes, ...]
    head: SignedTreeHead | None
    _nodes: Mapping[merkle.NodeId, bytes] = field(repr=False)

    @property
    def indexes(self) -> list[int]:
        return list(range(self.first_index, self.first_index + len(self.leaves)))

    @property
    def tree_size(self) -> int:
        return self.first_index + len(self.leaves)

    def leaf(self, index: int) -> bytes:
        """The leaf bytes of entry ``index`` of this batch."""
        if not self.first_index <= index < self.tree_size:
            raise InvalidArgument(f"entry {index} is not in this batch")
        return self.leaves[index - self.first_index]

    def inclusion_proof(self, index: int) -> list[bytes]:
        """Proof that entry ``index`` of this batch is in the tree of ``tree_size`` entries."""
        if not self.first_index <= index < self.tree_size:
            raise InvalidArgument(f"entry {index} is not in this batch")
        ranges = merkle.inclusion_ranges(index, self.tree_size)
        return merkle.hash_ranges(ranges, self._nodes.__getitem__)


class AuditLog:
    """One agency's (or the gateway's) append-only Merkle log in a SQL database.

    ``log_id`` names the log in its signed heads; the database remembers it
    on the first append and refuses a different one afterwards, so a
    misconfigured service cannot write into another party's log. ``key_id``
    must be the directory id of ``signing_key``'s public key.
    """

    def __init__(
        self,
        engine: Engine,
        log_id: str,
        signing_key: Ed25519PrivateKey,
        key_id: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not isinstance(signing_key, Ed25519PrivateKey):
            raise ConfigError("the audit log signs with an Ed25519 key")
        encoded = log_id.encode("utf-8") if isinstance(log_id, str) else b""
        if not 0 < len(encoded) <= 255:
            raise ConfigError("audit log id must be 1..255 bytes of UTF-8")
        actual = compute_key_id(raw_public(signing_key.public_key()))
        if key_id != actual:
            raise ConfigError(f"audit key id {key_id!r} is not the signing key's id {actual!r}")
        self._engine = engine
        self._log_id = log_id
        self._key = signing_key
        self._key_id = key_id
        self._clock = clock

    @property
    def log_id(self) -> str:
        return self._log_id

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    # --- writing -------------------------------------------------------------

    def append(self, conn: Connection, event: str, fields: Mapping[str, FieldValue]) -> int:
        """Append an entry inside the caller's open transaction; return its index.

        ``conn`` must be in a transaction (``with engine.begin() as conn:`` or
        ``conn.begin()``); the entry becomes visible when that transaction
        commits and leaves no trace if it rolls back. Pass header metadata
        only, never payloads. Raises :class:`InvalidArgument` before touching
        the database when the entry is malformed.
        """
        return self.append_many(conn, [(event, fields)]).first_index

    def append_many(
        self,
        conn: Connection,
        entries: Sequence[tuple[str, Mapping[str, FieldValue]]],
        *,
        sign: bool = False,
    ) -> Appended:
        """Append entries, in order, inside the caller's open transaction.

        The whole batch costs two statements: one locks the state row and
        reads the frontier, one writes the entries, the subtrees they
        complete, the new state and, with ``sign``, a signed head over the
        tree including the batch (on PostgreSQL a single statement of fixed
        text, on SQLite a few runs on the driver's cursor). The appender
        holds the lock until its commit and every other writer of the log
        waits for it, so the batch is computed between the two. The result
        carries the leaves and can prove each new entry's inclusion from
        memory: every subtree such a proof needs is either completed by this
        batch or on the frontier it started from.

        The same contract as :meth:`append` otherwise. With no entries and
        no ``sign`` nothing is read or written.
        """
        now, leaves = self._leaves(entries)
        if not conn.in_transaction():
            raise InvalidArgument("AuditLog.append must run inside a transaction (conn.begin())")
        if not leaves and not sign:
            return Appended(0, (), None, {})
        hashes = [merkle.leaf_hash(data) for data in leaves]
        events = [event for event, _ in entries]
        state = self._lock_state(conn)
        try:
            frontier = merkle.Frontier.decode(state.size, state.frontier)
        except ValueError as exc:
            raise AuditLogInvalid(f"audit state is corrupt: {exc}") from None
        first = frontier.size
        nodes: dict[merkle.NodeId, bytes] = dict(
            zip(frontier.nodes(), frontier.hashes, strict=True)
        )
        completed: list[tuple[int, int, bytes]] = []
        for h in hashes:
            for level, index, node in frontier.append(h):
                completed.append((level, index, node))
                nodes[(level, index)] = node
        head = self._make_head(frontier.size, frontier.root(), now) if sign else None
        write_batch(
            conn,
            first=first,
            events=events,
            leaves=leaves,
            hashes=hashes,
            completed=completed,
            frontier=frontier,
            head=head,
            now=now,
        )
        return Appended(first, tuple(leaves), head, nodes)

    def append_statement(
        self, entries: Sequence[tuple[str, Mapping[str, FieldValue]]]
    ) -> tuple[str, dict[str, Any]]:
        """The statement that appends ``entries`` on PostgreSQL, for the caller to run.

        For a transaction that wants to send its append and its ``COMMIT``
        together, without waiting for the append's answer in between (the
        node's writes, see :mod:`intelshare.audit.append_v1`): the database
        takes the state row's lock, computes the new subtrees and frontier
        and writes them, so the lock is held for no time of this process.
        Run it (psycopg's parameter style) inside the transaction whose
        facts the entries describe; it returns one row, the first entry's
        index. Leaves are built and checked here, before anything is sent
        (:class:`InvalidArgument` for a malformed entry). No signed head and
        no proofs from memory: for those, :meth:`append_many`. Needs the
        function, which :func:`create_tables` and the node's migrations
        create.
        """
        if not entries:
            raise InvalidArgument("an append statement needs at least one entry")
        now, leaves = self._leaves(entries)
        params = {
            "log_id": self._log_id,
            "entries": leaf_index([event for event, _ in entries], leaves),
            "leaves": b"".join(leaves),
            "at": now,
        }
        return append_v1.CALL, params

    def _leaves(
        self, entries: Sequence[tuple[str, Mapping[str, FieldValue]]]
    ) -> tuple[datetime, list[bytes]]:
        """The batch's time and its leaves, checked (:class:`InvalidArgument`)."""
        now = self._clock()
        if now.tzinfo is None:
            raise InvalidArgument("audit time must be timezone-aware")
        stamp = rfc3339(now)
        return now, [stamped_leaf(event, stamp, fields) for event, fields in entries]

    def record(self, event: str, fields: Mapping[str, FieldValue]) -> int:
        """Append an entry in a transaction of its own; return its index."""
        with self._engine.begin() as conn:
            return self.append(conn, event, fields)

    def sign_head(self, conn: Connection | None = None) -> SignedTreeHead:
        """Sign, store and return a head for the log as ``conn`` (or a fresh one) sees it.

        Called with the connection of an :meth:`append`, the head covers the
        new entry and is stored in the same transaction.
        """
        if conn is None:
            with self._engine.begin() as own:
                return self.sign_head(own)
        state = self._read_state(conn)
        try:
            root = merkle.Frontier.decode(state.size, state.frontier).root()
        except ValueError as exc:
            raise AuditLogInvalid(f"audit state is corrupt: {exc}") from None
        head = self._make_head(state.size, root, self._clock())
        conn.execute(insert(audit_heads).values(head_row(head)))
        return head

    def _make_head(self, tree_size: int, root: bytes, now: datetime) -> SignedTreeHead:
        ts = _timestamp(now)
        signature = self._key.sign(head_signing_input(self._log_id, tree_size, root, ts))
        return SignedTreeHead(
            log_id=self._log_id,
            tree_size=tree_size,
            root_hash=root,
            timestamp=ts,
            signature=signature,
            key_id=self._key_id,
        )

    # --- reading -------------------------------------------------------------

    def size(self, *, conn: Connection | None = None) -> int:
        """Number of entries (committed, or as ``conn``'s transaction sees them)."""
        with self._use(conn) as c:
            return self._read_state(c).size

    def leaf(self, index: int, *, conn: Connection | None = None) -> bytes:
        """The leaf bytes of entry ``index``, exactly as hashed."""
        if not isinstance(index, int) or index < 0:
            raise InvalidArgument("entry index must be a non-negative integer")
        with self._use(conn) as c:
            data = c.execute(
                select(audit_entries.c.leaf).where(audit_entries.c.idx == index)
            ).scalar_one_or_none()
        if data is None:
            raise AuditEntryNotFound(
                f"audit entry {index} does not exist", metadata={"index": str(index)}
            )
        return bytes(data)

    def inclusion_proof(
        self, index: int, tree_size: int, *, conn: Connection | None = None
    ) -> list[bytes]:
        """Proof that entry ``index`` is in the tree of the first ``tree_size`` entries."""
        if not (isinstance(index, int) and isinstance(tree_size, int) and 0 <= index < tree_size):
            raise InvalidArgument(f"entry {index} is not in a tree of size {tree_size}")
        with self._use(conn) as c:
            return self._proof(c, merkle.inclusion_ranges(index, tree_size), tree_size)

    def consistency_proof(
        self, old_size: int, new_size: int, *, conn: Connection | None = None
    ) -> list[bytes]:
        """Proof that the tree of ``new_size`` entries extends the one of ``old_size``."""
        if not (
            isinstance(old_size, int) and isinstance(new_size, int) and 0 <= old_size <= new_size
        ):
            raise InvalidArgument(f"no consistency proof from size {old_size} to {new_size}")
        with self._use(conn) as c:
            return self._proof(c, merkle.consistency_ranges(old_size, new_size), new_size)

    def verify(self, public_key: Ed25519PublicKey | Mapping[str, Ed25519PublicKey]) -> VerifyReport:
        """Recompute the whole log from its leaves and check everything stored against it.

        Checks, in log order: every entry is present, well formed and hashes
        to its stored leaf hash; every stored perfect-subtree hash equals the
        recomputed one; every signed head verifies under its key (``public_key``,
        or a mapping key id → key to accept heads signed before a rotation)
        and its root equals the recomputed root at its size; finally the
        stored frontier, and that nothing is stored beyond the log's size.
        Reads in chunks on one snapshot, so memory stays bounded and
        concurrent appends do not disturb it. Raises :class:`AuditLogInvalid`
        naming the first bad entry, node or head.
        """
        if isinstance(public_key, Ed25519PublicKey):
            keys = {compute_key_id(raw_public(public_key)): public_key}
        else:
            keys = dict(public_key)
        with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if conn.dialect.name == "sqlite":
                    # pysqlite opens transactions lazily, only before writes; an
                    # explicit BEGIN holds one WAL snapshot for every read below.
                    conn.exec_driver_sql("BEGIN")
                return self._verify(conn, keys)

    # --- internals -----------------------------------------------------------

    @contextmanager
    def _use(self, conn: Connection | None) -> Iterator[Connection]:
        """The caller's connection as is, or a short-lived one of our own."""
        if conn is not None:
            yield conn
            return
        with self._engine.connect() as own:
            yield own

    def _read_state(self, conn: Connection) -> _State:
        row = conn.execute(
            select(audit_state.c.log_id, audit_state.c.size, audit_state.c.frontier).where(
                audit_state.c.id == STATE_ID
            )
        ).one_or_none()
        if row is None:
            return _State(self._log_id, 0, b"")
        return self._checked_state(row)

    def _checked_state(self, row: _AnyRow | _State) -> _State:
        if row.log_id != self._log_id:
            raise ConfigError(
                f"this database holds the audit log {row.log_id!r}, not {self._log_id!r}"
            )
        return _State(row.log_id, int(row.size), bytes(row.frontier))

    def _lock_state(self, conn: Connection) -> _State:
        """Read the state row holding the lock that serializes appenders."""
        for _ in range(2):
            row = self._locked_row(conn)
            if row is not None:
                return self._checked_state(row)
            # First append ever: create the row; a racing appender's insert is
            # a no-op, and the second pass then waits for its lock.
            values = {
                "id": STATE_ID,
                "log_id": self._log_id,
                "size": 0,
                "frontier": b"",
                "updated_at": self._clock(),
            }
            CREATE_STATE.execute(conn, values)
        raise AuditLogInvalid("audit state row cannot be created")  # pragma: no cover

    def _locked_row(self, conn: Connection) -> _State | None:
        row = LOCK_STATE.execute(conn).first()
        return None if row is None else _State(str(row[0]), int(row[1]), bytes(row[2]))

    def _proof(self, conn: Connection, ranges: list[merkle.Range], tree_size: int) -> list[bytes]:
        """Hash ``ranges`` from stored nodes, in one query.

        The query also fetches the last leaf of the tree (level 0, index
        ``tree_size - 1``): it exists exactly when the log has reached
        ``tree_size``, which spares reading the state row on the hot path.
        """
        wanted = merkle.proof_nodes(ranges)
        if tree_size and (0, tree_size - 1) not in wanted:
            wanted.append((0, tree_size - 1))
        found = self._read_nodes(conn, wanted)
        missing = [node for node in wanted if node not in found]
        if missing:
            size = self._read_state(conn).size
            if tree_size > size:
                raise InvalidArgument(f"tree size {tree_size} exceeds the log size {size}")
            level, index = missing[0]
            raise AuditLogInvalid(f"audit node level {level} index {index} is missing")
        return merkle.hash_ranges(ranges, found.__getitem__)

    @staticmethod
    def _read_nodes(conn: Connection, nodes: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        if not nodes:
            return {}
        rows = conn.execute(
            select(audit_nodes.c.level, audit_nodes.c.idx, audit_nodes.c.hash).where(
                tuple_(audit_nodes.c.level, audit_nodes.c.idx).in_(list(nodes))
            )
        )
        return {(int(r.level), int(r.idx)): bytes(r.hash) for r in rows}

    def _verify(self, conn: Connection, keys: Mapping[str, Ed25519PublicKey]) -> VerifyReport:
        row = conn.execute(
            select(audit_state.c.log_id, audit_state.c.size, audit_state.c.frontier).where(
                audit_state.c.id == STATE_ID
            )
        ).one_or_none()
        if row is None:
            state = _State(self._log_id, 0, b"")
        elif row.log_id != self._log_id:
            raise AuditLogInvalid(f"the database holds log {row.log_id!r}, not {self._log_id!r}")
        else:
            state = _State(row.log_id, int(row.size), bytes(row.frontier))
        n = state.size
        frontier = merkle.Frontier()
        nodes_checked = 0
        heads_checked = 0

        def check_heads(rows: Iterable[_AnyRow]) -> None:
            nonlocal heads_checked
            root = frontier.root()
            for head in rows:
                sth = head_from_row(self._log_id, head)
                key = keys.get(sth.key_id)
                if key is None:
                    raise AuditLogInvalid(
                        f"signed head {head.id} (size {sth.tree_size}) is by unknown key "
                        f"{sth.key_id!r}"
                    )
                try:
                    verify_tree_head(sth, key)
                except AuditLogInvalid as exc:
                    raise AuditLogInvalid(f"signed head {head.id}: {exc.message}") from None
                if sth.root_hash != root:
                    raise AuditLogInvalid(
                        f"signed head {head.id} (size {sth.tree_size}) does not match the "
                        "recomputed root"
                    )
                heads_checked += 1

        head_cols = select(audit_heads).order_by(audit_heads.c.tree_size, audit_heads.c.id)
        check_heads(conn.execute(head_cols.where(audit_heads.c.tree_size == 0)))
        for start in range(0, n, _VERIFY_CHUNK):
            end = min(start + _VERIFY_CHUNK, n)
            entries = conn.execute(
                select(audit_entries)
                .where(audit_entries.c.idx >= start, audit_entries.c.idx < end)
                .order_by(audit_entries.c.idx)
            ).all()
            stored = self._nodes_completed_in(conn, start, end)
            heads: dict[int, list[_AnyRow]] = {}
            for head in conn.execute(
                head_cols.where(audit_heads.c.tree_size > start, audit_heads.c.tree_size <= end)
            ):
                heads.setdefault(int(head.tree_size), []).append(head)
            rows = iter(entries)
            for index in range(start, end):
                entry = next(rows, None)
                if entry is None or entry.idx != index:
                    raise AuditLogInvalid(f"audit entry {index} is missing")
                h = check_entry(entry)
                for level, ix, nh in frontier.append(h):
                    if stored.get((level, ix)) != nh:
                        raise AuditLogInvalid(
                            f"audit node level {level} index {ix} (completed by entry {index}) "
                            "is missing or does not match the entries"
                        )
                    nodes_checked += 1
                if index + 1 in heads:
                    check_heads(heads[index + 1])
        if frontier.encode() != state.frontier:
            raise AuditLogInvalid(f"stored frontier does not match the entries at size {n}")
        extra = conn.execute(
            select(func.min(audit_entries.c.idx)).where(
                or_(audit_entries.c.idx < 0, audit_entries.c.idx >= n)
            )
        ).scalar()
        if extra is not None:
            raise AuditLogInvalid(f"audit entry {extra} is stored beyond the log size {n}")
        expected = [
            and_(audit_nodes.c.level == lv, audit_nodes.c.idx < n >> lv)
            for lv in range(max(n.bit_length(), 1))
        ]
        stray = conn.execute(
            select(audit_nodes.c.level, audit_nodes.c.idx)
            .where(not_(or_(*expected)))
            .order_by(audit_nodes.c.level, audit_nodes.c.idx)
            .limit(1)
        ).one_or_none()
        if stray is not None:
            raise AuditLogInvalid(
                f"audit node level {stray.level} index {stray.idx} is beyond the log size {n}"
            )
        late = conn.execute(
            select(audit_heads.c.id, audit_heads.c.tree_size)
            .where(or_(audit_heads.c.tree_size > n, audit_heads.c.tree_size < 0))
            .order_by(audit_heads.c.id)
            .limit(1)
        ).one_or_none()
        if late is not None:
            raise AuditLogInvalid(
                f"signed head {late.id} claims size {late.tree_size}, beyond the log size {n}"
            )
        return VerifyReport(
            log_id=self._log_id,
            tree_size=n,
            root_hash=frontier.root(),
            entries_checked=n,
            nodes_checked=nodes_checked,
            heads_checked=heads_checked,
        )

    @staticmethod
    def _nodes_completed_in(conn: Connection, start: int, end: int) -> dict[merkle.NodeId, bytes]:
        """Stored nodes that appending entries ``start..end-1`` completes.

        Node ``(level, j)`` is completed by entry ``(j + 1) * 2**level - 1``.
        """
        conds = []
        for level in range(64):
            lo = -(-(start + 1) // (1 << level)) - 1
            hi = (end >> level) - 1
            if hi < 0:
                break
            if lo <= hi:
                conds.append(and_(audit_nodes.c.level == level, audit_nodes.c.idx.between(lo, hi)))
        rows = conn.execute(
            select(audit_nodes.c.level, audit_nodes.c.idx, audit_nodes.c.hash).where(or_(*conds))
        )
        return {(int(r.level), int(r.idx)): bytes(r.hash) for r in rows}
