"""How an append writes: the statements that lock the audit state and store a batch.

:meth:`AuditLog.append_many <intelshare.audit.log.AuditLog.append_many>`
computes a batch in Python between two statements of this module, and
holds the state row's lock from the first until its caller commits:

* :data:`LOCK_STATE` serializes appenders: ``SELECT ... FOR UPDATE`` on
  PostgreSQL, and on SQLite a write to the row as the first statement,
  which takes the database write lock before anything is read.
  :data:`CREATE_STATE` makes the row on the first append ever.
* :func:`write_batch` stores the entries, the subtrees they complete, the
  new state and, when asked, a signed head: on PostgreSQL one statement of
  fixed text, the batch bound as a few parameters whatever its size; on
  SQLite a few runs on pysqlite's own cursor.

The node's pipelined append does the same work inside PostgreSQL
(:mod:`intelshare.audit.append_v1`); :func:`leaf_index` is how both hand a
batch's leaves to the server, one byte string cut apart by offset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.dialects import postgresql, sqlite

from intelshare.audit import merkle
from intelshare.audit.tables import audit_state, head_row
from intelshare.db import Statement
from intelshare.errors import AuditLogInvalid
from intelshare.v1.receipt_pb2 import SignedTreeHead

__all__ = ["CREATE_STATE", "LOCK_STATE", "leaf_index", "write_batch"]

#: JSON text of plain lists (the batch write's parameters), one encoder.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


# One statement on PostgreSQL for everything an append writes while it holds the
# state row's lock. The batch is bound as a few parameters whatever its size
# (entries and subtrees as short JSON lists, their bytes concatenated and cut
# apart by offset in SQL), so the text never changes, psycopg prepares it once
# and SQLAlchemy compiles nothing.
_PG_APPEND = """
WITH new_entries AS (
    INSERT INTO audit_entries (idx, event, leaf, leaf_hash, created_at)
    SELECT %(first)s + e.o - 1, e.v->>0,
           substring(%(leaves)s::bytea FROM (e.v->>1)::int + 1 FOR (e.v->>2)::int),
           substring(%(hashes)s::bytea
                     FROM ((e.o - 1) * {hash_size} + 1)::int FOR {hash_size}),
           %(now)s
    FROM json_array_elements(%(entries)s::json) WITH ORDINALITY AS e(v, o)
), new_nodes AS (
    INSERT INTO audit_nodes (level, idx, hash)
    SELECT (n.v->>0)::smallint, (n.v->>1)::bigint,
           substring(%(node_hashes)s::bytea
                     FROM ((n.o - 1) * {hash_size} + 1)::int FOR {hash_size})
    FROM json_array_elements(%(nodes)s::json) WITH ORDINALITY AS n(v, o)
){head}
UPDATE audit_state SET size = %(size)s, frontier = %(frontier)s, updated_at = %(now)s
WHERE id = 1 AND size = %(first)s
"""
_PG_HEAD = """, new_head AS (
    INSERT INTO audit_heads (tree_size, root_hash, ts_seconds, ts_nanos, signature, key_id)
    VALUES (%(tree_size)s, %(root_hash)s, %(ts_seconds)s, %(ts_nanos)s, %(signature)s,
            %(key_id)s)
)"""


#: PostgreSQL's batch append, without and with a signed head
_APPEND = {
    signed: Statement(
        postgresql=_PG_APPEND.format(head=_PG_HEAD if signed else "", hash_size=merkle.HASH_SIZE)
    )
    for signed in (False, True)
}

# SQLite's batch append: four statements, on pysqlite's own cursor (a
# SQLAlchemy execute costs more than the statement here), under the
# database write lock the appender took first.
_ADD_ENTRY = Statement(
    sqlite="INSERT INTO audit_entries (idx, event, leaf, leaf_hash, created_at) "
    "VALUES (?, ?, ?, ?, ?)"
)
_ADD_NODE = Statement(sqlite="INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)")
_ADD_HEAD = Statement(
    sqlite="INSERT INTO audit_heads (tree_size, root_hash, ts_seconds, ts_nanos, signature, "
    "key_id) VALUES (?, ?, ?, ?, ?, ?)"
)
_ADVANCE = Statement(
    sqlite="UPDATE audit_state SET size = ?, frontier = ?, updated_at = ? WHERE id = 1 AND size = ?"
)
# The lock that serializes appenders. On SQLite a write first, so that
# pysqlite BEGINs and SQLite takes the database write lock (waiting out
# busy_timeout) before the state is read, and no other appender can have
# read the same size.
LOCK_STATE = Statement(
    postgresql="SELECT log_id, size, frontier FROM audit_state WHERE id = 1 FOR UPDATE",
    sqlite="UPDATE audit_state SET size = size WHERE id = 1 RETURNING log_id, size, frontier",
)


def leaf_index(events: Sequence[str], leaves: Sequence[bytes]) -> str:
    """``[[event, offset, length], ...]`` into ``b"".join(leaves)``, as compact JSON.

    How a batch's leaves travel to PostgreSQL: one byte string cut apart by
    offset in SQL, whatever the number of entries (see :func:`write_batch`).
    """
    index, offset = [], 0
    for event, data in zip(events, leaves, strict=True):
        index.append((event, offset, len(data)))
        offset += len(data)
    return _compact_json(index)


def write_batch(
    conn: Connection,
    *,
    first: int,
    events: Sequence[str],
    leaves: Sequence[bytes],
    hashes: Sequence[bytes],
    completed: Sequence[tuple[int, int, bytes]],
    frontier: merkle.Frontier,
    head: SignedTreeHead | None,
    now: datetime,
) -> None:
    """Store a batch of entries, the subtrees they complete, the new state and the head.

    The caller holds the state row's lock (:data:`LOCK_STATE`) and read
    ``first`` and the frontier under it.
    """
    if conn.dialect.name == "postgresql":
        # Per batch three byte strings and two short JSON texts, cut apart in
        # SQL: binding arrays costs psycopg a Python dumper per element and
        # per array, several times the statement's own client time here.
        # Bytes stay bytes (offsets into one bytea), so nothing is re-encoded.
        entries = leaf_index(events, leaves)
        if any(len(h) != merkle.HASH_SIZE for h in hashes) or any(
            len(node) != merkle.HASH_SIZE for _, _, node in completed
        ):
            raise AuditLogInvalid("audit hashes must be SHA-256 digests")
        params: dict[str, Any] = {
            "now": now,
            "first": first,
            "entries": entries,
            "leaves": b"".join(leaves),
            "hashes": b"".join(hashes),
            "nodes": _compact_json([(level, index) for level, index, _ in completed]),
            "node_hashes": b"".join(node for _, _, node in completed),
            "size": frontier.size,
            "frontier": frontier.encode(),
        }
        if head is not None:
            params.update(head_row(head))
        changed = _APPEND[head is not None].execute(conn, params).rowcount
    else:
        # SQLite: the driver's own connection, tuples, executemany per table
        # (a SQLAlchemy execute costs more than the statement here). The
        # timestamp is written as SQLAlchemy's SQLite DateTime stores it
        # (UTC, the log's clock), so reads through the table definitions see
        # the same.
        at = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if leaves:
            _ADD_ENTRY.execute(
                conn,
                [
                    (first + i, ev, data, h, at)
                    for i, (ev, data, h) in enumerate(zip(events, leaves, hashes, strict=True))
                ],
            )
            if completed:
                _ADD_NODE.execute(conn, list(completed))
        if head is not None:
            _ADD_HEAD.execute(
                conn,
                (
                    head.tree_size,
                    head.root_hash,
                    head.timestamp.seconds,
                    head.timestamp.nanos,
                    head.signature,
                    head.key_id,
                ),
            )
        changed = _ADVANCE.execute(conn, (frontier.size, frontier.encode(), at, first)).rowcount
    if changed != 1:  # cannot happen while the row lock holds
        raise AuditLogInvalid("audit state changed under the row lock")


# The state row of the first append ever; a racing appender's insert is a no-op.
CREATE_STATE = Statement(
    insert(audit_state),
    postgresql=postgresql.insert(audit_state).on_conflict_do_nothing(),
    sqlite=sqlite.insert(audit_state).on_conflict_do_nothing(),
)
