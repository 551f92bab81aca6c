"""Alerts: issuing, updating, revoking, acknowledging, hits — both sides.

The issuing side
----------------
An alert names its recipients, each under a treaty. For every treaty the
node takes the newest version in force, checks that it permits the alert
(kind, category, handling code, TLP, every recipient a party; the precise
``PolicyRefused`` subclass otherwise, naming the rule), and **redacts**
the record with the treaty's field allow-list. Recipients under one treaty
share one redacted *view* and one envelope; the issuer keeps each view
(``node_views``) and every payload it sealed (``node_outbound``), so it can
show exactly what each recipient received (``GetAlertDelivery``). The
recipient's alert id is the message id of the envelope it received; the
issuer's alert id is the message id of its first view, so with a single
treaty both sides use the same id.

Updates and revocations are sealed per view (``ALERT_UPDATE`` with the new
redacted record, ``ALERT_REVOCATION``), with ``reference_id`` = the view's
id, so each recipient applies them to the alert it holds. Updates use the
``alert`` allow-list: an update is the alert record again, and a field a
partner may not see in an alert must not reach it through an update.

The receiving side
------------------
Received alerts are stored as received (only what the treaty let through)
and owe a ``RECEIPT``, written in the same transaction and sealed a moment
later together with the others owed to that issuer (:mod:`node.sharing.receipts`),
which the issuer records as *delivered*. Officers acknowledge (``ACKNOWLEDGEMENT``)
and report hits (``HIT_REPORT``, redacted with the treaty's ``hit_report``
allow-list; without one, the issuer learns that there was a hit and when,
not where). Control messages ride on the treaty of the alert they refer to,
and the receiving node checks that they refer to something it really
shared with that sender under that treaty.

Review before release and onward sharing are :mod:`node.kinds.reviews`
(an alert a treaty reserves for review is held until an approver releases
it) and :mod:`node.kinds.forwarding` (a received alert passed on under the
original treaty's onward-sharing rule, with the originator's consent where
it asks for one; updates and revocations follow the copies).

Every mutation writes its event row in the same transaction (see
:mod:`node.storage.store`); every officer read of a received alert is audited.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    delete,
    exists,
    insert,
    or_,
    select,
    tuple_,
    update,
)

from intelshare import errors
from intelshare.db import is_pg, pg_execute
from intelshare.ids import new_message_id
from intelshare.treaty import alert_kind_name, check_fields, redact
from intelshare.v1 import alert_pb2, alert_service_pb2, envelope_pb2, receipt_pb2
from node.kinds.forwarding import Forwarding
from node.kinds.reviews import HELD, Reviews
from node.schema import alert as rec
from node.sharing.engine import Refusal, Share, Sharing
from node.sharing.inbound import Incoming, Refused, Stored, parse_payload
from node.sharing.outbound import Sealed
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Store, Writer, dumps, now_ms, rows_by

log = logging.getLogger(__name__)

ISSUED = "issued"
RECEIVED = "received"
ACTIVE = "active"
REVOKED = "revoked"

UPDATABLE = ("urgency", "subjects", "description", "handling", "tlp", "evaluation", "expire_time")

DEFAULT_PAGE = 50
MAX_PAGE = 500
#: Audit entries list at most this many alert ids each (leaves are capped at 16 KiB).
_AUDIT_IDS_PER_ENTRY = 200


def alert_name(alert_id: str) -> str:
    return f"alerts/{alert_id}"


def parse_name(name: str, field: str = "name") -> str:
    prefix = "alerts/"
    alert_id = name[len(prefix) :] if name.startswith(prefix) else ""
    if not alert_id or "/" in alert_id or len(alert_id) > 64:
        raise errors.InvalidArgument(
            f"{field} must look like alerts/{{alert_id}}, got {name!r}",
            violations={field: "expected alerts/{alert_id}"},
        )
    return alert_id


def parse_delivery_name(name: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "alerts" or parts[2] != "deliveries" or not all(parts):
        raise errors.InvalidArgument(
            f"name must look like alerts/{{alert_id}}/deliveries/{{agency_id}}, got {name!r}",
            violations={"name": "expected alerts/{alert_id}/deliveries/{agency_id}"},
        )
    return parts[1], parts[3]


@dataclass(frozen=True)
class ListFilter:
    kind: int = 0
    state: int = 0
    direction: int = 0
    treaty_id: str = ""

    def fingerprint(self) -> str:
        return f"{self.kind}:{self.state}:{self.direction}:{self.treaty_id}"


class Alerts:
    """Alert operations of one node (officer side and inbound handlers), on the engine."""

    def __init__(
        self, *, agency_id: str, store: Store, sharing: Sharing, max_alert_days: int
    ) -> None:
        self.agency_id = agency_id
        self.store = store
        self.sharing = sharing
        self.max_alert_days = max_alert_days
        sharing.register(envelope_pb2.MESSAGE_KIND_ALERT, self.on_alert)
        sharing.register(envelope_pb2.MESSAGE_KIND_ALERT_UPDATE, self.on_update)
        sharing.register(envelope_pb2.MESSAGE_KIND_ALERT_REVOCATION, self.on_revocation)
        sharing.on_receipt(self._on_receipt)
        sharing.register(envelope_pb2.MESSAGE_KIND_ACKNOWLEDGEMENT, self.on_control)
        sharing.register(envelope_pb2.MESSAGE_KIND_HIT_REPORT, self.on_control)
        sharing.on_failed(self.on_send_failed)
        #: review before release and onward sharing (node.kinds.reviews, .forwarding)
        self.reviews = Reviews(self)
        self.forwarding = Forwarding(self)

    def _row(self, conn: Connection, alert_id: str) -> Row[Any]:
        row = conn.execute(select(t.alerts).where(t.alerts.c.alert_id == alert_id)).first()
        if row is None:
            raise errors.NotFound(
                f"alert {alert_name(alert_id)} does not exist",
                metadata={"name": alert_name(alert_id)},
            )
        return row

    def _draft(self, alert: alert_pb2.Alert) -> tuple[alert_pb2.Alert, Share, dict[str, list[str]]]:
        """A new alert validated and normalised, what it shares, and its treaty groups."""
        rec.validate_new_alert(
            alert, own_agency=self.agency_id, now=datetime.now(UTC), max_days=self.max_alert_days
        )
        alert = _copy(alert)
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

    def preview(self, alert: alert_pb2.Alert) -> list[alert_service_pb2.RecipientPreview]:
        """What each recipient of a draft would receive, or why it would not; nothing sent."""
        alert, share, groups = self._draft(alert)
        return self.previews_of(alert, share, groups)

    def previews_of(
        self, alert: alert_pb2.Alert, share: Share, groups: Mapping[str, Sequence[str]]
    ) -> list[alert_service_pb2.RecipientPreview]:
        """The treaty plan of ``share`` for ``groups``, as previews per recipient."""
        out: list[alert_service_pb2.RecipientPreview] = []
        for item in self.sharing.plan(share, groups):
            if isinstance(item, Refusal):
                err = item.error
                out.extend(
                    alert_service_pb2.RecipientPreview(
                        agency_id=agency,
                        treaty_id=item.treaty_id,
                        treaty_version=item.treaty_version,
                        permitted=False,
                        refusal_reason=err.reason,
                        refusal_message=err.message,
                    )
                    for agency in item.recipients
                )
                continue
            seen = rec.record_to_alert(item.record)
            seen.treaty_id = item.treaty.id
            seen.recipients.extend(
                alert_pb2.AlertRecipient(agency_id=a, treaty_id=item.treaty.id)
                for a in item.recipients
            )
            seen.categories.extend(share.categories)
            seen.handling = alert.handling
            seen.tlp = alert.tlp
            seen.expire_time.CopyFrom(alert.expire_time)
            seen.origin_agency = self.agency_id
            seen.direction = alert_pb2.ALERT_DIRECTION_RECEIVED
            out.extend(
                alert_service_pb2.RecipientPreview(
                    agency_id=agency,
                    treaty_id=item.treaty.id,
                    treaty_version=item.treaty.version,
                    permitted=True,
                    alert=seen,
                    removed_fields=item.removed,
                )
                for agency in item.recipients
            )
        out.sort(key=lambda p: (p.agency_id, p.treaty_id))
        return out

    # --- issue -------------------------------------------------------------------------

    def issue(self, w: Writer, officer: Officer, alert: alert_pb2.Alert) -> alert_pb2.Alert:
        alert, share, groups = self._draft(alert)
        categories = list(share.categories)
        expire_ms = share.expire_ms
        # Treaties that reserve the alert for review hold it (node.kinds.reviews).
        held = self.reviews.held(share, groups, officer.officer_id)
        views = self.sharing.views(share, {k: v for k, v in groups.items() if k not in held})
        first = views[0].sealed if views else None
        alert_id = first.message_id if first is not None else new_message_id(now_ms())
        created = now_ms()
        recipients = [
            {"agency_id": a, "treaty_id": v.treaty.id} for v in views for a in v.recipients
        ] + [{"agency_id": a, "treaty_id": k} for k in sorted(held) for a in sorted(groups[k])]
        row = {
            "alert_id": alert_id,
            "direction": ISSUED,
            "origin_agency": self.agency_id,
            "kind": rec.KINDS[alert.kind],
            "urgency": rec.URGENCIES.get(alert.urgency, "normal"),
            "treaty_id": alert.treaty_id or (views[0].treaty.id if views else min(held)),
            "treaty_version": 0,
            "categories": dumps(categories),
            "recipients": dumps(recipients),
            "handling": alert.handling,
            "tlp": alert.tlp,
            "record": dumps(share.record),
            "revision": 1,
            "state": ACTIVE if views else HELD,
            "create_ms": created,
            "update_ms": created,
            "expire_ms": expire_ms,
            "expired_noted": False,
            "created_by": officer.officer_id,
        }
        # The new rows go in with the events at the end of the transaction (one
        # statement on PostgreSQL): nothing here reads them back.
        w.insert_later(t.alerts, row)
        if held:
            self.reviews.hold(w, officer, alert_id, groups, held, expire_ms)
        view_rows: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        sealed_all = [v.sealed for v in views if v.sealed is not None]
        for v, sealed in zip(views, sealed_all, strict=True):
            view_rows.append(
                {
                    "view_id": sealed.message_id,
                    "alert_id": alert_id,
                    "treaty_id": v.treaty.id,
                    "treaty_version": v.treaty.version,
                    "recipients": dumps(v.recipients),
                    "payload": sealed.payload,
                    "removed_fields": dumps(v.removed),
                    "revision": 1,
                }
            )
            deliveries.extend(
                {
                    "alert_id": alert_id,
                    "agency_id": agency,
                    "view_id": sealed.message_id,
                    "treaty_id": v.treaty.id,
                    "treaty_version": v.treaty.version,
                    "hit_count": 0,
                }
                for agency in v.recipients
            )
        self.sharing.queue_later(w, sealed_all, alert_id)
        w.insert_later(t.views, view_rows)
        w.insert_later(t.deliveries, deliveries)
        w.event("alert.issued", alert_id=alert_id)
        w.audit(
            "alert_issued",
            {
                "alert_id": alert_id,
                "officer_id": officer.officer_id,
                "recipients": [r["agency_id"] for r in recipients],
                "treaties": [f"{v.treaty.id}@{v.treaty.version}" for v in views],
                "messages": [s.message_id for s in sealed_all],
            },
        )
        # The answer is what was just written, not a read of it: nothing else
        # can have touched the alert before this transaction commits.
        return _to_proto(
            _Fresh({**_ALERT_DEFAULTS, **row}),
            [_Fresh({**_DELIVERY_DEFAULTS, **d}) for d in _by_agency(deliveries)],
            [],
            {s.message_id for s in sealed_all},  # queued, not yet sent
            {},
            b"",
            now_ms(),
        )

    # --- update ------------------------------------------------------------------------

    def update(
        self, w: Writer, officer: Officer, alert: alert_pb2.Alert, mask: FieldMask
    ) -> alert_pb2.Alert:
        alert_id = parse_name(alert.name, "alert.name")
        paths = list(mask.paths)
        v: dict[str, str] = {}
        for n, p in enumerate(paths):
            if p not in UPDATABLE:
                v[f"update_mask.paths[{n}]"] = (
                    f"{p!r} cannot be updated (updatable: {', '.join(UPDATABLE)})"
                )
        if not paths:
            paths = [p for p in UPDATABLE if _is_set(alert, p)]
            if not paths:
                v["update_mask"] = "nothing to update: give update_mask or fields to change"
        if v:
            raise errors.InvalidArgument(rec.summary(v, "invalid update"), violations=v)
        row = self._row(w.conn, alert_id)
        self._require_issued_active(row)
        now = datetime.now(UTC)
        merged = rec.record_to_alert(json.loads(row.record))
        merged.kind = rec.KIND_BY_NAME[row.kind]  # type: ignore[assignment]
        for p in paths:
            if p in ("subjects", "evaluation", "expire_time"):
                getattr(merged, p).CopyFrom(getattr(alert, p))
                if p == "expire_time" and not alert.HasField("expire_time"):
                    merged.ClearField("expire_time")
            else:
                setattr(merged, p, getattr(alert, p))
        rec.normalise_times(merged)
        if merged.urgency == alert_pb2.URGENCY_UNSPECIFIED:
            merged.urgency = alert_pb2.URGENCY_NORMAL
        v = {}
        rec.validate_content(
            v, merged, now=now, max_days=self.max_alert_days, paths=frozenset(paths)
        )
        if v:
            raise errors.InvalidArgument(rec.summary(v, "invalid update"), violations=v)
        record = rec.alert_to_record(merged)
        record_paths = set(rec.field_paths(record))
        expire_ms = rec.ts_to_ms(merged.expire_time)
        categories = json.loads(row.categories)
        view_rows = w.conn.execute(
            select(t.views).where(t.views.c.alert_id == alert_id).order_by(t.views.c.view_id)
        ).all()
        share = Share(
            record=record,
            treaty_kind="alert_update",
            fields_kind="alert",
            message_kind=envelope_pb2.MESSAGE_KIND_ALERT_UPDATE,
            handling=merged.handling,
            tlp=merged.tlp,
            categories=categories,
            expire_ms=expire_ms,
            paths=frozenset(record_paths),
        )
        by_treaty = {vr.treaty_id: vr for vr in view_rows}
        updates = [
            (by_treaty[v.treaty.id], v)
            for v in self.sharing.views(
                share,
                {vr.treaty_id: json.loads(vr.recipients) for vr in view_rows},
                reference_ids={vr.treaty_id: vr.view_id for vr in view_rows},
            )
        ]
        changed = w.conn.execute(
            update(t.alerts)
            .where(
                t.alerts.c.alert_id == alert_id,
                t.alerts.c.revision == row.revision,
                t.alerts.c.state == ACTIVE,
            )
            .values(
                record=dumps(record),
                urgency=rec.URGENCIES.get(merged.urgency, "normal"),
                handling=merged.handling,
                tlp=merged.tlp,
                expire_ms=expire_ms,
                expired_noted=False,
                revision=row.revision + 1,
                update_ms=now_ms(),
            )
        )
        if not changed.rowcount:
            raise errors.FailedPrecondition(
                f"alert {alert.name} changed while this update was prepared; retry",
                metadata={"name": alert.name},
            )
        for view_row, view in updates:
            assert view.sealed is not None
            w.conn.execute(
                update(t.deliveries)
                .where(t.deliveries.c.view_id == view_row.view_id)
                .values(treaty_version=view.treaty.version)
            )
            w.conn.execute(
                update(t.views)
                .where(t.views.c.view_id == view_row.view_id)
                .values(
                    payload=view.sealed.payload,
                    treaty_version=view.treaty.version,
                    removed_fields=dumps(view.removed),
                    revision=row.revision + 1,
                )
            )
            self.sharing.queue(w, view.sealed, record_id=alert_id)
        w.event("alert.updated", alert_id=alert_id)
        w.audit(
            "alert_updated",
            {
                "alert_id": alert_id,
                "officer_id": officer.officer_id,
                "fields": sorted(paths),
                "messages": [u.sealed.message_id for _r, u in updates if u.sealed],
            },
        )
        return self._load(w.conn, alert_id)

    def _require_issued_active(self, row: Row[Any]) -> None:
        name = alert_name(row.alert_id)
        if row.direction != ISSUED:
            raise errors.FailedPrecondition(
                f"alert {name} was received from {row.origin_agency}; only the issuing agency "
                "can change it",
                metadata={"name": name},
            )
        if row.state == REVOKED:
            raise errors.FailedPrecondition(
                f"alert {name} was revoked", metadata={"name": name, "state": "revoked"}
            )
        if row.state == HELD:
            raise errors.FailedPrecondition(
                f"alert {name} is waiting for review: an approver releases or rejects it first",
                metadata={"name": name, "state": "pending_review"},
            )
        if row.expire_ms <= now_ms():
            raise errors.FailedPrecondition(
                f"alert {name} has expired", metadata={"name": name, "state": "expired"}
            )

    # --- revoke ------------------------------------------------------------------------

    def revoke(self, w: Writer, officer: Officer, name: str, reason: str) -> alert_pb2.Alert:
        alert_id = parse_name(name)
        v: dict[str, str] = {}
        rec._text(v, "reason", reason, max_len=2000, multiline=True)
        if v:
            raise errors.InvalidArgument(rec.summary(v), violations=v)
        row = self._row(w.conn, alert_id)
        self._require_issued_active(row)
        view_rows = w.conn.execute(
            select(t.views).where(t.views.c.alert_id == alert_id).order_by(t.views.c.view_id)
        ).all()
        sealed_all: list[Sealed] = []
        for view_row in view_rows:
            treaty = self.sharing.in_force_or_current(view_row.treaty_id, view_row.treaty_version)
            agencies = json.loads(view_row.recipients)
            self.sharing.check(
                treaty,
                recipients=agencies,
                kind="alert_revocation",
                categories=[],
                handling=row.handling,
                tlp=row.tlp,
            )
            sealed_all.append(
                self.sharing.seal(
                    treaty,
                    kind=envelope_pb2.MESSAGE_KIND_ALERT_REVOCATION,
                    recipients=agencies,
                    handling=row.handling,
                    tlp=row.tlp,
                    categories=[],
                    expire_ms=row.expire_ms,
                    payload={},
                    reference_id=view_row.view_id,
                )
            )
        at = now_ms()
        changed = w.conn.execute(
            update(t.alerts)
            .where(t.alerts.c.alert_id == alert_id, t.alerts.c.state == ACTIVE)
            .values(state=REVOKED, revoke_ms=at, revoke_reason=reason or None, update_ms=at)
        )
        if not changed.rowcount:
            raise errors.FailedPrecondition(
                f"alert {name} was revoked", metadata={"name": name, "state": "revoked"}
            )
        for sealed in sealed_all:
            self.sharing.queue(w, sealed, record_id=alert_id)
        w.event("alert.revoked", alert_id=alert_id)
        w.audit(
            "alert_revoked",
            {
                "alert_id": alert_id,
                "officer_id": officer.officer_id,
                "messages": [s.message_id for s in sealed_all],
            },
        )
        return self._load(w.conn, alert_id)

    # --- recipient side: acknowledge, hit ---------------------------------------------

    def _require_received(self, row: Row[Any], what: str) -> None:
        name = alert_name(row.alert_id)
        if row.direction != RECEIVED:
            raise errors.FailedPrecondition(
                f"alert {name} was issued by this agency; only recipients can {what}",
                metadata={"name": name},
            )
        if row.state == REVOKED:
            raise errors.FailedPrecondition(
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
            raise errors.InvalidArgument(rec.summary(v, "invalid hit report"), violations=v)
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

    # --- reading -----------------------------------------------------------------------

    def get(self, officer: Officer, name: str) -> alert_pb2.Alert:
        alert_id = parse_name(name)
        with self.store.write() as w:
            alert = self._load(w.conn, alert_id)
            if alert.direction == alert_pb2.ALERT_DIRECTION_RECEIVED:
                w.audit(
                    "read",
                    {
                        "officer_id": officer.officer_id,
                        "alert_ids": [alert_id],
                        "method": "GetAlert",
                    },
                )
        return alert

    def list_page(
        self, officer: Officer, flt: ListFilter, page_size: int, page_token: str
    ) -> tuple[list[alert_pb2.Alert], str]:
        v: dict[str, str] = {}
        if page_size < 0:
            v["page_size"] = "must not be negative"
        if flt.kind and flt.kind not in rec.KINDS:
            v["kind"] = "unknown kind"
        if flt.state not in (0, 1, 2, 3):
            v["state"] = "unknown state"
        if flt.direction not in (0, 1, 2):
            v["direction"] = "unknown direction"
        if len(flt.treaty_id) > 128:
            v["treaty_id"] = "too long"
        if v:
            raise errors.InvalidArgument(rec.summary(v), violations=v)
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
            for start in range(0, len(received_ids), _AUDIT_IDS_PER_ENTRY):
                w.audit(
                    "read",
                    {
                        "officer_id": officer.officer_id,
                        "alert_ids": received_ids[start : start + _AUDIT_IDS_PER_ENTRY],
                        "method": "ListAlerts",
                    },
                )
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
                raise errors.FailedPrecondition(
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
                raise errors.NotFound(
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
        status = _delivery_status(d, sent_state=_sent_state(sent, d.view_id))
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
        seen.expire_time.CopyFrom(rec.ms_to_ts(row.expire_ms))
        seen.state = _state(row, now_ms())
        seen.origin_agency = row.origin_agency
        seen.direction = alert_pb2.ALERT_DIRECTION_RECEIVED
        seen.create_time.CopyFrom(rec.ms_to_ts(row.create_ms))
        seen.update_time.CopyFrom(rec.ms_to_ts(row.update_ms))
        if row.revoke_ms is not None:
            seen.revoke_time.CopyFrom(rec.ms_to_ts(row.revoke_ms))
        seen.revision = view.revision
        seen.hits.extend(_hit(h) for h in hit_rows)
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
            raise errors.InvalidArgument(
                "name must look like alerts/{alert_id}/deliveries/{agency_id}/receipt, "
                f"got {name!r}",
                violations={"name": "expected alerts/{alert_id}/deliveries/{agency_id}/receipt"},
            )
        alert_id, agency = parse_delivery_name("/".join(parts[:4]))
        with self.store.engine.connect() as conn:
            row = self._row(conn, alert_id)
            if row.direction != ISSUED:
                raise errors.FailedPrecondition(
                    f"alert {alert_name(alert_id)} was received; receipts are the issuer's",
                    metadata={"name": alert_name(alert_id)},
                )
            sent = conn.execute(
                select(t.outbound.c.message_id, t.outbound.c.envelope, t.outbound.c.receipt)
                .join(t.deliveries, t.deliveries.c.view_id == t.outbound.c.message_id)
                .where(t.deliveries.c.alert_id == alert_id, t.deliveries.c.agency_id == agency)
            ).first()
        if sent is None:
            raise errors.NotFound(
                f"{agency} is not a recipient of alert {alert_name(alert_id)}",
                metadata={"name": name},
            )
        if sent.receipt is None:
            raise errors.FailedPrecondition(
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
            deliveries[alert_id] = _by_agency(ds)
        hits = rows_by(
            conn,
            select(t.hits).where(t.hits.c.alert_id.in_(ids)).order_by(t.hits.c.reported_ms),
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
                _to_proto(
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

    # --- inbound handlers --------------------------------------------------------------

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
        d = w.conn.execute(_DELIVERY_BY_VIEW, {"ref": h.reference_id, "sender": h.sender}).first()
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
            w.conn.execute(_SET_DELIVERED, key)
            w.event("alert.delivered", alert_id=d.alert_id, agency_id=h.sender)
        if h.kind == envelope_pb2.MESSAGE_KIND_ACKNOWLEDGEMENT:
            if d.acknowledged_ms is None:
                w.conn.execute(_SET_ACKNOWLEDGED, key)
                w.event("alert.acknowledged", alert_id=d.alert_id, agency_id=h.sender)
        elif h.kind == envelope_pb2.MESSAGE_KIND_HIT_REPORT:
            record = parse_payload(inc.payload)
            decision = check_fields(record, inc.treaty, "hit_report")
            if not decision:
                raise Refused(decision.reason, decision.detail)
            found_ms = None
            if "found_at" in record:
                try:
                    found_ms = rec.rfc3339_to_ms(str(record["found_at"]))
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
                    found_ms=found_ms,
                    place=str(record.get("place", "")),
                    found=str(record.get("found", "")),
                    reported_ms=inc.create_ms,
                    retain_until_ms=inc.retain_until_ms,
                )
            )
            w.conn.execute(_COUNT_HIT, {**key, "at": inc.create_ms})
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
        if is_pg(w.conn):
            _, rows = pg_execute(
                w.conn, _PG_MARK_DELIVERED, (at, list(refs), h.sender, h.treaty_id)
            )
            marked = {str(r[0]): str(r[1]) for r in rows}
        else:
            marked = {
                str(r[0]): str(r[1])
                for r in w.conn.execute(
                    _MARK_DELIVERED,
                    {"refs": list(refs), "sender": h.sender, "treaty": h.treaty_id, "at": at},
                )
            }
        known: dict[str, Stored] = {}
        for ref in refs:
            if ref in marked:
                w.event("alert.delivered", alert_id=marked[ref], agency_id=h.sender)
                known[ref] = Stored(alert_id=marked[ref])
                continue
            d = w.conn.execute(_DELIVERY_BY_VIEW, {"ref": ref, "sender": h.sender}).first()
            if d is None:
                continue
            if d.treaty_id != h.treaty_id:
                raise Refused(
                    "REFERENCE_MISMATCH",
                    f"alert {ref} was shared under {d.treaty_id}, not {h.treaty_id}",
                )
            known[ref] = Stored(alert_id=d.alert_id)
        return known

    # --- delivery failure (from the sender thread) ------------------------------------

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

    # --- periodic jobs -----------------------------------------------------------------

    def note_expired(self, limit: int = 500) -> int:
        """Emit ``alert.expired`` once for every alert whose expire_time passed."""
        now = now_ms()
        with self.store.engine.connect() as conn:
            ids = [
                r.alert_id
                for r in conn.execute(
                    select(t.alerts.c.alert_id)
                    .where(
                        t.alerts.c.state == ACTIVE,
                        t.alerts.c.expire_ms <= now,
                        t.alerts.c.expired_noted.is_(False),
                    )
                    .limit(limit)
                )
            ]
        done = 0
        for alert_id in ids:
            with self.store.write() as w:
                changed = w.conn.execute(
                    update(t.alerts)
                    .where(
                        t.alerts.c.alert_id == alert_id,
                        t.alerts.c.expired_noted.is_(False),
                        t.alerts.c.expire_ms <= now,
                    )
                    .values(expired_noted=True)
                )
                if changed.rowcount:
                    w.event("alert.expired", alert_id=alert_id)
                    done += 1
        return done

    def purge_retention(self, limit: int = 500) -> int:
        """Delete received records whose treaty retention has ended, with audit entries."""
        now = now_ms()
        purged = 0
        with self.store.engine.connect() as conn:
            alert_rows = conn.execute(
                select(t.alerts.c.alert_id, t.alerts.c.message_id, t.alerts.c.treaty_id)
                .where(t.alerts.c.direction == RECEIVED, t.alerts.c.retain_until_ms <= now)
                .limit(limit)
            ).all()
            stray = conn.execute(
                select(t.received.c.message_id, t.received.c.treaty_id)
                .where(t.received.c.retain_until_ms <= now)
                .limit(limit)
            ).all()
            hit_rows = conn.execute(
                select(t.hits.c.hit_id, t.hits.c.message_id, t.hits.c.alert_id)
                .where(t.hits.c.direction == RECEIVED, t.hits.c.retain_until_ms <= now)
                .limit(limit)
            ).all()
        for a in alert_rows:
            with self.store.write() as w:
                gone = w.conn.execute(
                    delete(t.alerts).where(
                        t.alerts.c.alert_id == a.alert_id, t.alerts.c.retain_until_ms <= now
                    )
                )
                if not gone.rowcount:
                    continue
                # Every envelope about the alert goes with it (its updates and
                # revocation too): the record they changed no longer exists.
                envs = w.conn.execute(
                    delete(t.received)
                    .where(t.received.c.alert_id == a.alert_id)
                    .returning(t.received.c.message_id)
                ).all()
                w.event("alert.purged", alert_id=a.alert_id)
                w.audit(
                    "purged",
                    {
                        "alert_id": a.alert_id,
                        "treaty": a.treaty_id,
                        "messages": sorted(e.message_id for e in envs),
                        "rule": "retention_days",
                    },
                )
                purged += 1
        for h in hit_rows:
            with self.store.write() as w:
                gone = w.conn.execute(delete(t.hits).where(t.hits.c.hit_id == h.hit_id))
                if gone.rowcount:
                    w.audit(
                        "purged",
                        {
                            "alert_id": h.alert_id,
                            "hit_message_id": h.message_id,
                            "rule": "retention_days",
                        },
                    )
                    purged += 1
        for s in stray:
            with self.store.write() as w:
                gone = w.conn.execute(
                    delete(t.received).where(
                        t.received.c.message_id == s.message_id,
                        t.received.c.retain_until_ms <= now,
                    )
                )
                if gone.rowcount:
                    w.audit(
                        "purged",
                        {
                            "message_id": s.message_id,
                            "treaty": s.treaty_id,
                            "rule": "retention_days",
                        },
                    )
                    purged += 1
        return purged


# --- module helpers -----------------------------------------------------------------

# Statements of the hot paths, built once: executing them with a parameter set
# skips building, cache-key hashing and compiling per call.
_d = t.deliveries
_MARK_DELIVERED = (
    update(_d)
    .where(
        _d.c.view_id.in_(bindparam("refs", expanding=True)),
        _d.c.agency_id == bindparam("sender"),
        _d.c.treaty_id == bindparam("treaty"),
        _d.c.delivered_ms.is_(None),
    )
    .values(delivered_ms=bindparam("at"))
    .returning(_d.c.view_id, _d.c.alert_id)
)
_PG_MARK_DELIVERED = (
    f"UPDATE {_d.name} SET delivered_ms = %s "  # noqa: S608
    "WHERE view_id = ANY(%s) AND agency_id = %s AND treaty_id = %s AND delivered_ms IS NULL "
    "RETURNING view_id, alert_id"
)
_DELIVERY_BY_VIEW = select(_d).where(
    _d.c.view_id == bindparam("ref"), _d.c.agency_id == bindparam("sender")
)
_DELIVERY_KEY = (
    _d.c.alert_id == bindparam("b_alert_id"),
    _d.c.agency_id == bindparam("b_agency_id"),
)
_SET_DELIVERED = update(_d).where(*_DELIVERY_KEY).values(delivered_ms=bindparam("at"))
_SET_ACKNOWLEDGED = update(_d).where(*_DELIVERY_KEY).values(acknowledged_ms=bindparam("at"))
_COUNT_HIT = (
    update(_d)
    .where(*_DELIVERY_KEY)
    .values(hit_count=_d.c.hit_count + 1, last_hit_ms=bindparam("at"))
)

#: columns of a new row that its INSERT leaves to their defaults (NULL)
_ALERT_DEFAULTS: dict[str, Any] = {
    "revoke_ms": None,
    "revoke_reason": None,
    "message_id": None,
    "received_ms": None,
    "retain_until_ms": None,
    "acknowledged_ms": None,
    "last_change_ms": None,
    "created_by": None,
}
_DELIVERY_DEFAULTS: dict[str, Any] = {
    "accepted_ms": None,
    "delivered_ms": None,
    "acknowledged_ms": None,
    "last_hit_ms": None,
    "failure": None,
}


class _Fresh:
    """A row just written, with the attributes a read of it would have."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only for columns it was not given
        raise AttributeError(name)


