"""A client for a node's IprService (``recordation``, ``detention``, ``ipr`` commands; tests).

:class:`IprClient` is a :class:`~node.cli.client.NodeClient` (same channel,
token and error translation) with the IPR methods. Names may be given with
or without their collection (``acme-2026`` or ``recordations/acme-2026``);
every mutation gets a new request id unless one is given, so a retry of
the same call object is answered once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.v1 import detention_pb2, ipr_service_pb2, ipr_service_pb2_grpc, recordation_pb2
from node.cli.client import NodeClient

S = ipr_service_pb2


def _named(collection: str, name: str) -> str:
    return name if name.startswith(f"{collection}/") else f"{collection}/{name}"


def _rid(request_id: str | None) -> str:
    return request_id or str(uuid.uuid4())


class IprClient(NodeClient):
    """The node's officer API with IprService."""

    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        self.ipr = ipr_service_pb2_grpc.IprServiceStub(self.channel)

    def __enter__(self) -> IprClient:
        return self

    # --- recordations ----------------------------------------------------------------------

    def create_recordation(
        self,
        recordation: recordation_pb2.Recordation,
        recordation_id: str = "",
        request_id: str | None = None,
    ) -> recordation_pb2.Recordation:
        req = S.CreateRecordationRequest(
            recordation=recordation, recordation_id=recordation_id, request_id=_rid(request_id)
        )
        return self._call(self.ipr.CreateRecordation, req)

    def get_recordation(self, name: str) -> recordation_pb2.Recordation:
        req = S.GetRecordationRequest(name=_named("recordations", name))
        return self._call(self.ipr.GetRecordation, req)

    def list_recordations(self, **filters: Any) -> S.ListRecordationsResponse:
        return self._call(self.ipr.ListRecordations, S.ListRecordationsRequest(**filters))

    def all_recordations(
        self, limit: int | None = None, **filters: Any
    ) -> list[recordation_pb2.Recordation]:
        return self.collect(
            lambda token, size: self.list_recordations(page_token=token, page_size=size, **filters),
            "recordations",
            limit,
        )

    def update_recordation(
        self,
        recordation: recordation_pb2.Recordation,
        paths: Sequence[str],
        request_id: str | None = None,
    ) -> recordation_pb2.Recordation:
        req = S.UpdateRecordationRequest(
            recordation=recordation,
            update_mask=FieldMask(paths=list(paths)),
            request_id=_rid(request_id),
        )
        return self._call(self.ipr.UpdateRecordation, req)

    def extend_recordation(
        self, name: str, expire_time: Timestamp, reason: str, request_id: str | None = None
    ) -> recordation_pb2.Recordation:
        req = S.ExtendRecordationRequest(
            name=_named("recordations", name),
            expire_time=expire_time,
            reason=reason,
            request_id=_rid(request_id),
        )
        return self._call(self.ipr.ExtendRecordation, req)

    def move_recordation(
        self, verb: str, name: str, reason: str, request_id: str | None = None
    ) -> recordation_pb2.Recordation:
        """``verb``: withdraw, suspend or resume."""
        moves: dict[str, tuple[Any, Any]] = {
            "withdraw": (S.WithdrawRecordationRequest, self.ipr.WithdrawRecordation),
            "suspend": (S.SuspendRecordationRequest, self.ipr.SuspendRecordation),
            "resume": (S.ResumeRecordationRequest, self.ipr.ResumeRecordation),
        }
        request_type, method = moves[verb]
        req = request_type(
            name=_named("recordations", name), reason=reason, request_id=_rid(request_id)
        )
        response: recordation_pb2.Recordation = self._call(method, req)
        return response

    def search_recordations(self, **criteria: Any) -> S.SearchRecordationsResponse:
        return self._call(self.ipr.SearchRecordations, S.SearchRecordationsRequest(**criteria))

    def all_matches(self, limit: int | None = None, **criteria: Any) -> list[S.RecordationMatch]:
        return self.collect(
            lambda token, size: self.search_recordations(
                page_token=token, page_size=size, **criteria
            ),
            "matches",
            limit,
        )

    # --- detentions ------------------------------------------------------------------------

    def create_detention(
        self,
        detention: detention_pb2.Detention,
        detention_id: str = "",
        request_id: str | None = None,
    ) -> detention_pb2.Detention:
        req = S.CreateDetentionRequest(
            detention=detention, detention_id=detention_id, request_id=_rid(request_id)
        )
        return self._call(self.ipr.CreateDetention, req)

    def get_detention(self, name: str) -> detention_pb2.Detention:
        return self._call(
            self.ipr.GetDetention, S.GetDetentionRequest(name=_named("detentions", name))
        )

    def list_detentions(self, **filters: Any) -> S.ListDetentionsResponse:
        return self._call(self.ipr.ListDetentions, S.ListDetentionsRequest(**filters))

    def all_detentions(
        self, limit: int | None = None, **filters: Any
    ) -> list[detention_pb2.Detention]:
        return self.collect(
            lambda token, size: self.list_detentions(page_token=token, page_size=size, **filters),
            "detentions",
            limit,
        )

    def update_detention(
        self,
        detention: detention_pb2.Detention,
        paths: Sequence[str],
        request_id: str | None = None,
    ) -> detention_pb2.Detention:
        req = S.UpdateDetentionRequest(
            detention=detention,
            update_mask=FieldMask(paths=list(paths)),
            request_id=_rid(request_id),
        )
        return self._call(self.ipr.UpdateDetention, req)

    def move_detention(
        self, name: str, state: int, reason: str, request_id: str | None = None
    ) -> detention_pb2.Detention:
        req = S.MoveDetentionRequest(
            name=_named("detentions", name),
            state=state,  # type: ignore[arg-type]
            reason=reason,
            request_id=_rid(request_id),
        )
        return self._call(self.ipr.MoveDetention, req)

    def extend_deadline(
        self,
        name: str,
        working_days: int,
        reason: str,
        kind: int = detention_pb2.DEADLINE_KIND_HOLDER_ANSWER,
        request_id: str | None = None,
    ) -> detention_pb2.Detention:
        req = S.ExtendDeadlineRequest(
            name=_named("detentions", name),
            kind=kind,  # type: ignore[arg-type]
            working_days=working_days,
            reason=reason,
            request_id=_rid(request_id),
        )
        return self._call(self.ipr.ExtendDeadline, req)

    def disclose_parties(
        self, name: str, reason: str, request_id: str | None = None
    ) -> detention_pb2.Detention:
        req = S.DiscloseDetentionPartiesRequest(
            name=_named("detentions", name), reason=reason, request_id=_rid(request_id)
        )
        return self._call(self.ipr.DiscloseDetentionParties, req)

    def request_samples(
        self, name: str, reason: str, request_id: str | None = None
    ) -> detention_pb2.Detention:
        req = S.RequestDetentionSamplesRequest(
            name=_named("detentions", name), reason=reason, request_id=_rid(request_id)
        )
        return self._call(self.ipr.RequestDetentionSamples, req)

    # --- reports, statistics, feed -------------------------------------------------------

    def share_report(
        self,
        name: str,
        recipients: Sequence[tuple[str, str]],
        summary: str = "",
        request_id: str | None = None,
    ) -> detention_pb2.DetentionReport:
        req = S.ShareDetentionReportRequest(
            name=_named("detentions", name),
            recipients=[
                S.DetentionReportRecipient(agency_id=a, treaty_id=t) for a, t in recipients
            ],
            summary=summary,
            request_id=_rid(request_id),
        )
        return self._call(self.ipr.ShareDetentionReport, req)

    def get_report(self, name: str) -> detention_pb2.DetentionReport:
        req = S.GetDetentionReportRequest(name=_named("detentionReports", name))
        return self._call(self.ipr.GetDetentionReport, req)

    def list_reports(self, **filters: Any) -> S.ListDetentionReportsResponse:
        return self._call(self.ipr.ListDetentionReports, S.ListDetentionReportsRequest(**filters))

    def all_reports(
        self, limit: int | None = None, **filters: Any
    ) -> list[detention_pb2.DetentionReport]:
        return self.collect(
            lambda token, size: self.list_reports(page_token=token, page_size=size, **filters),
            "detention_reports",
            limit,
        )

    def statistics(self, **request: Any) -> S.EnforcementStatistics:
        return self._call(
            self.ipr.GetEnforcementStatistics, S.GetEnforcementStatisticsRequest(**request)
        )

    def watch_detentions(
        self, after_cursor: int = 0, **filters: Any
    ) -> Iterator[S.WatchDetentionsResponse]:
        """IPR events after the cursor, then live, until the caller stops iterating."""
        return self._stream(
            self.ipr.WatchDetentions,
            S.WatchDetentionsRequest(after_cursor=after_cursor, **filters),
        )

    # --- webhooks ----------------------------------------------------------------------------

    def create_webhook(
        self, url: str, events: Sequence[str], request_id: str | None = None
    ) -> S.CreateIprWebhookResponse:
        """Register a webhook of the caller's; the response carries its signing secret."""
        req = S.CreateIprWebhookRequest(
            webhook=S.IprWebhook(url=url, events=list(events)), request_id=_rid(request_id)
        )
        return self._call(self.ipr.CreateIprWebhook, req)

    def list_webhooks(self, **request: Any) -> S.ListIprWebhooksResponse:
        return self._call(self.ipr.ListIprWebhooks, S.ListIprWebhooksRequest(**request))

    def delete_webhook(self, name: str, request_id: str | None = None) -> None:
        req = S.DeleteIprWebhookRequest(
            name=_named("iprWebhooks", name), request_id=_rid(request_id)
        )
        self._call(self.ipr.DeleteIprWebhook, req)
