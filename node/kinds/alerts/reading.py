"""Officers' reads: one alert, a page of alerts, a recipient's copy, a receipt.

Every read of a received alert is in the audit log; listings page with the
node's sealed page tokens.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import (
    and_,
    exists,
    or_,
    select,
    tuple_,
)

from intelshare import errors
from intelshare.v1 import alert_pb2, alert_service_pb2, receipt_pb2
from node.kinds.alerts.core import AlertCore
from node.kinds.alerts.db import (
    ACTIVE,
    DEFAULT_PAGE,
    ISSUED,
    MAX_PAGE,
    RECEIVED,
    REVOKED,
    ListFilter,
    alert_name,
    alert_state,
    delivery_status,
    hit_proto,
    parse_delivery_name,
    parse_name,
    sent_state,
)
from node.kinds.reviews import HELD
from node.schema import alert as rec
from node.storage import identifiers as related
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import now_ms

log = logging.getLogger(__name__)


class AlertReading(AlertCore):
    """Officers' reads."""

    def get(self, officer: Officer, name: str) -> alert_pb2.Alert:
        alert_id = parse_name(name)
        with self.store.write() as w:
            alert = self._load(w.conn, alert_id)
            related.add_related(w.conn, officer, "alert", alert_id, alert.related)
            if alert.direction == alert_pb2.ALERT_DIRECTION_RECEIVED:
                w.audit_reads(officer.officer_id, "alert_ids", [alert_id], method="GetAlert")
        return alert

    def list_page(
        self, officer: Officer, flt: ListFilter, page_size: int, page_token: str
    ) -> tuple[list[alert_pb2.Alert], str]:
        v: dict[str, str] = {}
        if page_size < 0:
            v["page_size"] = "must not be negative"
        if flt.kind and flt.kind not in rec.KINDS:
            v["kind"] = "unknown kind"
        if flt.state not in alert_pb2.AlertState.values():
            v["state"] = "unknown state"
        if flt.direction not in (0, 1, 2):
            v["direction"] = "unknown direction"
        if len(flt.treaty_id) > 128:
            v["treaty_id"] = "too long"
        if flt.updated_after_ms < 0:
            v["update_time_after"] = "must not be before 1970"
        if v:
            raise errors.invalid_fields(rec.summary(v), violations=v)
        after = self.store.page_tokens.read(
            page_token,
            listing="alerts",
            filters=flt.fingerprint(),
            caller=officer.officer_id,
            size=2,
        )
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        a = t.alerts
        now = now_ms()
        query = select(a)
        if flt.kind:
            query = query.where(a.c.kind == rec.KINDS[flt.kind])
        if flt.direction:
            query = query.where(a.c.direction == (ISSUED if flt.direction == 1 else RECEIVED))
        if flt.state == alert_pb2.ALERT_STATE_ACTIVE:
            query = query.where(a.c.state == ACTIVE, a.c.expire_ms > now)
        elif flt.state == alert_pb2.ALERT_STATE_REVOKED:
            query = query.where(a.c.state == REVOKED)
        elif flt.state == alert_pb2.ALERT_STATE_EXPIRED:
            query = query.where(a.c.state == ACTIVE, a.c.expire_ms <= now)
        elif flt.state == alert_pb2.ALERT_STATE_PENDING_REVIEW:
            # Held for every recipient (what GetAlert shows as PENDING_REVIEW);
            # an alert released under one treaty and held under another is
            # active, and ListPendingReviews lists what it still waits for.
            query = query.where(a.c.state == HELD)
        if flt.updated_after_ms:
            query = query.where(a.c.update_ms > flt.updated_after_ms)
        if flt.treaty_id:
            query = query.where(
                or_(
                    and_(a.c.direction == RECEIVED, a.c.treaty_id == flt.treaty_id),
                    exists().where(
                        t.deliveries.c.alert_id == a.c.alert_id,
                        t.deliveries.c.treaty_id == flt.treaty_id,
                    ),
                )
            )
        if after is not None:
            create_ms, last_id = after
            # A row comparison, not (a < x OR (a = x AND b < y)): the database
            # turns it into an index range, so a deep page costs what the first does.
            query = query.where(tuple_(a.c.create_ms, a.c.alert_id) < tuple_(create_ms, last_id))
        query = query.order_by(a.c.create_ms.desc(), a.c.alert_id.desc()).limit(size + 1)
        with self.store.write() as w:
            rows = w.conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            alerts = self._build(w.conn, rows)
            received_ids = [r.alert_id for r in rows if r.direction == RECEIVED]
            w.audit_reads(officer.officer_id, "alert_ids", received_ids, method="ListAlerts")
        token = (
            self.store.page_tokens.issue(
                listing="alerts",
                filters=flt.fingerprint(),
                caller=officer.officer_id,
                position=[rows[-1].create_ms, rows[-1].alert_id],
            )
            if more and rows
            else ""
        )
        return alerts, token

    def delivery(self, officer: Officer, name: str) -> alert_pb2.AlertDelivery:
        alert_id, agency = parse_delivery_name(name)
        with self.store.engine.connect() as conn:
            row = self._row(conn, alert_id)
            if row.direction != ISSUED:
                raise errors.NotIssuer(
                    f"alert {alert_name(alert_id)} was received; only issued alerts have"
                    " deliveries",
                    metadata={"name": alert_name(alert_id)},
                )
            d = conn.execute(
                select(t.deliveries).where(
                    t.deliveries.c.alert_id == alert_id, t.deliveries.c.agency_id == agency
                )
            ).first()
            if d is None:
                raise errors.DeliveryNotFound(
                    f"{agency} is not a recipient of alert {alert_name(alert_id)}",
                    metadata={"name": name},
                )
            view = conn.execute(select(t.views).where(t.views.c.view_id == d.view_id)).one()
            sent = conn.execute(
                select(t.outbound)
                .where(
                    or_(
                        t.outbound.c.message_id == d.view_id,
                        t.outbound.c.reference_id == d.view_id,
                    )
                )
                .order_by(t.outbound.c.id)
            ).all()
            hit_rows = conn.execute(
                select(t.hits).where(t.hits.c.alert_id == alert_id, t.hits.c.agency_id == agency)
            ).all()
        status = delivery_status(d, sent_state=sent_state(sent, d.view_id))
        seen = rec.record_to_alert(json.loads(view.payload))
        seen.name = alert_name(d.view_id)
        seen.treaty_id = view.treaty_id
        seen.recipients.extend(
            alert_pb2.AlertRecipient(agency_id=r, treaty_id=view.treaty_id)
            for r in json.loads(view.recipients)
        )
        seen.categories.extend(json.loads(row.categories))
        seen.handling = row.handling
        seen.tlp = row.tlp
        if not seen.HasField("expire_time"):  # the record's keeps its microseconds
            seen.expire_time.CopyFrom(rec.ms_to_ts(row.expire_ms))
        seen.state = alert_state(row, now_ms())
        seen.origin_agency = row.origin_agency
        seen.direction = alert_pb2.ALERT_DIRECTION_RECEIVED
        seen.create_time.CopyFrom(rec.ms_to_ts(row.create_ms))
        seen.update_time.CopyFrom(rec.ms_to_ts(row.update_ms))
        if row.revoke_ms is not None:
            seen.revoke_time.CopyFrom(rec.ms_to_ts(row.revoke_ms))
        seen.revision = view.revision
        seen.hits.extend(hit_proto(h) for h in hit_rows)
        messages = []
        for m in sent:
            msg = alert_pb2.SentMessage(
                message_id=m.message_id,
                kind=m.kind,
                envelope_sha256=bytes(m.envelope_sha256),
                payload_sha256=bytes(m.payload_sha256),
                create_time=rec.ms_to_ts(m.created_ms),
            )
            if m.accepted_ms is not None:
                msg.accept_time.CopyFrom(rec.ms_to_ts(m.accepted_ms))
            messages.append(msg)
        return alert_pb2.AlertDelivery(
            name=f"alerts/{alert_id}/deliveries/{agency}",
            status=status,
            alert=seen,
            removed_fields=json.loads(view.removed_fields),
            messages=messages,
        )

    def receipt(self, name: str) -> alert_service_pb2.AlertReceipt:
        """The gateway's receipt for the envelope that carried an issued alert to a recipient."""
        parts = name.split("/")
        if len(parts) != 5 or parts[4] != "receipt":
            raise errors.NameInvalid(
                "name must look like alerts/{alert_id}/deliveries/{agency_id}/receipt, "
                f"got {name!r}",
                violations={"name": "expected alerts/{alert_id}/deliveries/{agency_id}/receipt"},
            )
        alert_id, agency = parse_delivery_name("/".join(parts[:4]))
        with self.store.engine.connect() as conn:
            row = self._row(conn, alert_id)
            if row.direction != ISSUED:
                raise errors.NotIssuer(
                    f"alert {alert_name(alert_id)} was received; receipts are the issuer's",
                    metadata={"name": alert_name(alert_id)},
                )
            sent = conn.execute(
                select(t.outbound.c.message_id, t.outbound.c.envelope, t.outbound.c.receipt)
                .join(t.deliveries, t.deliveries.c.view_id == t.outbound.c.message_id)
                .where(t.deliveries.c.alert_id == alert_id, t.deliveries.c.agency_id == agency)
            ).first()
        if sent is None:
            raise errors.DeliveryNotFound(
                f"{agency} is not a recipient of alert {alert_name(alert_id)}",
                metadata={"name": name},
            )
        if sent.receipt is None:
            raise errors.DeliveryPending(
                f"the gateway has not accepted the envelope for {agency} yet (still queued); "
                "ask again once the alert shows as sent",
                metadata={"name": name, "state": "queued"},
            )
        return alert_service_pb2.AlertReceipt(
            name=name,
            message_id=sent.message_id,
            receipt=receipt_pb2.Receipt.FromString(bytes(sent.receipt)),
            envelope=bytes(sent.envelope),
        )
