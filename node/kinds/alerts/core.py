"""The part of a node's alerts every other part stands on.

:class:`AlertCore` holds the collaborators (store, sharing engine, the
review and forwarding workflows), reads an alert's row and builds its proto,
validates and normalises a draft into what the engine shares, and checks
that an operation fits the alert's direction and state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    select,
)

from intelshare import errors
from intelshare.treaty import alert_kind_name
from intelshare.v1 import alert_pb2, envelope_pb2
from node.kinds.alerts.db import (
    ISSUED,
    RECEIVED,
    REVOKED,
    alert_name,
    by_agency,
    copy_alert,
    to_proto,
)
from node.kinds.forwarding import Forwarding
from node.kinds.reviews import HELD, Reviews
from node.schema import alert as rec
from node.sharing.engine import Share, Sharing
from node.sharing.sealing import Sealed
from node.storage import tables as t
from node.storage.store import Store, now_ms, rows_by

log = logging.getLogger(__name__)


class AlertCore:
    """What every part of a node's alerts shares: collaborators, rows, drafts, checks."""

    #: review before release and onward sharing, made by :class:`node.kinds.alerts.Alerts`
    reviews: Reviews
    forwarding: Forwarding

    def __init__(
        self, *, agency_id: str, store: Store, sharing: Sharing, max_alert_days: int
    ) -> None:
        self.agency_id = agency_id
        self.store = store
        self.sharing = sharing
        self.max_alert_days = max_alert_days

    def _row(self, conn: Connection, alert_id: str) -> Row[Any]:
        row = conn.execute(select(t.alerts).where(t.alerts.c.alert_id == alert_id)).first()
        if row is None:
            raise errors.AlertNotFound(
                f"alert {alert_name(alert_id)} does not exist",
                metadata={"name": alert_name(alert_id)},
            )
        return row

    def _load(self, conn: Connection, alert_id: str) -> alert_pb2.Alert:
        return self._build(conn, [self._row(conn, alert_id)])[0]

    def _build(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[alert_pb2.Alert]:
        ids = [r.alert_id for r in rows]
        if not ids:
            return []
        deliveries = rows_by(
            conn, select(t.deliveries).where(t.deliveries.c.alert_id.in_(ids)), "alert_id"
        )
        for alert_id, ds in deliveries.items():  # by agency, whatever the database's collation
            deliveries[alert_id] = by_agency(ds)
        hits = rows_by(
            conn,
            select(t.hits).where(t.hits.c.alert_id.in_(ids)).order_by(t.hits.c.reported_us),
            "alert_id",
        )
        pending: set[str] = set()
        failed: dict[str, str] = {}
        view_ids = [d.view_id for ds in deliveries.values() for d in ds]
        if view_ids:
            for o in conn.execute(
                select(t.outbound.c.message_id, t.outbound.c.state, t.outbound.c.last_error).where(
                    t.outbound.c.message_id.in_(view_ids)
                )
            ):
                if o.state == "pending":
                    pending.add(o.message_id)
                elif o.state == "failed":
                    failed[o.message_id] = o.last_error or "refused"
        envelopes: dict[str, bytes] = {}
        message_ids = [r.message_id for r in rows if r.message_id]
        if message_ids:
            for e in conn.execute(
                select(t.received.c.message_id, t.received.c.envelope_sha256).where(
                    t.received.c.message_id.in_(message_ids)
                )
            ):
                envelopes[e.message_id] = bytes(e.envelope_sha256)
        now = now_ms()
        out = []
        for r in rows:
            out.append(
                to_proto(
                    r,
                    deliveries.get(r.alert_id, []),
                    hits.get(r.alert_id, []),
                    pending,
                    failed,
                    envelopes.get(r.message_id or "", b""),
                    now,
                )
            )
        return out

    def _draft(self, alert: alert_pb2.Alert) -> tuple[alert_pb2.Alert, Share, dict[str, list[str]]]:
        """A new alert validated and normalised, what it shares, and its treaty groups."""
        rec.validate_new_alert(
            alert, own_agency=self.agency_id, now=datetime.now(UTC), max_days=self.max_alert_days
        )
        alert = copy_alert(alert)
        rec.normalise_times(alert)
        if alert.urgency == alert_pb2.URGENCY_UNSPECIFIED:
            alert.urgency = alert_pb2.URGENCY_NORMAL
        groups: dict[str, list[str]] = {}
        for r in alert.recipients:
            groups.setdefault(r.treaty_id or alert.treaty_id, []).append(r.agency_id)
        record = rec.alert_to_record(alert)
        share = Share(
            record=record,
            treaty_kind="alert",
            fields_kind="alert",
            message_kind=envelope_pb2.MESSAGE_KIND_ALERT,
            handling=alert.handling,
            tlp=alert.tlp,
            categories=rec.categories_of(alert),
            expire_ms=rec.ts_to_ms(alert.expire_time),
            alert_kind=alert_kind_name(alert.kind),
            paths=frozenset(rec.field_paths(record)),
        )
        return alert, share, groups

    def _require_issued_active(self, row: Row[Any]) -> None:
        name = alert_name(row.alert_id)
        if row.direction != ISSUED:
            raise errors.NotIssuer(
                f"alert {name} was received from {row.origin_agency}; only the issuing agency "
                "can change it",
                metadata={"name": name},
            )
        if row.state == REVOKED:
            raise errors.AlertRevoked(
                f"alert {name} was revoked", metadata={"name": name, "state": "revoked"}
            )
        if row.state == HELD:
            raise errors.AlertPendingReview(
                f"alert {name} is waiting for review: an approver releases or rejects it first",
                metadata={"name": name, "state": "pending_review"},
            )
        if row.expire_ms <= now_ms():
            raise errors.AlertExpired(
                f"alert {name} has expired", metadata={"name": name, "state": "expired"}
            )

    def _require_received(self, row: Row[Any], what: str) -> None:
        name = alert_name(row.alert_id)
        if row.direction != RECEIVED:
            raise errors.NotRecipient(
                f"alert {name} was issued by this agency; only recipients can {what}",
                metadata={"name": name},
            )
        if row.state == REVOKED:
            raise errors.AlertRevoked(
                f"alert {name} was revoked by {row.origin_agency}",
                metadata={"name": name, "state": "revoked"},
            )

    def _control(
        self,
        row: Row[Any],
        *,
        kind: envelope_pb2.MessageKind.ValueType,
        payload: Mapping[str, Any],
        categories: Sequence[str] = (),
    ) -> Sealed:
        return self.sharing.control(
            kind=kind,
            to=row.origin_agency,
            treaty_id=row.treaty_id,
            treaty_version=row.treaty_version,
            handling=row.handling,
            tlp=row.tlp,
            reference_id=row.message_id,
            payload=payload,
            categories=categories,
        )
