"""Notifications: relay bookkeeping on the event log, webhooks and their deliveries.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node_events") as batch:
        batch.add_column(sa.Column("relay_ms", sa.BigInteger, nullable=True))
    op.create_table(
        "node_webhooks",
        sa.Column("webhook_id", sa.String(36), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("secret", sa.LargeBinary, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
    )
    op.create_table(
        "node_webhook_deliveries",
        sa.Column(
            "webhook_id",
            sa.String(36),
            sa.ForeignKey("node_webhooks.webhook_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("delivered_ms", sa.BigInteger, nullable=True),
        sa.Column("dead_ms", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ix_node_webhook_deliveries_state",
        "node_webhook_deliveries",
        ["state", "next_attempt_ms"],
    )


def downgrade() -> None:
    op.drop_index("ix_node_webhook_deliveries_state", "node_webhook_deliveries")
    op.drop_table("node_webhook_deliveries")
    op.drop_table("node_webhooks")
    with op.batch_alter_table("node_events") as batch:
        batch.drop_column("relay_ms")
