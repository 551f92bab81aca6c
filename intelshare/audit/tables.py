"""The audit log's tables (SQLAlchemy Core), and a signed head's row form.

Storage layout (all tables on :data:`audit_metadata`, one log per database):

``audit_entries``
    one row per entry: ``idx`` (0-based position), ``event``, the ``leaf``
    bytes exactly as hashed, ``leaf_hash`` and ``created_at``.
``audit_nodes``
    the hash of every *perfect* subtree, keyed by ``(level, idx)``; level 0
    holds the leaf hashes. Any proof is a handful of these (see
    :mod:`intelshare.audit.merkle`), fetched in one indexed query, so proofs
    cost O(log n) reads however long the log grows.
``audit_heads``
    every signed tree head the log has issued.
``audit_state``
    a single row (id :data:`STATE_ID`): the log id, the size and the
    *frontier* (the perfect subtree roots that tile the whole log).
    Appending needs nothing else, and locking this row is what orders
    concurrent appenders (:mod:`intelshare.audit.append`).

These are the live definitions, for queries and for :func:`create_tables`.
Migrations do not import them: :mod:`intelshare.audit.schema_v1` spells out
the first version of the tables once, and :mod:`intelshare.audit.append_v1`
the database's append function.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    SmallInteger,
    String,
    Table,
)

from intelshare.audit import append_v1
from intelshare.v1.receipt_pb2 import SignedTreeHead

__all__ = [
    "STATE_ID",
    "audit_entries",
    "audit_heads",
    "audit_metadata",
    "audit_nodes",
    "audit_state",
    "create_tables",
    "head_from_row",
    "head_row",
]

_AnyRow: TypeAlias = Row[*tuple[Any, ...]]

#: The audit log's tables, for a service to create beside its own (create_tables).
audit_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
"""Metadata of the audit tables; include it in a service's Alembic target metadata."""

_Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

audit_entries = Table(
    "audit_entries",
    audit_metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("event", String(64), nullable=False, index=True),
    Column("leaf", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("idx >= 0", name="idx_not_negative"),
)

audit_nodes = Table(
    "audit_nodes",
    audit_metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    CheckConstraint("level >= 0 AND level < 64 AND idx >= 0", name="position"),
)

audit_heads = Table(
    "audit_heads",
    audit_metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("tree_size", BigInteger, nullable=False, index=True),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("ts_seconds", BigInteger, nullable=False),
    Column("ts_nanos", Integer, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Column("key_id", String(64), nullable=False),
)

audit_state = Table(
    "audit_state",
    audit_metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("log_id", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("frontier", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

STATE_ID = 1
"""The id of ``audit_state``'s one row (its check constraint allows no other)."""


def create_tables(bind: Engine | Connection) -> None:
    """Create the audit tables if missing (embedded setups, tests, or a migration's upgrade).

    On PostgreSQL also the append function :meth:`AuditLog.append_statement` calls.
    """
    audit_metadata.create_all(bind)
    if bind.dialect.name == "postgresql":
        if isinstance(bind, Engine):
            with bind.begin() as conn:
                conn.exec_driver_sql(append_v1.CREATE)
        else:
            bind.exec_driver_sql(append_v1.CREATE)


# --- a signed head's row ------------------------------------------------------------


def head_row(head: SignedTreeHead) -> dict[str, Any]:
    """The ``audit_heads`` values of a signed head (the row's ``id`` is the database's)."""
    return {
        "tree_size": head.tree_size,
        "root_hash": head.root_hash,
        "ts_seconds": head.timestamp.seconds,
        "ts_nanos": head.timestamp.nanos,
        "signature": head.signature,
        "key_id": head.key_id,
    }


def head_from_row(log_id: str, row: _AnyRow) -> SignedTreeHead:
    """The signed head an ``audit_heads`` row stores; the log id is the log's own (no column)."""
    return SignedTreeHead(
        log_id=log_id,
        tree_size=row.tree_size,
        root_hash=row.root_hash,
        timestamp=Timestamp(seconds=row.ts_seconds, nanos=row.ts_nanos),
        signature=row.signature,
        key_id=row.key_id,
    )
