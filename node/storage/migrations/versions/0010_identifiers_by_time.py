"""The identifier index by key and time: link.found reads a key's most recent holders only.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_node_identifiers_key_time",
        "node_identifiers",
        ["key", "create_ms", "record_kind", "record_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_node_identifiers_key_time", table_name="node_identifiers")
