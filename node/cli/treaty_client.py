"""A client for a node's TreatyService (used by ``intelshare treaties`` and tests).

A :class:`node.cli.client.NodeClient` — same TLS channel, bearer token and
error translation — with the two treaty reads added.
"""

from __future__ import annotations

from intelshare.v1 import treaty_service_pb2, treaty_service_pb2_grpc
from node.cli.client import NodeClient

S = treaty_service_pb2


def treaty_name(name: str) -> str:
    """``treaties/{id}`` for a bare treaty id; a name is left as it is."""
    return name if "/" in name else f"treaties/{name}"


class TreatyClient(NodeClient):
    """TLS channel to one node, authenticated as one officer, with treaty reads."""

    def __init__(self, target: str, *, ca_pem: bytes, server_name: str, token: str, **kw: float):
        super().__init__(target, ca_pem=ca_pem, server_name=server_name, token=token, **kw)
        self.treaties = treaty_service_pb2_grpc.TreatyServiceStub(self.channel)

    def __enter__(self) -> TreatyClient:
        return self

    def list_treaties(
        self, *, page_size: int = 0, page_token: str = "", in_force_only: bool = False
    ) -> S.TreatyServiceListTreatiesResponse:
        req = S.TreatyServiceListTreatiesRequest(
            page_size=page_size, page_token=page_token, in_force_only=in_force_only
        )
        return self._call(self.treaties.ListTreaties, req)

    def list_all_treaties(
        self, *, in_force_only: bool = False, limit: int | None = None
    ) -> list[S.AgencyTreaty]:
        return self.collect(
            lambda token, size: self.list_treaties(
                page_size=size, page_token=token, in_force_only=in_force_only
            ),
            "treaties",
            limit,
        )

    def get_treaty(self, name: str, version: int = 0) -> S.AgencyTreaty:
        req = S.TreatyServiceGetTreatyRequest(name=treaty_name(name), version=version)
        return self._call(self.treaties.GetTreaty, req)
