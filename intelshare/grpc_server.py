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
from collections.abc import Iterable, Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from intelshare.grpc_errors import TranslateErrors

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
    ) -> None:
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            options=[*KEEPALIVE_OPTIONS, *message_size_options(max_message_bytes), *options],
            maximum_concurrent_rpcs=None,
            interceptors=[TranslateErrors()],
        )
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names = list(service_names)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
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
