"""The audit append as a PostgreSQL function (nothing on SQLite).

The node appends its audit entries with ``audit_append_v1`` so that it can
send them and its ``COMMIT`` together (see :mod:`intelshare.audit.append_v1`).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from intelshare.audit import append_v1

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    append_v1.create(op)


def downgrade() -> None:
    append_v1.drop(op)
