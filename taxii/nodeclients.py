"""Authentication: the caller's officer token, and a gRPC client of the node per token.

The server holds no credentials of its own: each request's token goes to
the node with the call (:class:`TaxiiNodeClient`, the command line's clients), and the node
decides. Clients (TLS channels) are kept per token digest in a small LRU,
so a TAXII client paging through a collection reuses one channel; a token
is never logged or kept in clear beyond its client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any

from intelshare.errors import NotFound, PermissionDenied, Unauthenticated
from intelshare.v1 import (
    ipr_service_pb2,
    ipr_service_pb2_grpc,
    risk_service_pb2,
    risk_service_pb2_grpc,
    treaty_service_pb2,
    treaty_service_pb2_grpc,
)
from node.cli.client import NodeClient

#: A well-formed treaty name no treaty has: GetTreaty on it authenticates the
#: caller (UNAUTHENTICATED for a bad token, NOT_FOUND for a good one) without
#: reading, and so without auditing, anything, and without waiting for the
#: node's database writer (GetAlert audits reads, so it queues behind the
#: node's writes, which on SQLite can take long while the node is busy).
_PROBE_NAME = "treaties/intelshare-taxii-probe-no-such-treaty"
#: How long a token the node accepted is taken as valid without asking again
#: for the requests that read nothing from the node (discovery, collections).
AUTH_REUSE_SECONDS = 10.0


class TaxiiNodeClient(NodeClient):
    """The officer's client with every list the collections read (alerts, IPR, risk).

    One channel for the three services; the list calls are the command
    line's (:class:`node.cli.ipr_client.IprClient`,
    :class:`node.cli.risk_client.RiskClient`) with the request as keywords.
    """

    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        self.ipr = ipr_service_pb2_grpc.IprServiceStub(self.channel)
        self.risk = risk_service_pb2_grpc.RiskServiceStub(self.channel)
        self.treaties = treaty_service_pb2_grpc.TreatyServiceStub(self.channel)

    def probe(self) -> None:
        """Ask the node about a treaty nobody has: it answers once it knows the token."""
        request = treaty_service_pb2.TreatyServiceGetTreatyRequest(name=_PROBE_NAME)
        self._call(self.treaties.GetTreaty, request)

    def list_recordations(self, **request: Any) -> ipr_service_pb2.ListRecordationsResponse:
        return self._call(
            self.ipr.ListRecordations, ipr_service_pb2.ListRecordationsRequest(**request)
        )

    def list_detentions(self, **request: Any) -> ipr_service_pb2.ListDetentionsResponse:
        return self._call(self.ipr.ListDetentions, ipr_service_pb2.ListDetentionsRequest(**request))

    def list_reports(self, **request: Any) -> ipr_service_pb2.ListDetentionReportsResponse:
        return self._call(
            self.ipr.ListDetentionReports, ipr_service_pb2.ListDetentionReportsRequest(**request)
        )

    def list_profiles(self, **request: Any) -> risk_service_pb2.ListRiskProfilesResponse:
        return self._call(
            self.risk.ListRiskProfiles, risk_service_pb2.ListRiskProfilesRequest(**request)
        )


def token_from_header(value: str | None) -> str:
    """The token in ``Authorization: Bearer T`` or ``Basic base64(user:T)``."""
    if not value:
        raise Unauthenticated("an officer token is required (Bearer, or Basic with the token)")
    scheme, _sep, rest = value.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer" and rest:
        return rest
    if scheme.lower() == "basic" and rest:
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("the Basic credentials are not base64 of user:token") from None
        _user, sep, token = decoded.partition(":")
        if sep and token:
            return token
    raise Unauthenticated("an officer token is required (Bearer, or Basic with the token)")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class NodeClients:
    """NodeClient per token digest (LRU), and a short memory of accepted tokens."""

    def __init__(self, target: str, *, ca_pem: bytes, server_name: str, size: int = 32) -> None:
        self.target = target
        self.ca_pem = ca_pem
        self.server_name = server_name
        self.size = size
        self._clients: OrderedDict[str, TaxiiNodeClient] = OrderedDict()
        self._accepted: dict[str, float] = {}
        self._lock = threading.Lock()

    def client(self, token: str) -> TaxiiNodeClient:
        key = token_digest(token)
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                self._clients.move_to_end(key)
                return found
            client = TaxiiNodeClient(
                self.target, ca_pem=self.ca_pem, server_name=self.server_name, token=token
            )
            self._clients[key] = client
            while len(self._clients) > self.size:
                _old, evicted = self._clients.popitem(last=False)
                evicted.close()
            return client

    def authenticate(self, token: str) -> TaxiiNodeClient:
        """The caller's client, once the node accepted the token (:class:`Unauthenticated`)."""
        key = token_digest(token)
        client = self.client(token)
        now = time.monotonic()
        if self._accepted.get(key, 0.0) > now:
            return client
        try:
            client.probe()
        except (NotFound, PermissionDenied):
            pass  # the node knows the token (a rights holder may not read treaties)
        except Unauthenticated:
            with self._lock:
                gone = self._clients.pop(key, None)
            if gone is not None:
                gone.close()
            raise
        self._accepted[key] = now + AUTH_REUSE_SECONDS
        return client

    def forget(self, token: str) -> None:
        """Drop a token the node refused later (disabled officer)."""
        key = token_digest(token)
        self._accepted.pop(key, None)
        with self._lock:
            gone = self._clients.pop(key, None)
        if gone is not None:
            gone.close()

    def close(self) -> None:
        with self._lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()
