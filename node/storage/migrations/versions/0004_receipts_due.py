"""Receipts owed for received alerts, sealed in batches.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_receipts_due",
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("sender", sa.String(128), nullable=False),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("handling", sa.SmallInteger, nullable=False),
        sa.Column("tlp", sa.SmallInteger, nullable=False),
        sa.Column("envelope_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("node_receipts_due")
