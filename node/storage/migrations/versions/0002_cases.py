"""Cases and joint task forces: cases, members, entries, local case teams;
the entry id on events.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node_events") as batch:
        batch.add_column(sa.Column("entry_id", sa.String(64), nullable=True))
    op.create_table(
        "node_cases",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("owner_agency", sa.String(128), nullable=False),
        sa.Column("standing", sa.String(8), nullable=False),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("categories", sa.Text, nullable=False),
        sa.Column("handling", sa.SmallInteger, nullable=False),
        sa.Column("tlp", sa.SmallInteger, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("update_ms", sa.BigInteger, nullable=False),
        sa.Column("close_ms", sa.BigInteger, nullable=True),
        sa.Column("created_by", sa.String(36), nullable=True),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("received_ms", sa.BigInteger, nullable=True),
        sa.Column("retain_until_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_node_cases_listing", "node_cases", ["create_ms", "case_id"])
    op.create_index("ix_node_cases_retention", "node_cases", ["retain_until_ms"])
    op.create_table(
        "node_case_members",
        sa.Column(
            "case_id",
            sa.String(64),
            sa.ForeignKey("node_cases.case_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("agency_id", sa.String(128), primary_key=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("added_ms", sa.BigInteger, nullable=False),
        sa.Column("removed_ms", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "node_case_entries",
        sa.Column("entry_id", sa.String(64), primary_key=True),
        sa.Column(
            "case_id",
            sa.String(64),
            sa.ForeignKey("node_cases.case_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author_agency", sa.String(128), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("removed_fields", sa.Text, nullable=True),
        sa.Column("written_by", sa.String(36), nullable=True),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=True),
        sa.Column("retain_until_ms", sa.BigInteger, nullable=True),
        sa.Column("signature", sa.String(16), nullable=False),
        sa.Column("evidence_message_id", sa.String(64), nullable=False),
        sa.Column("envelope_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("forwarded_by", sa.String(128), nullable=True),
        sa.Column("author_envelope", sa.LargeBinary, nullable=True),
        sa.Column("content_key", sa.LargeBinary(32), nullable=True),
    )
    op.create_index(
        "ix_node_case_entries_listing", "node_case_entries", ["case_id", "create_ms", "entry_id"]
    )
    op.create_index("ix_node_case_entries_retention", "node_case_entries", ["retain_until_ms"])
    op.create_table(
        "node_case_officers",
        sa.Column(
            "case_id",
            sa.String(64),
            sa.ForeignKey("node_cases.case_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("officer_id", sa.String(36), primary_key=True),
        sa.Column("added_ms", sa.BigInteger, nullable=False),
        sa.Column("added_by", sa.String(36), nullable=True),
    )
    op.create_index("ix_node_case_officers_officer", "node_case_officers", ["officer_id"])


def downgrade() -> None:
    op.drop_index("ix_node_case_officers_officer", table_name="node_case_officers")
    op.drop_table("node_case_officers")
    op.drop_index("ix_node_case_entries_retention", table_name="node_case_entries")
    op.drop_index("ix_node_case_entries_listing", table_name="node_case_entries")
    op.drop_table("node_case_entries")
    op.drop_table("node_case_members")
    op.drop_index("ix_node_cases_retention", table_name="node_cases")
    op.drop_index("ix_node_cases_listing", table_name="node_cases")
    op.drop_table("node_cases")
    with op.batch_alter_table("node_events") as batch:
        batch.drop_column("entry_id")