def _by_agency(deliveries: Iterable[Any]) -> list[Any]:
    """Deliveries in the order alerts show them (by agency id)."""

    def key(d: Any) -> str:
        return str(d["agency_id"] if isinstance(d, dict) else d.agency_id)

    return sorted(deliveries, key=key)


def _copy(alert: alert_pb2.Alert) -> alert_pb2.Alert:
    out = alert_pb2.Alert()
    out.CopyFrom(alert)
    return out


def _is_set(alert: alert_pb2.Alert, path: str) -> bool:
    if path == "subjects":
        return alert.HasField("subjects")
    if path == "evaluation":
        return alert.HasField("evaluation")
    if path == "expire_time":
        return alert.HasField("expire_time")
    return bool(getattr(alert, path))


def _state(row: Row[Any] | _Fresh, now: int) -> alert_pb2.AlertState.ValueType:
    if row.state == REVOKED:
        return alert_pb2.ALERT_STATE_REVOKED
    if row.state == HELD:
        return alert_pb2.ALERT_STATE_PENDING_REVIEW
    if row.expire_ms <= now:
        return alert_pb2.ALERT_STATE_EXPIRED
    return alert_pb2.ALERT_STATE_ACTIVE


def _hit(h: Row[Any]) -> alert_pb2.Hit:
    hit = alert_pb2.Hit(
        agency_id=h.agency_id,
        place=h.place,
        found=h.found,
        report_time=rec.ms_to_ts(h.reported_ms),
        message_id=h.message_id or "",
    )
    if h.found_ms is not None:
        hit.found_time.CopyFrom(rec.ms_to_ts(h.found_ms))
    return hit


