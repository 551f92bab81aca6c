"""The IprService servicer: who may call what, idempotent mutations, the IPR feed.

Each method authenticates the caller first. Customs officers need the
role matrix's permission (:mod:`node.storage.officers`): ``issue`` (admin,
liaison) to grant, change and move, ``read`` (and analysts) to read. A
``rights_holder`` has no permission of the matrix, so every other service
refuses it; here it is let into exactly the methods a holder uses — reading
its own recordations and the detentions naming them, moving its answers,
asking for an extension or samples, watching its feed — and the kinds
check, record by record, that the record is its own (``HOLDER_MISMATCH``
otherwise). Every other method of this service refuses it too.

Mutations run once per ``request_id`` in one transaction with their
idempotency record (:class:`node.api.base.Idempotent`); errors of
:mod:`intelshare.errors` become gRPC status with ``ErrorInfo`` at the
boundary (the server's :class:`~intelshare.grpc_errors.TranslateErrors`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message
from sqlalchemy import Connection, select

from intelshare import errors
from intelshare.v1 import (
    alert_service_pb2,
    detention_pb2,
    ipr_service_pb2,
    ipr_service_pb2_grpc,
    recordation_pb2,
)
from node.api.base import WATCH_BATCH, KindServicer
from node.kinds import ipr_common as ipr
from node.kinds.detentions import Detentions
from node.kinds.recordations import Recordations
from node.schema.alert import ms_to_ts, ts_to_ms
from node.storage import tables as t
from node.storage.officers import RIGHTS_HOLDER, Officer, Permission, bearer_token
from node.storage.store import EVENTS_TOPIC, Event, Writer

S = ipr_service_pb2
D = detention_pb2
R = recordation_pb2
_M = TypeVar("_M", bound=Message)
WEBHOOKS = "iprWebhooks"


class WebhookBook(Protocol):
    """The node's webhook registry (:class:`node.notify.webhooks.WebhookRegistry`).

    Given by the server: the API and the notification package sit side by
    side and do not import each other.
    """

    def add(
        self,
        url: str,
        events: Sequence[str],
        *,
        allow_http: bool = False,
        officer_id: str | None = None,
        holder_key: str | None = None,
        conn: Connection | None = None,
    ) -> tuple[Any, str]: ...

    def owned(self, officer_id: str) -> list[Any]: ...

    def secret(self, webhook_id: str, officer_id: str) -> str: ...

    def remove_owned(self, conn: Connection, webhook_id: str, officer_id: str) -> None: ...


class IprServicer(KindServicer, ipr_service_pb2_grpc.IprServiceServicer):
    def __init__(
        self,
        *,
        recordations: Recordations,
        detentions: Detentions,
        webhooks: WebhookBook,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.recordations = recordations
        self.detentions = detentions
        self.webhooks = webhooks

    # --- access ------------------------------------------------------------------------------

    def _caller(
        self, context: grpc.ServicerContext, permission: Permission, *, holder: bool
    ) -> Officer:
        """The authenticated officer, if its role may call this method at all."""
        officer = self.officers.authenticate(bearer_token(context))
        if officer.role == RIGHTS_HOLDER:
            if not holder:
                raise errors.RoleNotPermitted(
                    "a rights holder reads its own recordations and detentions, answers and "
                    "watches its feed; nothing else",
                    metadata={"role": officer.role, "permission": permission.value},
                )
            return officer
        if not officer.can(permission):
            raise errors.RoleNotPermitted(
                f"role {officer.role} may not {permission.value.replace('_', ' ')}",
                metadata={"role": officer.role, "permission": permission.value},
            )
        return officer

    def _mutate(
        self,
        context: grpc.ServicerContext,
        method: str,
        request: Message,
        response_type: type[_M],
        operation: Callable[[Writer, Officer], _M],
        *,
        holder: bool = False,
    ) -> _M:
        officer = self._caller(context, Permission.ISSUE, holder=holder)
        request_id: str = getattr(request, "request_id")  # noqa: B009
        return self.idempotent.run(
            officer, method, request, request_id, response_type, lambda w: operation(w, officer)
        )

    # --- recordations --------------------------------------------------------------------------

    def CreateRecordation(
        self, request: S.CreateRecordationRequest, context: grpc.ServicerContext
    ) -> R.Recordation:
        return self._mutate(
            context,
            "CreateRecordation",
            request,
            R.Recordation,
            lambda w, o: self.recordations.grant(w, o, request.recordation, request.recordation_id),
        )

    def GetRecordation(
        self, request: S.GetRecordationRequest, context: grpc.ServicerContext
    ) -> R.Recordation:
        officer = self._caller(context, Permission.READ, holder=True)
        return self.recordations.get(officer, request.name)

    def ListRecordations(
        self, request: S.ListRecordationsRequest, context: grpc.ServicerContext
    ) -> S.ListRecordationsResponse:
        officer = self._caller(context, Permission.READ, holder=True)
        found, token = self.recordations.list_page(officer, request)
        return S.ListRecordationsResponse(recordations=found, next_page_token=token)

    def UpdateRecordation(
        self, request: S.UpdateRecordationRequest, context: grpc.ServicerContext
    ) -> R.Recordation:
        return self._mutate(
            context,
            "UpdateRecordation",
            request,
            R.Recordation,
            lambda w, o: self.recordations.update(w, o, request.recordation, request.update_mask),
        )

    def ExtendRecordation(
        self, request: S.ExtendRecordationRequest, context: grpc.ServicerContext
    ) -> R.Recordation:
        expire_ms = ts_to_ms(request.expire_time) if request.HasField("expire_time") else 0
        return self._mutate(
            context,
            "ExtendRecordation",
            request,
            R.Recordation,
            lambda w, o: self.recordations.extend(w, o, request.name, expire_ms, request.reason),
        )

    def _move_recordation(
        self, context: grpc.ServicerContext, method: str, request: Any, state: int
    ) -> R.Recordation:
        return self._mutate(
            context,
            method,
            request,
            R.Recordation,
            lambda w, o: self.recordations.move(w, o, request.name, state, request.reason),
        )

    def WithdrawRecordation(
        self, request: S.WithdrawRecordationRequest, context: grpc.ServicerContext
    ) -> R.Recordation:
        return self._move_recordation(
            context, "WithdrawRecordation", request, R.RECORDATION_STATE_WITHDRAWN
        )

    def SuspendRecordation(
        self, request: S.SuspendRecordationRequest, context: grpc.ServicerContext
    ) -> R.Recordation:
        return self._move_recordation(
            context, "SuspendRecordation", request, R.RECORDATION_STATE_SUSPENDED
        )

    def ResumeRecordation(
        self, request: S.ResumeRecordationRequest, context: grpc.ServicerContext
    ) -> R.Recordation:
        return self._move_recordation(context, "ResumeRecordation", request, 0)

    def SearchRecordations(
        self, request: S.SearchRecordationsRequest, context: grpc.ServicerContext
    ) -> S.SearchRecordationsResponse:
        officer = self._caller(context, Permission.READ, holder=True)
        return self.recordations.search(officer, request)

    # --- detentions ------------------------------------------------------------------------------

    def CreateDetention(
        self, request: S.CreateDetentionRequest, context: grpc.ServicerContext
    ) -> D.Detention:
        return self._mutate(
            context,
            "CreateDetention",
            request,
            D.Detention,
            lambda w, o: self.detentions.create(w, o, request.detention, request.detention_id),
        )

    def GetDetention(
        self, request: S.GetDetentionRequest, context: grpc.ServicerContext
    ) -> D.Detention:
        officer = self._caller(context, Permission.READ, holder=True)
        return self.detentions.get(officer, request.name)

    def ListDetentions(
        self, request: S.ListDetentionsRequest, context: grpc.ServicerContext
    ) -> S.ListDetentionsResponse:
        officer = self._caller(context, Permission.READ, holder=True)
        found, token = self.detentions.list_page(officer, request)
        return S.ListDetentionsResponse(detentions=found, next_page_token=token)

    def UpdateDetention(
        self, request: S.UpdateDetentionRequest, context: grpc.ServicerContext
    ) -> D.Detention:
        return self._mutate(
            context,
            "UpdateDetention",
            request,
            D.Detention,
            lambda w, o: self.detentions.update(w, o, request.detention, request.update_mask),
        )

    def MoveDetention(
        self, request: S.MoveDetentionRequest, context: grpc.ServicerContext
    ) -> D.Detention:
        return self._mutate(
            context,
            "MoveDetention",
            request,
            D.Detention,
            lambda w, o: self.detentions.move(w, o, request.name, request.state, request.reason),
            holder=True,
        )

    def ExtendDeadline(
        self, request: S.ExtendDeadlineRequest, context: grpc.ServicerContext
    ) -> D.Detention:
        return self._mutate(
            context,
            "ExtendDeadline",
            request,
            D.Detention,
            lambda w, o: self.detentions.extend_deadline(
                w, o, request.name, request.kind, request.working_days, request.reason
            ),
            holder=True,
        )

    def DiscloseDetentionParties(
        self, request: S.DiscloseDetentionPartiesRequest, context: grpc.ServicerContext
    ) -> D.Detention:
        return self._mutate(
            context,
            "DiscloseDetentionParties",
            request,
            D.Detention,
            lambda w, o: self.detentions.disclose_parties(w, o, request.name, request.reason),
        )

    def RequestDetentionSamples(
        self, request: S.RequestDetentionSamplesRequest, context: grpc.ServicerContext
    ) -> D.Detention:
        return self._mutate(
            context,
            "RequestDetentionSamples",
            request,
            D.Detention,
            lambda w, o: self.detentions.request_samples(w, o, request.name, request.reason),
            holder=True,
        )

    # --- reports and statistics ------------------------------------------------------------

    def ShareDetentionReport(
        self, request: S.ShareDetentionReportRequest, context: grpc.ServicerContext
    ) -> D.DetentionReport:
        return self._mutate(
            context,
            "ShareDetentionReport",
            request,
            D.DetentionReport,
            lambda w, o: self.detentions.share_report(
                w, o, request.name, list(request.recipients), request.summary
            ),
        )

    def GetDetentionReport(
        self, request: S.GetDetentionReportRequest, context: grpc.ServicerContext
    ) -> D.DetentionReport:
        officer = self._caller(context, Permission.READ, holder=False)
        return self.detentions.get_report(officer, request.name)

    def ListDetentionReports(
        self, request: S.ListDetentionReportsRequest, context: grpc.ServicerContext
    ) -> S.ListDetentionReportsResponse:
        officer = self._caller(context, Permission.READ, holder=False)
        found, token = self.detentions.list_reports(officer, request)
        return S.ListDetentionReportsResponse(detention_reports=found, next_page_token=token)

    def GetEnforcementStatistics(
        self, request: S.GetEnforcementStatisticsRequest, context: grpc.ServicerContext
    ) -> S.EnforcementStatistics:
        self._caller(context, Permission.READ, holder=False)
        return self.detentions.statistics(request)

    # --- webhooks ------------------------------------------------------------------------------

    def CreateIprWebhook(
        self, request: S.CreateIprWebhookRequest, context: grpc.ServicerContext
    ) -> S.CreateIprWebhookResponse:
        """A webhook of the caller's (a holder's: bound to its holder; see node.notify.webhooks).

        The idempotency record keeps the webhook without its secret (which
        is stored only sealed); a retry gets the secret from the registry.
        """
        officer = self._caller(context, Permission.READ, holder=True)
        holder_key = officer.holder_key if officer.role == RIGHTS_HOLDER else None
        if officer.role == RIGHTS_HOLDER and not holder_key:
            raise errors.RoleNotPermitted(
                "this rights_holder officer is bound to no holder",
                metadata={"role": officer.role},
            )

        def register(w: Writer) -> S.IprWebhook:
            hook, _secret = self.webhooks.add(
                request.webhook.url,
                list(request.webhook.events),
                officer_id=officer.officer_id,
                holder_key=holder_key,
                conn=w.conn,
            )
            w.audit(
                "webhook_added",
                {
                    "officer_id": officer.officer_id,
                    "webhook_id": hook.webhook_id,
                    "events": list(hook.events),
                },
            )
            return _webhook_proto(hook)

        shown = self.idempotent.run(
            officer, "CreateIprWebhook", request, request.request_id, S.IprWebhook, register
        )
        webhook_id = shown.name.removeprefix(f"{WEBHOOKS}/")
        return S.CreateIprWebhookResponse(
            webhook=shown, secret=self.webhooks.secret(webhook_id, officer.officer_id)
        )

    def ListIprWebhooks(
        self, request: S.ListIprWebhooksRequest, context: grpc.ServicerContext
    ) -> S.ListIprWebhooksResponse:
        officer = self._caller(context, Permission.READ, holder=True)
        size = ipr.page_size(request.page_size)
        after = ipr.decode_token(self.store, officer, request.page_token, "webhooks")
        hooks = self.webhooks.owned(officer.officer_id)
        if after is not None:
            hooks = [h for h in hooks if (h.created_ms, h.webhook_id) > tuple(after)]
        page = hooks[:size]
        token = ""
        if len(hooks) > size and page:
            last = page[-1]
            token = ipr.encode_token(
                self.store, officer, [last.created_ms, last.webhook_id], "webhooks"
            )
        return S.ListIprWebhooksResponse(
            webhooks=[_webhook_proto(h) for h in page], next_page_token=token
        )

    def DeleteIprWebhook(
        self, request: S.DeleteIprWebhookRequest, context: grpc.ServicerContext
    ) -> Empty:
        officer = self._caller(context, Permission.READ, holder=True)
        webhook_id = ipr.parse_name(request.name, WEBHOOKS)

        def remove(w: Writer) -> Empty:
            self.webhooks.remove_owned(w.conn, webhook_id, officer.officer_id)
            w.audit("webhook_removed", {"officer_id": officer.officer_id, "webhook_id": webhook_id})
            return Empty()

        return self.idempotent.run(
            officer, "DeleteIprWebhook", request, request.request_id, Empty, remove
        )

    # --- the feed ------------------------------------------------------------------------------

    def WatchDetentions(
        self, request: S.WatchDetentionsRequest, context: grpc.ServicerContext
    ) -> Iterator[S.WatchDetentionsResponse]:
        """IPR events after the cursor from the event log, then live, with heartbeats.

        Like WatchAlerts: the database is the truth, the wake-up hub only
        says "look again", sequence numbers follow commit order so nothing
        is skipped. Access is checked again for every batch (a disabled
        officer's stream ends), and a rights holder sees only the events of
        its own recordations and of the detentions that name them.
        """
        officer = self._caller(context, Permission.READ, holder=True)
        with self.feeds.slot(officer):
            cursor = self.check_cursor(request.after_cursor)
            while context.is_active():
                generation = self.hub.generation(EVENTS_TOPIC)
                events = self.store.events_after(cursor, WATCH_BATCH)
                if events:
                    officer = self._caller(context, Permission.READ, holder=True)
                    for item in self._ipr_events(officer, events, request.state):
                        yield S.WatchDetentionsResponse(event=item)
                    cursor = events[-1].seq
                    continue
                if not self.hub.wait(EVENTS_TOPIC, generation, self.heartbeat_seconds):
                    yield S.WatchDetentionsResponse(
                        heartbeat=alert_service_pb2.WatchHeartbeat(
                            head_cursor=self.store.head_seq()
                        )
                    )

    def _ipr_events(
        self, officer: Officer, events: Sequence[Event], state: int
    ) -> Iterator[S.IprEvent]:
        """The IPR events of a batch of the log that ``officer`` may see, as IprEvents."""
        typed: list[tuple[Event, str]] = []
        for e in events:
            if e.type.startswith(ipr.EVENT_FAMILIES):
                typed.append((e, e.type))
        if not typed:
            return
        holder = officer.role == RIGHTS_HOLDER
        wanted_state = (
            D.DetentionState.Name(state).removeprefix("DETENTION_STATE_").lower()  # type: ignore[arg-type]
            if state
            else ""
        )
        detention_ids = {
            e.record_id for e, ty in typed if ty.startswith("detention.") and e.record_id
        }
        visible = self.detentions.visible_ids(officer, detention_ids)
        record_ids = {
            e.record_id for e, ty in typed if ty.startswith("recordation.") and e.record_id
        }
        recordations: dict[str, Any] = {}
        if record_ids:
            r = t.recordations
            with self.store.engine.connect() as conn:
                recordations = {
                    row.record_id: row
                    for row in conn.execute(
                        select(
                            r.c.record_id, r.c.recordation_id, r.c.holder_key, r.c.direction
                        ).where(r.c.record_id.in_(sorted(record_ids)))
                    )
                }
        for e, ty in typed:
            family = ty.split(".", 1)[0]
            if wanted_state and family != "detention":
                continue
            if family == "detention":
                if e.record_id not in visible:
                    continue
                if wanted_state and visible[e.record_id or ""] != wanted_state:
                    continue
                resource = f"{ipr.DETENTIONS}/{e.record_id}"
            elif family == "recordation":
                row = recordations.get(e.record_id or "")
                if row is None:
                    continue
                if holder and row.holder_key != officer.holder_key:
                    continue
                resource = f"{ipr.RECORDATIONS}/{row.recordation_id}"
            elif family == "detention_report":
                if holder:
                    continue
                resource = f"{ipr.REPORTS}/{e.record_id}"
            else:
                continue
            yield S.IprEvent(
                cursor=e.seq,
                event_id=e.event_id,
                type=ty,
                resource=resource,
                agency_id=e.agency_id or "",
                create_time=ms_to_ts(e.created_ms),
            )


def _webhook_proto(hook: Any) -> S.IprWebhook:
    return S.IprWebhook(
        name=f"{WEBHOOKS}/{hook.webhook_id}",
        url=hook.url,
        events=list(hook.events),
        create_time=ms_to_ts(hook.created_ms),
    )
