"""Filling a node's database with many stored alerts, fast, through the node's own tables.

Issuing 100,000 alerts through gRPC would take most of an hour on two
cores; the benches that need a full database (growth, the TAXII peer) fill
it here instead, with the rows a node would have written after months of
traffic, in the node's own tables (:mod:`node.storage.tables`, the audit log's
tables) and with the node's own record code:

* half the alerts **received** from the partner: ``node_alerts`` (the
  redacted record as the partner's node would have sent it), the verbatim
  envelope in ``node_received``, the ``alert.received`` event (already
  notified), the ``RECEIPT`` this node sent back in ``node_outbound``
  (accepted), and a ``received`` audit entry;
* half **issued** to the partner: ``node_alerts`` (full record),
  ``node_views`` (the redacted view), ``node_deliveries`` (accepted,
  delivered), the alert envelope in ``node_outbound`` (accepted), the
  partner's receipt in ``node_received``, ``alert.issued`` and
  ``alert.delivered`` events, ``alert_issued`` and ``received`` audit
  entries.

Creation times are spread over the last 90 days, message ids are UUIDv7 of
those times (as on a real node), expiry and retention lie in the future (no
maintenance job fires during a bench). The audit log is a real Merkle log:
leaves are the canonical leaves of :mod:`intelshare.audit.log`, every
completed subtree hash is stored and the state row's frontier advanced, so
the node appends after the seeded entries as after its own.

What is not individual: envelope bytes. Each row carries a real sealed
envelope of the right kind and size (sealed once with the agencies' real
keys), but the same bytes for every row, with the row's own message id in
the table: nothing reads a stored envelope back on the paths the benches
time (Get and List read ``envelope_sha256`` only).

The node must not be running while its database is seeded.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from intelshare.audit import merkle
from intelshare.audit.log import audit_entries, audit_nodes, audit_state, canonical_leaf
from intelshare.db import make_engine
from intelshare.directory import TrustedDirectory
from intelshare.envelope import HeaderFields, lookup_recipient_keys, seal
from intelshare.ids import new_message_id
from intelshare.keys import AgencyKeys
from intelshare.treaty import Treaty, redact
from intelshare.v1 import envelope_pb2
from node.schema import alert as rec
from node.storage import tables as t
from node.storage.store import canonical_bytes, dumps

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Templates:
    """One real envelope of each kind, sealed with the agencies' keys."""

    received_alert: bytes  # partner -> us, ALERT
    receipt_sent: bytes  # us -> partner, RECEIPT
    issued_alert: bytes  # us -> partner, ALERT
    receipt_received: bytes  # partner -> us, RECEIPT
    gateway_receipt: bytes


def _seal(
    sender: str,
    keys: AgencyKeys,
    recipient: str,
    directory: TrustedDirectory,
    treaty: Treaty,
    kind: envelope_pb2.MessageKind.ValueType,
    payload: bytes,
    categories: tuple[str, ...],
) -> bytes:
    now = datetime.now(UTC)
    fields = HeaderFields(
        sender=sender,
        recipients=(recipient,),
        treaty_id=treaty.id,
        treaty_version=treaty.version,
        kind=kind,
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        categories=categories,
        expire_time=now + timedelta(days=30),
        create_time=now,
    )
    env = seal(
        fields,
        payload,
        signing_key=keys.signing,
        signing_key_id=keys.signing_key_id,
        recipient_keys=lookup_recipient_keys(directory, [recipient]),
    )
    return env.SerializeToString()


def templates(
    agency: str,
    keys: AgencyKeys,
    partner: str,
    partner_keys: AgencyKeys,
    directory: TrustedDirectory,
    treaty: Treaty,
    record: dict[str, Any],
) -> Templates:
    view = canonical_bytes(redact(record, treaty, "alert"))
    receipt = canonical_bytes({"envelope_sha256": "00" * 32})
    cats = ("counterfeit_goods",)
    alert_kind = envelope_pb2.MESSAGE_KIND_ALERT
    receipt_kind = envelope_pb2.MESSAGE_KIND_RECEIPT
    return Templates(
        received_alert=_seal(
            partner, partner_keys, agency, directory, treaty, alert_kind, view, cats
        ),
        receipt_sent=_seal(agency, keys, partner, directory, treaty, receipt_kind, receipt, ()),
        issued_alert=_seal(agency, keys, partner, directory, treaty, alert_kind, view, cats),
        receipt_received=_seal(
            partner, partner_keys, agency, directory, treaty, receipt_kind, receipt, ()
        ),
        # A gateway receipt: message id, digest, log index, signature (about 200 bytes).
        gateway_receipt=b"\x0a\x24" + b"r" * 36 + b"\x12\x20" + b"d" * 32 + b"\x22\x40" + b"s" * 64,
    )


