"""Initial node schema: officers, alerts, deliveries, outbound queue, received
envelopes, events (outbox and feed log), idempotency records, audit log.

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
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "node_counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        sa.table("node_counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
        [{"name": "events", "value": 0}],
    )
    op.create_table(
        "node_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=True),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("agency_id", sa.String(128), nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("notified_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_node_events_alert", "node_events", ["alert_id"])
    op.create_index("ix_node_events_case", "node_events", ["case_id"])
    op.create_index(
        "ix_node_events_unnotified",
        "node_events",
        ["seq"],
        postgresql_where=sa.text("notified_ms IS NULL"),
        sqlite_where=sa.text("notified_ms IS NULL"),
    )
    op.create_table(
        "node_officers",
        sa.Column("officer_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
    )
    op.create_table(
        "node_alerts",
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("origin_agency", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("categories", sa.Text, nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("handling", sa.SmallInteger, nullable=False),
        sa.Column("tlp", sa.SmallInteger, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("update_ms", sa.BigInteger, nullable=False),
        sa.Column("expire_ms", sa.BigInteger, nullable=False),
        sa.Column("expired_noted", sa.Boolean, nullable=False),
        sa.Column("revoke_ms", sa.BigInteger, nullable=True),
        sa.Column("revoke_reason", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(36), nullable=True),
        sa.Column("message_id", sa.String(64), nullable=True, unique=True),
        sa.Column("received_ms", sa.BigInteger, nullable=True),
        sa.Column("retain_until_ms", sa.BigInteger, nullable=True),
        sa.Column("acknowledged_ms", sa.BigInteger, nullable=True),
        sa.Column("last_change_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_node_alerts_listing", "node_alerts", ["create_ms", "alert_id"])
    op.create_index("ix_node_alerts_expiry", "node_alerts", ["expire_ms"])
    op.create_index("ix_node_alerts_retention", "node_alerts", ["retain_until_ms"])
    op.create_table(
        "node_views",
        sa.Column("view_id", sa.String(64), primary_key=True),
        sa.Column(
            "alert_id",
            sa.String(64),
            sa.ForeignKey("node_alerts.alert_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("removed_fields", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.create_index("ix_node_views_alert", "node_views", ["alert_id"])
    op.create_table(
        "node_deliveries",
        sa.Column(
            "alert_id",
            sa.String(64),
            sa.ForeignKey("node_alerts.alert_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("agency_id", sa.String(128), primary_key=True),
        sa.Column("view_id", sa.String(64), nullable=False),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("accepted_ms", sa.BigInteger, nullable=True),
        sa.Column("delivered_ms", sa.BigInteger, nullable=True),
        sa.Column("acknowledged_ms", sa.BigInteger, nullable=True),
        sa.Column("hit_count", sa.Integer, nullable=False),
        sa.Column("last_hit_ms", sa.BigInteger, nullable=True),
        sa.Column("failure", sa.Text, nullable=True),
    )
    op.create_index("ix_node_deliveries_view", "node_deliveries", ["view_id"])
    op.create_index("ix_node_deliveries_treaty", "node_deliveries", ["treaty_id"])
    op.create_table(
        "node_hits",
        sa.Column("hit_id", sa.String(36), primary_key=True),
        sa.Column(
            "alert_id",
            sa.String(64),
            sa.ForeignKey("node_alerts.alert_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("agency_id", sa.String(128), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True, unique=True),
        sa.Column("found_ms", sa.BigInteger, nullable=True),
        sa.Column("place", sa.Text, nullable=False),
        sa.Column("found", sa.Text, nullable=False),
        sa.Column("reported_ms", sa.BigInteger, nullable=False),
        sa.Column("retain_until_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_node_hits_alert", "node_hits", ["alert_id"])
    op.create_table(
        "node_outbound",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=True),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("reference_id", sa.String(64), nullable=True),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("payload_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("envelope_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expire_ms", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("accepted_ms", sa.BigInteger, nullable=True),
        sa.Column("receipt", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_node_outbound_pending", "node_outbound", ["state", "id"])
    op.create_index("ix_node_outbound_alert", "node_outbound", ["alert_id"])
    op.create_index("ix_node_outbound_reference", "node_outbound", ["reference_id"])
    op.create_table(
        "node_received",
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("sender", sa.String(128), nullable=False),
        sa.Column("treaty_id", sa.String(128), nullable=False),
        sa.Column("treaty_version", sa.Integer, nullable=False),
        sa.Column("reference_id", sa.String(64), nullable=True),
        sa.Column("alert_id", sa.String(64), nullable=True),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("envelope_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("gateway_receipt", sa.LargeBinary, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("retain_until_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_node_received_retention", "node_received", ["retain_until_ms"])
    op.create_index("ix_node_received_alert", "node_received", ["alert_id"])
    op.create_table(
        "node_inbox",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        sa.table(
            "node_inbox",
            sa.column("id", sa.SmallInteger),
            sa.column("sequence", sa.BigInteger),
            sa.column("updated_ms", sa.BigInteger),
        ),
        [{"id": 1, "sequence": 0, "updated_ms": 0}],
    )
    op.create_table(
        "node_requests",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("officer_id", sa.String(36), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "node_treaties",
        sa.Column("treaty_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("signed", sa.LargeBinary, nullable=False),
        sa.Column("fetched_ms", sa.BigInteger, nullable=False),
    )
    audit_v1.create(op)


def downgrade() -> None:
    audit_v1.drop(op)
    for table in (
        "node_treaties",
        "node_requests",
        "node_inbox",
        "node_received",
        "node_outbound",
        "node_hits",
        "node_deliveries",
        "node_views",
        "node_alerts",
        "node_officers",
        "node_events",
        "node_counters",
    ):
        op.drop_table(table)
