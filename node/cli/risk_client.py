"""A client for a node's RiskService (used by the ``profile``, ``screen`` and ``related`` commands).

It is a :class:`node.cli.client.NodeClient` — same TLS channel, bearer
token and error translation — with the risk methods added. Every mutation
gets a fresh ``request_id`` unless the caller passes one.

:meth:`RiskClient.screen` streams declarations in batches and yields the
results in order as each batch is answered (see ``node.api.risk`` for why
the stream is shaped so): the caller's iterator is read lazily, so a file
of any length is screened in constant memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

from google.protobuf.field_mask_pb2 import FieldMask

from intelshare.grpc_errors import project_errors
from intelshare.v1 import risk_profile_pb2, risk_service_pb2, risk_service_pb2_grpc
from node.cli.client import NodeClient

P = risk_profile_pb2
S = risk_service_pb2

#: Declarations per request of the screening stream.
BATCH = 500


def profile_name(name: str) -> str:
    return name if name.startswith("riskProfiles/") else f"riskProfiles/{name}"


def hit_name(name: str) -> str:
    return name if name.startswith("riskHits/") else f"riskHits/{name}"


def _rid(request_id: str | None) -> str:
    return request_id or str(uuid.uuid4())


class RiskClient(NodeClient):
    """TLS channel to one node, authenticated as one officer, with risk calls."""

    def __init__(self, target: str, *, ca_pem: bytes, server_name: str, token: str, **kw: float):
        super().__init__(target, ca_pem=ca_pem, server_name=server_name, token=token, **kw)
        self.risk = risk_service_pb2_grpc.RiskServiceStub(self.channel)

    def __enter__(self) -> RiskClient:
        return self

    def create_profile(
        self, profile: P.RiskProfile, request_id: str | None = None
    ) -> P.RiskProfile:
        req = S.CreateRiskProfileRequest(risk_profile=profile, request_id=_rid(request_id))
        return self._call(self.risk.CreateRiskProfile, req)

    def get_profile(self, name: str) -> P.RiskProfile:
        return self._call(
            self.risk.GetRiskProfile, S.GetRiskProfileRequest(name=profile_name(name))
        )

    def list_profiles(
        self, *, direction: int = 0, page_size: int = 0, page_token: str = ""
    ) -> S.ListRiskProfilesResponse:
        req = S.ListRiskProfilesRequest(
            direction=direction,  # type: ignore[arg-type]
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self.risk.ListRiskProfiles, req)

    def all_profiles(self, limit: int | None = None, direction: int = 0) -> list[P.RiskProfile]:
        return self.collect(
            lambda token, size: self.list_profiles(
                direction=direction, page_size=size, page_token=token
            ),
            "risk_profiles",
            limit,
        )

    def update_profile(
        self, profile: P.RiskProfile, paths: list[str], request_id: str | None = None
    ) -> P.RiskProfile:
        req = S.UpdateRiskProfileRequest(
            risk_profile=profile,
            update_mask=FieldMask(paths=paths),
            request_id=_rid(request_id),
        )
        return self._call(self.risk.UpdateRiskProfile, req)

    def withdraw_profile(
        self, name: str, reason: str = "", request_id: str | None = None
    ) -> P.RiskProfile:
        req = S.WithdrawRiskProfileRequest(
            name=profile_name(name), reason=reason, request_id=_rid(request_id)
        )
        return self._call(self.risk.WithdrawRiskProfile, req)

    def statistics(self, name: str) -> P.RiskProfileStatistics:
        req = S.GetRiskProfileStatisticsRequest(name=profile_name(name))
        return self._call(self.risk.GetRiskProfileStatistics, req)

    def get_hit(self, name: str) -> P.RiskHit:
        return self._call(self.risk.GetRiskHit, S.GetRiskHitRequest(name=hit_name(name)))

    def list_hits(
        self, *, profile: str = "", direction: int = 0, page_size: int = 0, page_token: str = ""
    ) -> S.ListRiskHitsResponse:
        req = S.ListRiskHitsRequest(
            profile=profile_name(profile) if profile else "",
            direction=direction,  # type: ignore[arg-type]
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self.risk.ListRiskHits, req)

    def all_hits(self, limit: int | None = None, **filters: int | str) -> list[P.RiskHit]:
        return self.collect(
            lambda token, size: self.list_hits(page_token=token, page_size=size, **filters),  # type: ignore[arg-type]
            "risk_hits",
            limit,
        )

    def update_hit(
        self, hit: P.RiskHit, paths: list[str], request_id: str | None = None
    ) -> P.RiskHit:
        req = S.UpdateRiskHitRequest(
            risk_hit=hit, update_mask=FieldMask(paths=paths), request_id=_rid(request_id)
        )
        return self._call(self.risk.UpdateRiskHit, req)

    def find_related(
        self,
        *,
        identifier: str = "",
        record: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> S.FindRelatedResponse:
        req = S.FindRelatedRequest(page_size=page_size, page_token=page_token)
        if identifier:
            req.identifier = identifier
        if record:
            req.record = record
        return self._call(self.risk.FindRelated, req)

    def screen(
        self, declarations: Iterable[S.Declaration], batch: int = BATCH
    ) -> Iterator[S.DeclarationScreening]:
        """Each declaration's result, in order, as its batch is answered."""

        def requests() -> Iterator[S.ScreenDeclarationsRequest]:
            chunk: list[S.Declaration] = []
            for d in declarations:
                chunk.append(d)
                if len(chunk) >= batch:
                    yield S.ScreenDeclarationsRequest(declarations=chunk)
                    chunk = []
            if chunk:
                yield S.ScreenDeclarationsRequest(declarations=chunk)

        call = self.risk.ScreenDeclarations(requests(), metadata=self.metadata)
        # project_errors, not follow(): follow ends quietly on CANCELLED, which
        # suits a watch, but a screening cut short must fail (Unavailable), not
        # end with declarations left unanswered.
        try:
            with project_errors():
                for response in call:
                    yield from response.results
        finally:
            call.cancel()  # type: ignore[no-untyped-call]
