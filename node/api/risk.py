"""The RiskService servicer: risk profiles, screening, hits, statistics, related records.

Each method authenticates the officer and checks the role first, then hands
over to :mod:`node.kinds.risk_profiles`, :mod:`node.kinds.screening` and
:mod:`node.kinds.correlation`; project errors are translated by the
server's interceptor.

``ScreenDeclarations`` is a bidirectional stream of *batches*: each request
carries up to 1,000 declarations and gets one response with a result per
declaration, in order. Why this shape on grpc's synchronous Python server:
the handler is a plain generator over the request iterator running on one
worker thread, so a batch is answered as soon as it is screened (the client
shows progress and never holds more than its window), the server holds one
batch at a time whatever the file's length (HTTP/2 flow control stops a
fast client), and hits are written one transaction per batch. A
client-streaming call with one response would have to hold every answer
until the end; one message per declaration would spend more time in the
per-message cost of the Python runtime than in screening.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from intelshare.v1 import risk_profile_pb2, risk_service_pb2, risk_service_pb2_grpc
from node.api.base import KindServicer
from node.kinds import correlation
from node.kinds.risk_profiles import RiskProfiles, related_proto
from node.kinds.screening import Screener
from node.schema.alert import ms_to_ts
from node.storage.officers import Permission
from node.storage.store import now_ms

P = risk_profile_pb2
S = risk_service_pb2


class RiskServicer(KindServicer, risk_service_pb2_grpc.RiskServiceServicer):
    def __init__(
        self,
        *,
        risk: RiskProfiles,
        screener: Screener,
        correlator: correlation.Correlator,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.risk = risk
        self.screener = screener
        self.correlator = correlator

    def CreateRiskProfile(
        self, request: S.CreateRiskProfileRequest, context: grpc.ServicerContext
    ) -> P.RiskProfile:
        return self.mutate(
            context,
            Permission.ISSUE,
            "CreateRiskProfile",
            request,
            P.RiskProfile,
            lambda w, officer: self.risk.create_profile(w, officer, request.risk_profile),
        )

    def GetRiskProfile(
        self, request: S.GetRiskProfileRequest, context: grpc.ServicerContext
    ) -> P.RiskProfile:
        officer = self.officers.require(context, Permission.READ)
        return self.risk.get_profile(officer, request.name)

    def ListRiskProfiles(
        self, request: S.ListRiskProfilesRequest, context: grpc.ServicerContext
    ) -> S.ListRiskProfilesResponse:
        officer = self.officers.require(context, Permission.READ)
        items, token = self.risk.list_profiles(
            officer,
            direction=request.direction,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return S.ListRiskProfilesResponse(risk_profiles=items, next_page_token=token)

    def UpdateRiskProfile(
        self, request: S.UpdateRiskProfileRequest, context: grpc.ServicerContext
    ) -> P.RiskProfile:
        return self.mutate(
            context,
            Permission.ISSUE,
            "UpdateRiskProfile",
            request,
            P.RiskProfile,
            lambda w, officer: self.risk.update_profile(
                w, officer, request.risk_profile, request.update_mask
            ),
        )

    def WithdrawRiskProfile(
        self, request: S.WithdrawRiskProfileRequest, context: grpc.ServicerContext
    ) -> P.RiskProfile:
        return self.mutate(
            context,
            Permission.ISSUE,
            "WithdrawRiskProfile",
            request,
            P.RiskProfile,
            lambda w, officer: self.risk.withdraw_profile(w, officer, request.name, request.reason),
        )

    def ScreenDeclarations(
        self, request_iterator: Iterator[S.ScreenDeclarationsRequest], context: grpc.ServicerContext
    ) -> Iterator[S.ScreenDeclarationsResponse]:
        self.officers.require(context, Permission.READ)
        for request in request_iterator:
            # Checked for every batch: an officer disabled mid-stream screens no more.
            officer = self.officers.require(context, Permission.READ)
            # The watch list follows the alerts indexed up to now.
            self.correlator.catch_up()
            yield S.ScreenDeclarationsResponse(
                results=self.screener.screen(officer, request.declarations)
            )

    def GetRiskProfileStatistics(
        self, request: S.GetRiskProfileStatisticsRequest, context: grpc.ServicerContext
    ) -> P.RiskProfileStatistics:
        officer = self.officers.require(context, Permission.READ)
        return self.risk.statistics(officer, request.name)

    def GetRiskHit(self, request: S.GetRiskHitRequest, context: grpc.ServicerContext) -> P.RiskHit:
        officer = self.officers.require(context, Permission.READ)
        return self.risk.get_hit(officer, request.name)

    def ListRiskHits(
        self, request: S.ListRiskHitsRequest, context: grpc.ServicerContext
    ) -> S.ListRiskHitsResponse:
        officer = self.officers.require(context, Permission.READ)
        items, token = self.risk.list_hits(
            officer,
            direction=request.direction,
            profile=request.profile,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return S.ListRiskHitsResponse(risk_hits=items, next_page_token=token)

    def UpdateRiskHit(
        self, request: S.UpdateRiskHitRequest, context: grpc.ServicerContext
    ) -> P.RiskHit:
        return self.mutate(
            context,
            Permission.REPORT_HIT,
            "UpdateRiskHit",
            request,
            P.RiskHit,
            lambda w, officer: self.risk.update_hit(
                w, officer, request.risk_hit, request.update_mask
            ),
        )

    def FindRelated(
        self, request: S.FindRelatedRequest, context: grpc.ServicerContext
    ) -> S.FindRelatedResponse:
        officer = self.officers.require(context, Permission.READ)
        self.correlator.catch_up()  # the index is up to date with every event so far
        indexed = now_ms()
        keys, rows, token = correlation.find_related(
            self.store,
            officer.officer_id,
            officer.role,
            identifier=request.identifier,
            record=request.record,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return S.FindRelatedResponse(
            keys=keys,
            related=[related_proto(r) for r in rows],
            next_page_token=token,
            index_time=ms_to_ts(indexed),
        )