def _sent_state(sent: Iterable[Row[Any]], view_id: str) -> str:
    for m in sent:
        if m.message_id == view_id:
            return str(m.state)
    return "pending"


def _delivery_status(
    d: Row[Any] | _Fresh, *, sent_state: str, failure: str | None = None
) -> alert_pb2.AlertDeliveryStatus:
    status = alert_pb2.AlertDeliveryStatus(
        agency_id=d.agency_id,
        treaty_id=d.treaty_id,
        treaty_version=d.treaty_version,
        message_id=d.view_id,
        hit_count=d.hit_count,
        failure=d.failure or failure or "",
    )
    for attr, field in (
        ("accepted_ms", "accept_time"),
        ("delivered_ms", "deliver_time"),
        ("acknowledged_ms", "acknowledge_time"),
        ("last_hit_ms", "hit_time"),
    ):
        value = getattr(d, attr)
        if value is not None:
            getattr(status, field).CopyFrom(rec.ms_to_ts(value))
    if d.hit_count:
        status.state = alert_pb2.DELIVERY_STATE_HIT
    elif d.acknowledged_ms is not None:
        status.state = alert_pb2.DELIVERY_STATE_ACKNOWLEDGED
    elif d.delivered_ms is not None:
        status.state = alert_pb2.DELIVERY_STATE_DELIVERED
    elif sent_state == "failed" or d.failure:
        status.state = alert_pb2.DELIVERY_STATE_FAILED
    elif d.accepted_ms is not None or sent_state == "accepted":
        status.state = alert_pb2.DELIVERY_STATE_SENT
    else:
        status.state = alert_pb2.DELIVERY_STATE_QUEUED
    return status


