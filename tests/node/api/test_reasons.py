"""Each refusal's ErrorInfo reason names its cause, as a non-Python client reads it.

A table of bad requests sent to a real node with plain stubs; each answer
is read from ``grpc-status-details-bin`` (google.rpc.Status), as any gRPC
client would, and must carry the reason of its cause, never one that only
repeats the status code (issue 22, item 4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from intelshare.ids import new_message_id
from intelshare.v1 import (
    alert_service_pb2,
    alert_service_pb2_grpc,
    case_service_pb2,
    case_service_pb2_grpc,
)
from tests.node.conftest import Cluster, demo_alert

GENERIC = {
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "FAILED_PRECONDITION",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "UNAVAILABLE",
}


def _refusal(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str, dict[str, str], set[str]]:
    """The status code, ErrorInfo reason and metadata, and BadRequest fields of a refusal."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None, "a refusal without grpc-status-details-bin"
    reason, metadata, fields = "", {}, set()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = {v.field for v in bad.field_violations}
    return raised.value.code(), reason, metadata, fields  # type: ignore[attr-defined]


def test_every_refusal_names_its_cause(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    channel = nl.client().channel
    alerts = alert_service_pb2_grpc.AlertServiceStub(channel)
    cases = case_service_pb2_grpc.CaseServiceStub(channel)

    def auth(role: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {nl.tokens[role]}"),)

    issued = alerts.CreateAlert(
        alert_service_pb2.CreateAlertRequest(alert=demo_alert()), metadata=auth("liaison")
    )
    unknown = f"alerts/{new_message_id()}"
    table: list[tuple[str, Callable[[], Any], grpc.StatusCode, str, dict[str, str], set[str]]] = [
        (
            "a name whose id is not a UUIDv7",
            lambda: alerts.GetAlert(
                alert_service_pb2.GetAlertRequest(name="alerts/nope"), metadata=auth("admin")
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "NAME_INVALID",
            {},
            {"name"},
        ),
        (
            "a case name alike",
            lambda: cases.GetCase(
                case_service_pb2.GetCaseRequest(name="cases/nope"), metadata=auth("admin")
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "NAME_INVALID",
            {},
            {"name"},
        ),
        (
            "an alert this node does not hold",
            lambda: alerts.GetAlert(
                alert_service_pb2.GetAlertRequest(name=unknown), metadata=auth("admin")
            ),
            grpc.StatusCode.NOT_FOUND,
            "ALERT_NOT_FOUND",
            {"name": unknown},
            set(),
        ),
        (
            "a case this node does not hold",
            lambda: cases.GetCase(
                case_service_pb2.GetCaseRequest(name=f"cases/{new_message_id()}"),
                metadata=auth("admin"),
            ),
            grpc.StatusCode.NOT_FOUND,
            "CASE_NOT_FOUND",
            {},
            set(),
        ),
        (
            "a malformed request_id",
            lambda: alerts.CreateAlert(
                alert_service_pb2.CreateAlertRequest(alert=demo_alert(), request_id="not valid!"),
                metadata=auth("liaison"),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "REQUEST_ID_INVALID",
            {},
            {"request_id"},
        ),
        (
            "a role without the permission",
            lambda: alerts.CreateAlert(
                alert_service_pb2.CreateAlertRequest(alert=demo_alert()), metadata=auth("analyst")
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_NOT_PERMITTED",
            {"role": "analyst", "permission": "issue"},
            set(),
        ),
        (
            "no token",
            lambda: alerts.ListAlerts(alert_service_pb2.ListAlertsRequest()),
            grpc.StatusCode.UNAUTHENTICATED,
            "TOKEN_MISSING",
            {},
            set(),
        ),
        (
            "a token that opens nothing",
            lambda: alerts.ListAlerts(
                alert_service_pb2.ListAlertsRequest(),
                metadata=(("authorization", "Bearer nope"),),
            ),
            grpc.StatusCode.UNAUTHENTICATED,
            "TOKEN_INVALID",
            {},
            set(),
        ),
        (
            "a negative page size",
            lambda: alerts.ListAlerts(
                alert_service_pb2.ListAlertsRequest(page_size=-1), metadata=auth("admin")
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "PAGE_SIZE_INVALID",
            {},
            {"page_size"},
        ),
        (
            "an empty alert",
            lambda: alerts.CreateAlert(
                alert_service_pb2.CreateAlertRequest(alert=demo_alert(description="")),
                metadata=auth("liaison"),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "FIELD_INVALID",
            {},
            {"alert.description"},
        ),
        (
            "acknowledging an alert this node issued",
            lambda: alerts.AcknowledgeAlert(
                alert_service_pb2.AcknowledgeAlertRequest(name=issued.name),
                metadata=auth("analyst"),
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "NOT_RECIPIENT",
            {"name": issued.name},
            set(),
        ),
    ]
    for what, call, code, reason, metadata, fields in table:
        got_code, got_reason, got_metadata, got_fields = _refusal(call)
        assert (got_code, got_reason) == (code, reason), what
        assert got_reason not in GENERIC, what
        assert metadata.items() <= got_metadata.items(), what
        assert fields <= got_fields, what
    # and after the refusals, revoked: a change is ALERT_REVOKED
    alerts.RevokeAlert(
        alert_service_pb2.RevokeAlertRequest(name=issued.name, reason="seized"),
        metadata=auth("liaison"),
    )
    code, reason, metadata, _ = _refusal(
        lambda: alerts.RevokeAlert(
            alert_service_pb2.RevokeAlertRequest(name=issued.name, reason="again"),
            metadata=auth("liaison"),
        )
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALERT_REVOKED")
    assert metadata == {"name": issued.name, "state": "revoked"}
