"""A client for a node's officer API (used by the ``alert`` commands and tests).

Officers' clients trust the federation CA and dial the node with the
agency id as TLS server name: the node serves with its agency certificate,
whose names include the agency id. The bearer token goes in the
``authorization`` metadata of every call. Failed calls raise the project's
exception for the status (:func:`intelshare.grpc_errors.from_rpc_error`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.grpc_errors import follow, project_errors
from intelshare.grpc_server import CLIENT_KEEPALIVE_OPTIONS
from intelshare.tls import channel_credentials
from intelshare.v1 import alert_pb2, alert_service_pb2, alert_service_pb2_grpc

_R = TypeVar("_R")


class NodeClient:
    """TLS channel to one node, authenticated as one officer."""

    def __init__(
        self,
        target: str,
        *,
        ca_pem: bytes,
        server_name: str,
        token: str,
        timeout: float = 30.0,
    ) -> None:
        options: list[tuple[str, int | str]] = [*CLIENT_KEEPALIVE_OPTIONS]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        self.channel = grpc.secure_channel(target, channel_credentials(ca_pem), options=options)
        self.stub = alert_service_pb2_grpc.AlertServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., _R], request: Any) -> _R:
        with project_errors():
            return method(request, timeout=self.timeout, metadata=self.metadata)

    def collect(
        self,
        page: Callable[[str, int], Any],
        field: str,
        limit: int | None = None,
    ) -> list[Any]:
        """Every item of a paged listing, or the first ``limit``.

        ``page(token, size)`` asks for one page (size 0: the server's
        default); ``field`` names the response's repeated field.
        """
        out: list[Any] = []
        token = ""
        while limit is None or len(out) < limit:
            response = page(token, 0 if limit is None else min(limit - len(out), 500))
            out.extend(getattr(response, field))
            token = response.next_page_token
            if not token:
                break
        return out

    def _stream(self, method: Callable[..., Any], request: Any) -> Iterator[Any]:
        """A server stream, until the caller stops iterating (cancelled at the end)."""
        return follow(method(request, metadata=self.metadata))

    def create_alert(
        self, alert: alert_pb2.Alert, request_id: str | None = None
    ) -> alert_pb2.Alert:
        req = alert_service_pb2.CreateAlertRequest(
            alert=alert, request_id=request_id or str(uuid.uuid4())
        )
        return self._call(self.stub.CreateAlert, req)

    def preview_alert(self, alert: alert_pb2.Alert) -> list[alert_service_pb2.RecipientPreview]:
        """What each recipient of a draft would receive (nothing is sent or stored)."""
        req = alert_service_pb2.PreviewAlertRequest(alert=alert)
        return list(self._call(self.stub.PreviewAlert, req).previews)

    def get_receipt(self, name: str, agency_id: str) -> alert_service_pb2.AlertReceipt:
        """The gateway's receipt for the envelope that carried alert ``name`` to ``agency_id``."""
        req = alert_service_pb2.GetAlertReceiptRequest(
            name=f"{_name(name)}/deliveries/{agency_id}/receipt"
        )
        return self._call(self.stub.GetAlertReceipt, req)

    def get_alert(self, name: str) -> alert_pb2.Alert:
        return self._call(self.stub.GetAlert, alert_service_pb2.GetAlertRequest(name=_name(name)))

    def list_alerts(self, **filters: Any) -> alert_service_pb2.ListAlertsResponse:
        return self._call(self.stub.ListAlerts, alert_service_pb2.ListAlertsRequest(**filters))

    def list_all(self, limit: int | None = None, **filters: Any) -> list[alert_pb2.Alert]:
        return self.collect(
            lambda token, size: self.list_alerts(page_token=token, page_size=size, **filters),
            "alerts",
            limit,
        )

    def update_alert(
        self, alert: alert_pb2.Alert, paths: list[str], request_id: str | None = None
    ) -> alert_pb2.Alert:
        req = alert_service_pb2.UpdateAlertRequest(
            alert=alert,
            update_mask=FieldMask(paths=paths),
            request_id=request_id or str(uuid.uuid4()),
        )
        return self._call(self.stub.UpdateAlert, req)

    def revoke_alert(
        self, name: str, reason: str = "", request_id: str | None = None
    ) -> alert_pb2.Alert:
        req = alert_service_pb2.RevokeAlertRequest(
            name=_name(name), reason=reason, request_id=request_id or str(uuid.uuid4())
        )
        return self._call(self.stub.RevokeAlert, req)

    def acknowledge_alert(self, name: str, request_id: str | None = None) -> alert_pb2.Alert:
        req = alert_service_pb2.AcknowledgeAlertRequest(
            name=_name(name), request_id=request_id or str(uuid.uuid4())
        )
        return self._call(self.stub.AcknowledgeAlert, req)

    def report_hit(
        self,
        name: str,
        *,
        found_time: Timestamp,
        place: str,
        found: str,
        request_id: str | None = None,
    ) -> alert_pb2.Alert:
        req = alert_service_pb2.ReportHitRequest(
            name=_name(name),
            found_time=found_time,
            place=place,
            found=found,
            request_id=request_id or str(uuid.uuid4()),
        )
        return self._call(self.stub.ReportHit, req)

    def get_delivery(self, name: str, agency_id: str) -> alert_pb2.AlertDelivery:
        req = alert_service_pb2.GetAlertDeliveryRequest(
            name=f"{_name(name)}/deliveries/{agency_id}"
        )
        return self._call(self.stub.GetAlertDelivery, req)

    def watch(
        self, after_cursor: int = 0, **filters: Any
    ) -> Iterator[alert_service_pb2.WatchAlertsResponse]:
        """Events after the cursor, then live, until the caller stops iterating."""
        return self._stream(
            self.stub.WatchAlerts,
            alert_service_pb2.WatchAlertsRequest(after_cursor=after_cursor, **filters),
        )


def _name(name: str) -> str:
    return name if name.startswith("alerts/") else f"alerts/{name}"
