"""IPR follow-ups: event names, holders' webhooks, the monthly statistics rollup.

- IPR events were stored as ``record.ipr.<name>``; they are ``<name>`` now
  (``detention.moved``, ``recordation.extended``), as alerts are
  ``alert.<change>``: stored rows are renamed.
- A webhook registered through the API belongs to an officer
  (``officer_id``) and, for a rights holder, to its holder organisation
  (``holder_key``), which decides the events it may receive; the agency's
  own webhooks (``intelshare webhook add``) have neither.
- ``node_ipr_stats_monthly`` sums ``node_ipr_stats`` by UTC month and every
  dimension, kept in the transaction of each change
  (:mod:`node.kinds.ipr_stats`); it is filled from the rows already there.
  Its key begins with the month and, on SQLite, is the table's order
  (``WITHOUT ROWID``).
- The index on the detention time of ``node_ipr_stats`` becomes a covering
  one (every column a breakdown reads), for the partial months at either
  end of a period, read without a look-up per row.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_KEYS = ("source", "month", "partner", "country", "category", "procedure", "right_type", "currency")
#: Every column of node_ipr_stats a breakdown reads, after the detention time.
_COVERED = (
    "source",
    "month",
    "country",
    "category",
    "procedure",
    "partner",
    "right_type",
    "currency",
    "articles",
    "value_units",
    "value_nanos",
    "f0",
    "fc",
    "fr",
    "fcr",
    "r1",
)
_SUMS = (
    "rows",
    "f0",
    "fc",
    "fr",
    "fcr",
    "articles",
    "articles_r1",
    "value_units",
    "value_units_r1",
    "value_nanos",
    "value_nanos_r1",
)


def upgrade() -> None:
    op.execute("UPDATE node_events SET type = substr(type, 12) WHERE type LIKE 'record.ipr.%'")
    with op.batch_alter_table("node_webhooks") as batch:
        batch.add_column(sa.Column("officer_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("holder_key", sa.String(160), nullable=True))
    op.create_table(
        "node_ipr_stats_monthly",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("source", sa.String(8), primary_key=True),
        sa.Column("partner", sa.String(128), primary_key=True),
        sa.Column("country", sa.String(8), primary_key=True),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("procedure", sa.String(32), primary_key=True),
        sa.Column("right_type", sa.String(48), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in _SUMS),
        # SQLite: rows stored in key order, so months are read as a range, without
        # a look-up per row through a second index
        sqlite_with_rowid=False,
    )
    op.drop_index("ix_node_ipr_stats_time", table_name="node_ipr_stats")
    op.create_index("ix_node_ipr_stats_period", "node_ipr_stats", ["detain_ms", *_COVERED])
    keys = ", ".join(_KEYS)
    op.execute(
        f"INSERT INTO node_ipr_stats_monthly ({keys}, {', '.join(_SUMS)}) "  # noqa: S608
        f"SELECT {keys}, count(*), sum(f0), sum(fc), sum(fr), sum(fcr), "
        "sum(articles), sum(articles * r1), sum(value_units), sum(value_units * r1), "
        "sum(value_nanos), sum(value_nanos * r1) "
        f"FROM node_ipr_stats GROUP BY {keys}"
    )


def downgrade() -> None:
    op.drop_index("ix_node_ipr_stats_period", table_name="node_ipr_stats")
    op.create_index("ix_node_ipr_stats_time", "node_ipr_stats", ["detain_ms"])
    op.drop_table("node_ipr_stats_monthly")
    with op.batch_alter_table("node_webhooks") as batch:
        batch.drop_column("holder_key")
        batch.drop_column("officer_id")
    op.execute(
        "UPDATE node_events SET type = 'record.ipr.' || type "
        "WHERE type LIKE 'recordation.%' OR type LIKE 'detention.%' "
        "OR type LIKE 'detention_report.%'"
    )
