"""The GatewayService gRPC servicer, assembled from its method groups.

:class:`GatewayServicer` is what :func:`gateway.server.start` registers. Its
methods live with what they need:

* :mod:`gateway.submit`: SubmitEnvelope. Admission (:mod:`gateway.admission`),
  acceptance in one transaction with the audit entry and receipt,
  idempotent retries, refusals audited; request and response as bytes.
* :mod:`gateway.inbox`: StreamInbox and AcknowledgeInbox. Replay then live
  delivery, the per-agency stream limit and replacement
  (:mod:`gateway.capacity`), delivery records, entries written around the
  stored bytes.
* :mod:`gateway.publications`: the directory and the treaties, fetched and
  published.

They share one :class:`gateway.state.GatewayState` (``self.s``): the store,
caches of directory and treaties, who is calling, thread pools and delayed
callbacks (:mod:`gateway.later`). The maintenance thread
(:mod:`gateway.maintenance`) works on the same state beside the servicer.
Errors are raised as :class:`intelshare.errors.IntelshareError`; the
server's interceptor turns them into a gRPC status with ErrorInfo.

Imports go one way: this module imports the method groups, they import the
state, and the state imports neither.
"""

from __future__ import annotations

from google.protobuf import empty_pb2  # noqa: F401  (kept for reflection of well-known types)

from gateway.inbox import InboxMethods
from gateway.publications import PublicationMethods
from gateway.state import GatewayState
from gateway.submit import SubmitMethods
from intelshare.v1 import gateway_service_pb2_grpc


class GatewayServicer(
    SubmitMethods, InboxMethods, PublicationMethods, gateway_service_pb2_grpc.GatewayServiceServicer
):
    """GatewayService: every method, over one :class:`~gateway.state.GatewayState`."""

    def __init__(self, state: GatewayState) -> None:
        self.s = state
