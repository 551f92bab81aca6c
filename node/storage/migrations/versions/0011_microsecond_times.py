"""Times partners report keep their microseconds: acknowledgements and hits.

An acknowledgement's and a hit's times travel from the recipient to the
issuer, and both ends must show the same instant (issue 22, item 7):
milliseconds lost the rest of the microsecond and let an acknowledgement
appear after a hit that followed it. The columns change unit, and name, in
place (values times 1000), so no column holds a second copy of a time:

* ``node_alerts.acknowledged_ms``      -> ``acknowledged_us`` (recipient side)
* ``node_deliveries.acknowledged_ms``  -> ``acknowledged_us`` (issuer side)
* ``node_deliveries.last_hit_ms``      -> ``last_hit_us``
* ``node_hits.found_ms``               -> ``found_us``
* ``node_hits.reported_ms``            -> ``reported_us``

``ALTER TABLE ... RENAME COLUMN`` (SQLite 3.25+, PostgreSQL), not a batch
copy: copying node_alerts would drop it, and its foreign keys cascade.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_RENAMES = (
    ("node_alerts", "acknowledged_ms", "acknowledged_us"),
    ("node_deliveries", "acknowledged_ms", "acknowledged_us"),
    ("node_deliveries", "last_hit_ms", "last_hit_us"),
    ("node_hits", "found_ms", "found_us"),
    ("node_hits", "reported_ms", "reported_us"),
)


def upgrade() -> None:
    for table, old, new in _RENAMES:
        op.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
        op.execute(f"UPDATE {table} SET {new} = {new} * 1000 WHERE {new} IS NOT NULL")  # noqa: S608


def downgrade() -> None:
    for table, old, new in _RENAMES:
        op.execute(f"UPDATE {table} SET {new} = {new} / 1000 WHERE {new} IS NOT NULL")  # noqa: S608
        op.execute(f"ALTER TABLE {table} RENAME COLUMN {new} TO {old}")
