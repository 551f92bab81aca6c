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
    parse_name,
)
from node.schema import alert as rec
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer, now_ms

log = logging.getLogger(__name__)


class AlertAnswers(AlertCore):
    """A recipient's answers to the issuer."""

    def acknowledge(self, w: Writer, officer: Officer, name: str) -> alert_pb2.Alert:
        alert_id = parse_name(name)
        row = self._row(w.conn, alert_id)
        self._require_received(row, "acknowledge it")
        if row.acknowledged_ms is not None:
            return self._load(w.conn, alert_id)
        sealed = self._control(row, kind=envelope_pb2.MESSAGE_KIND_ACKNOWLEDGEMENT, payload={})
        changed = w.conn.execute(
            update(t.alerts)
            .where(t.alerts.c.alert_id == alert_id, t.alerts.c.acknowledged_ms.is_(None))
            .values(acknowledged_ms=now_ms())
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
        found_ms: int | None,
        place: str,
        found: str,
    ) -> alert_pb2.Alert:
        alert_id = parse_name(name)
        v: dict[str, str] = {}
        now = now_ms()
        if found_ms is None:
            v["found_time"] = "required: when the subject was found"
        elif found_ms > now + 300_000:
            v["found_time"] = "must not be in the future"
        elif found_ms < now - 3660 * 86_400_000:
            v["found_time"] = "more than ten years ago"
        rec._text(v, "place", place, max_len=500, required=True, multiline=True)
        rec._text(v, "found", found, max_len=4000, required=True, multiline=True)
        if v:
            raise errors.invalid_fields(rec.summary(v, "invalid hit report"), violations=v)
        assert found_ms is not None
        row = self._row(w.conn, alert_id)
        self._require_received(row, "report a hit")
        record = {"found_at": rec.ms_to_rfc3339(found_ms), "place": place, "found": found}
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
                found_ms=found_ms,
                place=place,
                found=found,
                reported_ms=now,
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