class _Audit:
    """Leaves appended to the node's Merkle log in bulk (same hashing as AuditLog.append)."""

    def __init__(self, conn: Connection, log_id: str) -> None:
        row = conn.execute(
            select(audit_state.c.size, audit_state.c.frontier).where(audit_state.c.id == 1)
        ).first()
        self.exists = row is not None
        self.frontier = (
            merkle.Frontier.decode(int(row.size), bytes(row.frontier))
            if row is not None
            else merkle.Frontier()
        )
        self.log_id = log_id
        self.entries: list[dict[str, Any]] = []
        self.nodes: list[dict[str, Any]] = []

    def add(self, event: str, at_ms: int, fields: dict[str, Any]) -> None:
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        data = canonical_leaf(event, at, fields)
        h = merkle.leaf_hash(data)
        index = self.frontier.size
        for level, idx, nh in self.frontier.append(h):
            self.nodes.append({"level": level, "idx": idx, "hash": nh})
        self.entries.append(
            {"idx": index, "event": event, "leaf": data, "leaf_hash": h, "created_at": at}
        )

    def flush(self, conn: Connection) -> None:
        if self.entries:
            conn.execute(insert(audit_entries), self.entries)
            conn.execute(insert(audit_nodes), self.nodes)
        values = {
            "size": self.frontier.size,
            "frontier": self.frontier.encode(),
            "updated_at": datetime.now(UTC),
        }
        if self.exists:
            conn.execute(update(audit_state).where(audit_state.c.id == 1).values(**values))
        else:
            conn.execute(insert(audit_state).values(id=1, log_id=self.log_id, **values))
            self.exists = True
        self.entries, self.nodes = [], []


def _times(count: int, span_days: int) -> Iterator[int]:
    """``count`` creation times, oldest first, over ``span_days`` ending an hour ago."""
    end = int(time.time() * 1000) - 3_600_000
    start = end - span_days * DAY_MS
    step = (end - start) / max(count, 1)
    for i in range(count):
        yield int(start + i * step)


