"""What every intelshare gRPC server has: health, reflection, keepalive.

Inbox and feed streams stay open for hours, often through firewalls and
proxies that cut idle TCP connections; the keepalive settings here let
clients ping every 30 s without being throttled, and the server pings idle
connections itself. Shutdown is graceful: new calls are refused while the
ones in flight get a grace period to finish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from intelshare import errors
from intelshare.grpc_errors import TranslateErrors, abort
from intelshare.reflection import enable_reflection

log = logging.getLogger(__name__)

KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_connection_idle_ms", 0x7FFFFFFF),
]

CLIENT_KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


# --- request sizes ------------------------------------------------------------------
# The gRPC runtime refuses a message above its receive limit with a bare
# RESOURCE_EXHAUSTED and no reason. So services set that limit well above
# their largest valid request and check each method's own limit here, where
# a refusal is a PAYLOAD_TOO_LARGE with ErrorInfo, before the request is parsed.


class _TooLarge:
    """What the size-checking deserializer returns instead of parsing a large request."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


def _too_large(method: str, size: int, limit: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"{method} request is {size} bytes; the limit is {limit}",
        metadata={"limit_bytes": str(limit), "size_bytes": str(size)},
    )


def size_checked(
    handler: grpc.RpcMethodHandler[Any, Any],
    method: str,
    limit: int,
    pool: ThreadPoolExecutor | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with requests above ``limit`` bytes answered ``PAYLOAD_TOO_LARGE``.

    The deserializer sees the request's bytes first: a large one is not
    parsed, and the behaviour aborts with a status carrying ErrorInfo. With
    ``pool``, the call runs on that thread pool rather than the server's
    (gRPC's ``experimental_thread_pool``), so it never takes a unary thread.
    Unary-request methods only (a request stream has no one size).
    """
    if handler.request_streaming:
        raise ValueError(f"{method}: size checks are for unary requests")
    parse = handler.request_deserializer

    def deserialize(data: bytes) -> Any:
        if len(data) > limit:
            return _TooLarge(len(data))
        return parse(data) if parse is not None else data

    if handler.response_streaming:
        inner_stream = handler.unary_stream
        assert inner_stream is not None

        def stream_behavior(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            if isinstance(request, _TooLarge):
                abort(context, _too_large(method, request.size, limit))
            return inner_stream(request, context)

        if pool is not None:
            stream_behavior.experimental_thread_pool = pool  # type: ignore[attr-defined]
        return grpc.unary_stream_rpc_method_handler(
            stream_behavior,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )
    inner = handler.unary_unary
    assert inner is not None

    def behavior(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, _TooLarge):
            abort(context, _too_large(method, request.size, limit))
        return inner(request, context)

    if pool is not None:
        behavior.experimental_thread_pool = pool  # type: ignore[attr-defined]
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=deserialize,
        response_serializer=handler.response_serializer,
    )


class RequestSizeLimit(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Every unary-request method answers a request above ``limit`` bytes PAYLOAD_TOO_LARGE."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(details)
        if handler is None or handler.request_streaming:
            return handler
        behavior = handler.unary_stream or handler.unary_unary
        return size_checked(
            handler,
            details.method,
            self.limit,
            getattr(behavior, "experimental_thread_pool", None),
        )


def message_size_options(max_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.max_send_message_length", max_bytes),
    ]


class ManagedServer:
    """A grpc.Server with health and reflection, started on a bound port."""

    def __init__(
        self,
        *,
        max_workers: int,
        service_names: Sequence[str],
        max_message_bytes: int = 4 * 1024 * 1024,
        options: Iterable[tuple[str, int]] = (),
        max_request_bytes: int | None = None,
    ) -> None:
        interceptors: list[grpc.ServerInterceptor] = [TranslateErrors()]  # type: ignore[type-arg]
        if max_request_bytes is not None:
            # Requests above it get PAYLOAD_TOO_LARGE with a reason, not the runtime's bare
            # RESOURCE_EXHAUSTED: keep max_message_bytes well above it.
            interceptors.append(RequestSizeLimit(max_request_bytes))
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            options=[*KEEPALIVE_OPTIONS, *message_size_options(max_message_bytes), *options],
            maximum_concurrent_rpcs=None,
            interceptors=interceptors,
        )
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names = list(service_names)
        enable_reflection(self.server, [*self._service_names, health.SERVICE_NAME])
        self.port = 0
        self.health_port = 0
        self._health_server: grpc.Server | None = None
        self._stopped = threading.Event()

    def bind(self, address: str, credentials: grpc.ServerCredentials | None) -> int:
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        if self.port == 0:
            raise OSError(f"could not bind {address}")
        return self.port

    def bind_health(self, address: str) -> int:
        """Serve only the health service, without TLS, on ``address``.

        Orchestrators' native gRPC probes (Kubernetes, compose health checks)
        cannot present a client certificate, while the service ports require
        one. A separate plaintext port that answers nothing but
        ``grpc.health.v1.Health`` gives them a probe without weakening the
        service port; bind it to a pod-local or loopback address.
        """
        self._health_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health")
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
        self.health_port = self._health_server.add_insecure_port(address)
        if self.health_port == 0:
            raise OSError(f"could not bind {address}")
        return self.health_port

    def start(self) -> None:
        self.server.start()
        if self._health_server is not None:
            self._health_server.start()
        for name in ["", *self._service_names]:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls, let calls in flight finish within ``grace`` seconds."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self._health_server is not None:
            self._health_server.stop(0).wait()

    def wait(self) -> None:
        self.server.wait_for_termination()
