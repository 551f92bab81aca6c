"""The AlertService servicer: authentication, idempotency, translation.

Each method authenticates the officer and checks the role first (nothing
about a resource is revealed to a caller who may not see it), then hands
over to :mod:`node.kinds.alerts`. Mutations run in one transaction together with
their idempotency record: a retry with the same ``request_id`` returns the
stored response, a ``request_id`` reused for a different request is
``REQUEST_ID_REUSED``, and an error leaves neither the change nor a record
behind (the retry runs again, as it should).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
from sqlalchemy import bindparam, select

from intelshare import errors
from intelshare.v1 import alert_pb2, alert_service_pb2, alert_service_pb2_grpc
from node.api.base import WATCH_BATCH, KindServicer
from node.api.reviews import WorkflowMethods
from node.kinds.alerts import Alerts, ListFilter, alert_name
from node.schema import alert as rec
from node.storage import tables as t
from node.storage.officers import Permission
from node.storage.store import EVENTS_TOPIC

log = logging.getLogger(__name__)


class AlertServicer(WorkflowMethods, KindServicer, alert_service_pb2_grpc.AlertServiceServicer):
    def __init__(self, *, alerts: Alerts, **common: Any) -> None:
        super().__init__(**common)
        self.alerts = alerts

    def CreateAlert(
        self, request: alert_service_pb2.CreateAlertRequest, context: grpc.ServicerContext
    ) -> alert_pb2.Alert:
        return self.mutate(
            context,
            Permission.ISSUE,
            "CreateAlert",
            request,
            alert_pb2.Alert,
            lambda w, officer: self.alerts.issue(w, officer, request.alert),
        )

    def PreviewAlert(
        self, request: alert_service_pb2.PreviewAlertRequest, context: grpc.ServicerContext
    ) -> alert_service_pb2.PreviewAlertResponse:
        # Issuers only: a preview shows what CreateAlert would send.
        self.officers.require(context, Permission.ISSUE)
        return alert_service_pb2.PreviewAlertResponse(previews=self.alerts.preview(request.alert))

    def GetAlertReceipt(
        self, request: alert_service_pb2.GetAlertReceiptRequest, context: grpc.ServicerContext
    ) -> alert_service_pb2.AlertReceipt:
        self.officers.require(context, Permission.READ)
        return self.alerts.receipt(request.name)

    def GetAlert(
        self, request: alert_service_pb2.GetAlertRequest, context: grpc.ServicerContext
    ) -> alert_pb2.Alert:
        officer = self.officers.require(context, Permission.READ)
        alert = self.alerts.get(officer, request.name)
        self.alerts.forwarding.provenance_of(alert)  # a copy passed on: where it came from
        return alert

    def ListAlerts(
        self, request: alert_service_pb2.ListAlertsRequest, context: grpc.ServicerContext
    ) -> alert_service_pb2.ListAlertsResponse:
        officer = self.officers.require(context, Permission.READ)
        alerts, token = self.alerts.list_page(
            officer,
            ListFilter(
                kind=request.kind,
                state=request.state,
                direction=request.direction,
                treaty_id=request.treaty_id,
                updated_after_ms=(
                    rec.ts_to_ms(request.update_time_after)
                    if request.HasField("update_time_after")
                    else 0
                ),
            ),
            request.page_size,
            request.page_token,
        )
        return alert_service_pb2.ListAlertsResponse(alerts=alerts, next_page_token=token)

    def UpdateAlert(
        self, request: alert_service_pb2.UpdateAlertRequest, context: grpc.ServicerContext
    ) -> alert_pb2.Alert:
        return self.mutate(
            context,
            Permission.ISSUE,
            "UpdateAlert",
            request,
            alert_pb2.Alert,
            lambda w, officer: self.alerts.update(w, officer, request.alert, request.update_mask),
        )

    def RevokeAlert(
        self, request: alert_service_pb2.RevokeAlertRequest, context: grpc.ServicerContext
    ) -> alert_pb2.Alert:
        return self.mutate(
            context,
            Permission.ISSUE,
            "RevokeAlert",
            request,
            alert_pb2.Alert,
            lambda w, officer: self.alerts.revoke(w, officer, request.name, request.reason),
        )

    def AcknowledgeAlert(
        self, request: alert_service_pb2.AcknowledgeAlertRequest, context: grpc.ServicerContext
    ) -> alert_pb2.Alert:
        return self.mutate(
            context,
            Permission.ACKNOWLEDGE,
            "AcknowledgeAlert",
            request,
            alert_pb2.Alert,
            lambda w, officer: self.alerts.acknowledge(w, officer, request.name),
        )

    def ReportHit(
        self, request: alert_service_pb2.ReportHitRequest, context: grpc.ServicerContext
    ) -> alert_pb2.Alert:
        found_us = rec.ts_to_us(request.found_time) if request.HasField("found_time") else None
        return self.mutate(
            context,
            Permission.REPORT_HIT,
            "ReportHit",
            request,
            alert_pb2.Alert,
            lambda w, officer: self.alerts.report_hit(
                w,
                officer,
                request.name,
                found_us=found_us,
                place=request.place,
                found=request.found,
            ),
        )

    def GetAlertDelivery(
        self, request: alert_service_pb2.GetAlertDeliveryRequest, context: grpc.ServicerContext
    ) -> alert_pb2.AlertDelivery:
        officer = self.officers.require(context, Permission.READ)
        return self.alerts.delivery(officer, request.name)

    def WatchAlerts(
        self, request: alert_service_pb2.WatchAlertsRequest, context: grpc.ServicerContext
    ) -> Iterator[alert_service_pb2.WatchAlertsResponse]:
        """Replay from the event log after the cursor, then follow it live.

        The database is the truth; the wake-up hub only says "look again".
        Because event sequence numbers are allocated in commit order (see
        :mod:`node.storage.store`), reading ``seq > cursor`` never skips an event,
        so a subscriber resuming from its last cursor sees every event once,
        in order. Filters are applied to the alert as it is now; an event
        whose alert no longer exists (purged) passes only unfiltered streams.
        """
        officer = self.officers.require(context, Permission.READ)
        v: dict[str, str] = {}
        if request.after_cursor < 0:
            v["after_cursor"] = "must not be negative"
        if request.kind and request.kind not in rec.KINDS:
            v["kind"] = "unknown kind"
        if request.urgency and request.urgency not in rec.URGENCIES:
            v["urgency"] = "unknown urgency"
        if v:
            raise errors.invalid_fields(rec.summary(v), violations=v)
        head = self.store.head_seq()
        if request.after_cursor > head:
            raise errors.EventCursorInvalid(
                f"after_cursor {request.after_cursor} is beyond the newest event {head}",
                violations={"after_cursor": f"must be at most {head}"},
            )
        with self.feeds.slot(officer):
            cursor = int(request.after_cursor)
            filtered = bool(request.kind or request.urgency or request.treaty_id)
            # Other processes' wake-ups counted before the last database read.
            remote_at_read: int | None = None
            while context.is_active():
                generation = self.hub.generation(EVENTS_TOPIC)
                remote = self.hub.remote_generation(EVENTS_TOPIC)
                # Events this process just committed come from memory (see
                # Store.feed_after); the database is read for anything else,
                # except when nothing else can be there: this stream is past
                # every event this process committed, and no other process has
                # said it committed one since the last read.
                events = self.store.feed_after(
                    cursor, WATCH_BATCH, alert_only=True, memory_only=True
                )
                if not events and (
                    remote != remote_at_read or cursor < self.store.newest_local_seq()
                ):
                    remote_at_read = remote
                    events = self.store.events_after(cursor, WATCH_BATCH, alert_only=True)
                if events:
                    # Access is checked again for every batch of events, not only
                    # when the stream opened: an officer disabled mid-stream sees
                    # nothing more (the stream ends UNAUTHENTICATED).
                    self.officers.require(context, Permission.READ)
                    rows = {}
                    if filtered:
                        ids = list({e.alert_id for e in events if e.alert_id})
                        with self.store.engine.connect() as conn:
                            rows = {r.alert_id: r for r in conn.execute(_FILTER_ROWS, {"ids": ids})}
                    for e in events:
                        cursor = e.seq
                        if e.type.startswith("link.") and not request.include_links:
                            continue  # links only for a feed that asked for them
                        if filtered:
                            row = rows.get(e.alert_id or "")
                            if row is None or not _matches(row, request):
                                continue
                        yield alert_service_pb2.WatchAlertsResponse(
                            event=alert_service_pb2.AlertEvent(
                                cursor=e.seq,
                                event_id=e.event_id,
                                type=e.type,
                                alert=alert_name(e.alert_id or ""),
                                agency_id=e.agency_id or "",
                                create_time=rec.ms_to_ts(e.created_ms),
                            )
                        )
                    continue
                if not self.hub.wait(EVENTS_TOPIC, generation, self.heartbeat_seconds):
                    # Idle for a heartbeat: read the database next time whatever
                    # the counts say (a wake-up lost with Redis costs this long).
                    remote_at_read = None
                    yield alert_service_pb2.WatchAlertsResponse(
                        heartbeat=alert_service_pb2.WatchHeartbeat(
                            head_cursor=self.store.head_seq()
                        )
                    )


_FILTER_ROWS = select(
    t.alerts.c.alert_id,
    t.alerts.c.kind,
    t.alerts.c.urgency,
    t.alerts.c.treaty_id,
    t.alerts.c.recipients,
).where(t.alerts.c.alert_id.in_(bindparam("ids", expanding=True)))


def _matches(row: object, request: alert_service_pb2.WatchAlertsRequest) -> bool:
    import json

    kind: str = getattr(row, "kind", "")
    urgency: str = getattr(row, "urgency", "")
    if request.kind and rec.KINDS.get(request.kind) != kind:
        return False
    if request.urgency and rec.URGENCIES.get(request.urgency) != urgency:
        return False
    if request.treaty_id:
        treaties = {r["treaty_id"] for r in json.loads(getattr(row, "recipients", "[]"))}
        treaties.add(getattr(row, "treaty_id", ""))
        if request.treaty_id not in treaties:
            return False
    return True
