"""IPR enforcement: recordations' search keys, detentions, reports, statistics, holders.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _record_fk() -> "sa.Column[str]":
    return sa.Column(
        "record_id",
        sa.String(64),
        sa.ForeignKey("node_records.record_id", ondelete="CASCADE"),
        primary_key=True,
    )


def upgrade() -> None:
    with op.batch_alter_table("node_officers") as batch:
        batch.add_column(sa.Column("holder_key", sa.String(160), nullable=True))
    op.create_table(
        "node_recordations",
        _record_fk(),
        sa.Column("recordation_id", sa.String(64), nullable=False),
        sa.Column("origin_name", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("origin_agency", sa.String(128), nullable=False),
        sa.Column("holder_key", sa.String(160), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("grant_ms", sa.BigInteger, nullable=False),
        sa.Column("expire_ms", sa.BigInteger, nullable=False),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("full_record", sa.Text, nullable=True),
    )
    op.create_index(
        "ux_node_recordations_name", "node_recordations", ["recordation_id"], unique=True
    )
    op.create_index("ix_node_recordations_holder", "node_recordations", ["holder_key"])
    op.create_index("ix_node_recordations_listing", "node_recordations", ["create_ms", "record_id"])
    op.create_index("ix_node_recordations_expiry", "node_recordations", ["state", "expire_ms"])
    op.create_index(
        "ix_node_recordations_origin", "node_recordations", ["origin_agency", "origin_name"]
    )
    op.create_table(
        "node_recordation_keys",
        _record_fk(),
        sa.Column("key_type", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
    )
    op.create_index("ix_node_recordation_keys_lookup", "node_recordation_keys", ["key_type", "key"])
    op.create_table(
        "node_detentions",
        sa.Column("detention_id", sa.String(64), primary_key=True),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("procedure", sa.String(32), nullable=False),
        sa.Column("detain_ms", sa.BigInteger, nullable=False),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("update_ms", sa.BigInteger, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(36), nullable=True),
    )
    op.create_index("ix_node_detentions_listing", "node_detentions", ["create_ms", "detention_id"])
    op.create_index("ix_node_detentions_state", "node_detentions", ["state"])
    op.create_table(
        "node_detention_recordations",
        sa.Column(
            "detention_id",
            sa.String(64),
            sa.ForeignKey("node_detentions.detention_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("recordation_id", sa.String(64), primary_key=True),
    )
    op.create_index(
        "ix_node_detention_recordations_recordation",
        "node_detention_recordations",
        ["recordation_id"],
    )
    op.create_table(
        "node_detention_deadlines",
        sa.Column(
            "detention_id",
            sa.String(64),
            sa.ForeignKey("node_detentions.detention_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("due_ms", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reminded_ms", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ix_node_detention_deadlines_due", "node_detention_deadlines", ["state", "due_ms"]
    )
    op.create_table(
        "node_ipr_reports",
        _record_fk(),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("detention_id", sa.String(64), nullable=True),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_node_ipr_reports_listing", "node_ipr_reports", ["create_ms", "record_id"])
    op.create_index("ix_node_ipr_reports_detention", "node_ipr_reports", ["detention_id"])
    op.create_table(
        "node_ipr_report_links",
        _record_fk(),
        sa.Column("recordation_id", sa.String(64), primary_key=True),
    )
    op.create_index(
        "ix_node_ipr_report_links_recordation", "node_ipr_report_links", ["recordation_id"]
    )
    op.create_table(
        "node_ipr_stats",
        sa.Column("source", sa.String(8), primary_key=True),
        sa.Column("source_id", sa.String(64), primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("partner", sa.String(128), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("detain_ms", sa.BigInteger, nullable=False),
        sa.Column("country", sa.String(8), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("procedure", sa.String(32), nullable=False),
        sa.Column("right_type", sa.String(48), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("articles", sa.BigInteger, nullable=False),
        sa.Column("value_units", sa.BigInteger, nullable=False),
        sa.Column("value_nanos", sa.BigInteger, nullable=False),
        sa.Column("f0", sa.SmallInteger, nullable=False),
        sa.Column("fc", sa.SmallInteger, nullable=False),
        sa.Column("fr", sa.SmallInteger, nullable=False),
        sa.Column("fcr", sa.SmallInteger, nullable=False),
        sa.Column("r1", sa.SmallInteger, nullable=False),
    )
    op.create_index("ix_node_ipr_stats_time", "node_ipr_stats", ["detain_ms"])


def downgrade() -> None:
    op.drop_table("node_ipr_stats")
    op.drop_table("node_ipr_report_links")
    op.drop_table("node_ipr_reports")
    op.drop_table("node_detention_deadlines")
    op.drop_table("node_detention_recordations")
    op.drop_table("node_detentions")
    op.drop_table("node_recordation_keys")
    op.drop_table("node_recordations")
    with op.batch_alter_table("node_officers") as batch:
        batch.drop_column("holder_key")
