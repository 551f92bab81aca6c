"""Initial gateway schema: messages, queues, inbox, directories, treaties, audit log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from intelshare.audit import schema_v1 as audit_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gw_messages",
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("sender", sa.String(128), nullable=False),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("envelope_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("log_index", sa.BigInteger, nullable=False),
        sa.Column("receipt", sa.LargeBinary, nullable=False),
        sa.Column("accept_ms", sa.BigInteger, nullable=False),
        sa.Column("expire_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "gw_queues",
        sa.Column("agency_id", sa.String(128), primary_key=True),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("acked_sequence", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "gw_inbox",
        sa.Column("agency_id", sa.String(128), primary_key=True),
        sa.Column("sequence", sa.BigInteger, primary_key=True),
        sa.Column(
            "message_id",
            sa.String(64),
            sa.ForeignKey("gw_messages.message_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("expire_ms", sa.BigInteger, nullable=False),
        sa.Column("delivered_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("gw_inbox_expiry", "gw_inbox", ["expire_ms"])
    op.create_table(
        "gw_directories",
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("signed", sa.LargeBinary, nullable=False),
        sa.Column("publish_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "gw_treaties",
        sa.Column("treaty_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("signed", sa.LargeBinary, nullable=False),
        sa.Column("publish_ms", sa.BigInteger, nullable=False),
    )
    audit_v1.create(op)


def downgrade() -> None:
    audit_v1.drop(op)
    for table in ("gw_treaties", "gw_directories", "gw_inbox", "gw_queues", "gw_messages"):
        op.drop_table(table)
