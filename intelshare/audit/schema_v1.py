"""The audit tables as of schema version 1, for services' Alembic migrations.

Migrations must not import live table definitions (those change; a migration
describes one step forever), so the first version of the audit tables is
spelled out here once and called from the node's and the gateway's initial
migration.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def create(op: Any) -> None:
    """Create the version-1 audit tables with ``op`` (an ``alembic.op``)."""
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "audit_entries",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("idx >= 0", name="ck_audit_entries_idx_not_negative"),
        sa.PrimaryKeyConstraint("idx", name="pk_audit_entries"),
    )
    op.create_index("ix_audit_entries_event", "audit_entries", ["event"])
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.SmallInteger, autoincrement=False),
        sa.Column("idx", sa.BigInteger, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.CheckConstraint(
            "level >= 0 AND level < 64 AND idx >= 0", name="ck_audit_nodes_position"
        ),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_audit_nodes"),
    )
    op.create_table(
        "audit_heads",
        sa.Column("id", big_id, autoincrement=True),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("ts_seconds", sa.BigInteger, nullable=False),
        sa.Column("ts_nanos", sa.Integer, nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_heads"),
    )
    op.create_index("ix_audit_heads_tree_size", "audit_heads", ["tree_size"])
    op.create_table(
        "audit_state",
        sa.Column("id", sa.SmallInteger, autoincrement=False),
        sa.Column("log_id", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("frontier", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_state_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_state"),
    )


def drop(op: Any) -> None:
    for table in ("audit_state", "audit_heads", "audit_nodes", "audit_entries"):
        op.drop_table(table)
