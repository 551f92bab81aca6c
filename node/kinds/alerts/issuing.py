"""The issuing side: preview, issue, update and revoke an alert.

For every treaty the engine decides, redacts into one view per treaty and
seals (:mod:`node.sharing.engine`); the issuer keeps each view and every
payload it sealed, so it can show exactly what each recipient received.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import (
    select,
    update,
)

from intelshare import errors
from intelshare.ids import new_message_id
from intelshare.v1 import alert_pb2, alert_service_pb2, envelope_pb2
from node.kinds.alerts.core import AlertCore
from node.kinds.alerts.db import (
    ACTIVE,
    ALERT_DEFAULTS,
    DELIVERY_DEFAULTS,
    ISSUED,
    REVOKED,
    UPDATABLE,
    Fresh,
    alert_proto,
    by_agency,
    is_set,
    parse_name,
)
from node.kinds.reviews import HELD
from node.schema import alert as rec
from node.sharing.engine import Refusal, Share
from node.sharing.sealing import Sealed
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer, dumps, now_ms

log = logging.getLogger(__name__)


class AlertIssuing(AlertCore):
    """Operations of the issuing agency."""

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
        # can have touched the alert before this transaction commits. Its
        # record, recipients and categories are the values in hand, not
        # their JSON read back.
        return alert_proto(
            Fresh({**ALERT_DEFAULTS, **row}),
            share.record,
            recipients,
            categories,
            [Fresh({**DELIVERY_DEFAULTS, **d}) for d in by_agency(deliveries)],
            [],
            {s.message_id for s in sealed_all},  # queued, not yet sent
            {},
            b"",
            now_ms(),
        )

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
            paths = [p for p in UPDATABLE if is_set(alert, p)]
            if not paths:
                v["update_mask"] = "nothing to update: give update_mask or fields to change"
        if v:
            raise errors.invalid_fields(rec.summary(v, "invalid update"), violations=v)
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
            raise errors.invalid_fields(rec.summary(v, "invalid update"), violations=v)
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
            raise errors.ChangedMeanwhile(
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

    def revoke(self, w: Writer, officer: Officer, name: str, reason: str) -> alert_pb2.Alert:
        alert_id = parse_name(name)
        v: dict[str, str] = {}
        rec._text(v, "reason", reason, max_len=2000, multiline=True)
        if v:
            raise errors.invalid_fields(rec.summary(v), violations=v)
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
            raise errors.AlertRevoked(
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
