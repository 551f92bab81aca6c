"""The officers' client for the treaty workflows: reviews, forwards, consents.

:class:`WorkflowClient` is the alert client with the AlertService methods
of review before release and onward sharing; the commands of
:mod:`node.cli.workflow` and the tests use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from intelshare.v1 import alert_pb2, alert_service_pb2
from node.cli.client import NodeClient


def _request_id(request_id: str | None) -> str:
    return request_id or str(uuid.uuid4())


class WorkflowClient(NodeClient):
    def pending_reviews_page(
        self, page_size: int = 0, page_token: str = ""
    ) -> alert_service_pb2.ListPendingReviewsResponse:
        """One page of the alerts waiting for review (the console pages through them)."""
        req = alert_service_pb2.ListPendingReviewsRequest(
            page_size=page_size, page_token=page_token
        )
        return self._call(self.stub.ListPendingReviews, req)

    def pending_reviews(self, limit: int | None = None) -> list[alert_service_pb2.PendingReview]:
        def page(token: str, size: int) -> alert_service_pb2.ListPendingReviewsResponse:
            return self.pending_reviews_page(size, token)

        return self.collect(page, "reviews", limit)

    def approve_alert(
        self, name: str, treaty_id: str = "", request_id: str | None = None
    ) -> alert_pb2.Alert:
        req = alert_service_pb2.ApproveAlertRequest(
            name=name, treaty_id=treaty_id, request_id=_request_id(request_id)
        )
        return self._call(self.stub.ApproveAlert, req)

    def reject_alert(
        self, name: str, reason: str, treaty_id: str = "", request_id: str | None = None
    ) -> alert_pb2.Alert:
        req = alert_service_pb2.RejectAlertRequest(
            name=name, treaty_id=treaty_id, reason=reason, request_id=_request_id(request_id)
        )
        return self._call(self.stub.RejectAlert, req)

    def forward_alert(
        self,
        name: str,
        agency_ids: Sequence[str],
        treaty_id: str,
        *,
        fields: Sequence[str] = (),
        reason: str = "",
        request_id: str | None = None,
    ) -> alert_service_pb2.Forward:
        req = alert_service_pb2.ForwardAlertRequest(
            name=name,
            agency_ids=list(agency_ids),
            treaty_id=treaty_id,
            fields=list(fields),
            reason=reason,
            request_id=_request_id(request_id),
        )
        return self._call(self.stub.ForwardAlert, req)

    def forwards(
        self, alert: str = "", limit: int | None = None
    ) -> list[alert_service_pb2.Forward]:
        def page(token: str, size: int) -> alert_service_pb2.ListForwardsResponse:
            req = alert_service_pb2.ListForwardsRequest(
                page_size=size, page_token=token, alert=alert
            )
            return self._call(self.stub.ListForwards, req)

        return self.collect(page, "forwards", limit)

    def consent_requests(
        self, state: int = 0, limit: int | None = None
    ) -> list[alert_service_pb2.ConsentRequest]:
        def page(token: str, size: int) -> alert_service_pb2.ListConsentRequestsResponse:
            req = alert_service_pb2.ListConsentRequestsRequest(
                page_size=size,
                page_token=token,
                state=state,  # type: ignore[arg-type]
            )
            return self._call(self.stub.ListConsentRequests, req)

        return self.collect(page, "requests", limit)

    def grant_consent(
        self, name: str, request_id: str | None = None
    ) -> alert_service_pb2.ConsentRequest:
        req = alert_service_pb2.GrantConsentRequest(name=name, request_id=_request_id(request_id))
        return self._call(self.stub.GrantConsent, req)

    def refuse_consent(
        self, name: str, reason: str, request_id: str | None = None
    ) -> alert_service_pb2.ConsentRequest:
        req = alert_service_pb2.RefuseConsentRequest(
            name=name, reason=reason, request_id=_request_id(request_id)
        )
        return self._call(self.stub.RefuseConsent, req)


__all__ = ["WorkflowClient"]
