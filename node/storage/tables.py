"""The node's tables (SQLAlchemy Core), as the code sees them today.

Migrations in ``node/storage/migrations`` create them; a migration never imports
this module, because a migration describes one step forever while these
definitions follow the code. ``tests/node/storage/test_store.py`` checks that the
migrated schema and this metadata agree.

Times are integer milliseconds since the epoch (``*_ms``): the same on
SQLite and PostgreSQL, no time-zone surprises, and cheap to compare. Times
a partner reports and both ends show (acknowledgements, hits) are integer
microseconds (``*_us``), so that they arrive exactly as they left.
Structured values (category lists, records) are canonical JSON text.

Table by table:

``node_counters``
    named counters incremented inside the transaction that uses them; the
    ``events`` counter gives event sequence numbers (see :mod:`node.storage.store`).
``node_events``
    the transactional outbox and the feed log at once: one row per thing
    that happened, ids only, written in the same transaction as the change.
``node_officers``
    the agency's officers; tokens are stored as SHA-256 hex only.
``node_alerts``
    issued and received alerts. For an issued alert ``record`` is the full
    record; for a received one it is exactly what arrived.
``node_views``
    one row per distinct redacted copy of an issued alert (recipients under
    one treaty share a copy); ``view_id`` is the message id of the alert
    envelope that carried it, which the recipient uses as its alert id.
``node_deliveries``
    what the issuer knows about each recipient of an issued alert.
``node_hits``
    hit reports, received by the issuer or sent by a recipient.
``node_outbound``
    every envelope this node sealed, with its plaintext payload (what the
    recipients received) and, until the gateway accepts it, its place in
    the send queue.
``node_received``
    every envelope accepted from the inbox, verbatim, with the gateway's
    receipt: evidence of what arrived. Purged with the record at the end of
    the treaty's retention.
``node_inbox``
    the gateway inbox cursor (one row).
``node_requests``
    idempotency records: request_id to the response first given.
``node_treaties``
    signed treaties fetched from the gateway.
``node_cases`` / ``node_case_members`` / ``node_case_entries`` / ``node_case_officers``
    joint cases this node owns or is a member of, their member agencies as
    this node knows them, their append-only entries with the evidence that
    binds each to its author (see :mod:`node.kinds.cases`), and each case's local
    team of officers (never shared).
``node_records`` / ``node_record_views`` / ``node_record_deliveries``
    records of the generic kinds (:mod:`node.sharing.records`: recordations,
    detention reports, risk profiles, ...), issued and received, in their
    JSON form; the redacted copy each treaty's recipients received; and
    what the issuer knows of each recipient. The same shape as the alert
    tables, for every kind that needs nothing of its own.
``node_recordations`` / ``node_recordation_keys``
    the IPR facts of every recordation (:mod:`node.kinds.recordations`) beside
    its generic record: its name, holder key, lifecycle state and validity,
    the issuer's complete copy (internal notes and officers, which the
    generic record, being what partners receive, never holds), and one row
    per GTIN-14, HS subheading and right name for the product search.
``node_detentions`` / ``node_detention_recordations`` / ``node_detention_deadlines``
    detentions (:mod:`node.kinds.detentions`), which never leave the node:
    the full record, the recordations an officer confirmed, and each
    deadline's due time for reminders and the ``deadline_passed`` job.
``node_ipr_reports`` / ``node_ipr_report_links`` / ``node_ipr_stats``
    detention reports (issued or received; the record itself is generic)
    with the recordations a received one links to, and one statistics row
    per (detention or report, category, right, currency) for the
    enforcement statistics the database sums.
``node_ipr_stats_monthly``
    those rows summed by month and dimension, kept in the same transaction,
    so a breakdown of whole months reads sums instead of every row.
``node_identifiers``
    the identifier index of risk targeting (:mod:`node.storage.identifiers`):
    one row per (identifier key, record, role) over every record the node
    holds (alerts, case entries, detentions, recordations, risk hits), for
    ``FindRelated``, ``link.found`` events and the screening watch list.
    It never leaves the node.
``node_risk_hits``
    the facts of each risk hit (:mod:`node.kinds.risk_profiles`) beside its
    generic record: the profile it matched, who screened, the outcome, and
    when a hit screened here is purged.
``node_webhooks`` / ``node_webhook_deliveries``
    webhooks the agency registered (secret encrypted under a key derived
    from the agency's encryption key) and one row per (webhook, event) to
    deliver: pending, delivered or dead (the dead letters); see
    :mod:`node.notify`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

metadata = MetaData()

counters = Table(
    "node_counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

events = Table(
    "node_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("alert_id", String(64), nullable=True),
    Column("case_id", String(64), nullable=True),
    Column("agency_id", String(128), nullable=True),
    # the case entry an event is about (case.entry_added)
    Column("entry_id", String(64), nullable=True),
    # the generic record an event is about (record.*; node.sharing.records)
    Column("record_id", String(64), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("notified_ms", BigInteger, nullable=True),
    # when the outbox relay last handed the row to Celery (node.notify.relay)
    Column("relay_ms", BigInteger, nullable=True),
)
Index("ix_node_events_alert", events.c.alert_id)
Index("ix_node_events_case", events.c.case_id)
Index(
    "ix_node_events_unnotified",
    events.c.seq,
    postgresql_where=events.c.notified_ms.is_(None),
    sqlite_where=events.c.notified_ms.is_(None),
)

officers = Table(
    "node_officers",
    metadata,
    Column("officer_id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False),
    # rights_holder officers: the holder organisation they act for (node.ipr.views.holder_key)
    Column("holder_key", String(160), nullable=True),
)

alerts = Table(
    "node_alerts",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("direction", String(8), nullable=False),
    Column("origin_agency", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("treaty_id", String(128), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("categories", Text, nullable=False),
    Column("recipients", Text, nullable=False),
    Column("handling", SmallInteger, nullable=False),
    Column("tlp", SmallInteger, nullable=False),
    Column("record", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("state", String(8), nullable=False),
    Column("create_ms", BigInteger, nullable=False),
    Column("update_ms", BigInteger, nullable=False),
    Column("expire_ms", BigInteger, nullable=False),
    Column("expired_noted", Boolean, nullable=False),
    Column("revoke_ms", BigInteger, nullable=True),
    Column("revoke_reason", Text, nullable=True),
    Column("created_by", String(36), nullable=True),
    Column("message_id", String(64), nullable=True, unique=True),
    Column("received_ms", BigInteger, nullable=True),
    Column("retain_until_ms", BigInteger, nullable=True),
    Column("acknowledged_us", BigInteger, nullable=True),
    Column("last_change_ms", BigInteger, nullable=True),
)
Index("ix_node_alerts_listing", alerts.c.create_ms, alerts.c.alert_id)
Index("ix_node_alerts_expiry", alerts.c.expire_ms)
Index("ix_node_alerts_retention", alerts.c.retain_until_ms)

views = Table(
    "node_views",
    metadata,
    Column("view_id", String(64), primary_key=True),
    Column(
        "alert_id",
        String(64),
        ForeignKey("node_alerts.alert_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("treaty_id", String(128), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("recipients", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("removed_fields", Text, nullable=False),
    Column("revision", Integer, nullable=False),
)
Index("ix_node_views_alert", views.c.alert_id)

deliveries = Table(
    "node_deliveries",
    metadata,
    Column(
        "alert_id",
        String(64),
        ForeignKey("node_alerts.alert_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("agency_id", String(128), primary_key=True),
    Column("view_id", String(64), nullable=False),
    Column("treaty_id", String(128), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("accepted_ms", BigInteger, nullable=True),
    Column("delivered_ms", BigInteger, nullable=True),
    Column("acknowledged_us", BigInteger, nullable=True),
    Column("hit_count", Integer, nullable=False),
    Column("last_hit_us", BigInteger, nullable=True),
    Column("failure", Text, nullable=True),
)
Index("ix_node_deliveries_view", deliveries.c.view_id)
Index("ix_node_deliveries_treaty", deliveries.c.treaty_id)

hits = Table(
    "node_hits",
    metadata,
    Column("hit_id", String(36), primary_key=True),
    Column(
        "alert_id",
        String(64),
        ForeignKey("node_alerts.alert_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("agency_id", String(128), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("message_id", String(64), nullable=True, unique=True),
    Column("found_us", BigInteger, nullable=True),
    Column("place", Text, nullable=False),
    Column("found", Text, nullable=False),
    Column("reported_us", BigInteger, nullable=False),
    Column("retain_until_ms", BigInteger, nullable=True),
)
Index("ix_node_hits_alert", hits.c.alert_id)

outbound = Table(
    "node_outbound",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("kind", SmallInteger, nullable=False),
    Column("alert_id", String(64), nullable=True),
    Column("case_id", String(64), nullable=True),
    Column("reference_id", String(64), nullable=True),
    Column("treaty_id", String(128), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("recipients", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("payload_sha256", LargeBinary(32), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("envelope_sha256", LargeBinary(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expire_ms", BigInteger, nullable=False),
    Column("state", String(8), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("accepted_ms", BigInteger, nullable=True),
    Column("receipt", LargeBinary, nullable=True),
)
Index("ix_node_outbound_pending", outbound.c.state, outbound.c.id)
Index("ix_node_outbound_alert", outbound.c.alert_id)
Index("ix_node_outbound_reference", outbound.c.reference_id)

received = Table(
    "node_received",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("kind", SmallInteger, nullable=False),
    Column("sender", String(128), nullable=False),
    Column("treaty_id", String(128), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("reference_id", String(64), nullable=True),
    Column("alert_id", String(64), nullable=True),
    Column("case_id", String(64), nullable=True),
    # the generic record an envelope is about (node.sharing.records)
    Column("record_id", String(64), nullable=True),
    Column("sequence", BigInteger, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("envelope_sha256", LargeBinary(32), nullable=False),
    Column("gateway_receipt", LargeBinary, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("retain_until_ms", BigInteger, nullable=False),
)
Index("ix_node_received_retention", received.c.retain_until_ms)
Index("ix_node_received_alert", received.c.alert_id)
Index(
    "ix_node_received_record",
    received.c.record_id,
    postgresql_where=received.c.record_id.is_not(None),
    sqlite_where=received.c.record_id.is_not(None),
)

#: Receipts owed for alerts received: written with the alert, sealed a moment
#: later one per issuer for all that came in meanwhile (node.sharing.receipts).
receipts_due = Table(
    "node_receipts_due",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("sender", String(128), nullable=False),
    Column("treaty_id", String(128), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("handling", SmallInteger, nullable=False),
    Column("tlp", SmallInteger, nullable=False),
    Column("envelope_sha256", LargeBinary(32), nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    #: the inbox sequence it came with: the order of alerts stored in one millisecond
    Column("sequence", BigInteger, nullable=False),
)

inbox = Table(
    "node_inbox",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("sequence", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

requests = Table(
    "node_requests",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("officer_id", String(36), nullable=False),
    Column("method", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("response", LargeBinary, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

treaties = Table(
    "node_treaties",
    metadata,
    Column("treaty_id", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("signed", LargeBinary, nullable=False),
    Column("fetched_ms", BigInteger, nullable=False),
)

webhooks = Table(
    "node_webhooks",
    metadata,
    Column("webhook_id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("secret", LargeBinary, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False),
    # registered through the API by this officer (NULL: the agency's, by the admin CLI)
    Column("officer_id", String(36), nullable=True),
    # a rights holder's webhook: only its own detentions and recordations (node.notify)
    Column("holder_key", String(160), nullable=True),
)

webhook_deliveries = Table(
    "node_webhook_deliveries",
    metadata,
    Column(
        "webhook_id",
        String(36),
        ForeignKey("node_webhooks.webhook_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("event_id", String(36), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("lease_until_ms", BigInteger, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("delivered_ms", BigInteger, nullable=True),
    Column("dead_ms", BigInteger, nullable=True),
)
Index(
    "ix_node_webhook_deliveries_state",
    webhook_deliveries.c.state,
    webhook_deliveries.c.next_attempt_ms,
)

cases = Table(
    "node_cases",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("owner_agency", String(128), nullable=False),
    Column("standing", String(8), nullable=False),
    Column("title", Text, nullable=True),
    Column("status", String(8), nullable=False),
    Column("treaty_id", String(128), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("categories", Text, nullable=False),
    Column("handling", SmallInteger, nullable=False),
    Column("tlp", SmallInteger, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("create_ms", BigInteger, nullable=False),
    Column("update_ms", BigInteger, nullable=False),
    Column("close_ms", BigInteger, nullable=True),
    Column("created_by", String(36), nullable=True),
    Column("message_id", String(64), nullable=True),
    Column("received_ms", BigInteger, nullable=True),
    Column("retain_until_ms", BigInteger, nullable=True),
)
Index("ix_node_cases_listing", cases.c.create_ms, cases.c.case_id)
Index("ix_node_cases_retention", cases.c.retain_until_ms)

case_members = Table(
    "node_case_members",
    metadata,
    Column(
        "case_id",
        String(64),
        ForeignKey("node_cases.case_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("agency_id", String(128), primary_key=True),
    Column("state", String(8), nullable=False),
    Column("added_ms", BigInteger, nullable=False),
    Column("removed_ms", BigInteger, nullable=True),
)

case_entries = Table(
    "node_case_entries",
    metadata,
    Column("entry_id", String(64), primary_key=True),
    Column(
        "case_id",
        String(64),
        ForeignKey("node_cases.case_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("author_agency", String(128), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("record", Text, nullable=False),
    Column("removed_fields", Text, nullable=True),
    Column("written_by", String(36), nullable=True),
    Column("create_ms", BigInteger, nullable=False),
    Column("received_ms", BigInteger, nullable=True),
    Column("retain_until_ms", BigInteger, nullable=True),
    Column("signature", String(16), nullable=False),
    Column("evidence_message_id", String(64), nullable=False),
    Column("envelope_sha256", LargeBinary(32), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("forwarded_by", String(128), nullable=True),
    Column("author_envelope", LargeBinary, nullable=True),
    Column("content_key", LargeBinary(32), nullable=True),
)
Index(
    "ix_node_case_entries_listing",
    case_entries.c.case_id,
    case_entries.c.create_ms,
    case_entries.c.entry_id,
)
Index("ix_node_case_entries_retention", case_entries.c.retain_until_ms)

case_officers = Table(
    "node_case_officers",
    metadata,
    Column(
        "case_id",
        String(64),
        ForeignKey("node_cases.case_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("officer_id", String(36), primary_key=True),
    Column("added_ms", BigInteger, nullable=False),
    Column("added_by", String(36), nullable=True),
)
Index("ix_node_case_officers_officer", case_officers.c.officer_id)


records = Table(
    "node_records",
    metadata,
    Column("record_id", String(64), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("origin_agency", String(128), nullable=False),
    # received: the treaty it arrived under; issued: the first recipient's
    Column("treaty_id", String(128), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("categories", Text, nullable=False),
    Column("handling", SmallInteger, nullable=False),
    Column("tlp", SmallInteger, nullable=False),
    Column("record", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("create_ms", BigInteger, nullable=False),
    Column("update_ms", BigInteger, nullable=False),
    Column("expire_ms", BigInteger, nullable=False),
    Column("revoke_ms", BigInteger, nullable=True),
    Column("revoke_reason", Text, nullable=True),
    Column("created_by", String(36), nullable=True),
    Column("received_ms", BigInteger, nullable=True),
    Column("retain_until_ms", BigInteger, nullable=True),
    # received: the envelope time of the newest version applied
    Column("last_change_ms", BigInteger, nullable=True),
)
Index("ix_node_records_listing", records.c.kind, records.c.create_ms, records.c.record_id)
Index("ix_node_records_retention", records.c.retain_until_ms)

record_views = Table(
    "node_record_views",
    metadata,
    Column("view_id", String(64), primary_key=True),
    Column(
        "record_id",
        String(64),
        ForeignKey("node_records.record_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("treaty_id", String(128), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("recipients", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("removed_fields", Text, nullable=False),
    Column("revision", Integer, nullable=False),
)
Index("ix_node_record_views_record", record_views.c.record_id)

record_deliveries = Table(
    "node_record_deliveries",
    metadata,
    Column(
        "record_id",
        String(64),
        ForeignKey("node_records.record_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("agency_id", String(128), primary_key=True),
    Column("view_id", String(64), nullable=False),
    Column("treaty_id", String(128), nullable=False),
    Column("treaty_version", Integer, nullable=False),
    Column("delivered_ms", BigInteger, nullable=True),
    Column("failure", Text, nullable=True),
)
Index("ix_node_record_deliveries_view", record_deliveries.c.view_id)


# --- IPR enforcement (node.kinds.recordations, node.kinds.detentions) ----------------


def _record_fk() -> Column[str]:
    return Column(
        "record_id",
        String(64),
        ForeignKey("node_records.record_id", ondelete="CASCADE"),
        primary_key=True,
    )


recordations = Table(
    "node_recordations",
    metadata,
    _record_fk(),
    # the local name's id: the grantor's (origin_name) unless another grantor took it here
    Column("recordation_id", String(64), nullable=False),
    Column("origin_name", String(64), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("origin_agency", String(128), nullable=False),
    Column("holder_key", String(160), nullable=True),
    Column("state", String(16), nullable=False),
    Column("grant_ms", BigInteger, nullable=False),
    Column("expire_ms", BigInteger, nullable=False),
    Column("create_ms", BigInteger, nullable=False),
    # issued only: the complete recordation (internal notes, officers), JSON
    Column("full_record", Text, nullable=True),
)
Index("ux_node_recordations_name", recordations.c.recordation_id, unique=True)
Index("ix_node_recordations_holder", recordations.c.holder_key)
Index("ix_node_recordations_listing", recordations.c.create_ms, recordations.c.record_id)
Index("ix_node_recordations_expiry", recordations.c.state, recordations.c.expire_ms)
Index("ix_node_recordations_origin", recordations.c.origin_agency, recordations.c.origin_name)

recordation_keys = Table(
    "node_recordation_keys",
    metadata,
    _record_fk(),
    Column("key_type", String(16), primary_key=True),
    Column("key", String(200), primary_key=True),
)
Index("ix_node_recordation_keys_lookup", recordation_keys.c.key_type, recordation_keys.c.key)

detentions = Table(
    "node_detentions",
    metadata,
    Column("detention_id", String(64), primary_key=True),
    Column("record", Text, nullable=False),
    Column("state", String(32), nullable=False),
    Column("procedure", String(32), nullable=False),
    Column("detain_ms", BigInteger, nullable=False),
    Column("create_ms", BigInteger, nullable=False),
    Column("update_ms", BigInteger, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_by", String(36), nullable=True),
)
Index("ix_node_detentions_listing", detentions.c.create_ms, detentions.c.detention_id)
Index("ix_node_detentions_state", detentions.c.state)


def _detention_fk() -> Column[str]:
    return Column(
        "detention_id",
        String(64),
        ForeignKey("node_detentions.detention_id", ondelete="CASCADE"),
        primary_key=True,
    )


detention_recordations = Table(
    "node_detention_recordations",
    metadata,
    _detention_fk(),
    Column("recordation_id", String(64), primary_key=True),
)
Index("ix_node_detention_recordations_recordation", detention_recordations.c.recordation_id)

detention_deadlines = Table(
    "node_detention_deadlines",
    metadata,
    _detention_fk(),
    Column("kind", String(32), primary_key=True),
    Column("due_ms", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reminded_ms", BigInteger, nullable=True),
)
Index("ix_node_detention_deadlines_due", detention_deadlines.c.state, detention_deadlines.c.due_ms)

ipr_reports = Table(
    "node_ipr_reports",
    metadata,
    _record_fk(),
    Column("direction", String(8), nullable=False),
    # issued: the detention reported
    Column("detention_id", String(64), nullable=True),
    Column("create_ms", BigInteger, nullable=False),
)
Index("ix_node_ipr_reports_listing", ipr_reports.c.create_ms, ipr_reports.c.record_id)
Index("ix_node_ipr_reports_detention", ipr_reports.c.detention_id)

ipr_report_links = Table(
    "node_ipr_report_links",
    metadata,
    _record_fk(),
    Column("recordation_id", String(64), primary_key=True),
)
Index("ix_node_ipr_report_links_recordation", ipr_report_links.c.recordation_id)

ipr_stats = Table(
    "node_ipr_stats",
    metadata,
    # "own" (a detention here) or "reported" (a partner's report)
    Column("source", String(8), primary_key=True),
    Column("source_id", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("partner", String(128), nullable=False),
    Column("month", String(7), nullable=False),
    Column("detain_ms", BigInteger, nullable=False),
    Column("country", String(8), nullable=False),
    Column("category", String(32), nullable=False),
    Column("procedure", String(32), nullable=False),
    Column("right_type", String(48), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("articles", BigInteger, nullable=False),
    Column("value_units", BigInteger, nullable=False),
    Column("value_nanos", BigInteger, nullable=False),
    # 1 on the first row of the source / of its category / right / (category, right): what
    # counts a detention once per group whatever the dimensions (node.kinds.ipr_stats)
    Column("f0", SmallInteger, nullable=False),
    Column("fc", SmallInteger, nullable=False),
    Column("fr", SmallInteger, nullable=False),
    Column("fcr", SmallInteger, nullable=False),
    # 1 on the rows of the source's first right: articles and value counted once
    Column("r1", SmallInteger, nullable=False),
)
# Covering: the partial months of a period are read from the index alone (node.kinds.ipr_stats)
Index(
    "ix_node_ipr_stats_period",
    ipr_stats.c.detain_ms,
    *(
        ipr_stats.c[name]
        for name in (
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
    ),
)

#: Sums of node_ipr_stats by UTC month and every dimension, kept in the same
#: transaction (node.kinds.ipr_stats): whole months are read here, not row by row.
ipr_stats_monthly = Table(
    "node_ipr_stats_monthly",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("source", String(8), primary_key=True),
    Column("partner", String(128), primary_key=True),
    Column("country", String(8), primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("procedure", String(32), primary_key=True),
    Column("right_type", String(48), primary_key=True),
    Column("currency", String(3), primary_key=True),
    # node_ipr_stats rows summed here (a group row with none left is deleted)
    Column("rows", BigInteger, nullable=False),
    Column("f0", BigInteger, nullable=False),
    Column("fc", BigInteger, nullable=False),
    Column("fr", BigInteger, nullable=False),
    Column("fcr", BigInteger, nullable=False),
    Column("articles", BigInteger, nullable=False),
    Column("articles_r1", BigInteger, nullable=False),
    Column("value_units", BigInteger, nullable=False),
    Column("value_units_r1", BigInteger, nullable=False),
    Column("value_nanos", BigInteger, nullable=False),
    Column("value_nanos_r1", BigInteger, nullable=False),
    # SQLite keeps the rows in key order (month first): a period is one range read
    sqlite_with_rowid=False,
)

# --- risk targeting (migration 0008) -------------------------------------------------------

identifiers = Table(
    "node_identifiers",
    metadata,
    # the canonical identifier key (intelshare.identifiers), e.g. iso6346:MSCU1234566
    Column("key", String(200), primary_key=True),
    # alert, case_entry, detention, recordation, risk_hit
    Column("record_kind", String(32), primary_key=True),
    Column("record_id", String(64), primary_key=True),
    # where the identifier is in the record: container, vessel, person, consignee, ...
    Column("role", String(32), primary_key=True),
    Column("record_name", String(200), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("origin_agency", String(128), nullable=False),
    # what decides who may see it beyond the role: a case entry's case id
    Column("scope", String(64), nullable=True),
    Column("create_ms", BigInteger, nullable=False),
)
Index("ix_node_identifiers_record", identifiers.c.record_kind, identifiers.c.record_id)
# the most recent holders of a key first (link.found names at most twenty; migration 0010)
Index(
    "ix_node_identifiers_key_time",
    identifiers.c.key,
    identifiers.c.create_ms,
    identifiers.c.record_kind,
    identifiers.c.record_id,
)

risk_hits = Table(
    "node_risk_hits",
    metadata,
    _record_fk(),
    # the local record id of the profile that matched; NULL for watched identifiers only
    Column("profile_record_id", String(64), nullable=True),
    Column("screening_agency", String(128), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("inspection", String(16), nullable=False),
    Column("finding", String(16), nullable=False),
    Column("screen_ms", BigInteger, nullable=False),
    # hits screened here: when they are purged (the profile's treaty retention)
    Column("retain_until_ms", BigInteger, nullable=True),
)
Index("ix_node_risk_hits_profile", risk_hits.c.profile_record_id)
Index("ix_node_risk_hits_retention", risk_hits.c.retain_until_ms)