def seed(
    database_url: str,
    *,
    agency: str,
    keys: AgencyKeys,
    partner: str,
    partner_keys: AgencyKeys,
    directory: TrustedDirectory,
    treaty: Treaty,
    record: dict[str, Any],
    count: int,
    span_days: int = 90,
    batch: int = 2000,
) -> dict[str, Any]:
    """Add ``count`` alerts (every other one received, the others issued); return statistics."""
    started = time.perf_counter()
    tpl = templates(agency, keys, partner, partner_keys, directory, treaty, record)
    full = dumps(record)
    view = redact(record, treaty, "alert")
    view_json = dumps(view)
    view_bytes = view_json.encode()
    removed = dumps(sorted(set(rec.field_paths(record)) - set(rec.field_paths(view))))
    sha = {name: hashlib.sha256(getattr(tpl, name)).digest() for name in tpl.__dataclass_fields__}
    receipt_payload = canonical_bytes({"envelope_sha256": "00" * 32})
    receipt_payload_sha = hashlib.sha256(receipt_payload).digest()
    view_sha = hashlib.sha256(view_bytes).digest()
    categories = dumps(["counterfeit_goods"])
    treaty_label = f"{treaty.id}@{treaty.version}"
    engine = make_engine(database_url)
    rows_written = 0
    try:
        with engine.begin() as conn:
            seq = int(
                conn.execute(
                    select(t.counters.c.value).where(t.counters.c.name == "events")
                ).scalar_one()
            )
            gw_seq = int(
                conn.execute(select(t.inbox.c.sequence).where(t.inbox.c.id == 1)).scalar_one()
            )
        times = list(_times(count, span_days))
        for start in range(0, count, batch):
            chunk = times[start : start + batch]
            table_rows: dict[str, list[dict[str, Any]]] = {
                "alerts": [],
                "received": [],
                "events": [],
                "outbound": [],
                "views": [],
                "deliveries": [],
            }
            with engine.begin() as conn:
                audit = _Audit(conn, agency)
                for offset, created in enumerate(chunk):
                    n = start + offset
                    alert_id = new_message_id(created)
                    expire = created + 365 * DAY_MS
                    retain = created + 365 * DAY_MS
                    if n % 2 == 0:  # received from the partner
                        received_ms = created + 150
                        gw_seq += 1
                        receipt_id = new_message_id(received_ms)
                        table_rows["alerts"].append(
                            {
                                "alert_id": alert_id,
                                "direction": "received",
                                "origin_agency": partner,
                                "kind": "counterfeit_goods",
                                "urgency": "high",
                                "treaty_id": treaty.id,
                                "treaty_version": treaty.version,
                                "categories": categories,
                                "recipients": dumps(
                                    [{"agency_id": agency, "treaty_id": treaty.id}]
                                ),
                                "handling": envelope_pb2.HANDLING_CODE_H1,
                                "tlp": envelope_pb2.TLP_AMBER,
                                "record": view_json,
                                "revision": 1,
                                "state": "active",
                                "create_ms": created,
                                "update_ms": received_ms,
                                "expire_ms": expire,
                                "expired_noted": False,
                                "revoke_ms": None,
                                "revoke_reason": None,
                                "created_by": None,
                                "message_id": alert_id,
                                "received_ms": received_ms,
                                "retain_until_ms": retain,
                                "acknowledged_us": None,
                                "last_change_ms": created,
                            }
                        )
                        table_rows["received"].append(
                            _received(
                                alert_id,
                                envelope_pb2.MESSAGE_KIND_ALERT,
                                partner,
                                treaty,
                                None,
                                alert_id,
                                gw_seq,
                                tpl.received_alert,
                                sha["received_alert"],
                                tpl.gateway_receipt,
                                received_ms,
                                retain,
                            )
                        )
                        seq += 1
                        table_rows["events"].append(
                            _event(seq, "alert.received", alert_id, partner, received_ms)
                        )
                        table_rows["outbound"].append(
                            _outbound(
                                receipt_id,
                                envelope_pb2.MESSAGE_KIND_RECEIPT,
                                alert_id,
                                alert_id,
                                treaty,
                                partner,
                                receipt_payload,
                                receipt_payload_sha,
                                tpl.receipt_sent,
                                sha["receipt_sent"],
                                received_ms,
                                tpl.gateway_receipt,
                            )
                        )
                        audit.add(
                            "received",
                            received_ms,
                            {
                                "message_id": alert_id,
                                "sender": partner,
                                "kind": "alert",
                                "treaty": treaty_label,
                                "reference_id": None,
                                "envelope_sha256": sha["received_alert"].hex(),
                                "gateway_sequence": gw_seq,
                            },
                        )
                    else:  # issued to the partner
                        delivered = created + 300
                        gw_seq += 1
                        receipt_id = new_message_id(delivered)
                        table_rows["alerts"].append(
                            {
                                "alert_id": alert_id,
                                "direction": "issued",
                                "origin_agency": agency,
                                "kind": "counterfeit_goods",
                                "urgency": "high",
                                "treaty_id": treaty.id,
                                "treaty_version": 0,
                                "categories": categories,
                                "recipients": dumps(
                                    [{"agency_id": partner, "treaty_id": treaty.id}]
                                ),
                                "handling": envelope_pb2.HANDLING_CODE_H1,
                                "tlp": envelope_pb2.TLP_AMBER,
                                "record": full,
                                "revision": 1,
                                "state": "active",
                                "create_ms": created,
                                "update_ms": created,
                                "expire_ms": expire,
                                "expired_noted": False,
                                "revoke_ms": None,
                                "revoke_reason": None,
                                "created_by": None,
                                "message_id": None,
                                "received_ms": None,
                                "retain_until_ms": None,
                                "acknowledged_us": None,
                                "last_change_ms": None,
                            }
                        )
                        table_rows["views"].append(
                            {
                                "view_id": alert_id,
                                "alert_id": alert_id,
                                "treaty_id": treaty.id,
                                "treaty_version": treaty.version,
                                "recipients": dumps([partner]),
                                "payload": view_bytes,
                                "removed_fields": removed,
                                "revision": 1,
                            }
                        )
                        table_rows["deliveries"].append(
                            {
                                "alert_id": alert_id,
                                "agency_id": partner,
                                "view_id": alert_id,
                                "treaty_id": treaty.id,
                                "treaty_version": treaty.version,
                                "accepted_ms": created + 40,
                                "delivered_ms": delivered,
                                "acknowledged_us": None,
                                "hit_count": 0,
                                "last_hit_us": None,
                                "failure": None,
                            }
                        )
                        table_rows["outbound"].append(
                            _outbound(
                                alert_id,
                                envelope_pb2.MESSAGE_KIND_ALERT,
                                alert_id,
                                None,
                                treaty,
                                partner,
                                view_bytes,
                                view_sha,
                                tpl.issued_alert,
                                sha["issued_alert"],
                                created,
                                tpl.gateway_receipt,
                            )
                        )
                        table_rows["received"].append(
                            _received(
                                receipt_id,
                                envelope_pb2.MESSAGE_KIND_RECEIPT,
                                partner,
                                treaty,
                                alert_id,
                                alert_id,
                                gw_seq,
                                tpl.receipt_received,
                                sha["receipt_received"],
                                tpl.gateway_receipt,
                                delivered,
                                retain,
                            )
                        )
                        seq += 1
                        table_rows["events"].append(
                            _event(seq, "alert.issued", alert_id, None, created)
                        )
                        seq += 1
                        table_rows["events"].append(
                            _event(seq, "alert.delivered", alert_id, partner, delivered)
                        )
                        audit.add(
                            "alert_issued",
                            created,
                            {
                                "alert_id": alert_id,
                                "officer_id": "00000000-0000-4000-8000-000000000000",
                                "recipients": [partner],
                                "treaties": [treaty_label],
                                "messages": [alert_id],
                            },
                        )
                        audit.add(
                            "received",
                            delivered,
                            {
                                "message_id": receipt_id,
                                "sender": partner,
                                "kind": "receipt",
                                "treaty": treaty_label,
                                "reference_id": alert_id,
                                "envelope_sha256": sha["receipt_received"].hex(),
                                "gateway_sequence": gw_seq,
                            },
                        )
                # Parents before children (foreign keys), then the log and the counter.
                for name in ("alerts", "views", "deliveries", "received", "outbound", "events"):
                    rows = table_rows[name]
                    if rows:
                        conn.execute(insert(getattr(t, name)), rows)
                        rows_written += len(rows)
                rows_written += len(audit.entries) + len(audit.nodes)
                audit.flush(conn)
                conn.execute(
                    update(t.counters).where(t.counters.c.name == "events").values(value=seq)
                )
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return {
        "alerts": count,
        "rows": rows_written,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _event(seq: int, type_: str, alert_id: str, agency: str | None, at: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "alert_id": alert_id,
        "case_id": None,
        "agency_id": agency,
        "entry_id": None,
        "created_ms": at,
        "notified_ms": at + 20,
        "relay_ms": at + 5,
    }


def _received(
    message_id: str,
    kind: int,
    sender: str,
    treaty: Treaty,
    reference_id: str | None,
    alert_id: str,
    sequence: int,
    envelope: bytes,
    envelope_sha: bytes,
    gateway_receipt: bytes,
    at: int,
    retain: int,
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "kind": kind,
        "sender": sender,
        "treaty_id": treaty.id,
        "treaty_version": treaty.version,
        "reference_id": reference_id,
        "alert_id": alert_id,
        "case_id": None,
        "sequence": sequence,
        "envelope": envelope,
        "envelope_sha256": envelope_sha,
        "gateway_receipt": gateway_receipt,
        "received_ms": at,
        "retain_until_ms": retain,
    }


def _outbound(
    message_id: str,
    kind: int,
    alert_id: str,
    reference_id: str | None,
    treaty: Treaty,
    recipient: str,
    payload: bytes,
    payload_sha: bytes,
    envelope: bytes,
    envelope_sha: bytes,
    at: int,
    receipt: bytes,
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "kind": kind,
        "alert_id": alert_id,
        "case_id": None,
        "reference_id": reference_id,
        "treaty_id": treaty.id,
        "treaty_version": treaty.version,
        "recipients": json.dumps([recipient]),
        "payload": payload,
        "payload_sha256": payload_sha,
        "envelope": envelope,
        "envelope_sha256": envelope_sha,
        "created_ms": at,
        "expire_ms": at + 30 * DAY_MS,
        "state": "accepted",
        "attempts": 1,
        "next_attempt_ms": at,
        "last_error": None,
        "accepted_ms": at + 40,
        "receipt": receipt,
    }
