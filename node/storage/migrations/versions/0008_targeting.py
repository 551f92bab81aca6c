"""Risk targeting: the identifier index, risk hits' facts, the index's cursor.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_identifiers",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("record_kind", sa.String(32), primary_key=True),
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
        sa.Column("record_name", sa.String(200), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("origin_agency", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(64), nullable=True),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_node_identifiers_record", "node_identifiers", ["record_kind", "record_id"])
    op.create_table(
        "node_risk_hits",
        sa.Column(
            "record_id",
            sa.String(64),
            sa.ForeignKey("node_records.record_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("profile_record_id", sa.String(64), nullable=True),
        sa.Column("screening_agency", sa.String(128), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("inspection", sa.String(16), nullable=False),
        sa.Column("finding", sa.String(16), nullable=False),
        sa.Column("screen_ms", sa.BigInteger, nullable=False),
        sa.Column("retain_until_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_node_risk_hits_profile", "node_risk_hits", ["profile_record_id"])
    op.create_index("ix_node_risk_hits_retention", "node_risk_hits", ["retain_until_ms"])
    counters = sa.table(
        "node_counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger)
    )
    op.bulk_insert(
        counters,
        [{"name": "identifiers_cursor", "value": 0}, {"name": "identifiers_changes", "value": 0}],
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM node_counters WHERE name IN ('identifiers_cursor', 'identifiers_changes')"
    )
    op.drop_table("node_risk_hits")
    op.drop_table("node_identifiers")
