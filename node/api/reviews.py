"""AlertService methods of the treaty workflows: review before release, onward sharing.

A mixin of :class:`node.api.alerts.AlertServicer`: the same authentication,
role checks and idempotent mutations (:class:`~node.api.base.KindServicer`),
over :mod:`node.kinds.reviews` and :mod:`node.kinds.forwarding`.

Roles: approvers (and admins) list, approve and reject pending reviews;
liaison officers (and admins) forward received alerts; officers with the
``consent`` permission (liaison, approver, admin) answer consent requests.
"""

from __future__ import annotations

import grpc

from intelshare.v1 import alert_pb2, alert_service_pb2
from node.api.base import KindServicer
from node.kinds.alerts import Alerts
from node.storage.officers import Permission


class WorkflowMethods(KindServicer):
    """The workflow methods; the servicer that mixes them in sets ``alerts``."""

    alerts: Alerts

    def ListPendingReviews(
        self, request: alert_service_pb2.ListPendingReviewsRequest, context: grpc.ServicerContext
    ) -> alert_service_pb2.ListPendingReviewsResponse:
        officer = self.officers.require(context, Permission.APPROVE)
        reviews, token = self.alerts.reviews.list_pending(
            officer, request.page_size, request.page_token
        )
        return alert_service_pb2.ListPendingReviewsResponse(reviews=reviews, next_page_token=token)

    def ApproveAlert(
        self, request: alert_service_pb2.ApproveAlertRequest, context: grpc.ServicerContext
    ) -> alert_pb2.Alert:
        return self.mutate(
            context,
            Permission.APPROVE,
            "ApproveAlert",
            request,
            alert_pb2.Alert,
            lambda w, officer: self.alerts.reviews.approve(
                w, officer, request.name, request.treaty_id
            ),
        )

    def RejectAlert(
        self, request: alert_service_pb2.RejectAlertRequest, context: grpc.ServicerContext
    ) -> alert_pb2.Alert:
        return self.mutate(
            context,
            Permission.APPROVE,
            "RejectAlert",
            request,
            alert_pb2.Alert,
            lambda w, officer: self.alerts.reviews.reject(
                w, officer, request.name, request.treaty_id, request.reason
            ),
        )

    def ForwardAlert(
        self, request: alert_service_pb2.ForwardAlertRequest, context: grpc.ServicerContext
    ) -> alert_service_pb2.Forward:
        return self.mutate(
            context,
            Permission.ISSUE,
            "ForwardAlert",
            request,
            alert_service_pb2.Forward,
            lambda w, officer: self.alerts.forwarding.forward(
                w,
                officer,
                request.name,
                agency_ids=list(request.agency_ids),
                treaty_id=request.treaty_id,
                fields=list(request.fields),
                reason=request.reason,
            ),
        )

    def ListForwards(
        self, request: alert_service_pb2.ListForwardsRequest, context: grpc.ServicerContext
    ) -> alert_service_pb2.ListForwardsResponse:
        officer = self.officers.require(context, Permission.READ)
        forwards, token = self.alerts.forwarding.list_forwards(
            officer, request.alert, request.page_size, request.page_token
        )
        return alert_service_pb2.ListForwardsResponse(forwards=forwards, next_page_token=token)

    def ListConsentRequests(
        self, request: alert_service_pb2.ListConsentRequestsRequest, context: grpc.ServicerContext
    ) -> alert_service_pb2.ListConsentRequestsResponse:
        officer = self.officers.require(context, Permission.CONSENT)
        found, token = self.alerts.forwarding.list_consents(
            officer, request.state, request.page_size, request.page_token
        )
        return alert_service_pb2.ListConsentRequestsResponse(requests=found, next_page_token=token)

    def GrantConsent(
        self, request: alert_service_pb2.GrantConsentRequest, context: grpc.ServicerContext
    ) -> alert_service_pb2.ConsentRequest:
        return self.mutate(
            context,
            Permission.CONSENT,
            "GrantConsent",
            request,
            alert_service_pb2.ConsentRequest,
            lambda w, officer: self.alerts.forwarding.grant(w, officer, request.name),
        )

    def RefuseConsent(
        self, request: alert_service_pb2.RefuseConsentRequest, context: grpc.ServicerContext
    ) -> alert_service_pb2.ConsentRequest:
        return self.mutate(
            context,
            Permission.CONSENT,
            "RefuseConsent",
            request,
            alert_service_pb2.ConsentRequest,
            lambda w, officer: self.alerts.forwarding.refuse(
                w, officer, request.name, request.reason
            ),
        )


__all__ = ["WorkflowMethods"]
