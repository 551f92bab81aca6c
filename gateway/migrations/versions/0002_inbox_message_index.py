"""Index the inbox by message id.

Releasing an entry (acknowledgement, expiry) asks whether any other queue
still holds its message before dropping the envelope bytes; without this
index that question scans every queue entry.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("gw_inbox_message", "gw_inbox", ["message_id"])


def downgrade() -> None:
    op.drop_index("gw_inbox_message", table_name="gw_inbox")
