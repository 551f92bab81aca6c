"""Records of the generic kinds (node.sharing.records), their views and deliveries.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("node_events", sa.Column("record_id", sa.String(64), nullable=True))
    op.add_column("node_received", sa.Column("record_id", sa.String(64), nullable=True))
    # Partial: only envelopes of generic records are looked up by record (at
    # their purge); an alert's envelope costs no index entry for it.
    op.create_index(
        "ix_node_received_record",
        "node_received",
        ["record_id"],
        postgresql_where=sa.text("record_id IS NOT NULL"),
        sqlite_where=sa.text("record_id IS NOT NULL"),
    )
    op.create_table(
        "node_records",
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("origin_agency", sa.String(128), nullable=False),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("categories", sa.Text, nullable=False),
        sa.Column("handling", sa.SmallInteger, nullable=False),
        sa.Column("tlp", sa.SmallInteger, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("update_ms", sa.BigInteger, nullable=False),
        sa.Column("expire_ms", sa.BigInteger, nullable=False),
        sa.Column("revoke_ms", sa.BigInteger, nullable=True),
        sa.Column("revoke_reason", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(36), nullable=True),
        sa.Column("received_ms", sa.BigInteger, nullable=True),
        sa.Column("retain_until_ms", sa.BigInteger, nullable=True),
        sa.Column("last_change_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_node_records_listing", "node_records", ["kind", "create_ms", "record_id"])
    op.create_index("ix_node_records_retention", "node_records", ["retain_until_ms"])
    op.create_table(
        "node_record_views",
        sa.Column("view_id", sa.String(64), primary_key=True),
        sa.Column(
            "record_id",
            sa.String(64),
            sa.ForeignKey("node_records.record_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("removed_fields", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.create_index("ix_node_record_views_record", "node_record_views", ["record_id"])
    op.create_table(
        "node_record_deliveries",
        sa.Column(
            "record_id",
            sa.String(64),
            sa.ForeignKey("node_records.record_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("agency_id", sa.String(128), primary_key=True),
        sa.Column("view_id", sa.String(64), nullable=False),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("delivered_ms", sa.BigInteger, nullable=True),
        sa.Column("failure", sa.Text, nullable=True),
    )
    op.create_index("ix_node_record_deliveries_view", "node_record_deliveries", ["view_id"])


def downgrade() -> None:
    op.drop_table("node_record_deliveries")
    op.drop_table("node_record_views")
    op.drop_table("node_records")
    op.drop_index("ix_node_received_record", "node_received")
    op.drop_column("node_received", "record_id")
    op.drop_column("node_events", "record_id")