def _to_proto(
    r: Row[Any] | _Fresh,
    deliveries: Sequence[Row[Any] | _Fresh],
    hits: Sequence[Row[Any]],
    pending: set[str],
    failed: Mapping[str, str],
    envelope_sha256: bytes,
    now: int,
) -> alert_pb2.Alert:
    record = json.loads(r.record)
    try:
        alert = rec.record_to_alert(record)
    except errors.Malformed:  # stored records passed the same check; be safe all the same
        alert = alert_pb2.Alert()
    alert.name = alert_name(r.alert_id)
    if r.kind in rec.KIND_BY_NAME:
        alert.kind = rec.KIND_BY_NAME[r.kind]  # type: ignore[assignment]
    alert.handling = r.handling
    alert.tlp = r.tlp
    alert.treaty_id = r.treaty_id
    alert.recipients.extend(
        alert_pb2.AlertRecipient(agency_id=x["agency_id"], treaty_id=x["treaty_id"])
        for x in json.loads(r.recipients)
    )
    alert.categories.extend(json.loads(r.categories))
    alert.expire_time.CopyFrom(rec.ms_to_ts(r.expire_ms))
    alert.state = _state(r, now)
    alert.origin_agency = r.origin_agency
    alert.create_time.CopyFrom(rec.ms_to_ts(r.create_ms))
    alert.update_time.CopyFrom(rec.ms_to_ts(r.update_ms))
    if r.revoke_ms is not None:
        alert.revoke_time.CopyFrom(rec.ms_to_ts(r.revoke_ms))
    alert.revision = r.revision
    alert.hits.extend(_hit(h) for h in hits)
    if r.direction == ISSUED:
        alert.direction = alert_pb2.ALERT_DIRECTION_ISSUED
        alert.revoke_reason = r.revoke_reason or ""
        for d in deliveries:
            state = (
                "pending"
                if d.view_id in pending
                else ("failed" if d.view_id in failed else "accepted")
            )
            alert.deliveries.append(
                _delivery_status(d, sent_state=state, failure=failed.get(d.view_id))
            )
    else:
        alert.direction = alert_pb2.ALERT_DIRECTION_RECEIVED
        info = alert_pb2.ReceivedInfo(
            message_id=r.message_id or "",
            envelope_sha256=envelope_sha256,
            treaty_version=r.treaty_version,
            fields=rec.field_paths(record),
        )
        if r.received_ms is not None:
            info.receive_time.CopyFrom(rec.ms_to_ts(r.received_ms))
        if r.retain_until_ms is not None:
            info.retain_until.CopyFrom(rec.ms_to_ts(r.retain_until_ms))
        if r.acknowledged_ms is not None:
            info.acknowledge_time.CopyFrom(rec.ms_to_ts(r.acknowledged_ms))
        alert.received.CopyFrom(info)
    return alert
