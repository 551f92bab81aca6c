"""The one client a signed-in session holds: alerts, cases, IPR and risk on one channel.

The officers' command line has a client per service (``CaseClient``,
``IprClient``, ``RiskClient``, and ``WorkflowClient`` for the alert
service's review and onward-sharing methods), each a :class:`node.cli.client.NodeClient`
with the same channel, token and error translation. The console wants all
of them for one officer without a TLS connection each, so this class
combines them: their ``__init__`` methods cooperate, so one channel is
opened and every service's stub is made on it.

The console also pages through partners' consent requests itself
(:meth:`ConsoleClient.consent_requests_page`), as it does through pending
reviews; the command line's ``consent_requests`` reads every page at once.

Two of them call a method ``statistics`` (the IPR enforcement statistics
and a risk profile's statistics); the console calls each by a name of its
own below, never the ambiguous one.
"""

from __future__ import annotations

from typing import Any

from intelshare.v1 import alert_service_pb2, ipr_service_pb2, risk_profile_pb2
from node.cli.case_client import CaseClient
from node.cli.ipr_client import IprClient
from node.cli.risk_client import RiskClient
from node.cli.workflow_client import WorkflowClient

#: A listing's state filter that filters nothing.
_ANY_STATE = alert_service_pb2.CONSENT_STATE_UNSPECIFIED


class ConsoleClient(CaseClient, IprClient, RiskClient, WorkflowClient):  # type: ignore[misc]  # see the docstring
    """Every officer service of the node over one TLS channel, as one officer."""

    def __enter__(self) -> ConsoleClient:
        return self

    def consent_requests_page(
        self,
        page_size: int = 0,
        page_token: str = "",
        state: alert_service_pb2.ConsentState.ValueType = _ANY_STATE,
    ) -> alert_service_pb2.ListConsentRequestsResponse:
        """One page of partners' consent requests, newest first (``state``: only those)."""
        req = alert_service_pb2.ListConsentRequestsRequest(
            page_size=page_size, page_token=page_token, state=state
        )
        return self._call(self.stub.ListConsentRequests, req)

    def enforcement_statistics(self, **request: Any) -> ipr_service_pb2.EnforcementStatistics:
        return IprClient.statistics(self, **request)

    def profile_statistics(self, name: str) -> risk_profile_pb2.RiskProfileStatistics:
        return RiskClient.statistics(self, name)
