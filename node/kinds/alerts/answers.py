"""The recipient's answers: acknowledgements and hit reports to the issuer.

Both are control messages on the treaty version the alert came under; a
hit report is redacted with the treaty's ``hit_report`` allow-list.
"""

from __future__ import annotations

import json
import logging
import uuid

from sqlalchemy import (
    insert,
    update,
)

from intelshare import errors
from intelshare.treaty import redact
from intelshare.v1 import alert_pb2, envelope_pb2
from node.kinds.alerts.core import AlertCore
from node.kinds.alerts.db import (
    ACKNOWLEDGED_AT,
    parse_name,
)
from node.schema import alert as rec
from node.sharing.sealing import Sealed
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer

log = logging.getLogger(__name__)


class AlertAnswers(AlertCore):
    """A recipient's answers to the issuer."""

    def acknowledge(self, w: Writer, officer: Officer, name: str) -> alert_pb2.Alert:
        alert_id = parse_name(name)
        row = self._row(w.conn, alert_id)
        self._require_received(row, "acknowledge it")
        if row.acknowledged_us is not None:
            return self._load(w.conn, alert_id)
        # The officer's time travels in the message, so that the issuer shows
        # this instant, not when the message reached it (issue 22, item 7).
        acknowledged = rec.now_us()
        sealed = self._control(
            row,
            kind=envelope_pb2.MESSAGE_KIND_ACKNOWLEDGEMENT,
            payload={ACKNOWLEDGED_AT: rec.us_to_rfc3339(acknowledged)},
        )
        changed = w.conn.execute(
            update(t.alerts)
            .where(t.alerts.c.alert_id == alert_id, t.alerts.c.acknowledged_us.is_(None))
            .values(acknowledged_us=acknowledged)
        )
        if not changed.rowcount:
            return self._load(w.conn, alert_id)
        self.sharing.queue(w, sealed, record_id=alert_id)
        w.event("alert.acknowledged", alert_id=alert_id, agency_id=self.agency_id)
        w.audit(
            "alert_acknowledged",
            {
                "alert_id": alert_id,
                "officer_id": officer.officer_id,
                "message_id": sealed.message_id,
            },
        )
        return self._load(w.conn, alert_id)

    def report_hit(
        self,
        w: Writer,
        officer: Officer,
        name: str,
        *,
        found_us: int | None,
        place: str,
        found: str,
    ) -> alert_pb2.Alert:
        alert_id = parse_name(name)
        v: dict[str, str] = {}
        now = rec.now_us()
        if found_us is None:
            v["found_time"] = "required: when the subject was found"
        elif found_us > now + 300_000_000:
            v["found_time"] = "must not be in the future"
        elif found_us < now - 3660 * 86_400_000_000:
            v["found_time"] = "more than ten years ago"
        rec._text(v, "place", place, max_len=500, required=True, multiline=True)
        rec._text(v, "found", found, max_len=4000, required=True, multiline=True)
        if v:
            raise errors.invalid_fields(rec.summary(v, "invalid hit report"), violations=v)
        assert found_us is not None
        row = self._row(w.conn, alert_id)
        self._require_received(row, "report a hit")
        record = {"found_at": rec.us_to_rfc3339(found_us), "place": place, "found": found}
        treaty = self.sharing.in_force_version(row.treaty_id, row.treaty_version)
        sent_record = redact(record, treaty, "hit_report")
        sealed = self._control(
            row,
            kind=envelope_pb2.MESSAGE_KIND_HIT_REPORT,
            payload=sent_record,
            categories=json.loads(row.categories),
        )
        w.conn.execute(
            insert(t.hits).values(
                hit_id=str(uuid.uuid4()),
                alert_id=alert_id,
                agency_id=self.agency_id,
                direction="sent",
                message_id=sealed.message_id,
                found_us=found_us,
                place=place,
                found=found,
                # the report's own time is its envelope's creation, as the issuer reads it
                reported_us=created_us(sealed),
                retain_until_ms=None,
            )
        )
        self.sharing.queue(w, sealed, record_id=alert_id)
        w.event("alert.hit_reported", alert_id=alert_id, agency_id=self.agency_id)
        w.audit(
            "hit_reported",
            {
                "alert_id": alert_id,
                "officer_id": officer.officer_id,
                "message_id": sealed.message_id,
                "fields_sent": sorted(sent_record),
            },
        )
        return self._load(w.conn, alert_id)


def created_us(sealed: Sealed) -> int:
    """The creation time in ``sealed``'s signed header, in microseconds (what the issuer reads)."""
    header = envelope_pb2.Header.FromString(
        envelope_pb2.Envelope.FromString(sealed.envelope).header_bytes
    )
    return rec.ts_to_us(header.create_time)
