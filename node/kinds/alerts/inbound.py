"""What a node does with the alert messages it receives.

Alerts, updates and revocations from issuers (checked against the treaty's
allow-list, applied unless older than what is held), acknowledgements, hit
reports and receipts from recipients (checked against what was really sent
to that partner under that treaty), and the sender's report of an envelope
refused for good.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Row,
    insert,
    select,
    update,
)

from intelshare import errors
from intelshare.treaty import check_fields
from intelshare.v1 import envelope_pb2
from node.kinds.alerts.core import AlertCore
from node.kinds.alerts.db import (
    ACKNOWLEDGED_AT,
    ACTIVE,
    COUNT_HIT,
    DELIVERY_BY_VIEW,
    MARK_DELIVERED,
    RECEIVED,
    REVOKED,
    SET_ACKNOWLEDGED,
    SET_DELIVERED,
)
from node.schema import alert as rec
from node.sharing.incoming import Incoming, Refused, Stored, parse_payload
from node.storage import tables as t
from node.storage.store import Writer, dumps

log = logging.getLogger(__name__)


class AlertInbound(AlertCore):
    """Inbound handlers of alert messages."""

    def on_alert(self, w: Writer, inc: Incoming) -> Stored:
        h = inc.header
        record = parse_payload(inc.payload)
        try:
            rec.record_to_alert(record)
        except errors.Malformed as exc:
            raise Refused("MALFORMED", exc.message) from None
        decision = check_fields(record, inc.treaty, "alert")
        if not decision:
            raise Refused(decision.reason, decision.detail)
        # The header was checked for review before this handler; the record's
        # own kind and the attestation's payload digest only now.
        self.reviews.check_received(inc, record)
        # Then everything else the record says against the header it was checked with.
        self._agrees_with_header(record, h)
        # A copy passed on by a recipient: the original treaty's fields too.
        retain_until_ms = self.forwarding.check_received(inc, record)
        alert_id = h.message_id
        recipients = [{"agency_id": r, "treaty_id": h.treaty_id} for r in h.recipients]
        # Written at the end of the transaction, with its event (one statement
        # on PostgreSQL). An update or revocation of it in the same inbox
        # batch does not find it then, and the batch goes one by one.
        w.insert_later(
            t.alerts,
            {
                "alert_id": alert_id,
                "direction": RECEIVED,
                "origin_agency": h.sender,
                "kind": str(record.get("kind", "")),
                "urgency": str(record.get("urgency", "")),
                "treaty_id": h.treaty_id,
                "treaty_version": h.treaty_version,
                "categories": dumps(sorted(h.categories)),
                "recipients": dumps(recipients),
                "handling": int(h.handling),
                "tlp": int(h.tlp),
                "record": dumps(record),
                "revision": 1,
                "state": ACTIVE,
                "create_ms": inc.create_ms,
                "update_ms": inc.received_ms,
                "expire_ms": inc.expire_ms,
                "expired_noted": False,
                "message_id": alert_id,
                "received_ms": inc.received_ms,
                "retain_until_ms": retain_until_ms,
                "last_change_ms": inc.create_ms,
            },
        )
        w.event("alert.received", alert_id=alert_id, agency_id=h.sender)
        self.sharing.receipts.owe(w, inc)
        return Stored(alert_id=alert_id)

    def _received_ref(self, w: Writer, inc: Incoming) -> Row[Any]:
        h = inc.header
        row = w.conn.execute(
            select(t.alerts).where(
                t.alerts.c.alert_id == h.reference_id, t.alerts.c.direction == RECEIVED
            )
        ).first()
        if row is None:
            raise Refused("REFERENCE_UNKNOWN", f"no received alert {h.reference_id!r}")
        if row.origin_agency != h.sender or row.treaty_id != h.treaty_id:
            raise Refused(
                "REFERENCE_MISMATCH",
                f"alert {h.reference_id} came from {row.origin_agency} under {row.treaty_id}, "
                f"not from {h.sender} under {h.treaty_id}",
            )
        return row

    @staticmethod
    def _agrees_with_header(record: Mapping[str, Any], header: envelope_pb2.Header) -> None:
        """Refuse a record that contradicts the signed header the treaty was checked with."""
        disagreement = rec.header_disagreement(record, header)
        if disagreement is not None:
            kind_related = disagreement.startswith("the record is a")
            raise Refused(
                "CATEGORY_NOT_PERMITTED" if kind_related else "HANDLING_NOT_PERMITTED",
                disagreement,
            )

    def on_update(self, w: Writer, inc: Incoming) -> Stored:
        h = inc.header
        row = self._received_ref(w, inc)
        record = parse_payload(inc.payload)
        try:
            rec.record_to_alert(record)
        except errors.Malformed as exc:
            raise Refused("MALFORMED", exc.message) from None
        decision = check_fields(record, inc.treaty, "alert")
        if not decision:
            raise Refused(decision.reason, decision.detail)
        self._agrees_with_header(record, h)
        self.forwarding.check_received(inc, record)
        if row.state == REVOKED or (row.last_change_ms or 0) > inc.create_ms:
            # Stored as evidence, not applied: the alert was revoked, or a
            # newer version is already in place.
            return Stored(alert_id=row.alert_id)
        w.conn.execute(
            update(t.alerts)
            .where(t.alerts.c.alert_id == row.alert_id)
            .values(
                record=dumps(record),
                kind=str(record.get("kind", row.kind)),
                urgency=str(record.get("urgency", "")),
                handling=int(h.handling),
                tlp=int(h.tlp),
                treaty_version=h.treaty_version,
                expire_ms=inc.expire_ms,
                expired_noted=False,
                revision=row.revision + 1,
                update_ms=inc.received_ms,
                last_change_ms=inc.create_ms,
            )
        )
        w.event("alert.updated", alert_id=row.alert_id, agency_id=h.sender)
        # Whoever this agency passed the alert on to gets the update too.
        self.forwarding.pass_update(w, row, record)
        return Stored(alert_id=row.alert_id)

    def on_revocation(self, w: Writer, inc: Incoming) -> Stored:
        row = self._received_ref(w, inc)
        if row.state != REVOKED:
            w.conn.execute(
                update(t.alerts)
                .where(t.alerts.c.alert_id == row.alert_id)
                .values(state=REVOKED, revoke_ms=inc.create_ms, update_ms=inc.received_ms)
            )
            w.event("alert.revoked", alert_id=row.alert_id, agency_id=inc.header.sender)
            # ... and the recall (node.kinds.forwarding).
            self.forwarding.recall(w, row)
        return Stored(alert_id=row.alert_id)

    def on_control(self, w: Writer, inc: Incoming) -> Stored:
        """Acknowledgement or hit report from a recipient of our alert."""
        h = inc.header
        at = inc.received_ms
        d = w.conn.execute(DELIVERY_BY_VIEW, {"ref": h.reference_id, "sender": h.sender}).first()
        if d is None:
            raise Refused(
                "REFERENCE_UNKNOWN",
                f"no alert {h.reference_id!r} was sent to {h.sender}",
            )
        if d.treaty_id != h.treaty_id:
            raise Refused(
                "REFERENCE_MISMATCH",
                f"alert {h.reference_id} was shared under {d.treaty_id}, not {h.treaty_id}",
            )
        key = {"b_alert_id": d.alert_id, "b_agency_id": h.sender, "at": at}
        first_delivery = d.delivered_ms is None
        if first_delivery:
            w.conn.execute(SET_DELIVERED, key)
            w.event("alert.delivered", alert_id=d.alert_id, agency_id=h.sender)
        if h.kind == envelope_pb2.MESSAGE_KIND_ACKNOWLEDGEMENT:
            if d.acknowledged_us is None:
                w.conn.execute(SET_ACKNOWLEDGED, {**key, "ack_us": acknowledged_at(inc)})
                w.event("alert.acknowledged", alert_id=d.alert_id, agency_id=h.sender)
        elif h.kind == envelope_pb2.MESSAGE_KIND_HIT_REPORT:
            record = parse_payload(inc.payload)
            decision = check_fields(record, inc.treaty, "hit_report")
            if not decision:
                raise Refused(decision.reason, decision.detail)
            found_us = None
            if "found_at" in record:
                try:
                    found_us = rec.rfc3339_to_us(str(record["found_at"]))
                except ValueError:
                    raise Refused("MALFORMED", "found_at is not an RFC 3339 time") from None
            for k in ("place", "found"):
                if k in record and not isinstance(record[k], str):
                    raise Refused("MALFORMED", f"{k} is not a string")
            w.conn.execute(
                insert(t.hits).values(
                    hit_id=str(uuid.uuid4()),
                    alert_id=d.alert_id,
                    agency_id=h.sender,
                    direction=RECEIVED,
                    message_id=h.message_id,
                    found_us=found_us,
                    place=str(record.get("place", "")),
                    found=str(record.get("found", "")),
                    reported_us=inc.create_us,
                    retain_until_ms=inc.retain_until_ms,
                )
            )
            w.conn.execute(COUNT_HIT, {**key, "hit_us": inc.create_us})
            w.event("alert.hit_reported", alert_id=d.alert_id, agency_id=h.sender)
        return Stored(alert_id=d.alert_id)

    def _on_receipt(self, w: Writer, inc: Incoming, refs: Sequence[str]) -> dict[str, Stored]:
        """Mark delivered every alert of ``refs`` (see :mod:`node.sharing.receipts`).

        The common case in one statement: first receipts for deliveries that
        exist under this treaty. Each reference it did not mark is looked at:
        one shared under another treaty refuses the whole receipt; one
        delivered before (a repeated receipt) changes nothing; one never
        sent to this partner is left for the other kinds (the engine refuses
        a receipt that names nothing anyone sent).
        """
        h = inc.header
        at = inc.received_ms
        marked: dict[str, str]  # view id -> alert id
        marked = {
            str(r[0]): str(r[1])
            for r in MARK_DELIVERED.execute(
                w.conn, {"refs": list(refs), "sender": h.sender, "treaty": h.treaty_id, "at": at}
            ).rows
        }
        known: dict[str, Stored] = {}
        for ref in refs:
            if ref in marked:
                w.event("alert.delivered", alert_id=marked[ref], agency_id=h.sender)
                known[ref] = Stored(alert_id=marked[ref])
                continue
            d = w.conn.execute(DELIVERY_BY_VIEW, {"ref": ref, "sender": h.sender}).first()
            if d is None:
                continue
            if d.treaty_id != h.treaty_id:
                raise Refused(
                    "REFERENCE_MISMATCH",
                    f"alert {ref} was shared under {d.treaty_id}, not {h.treaty_id}",
                )
            known[ref] = Stored(alert_id=d.alert_id)
        return known

    def on_send_failed(
        self,
        w: Writer,
        message_id: str,
        kind: int,
        alert_id: str | None,
        recipients: list[str],
        error: str,
    ) -> None:
        if alert_id is None:
            return
        if kind in (
            envelope_pb2.MESSAGE_KIND_ALERT,
            envelope_pb2.MESSAGE_KIND_ALERT_UPDATE,
            envelope_pb2.MESSAGE_KIND_ALERT_REVOCATION,
        ):
            view_id = message_id
            if kind != envelope_pb2.MESSAGE_KIND_ALERT:
                ref = w.conn.execute(
                    select(t.outbound.c.reference_id).where(t.outbound.c.message_id == message_id)
                ).scalar_one_or_none()
                view_id = ref or message_id
            w.conn.execute(
                update(t.deliveries)
                .where(t.deliveries.c.view_id == view_id)
                .values(failure=error[:1000])
            )
        for agency in recipients:
            w.event("alert.delivery_failed", alert_id=alert_id, agency_id=agency)


def acknowledged_at(inc: Incoming) -> int:
    """When the recipient's officer acknowledged, in microseconds, as its message says.

    Never after the message was sealed (a later time would be the sender's
    mistake); a message without the time (an older node's) or with one
    that does not parse counts from its sealing.
    """
    sealed = inc.create_us
    said = parse_payload(inc.payload).get(ACKNOWLEDGED_AT)
    if not isinstance(said, str):
        return sealed
    try:
        return min(rec.rfc3339_to_us(said), sealed)
    except ValueError:
        return sealed
