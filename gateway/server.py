"""Assembling and running a gateway process from its configuration."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2

from gateway.capacity import AUX_STREAM_THREADS, STREAM_SPARE_THREADS, on_pool
from gateway.config import REQUEST_OVERHEAD_BYTES, GatewayConfig
from gateway.inbox import inbox_response_bytes
from gateway.maintenance import background_loop
from gateway.service import GatewayServicer
from gateway.state import GatewayState
from gateway.store import GatewayStore
from gateway.submit import submit_request, submit_response_bytes
from gateway.tables import metadata as store_metadata
from intelshare import migrate
from intelshare.audit import AuditLog, audit_metadata
from intelshare.db import make_engine, warm_pool
from intelshare.directory import Anchor
from intelshare.grpc_server import ManagedServer, size_checked
from intelshare.ids import key_id
from intelshare.keys import load_signing_key, load_tls_key, raw_public
from intelshare.metrics import MetricsServer, serve_metrics
from intelshare.reflection import enable_reflection
from intelshare.tls import server_credentials
from intelshare.wakeup import WakeupHub

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = "intelshare.v1.GatewayService"
REDIS_CONNECT_WAIT = 5.0


@dataclass
class RunningGateway:
    """A started gateway; ``stop()`` shuts it down gracefully."""

    server: ManagedServer
    state: GatewayState
    port: int
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    #: the /metrics endpoint, when ``metrics_listen`` is set
    metrics: MetricsServer | None = None
    #: thread pools of streaming calls (see gateway.capacity), shut down last
    pools: list[ThreadPoolExecutor] = field(default_factory=list)

    def stop(self, grace: float = 5.0) -> None:
        self._stop.set()
        self.server.stop(grace)
        for pool in self.pools:
            pool.shutdown(wait=False, cancel_futures=True)
        if self.metrics is not None:
            self.metrics.stop()
        self.state.hub.close()
        for t in self._threads:
            t.join(timeout=3)
        self.state.close()
        self.state.store.close()
        self.state.store.engine.dispose()


def open_store(config: GatewayConfig, **engine_options: Any) -> GatewayStore:
    """The gateway's store (and its audit log) on its database, migrated first."""
    engine = make_engine(config.database_url, **engine_options)
    migrate.upgrade(engine, MIGRATIONS)
    key = load_signing_key(config.signing_key)
    audit = AuditLog(engine, config.gateway_id, key, key_id(raw_public(key.public_key())))
    return GatewayStore(engine, audit)


def open_audit(config: GatewayConfig, engine_url: str | None = None) -> AuditLog:
    engine = make_engine(engine_url or config.database_url)
    key = load_signing_key(config.signing_key)
    return AuditLog(engine, config.gateway_id, key, key_id(raw_public(key.public_key())))


def start(config: GatewayConfig) -> RunningGateway:
    """Migrate the database, load trust material and start serving."""
    # No ping before each use of a pooled connection (a round trip per
    # transaction): the store runs a transaction again on a new connection
    # when the server had dropped the old one.
    store = open_store(config, pool_pre_ping=False)
    warm_pool(store.engine, [*store_metadata.tables, *audit_metadata.tables])  # see warm_pool
    audit = store.audit
    load_tls_key(config.tls_key)  # refuse a loose or wrong key before grpc reads it
    hub = WakeupHub(config.redis_url, channel_prefix=config.redis_prefix)
    if config.redis_url and not hub.connected.wait(REDIS_CONNECT_WAIT):
        # Pub/sub drops what is published before a subscription exists: a
        # replica that called itself ready now would miss other replicas'
        # wake-ups. Without Redis it still serves; streams wake on heartbeats.
        log.warning("Redis not reachable yet: inbox streams wake on heartbeats until it is")
    state = GatewayState(
        config=config, store=store, audit=audit, anchor=Anchor.load(config.anchor), hub=hub
    )
    if config.directory is not None and config.directory.exists():
        trusted = state.install_directory(config.directory.read_bytes())
        store.save_directory(trusted.version, trusted.signed_bytes, 0)
    state.reload()
    state.metrics.watch_inbox(
        store, lambda: _agency_ids(state), max_age=config.metrics_refresh_seconds
    )
    # Unary calls keep max_workers threads; streams run on pools of their own
    # (see gateway.capacity). The runtime reads requests up to
    # max_request_bytes, so that the handlers answer larger ones with a reason.
    server = ManagedServer(
        max_workers=config.max_workers,
        service_names=[SERVICE_NAME],
        max_message_bytes=config.max_request_bytes,
    )
    stream_pool = ThreadPoolExecutor(
        max_workers=config.max_inbox_streams + STREAM_SPARE_THREADS,
        thread_name_prefix="gateway-stream",
    )
    aux_pool = ThreadPoolExecutor(max_workers=AUX_STREAM_THREADS, thread_name_prefix="grpc-aux")
    _add_servicer(
        GatewayServicer(state),
        server.server,
        stream_pool=stream_pool,
        limit=config.max_envelope_bytes + REQUEST_OVERHEAD_BYTES,
    )
    _streams_off_unary_threads(server, aux_pool)
    creds = server_credentials(
        config.tls_cert.read_bytes(),
        config.tls_key.read_bytes(),
        config.ca_cert.read_bytes(),
        require_client_auth=True,
    )
    port = server.bind(config.listen, creds)
    if config.health_listen:
        server.bind_health(config.health_listen)
    server.start()
    running = RunningGateway(server=server, state=state, port=port, pools=[stream_pool, aux_pool])
    try:
        running.metrics = serve_metrics(
            state.metrics.registry, config.metrics_listen, key="gateway.metrics_listen"
        )
    except OSError:
        running.stop(grace=0)
        raise
    bg = threading.Thread(
        target=background_loop, args=(state, running._stop), name="gateway-maint", daemon=True
    )
    bg.start()
    running._threads.append(bg)
    log.info("gateway listening on port %d", port)
    return running


class _Handlers:
    """Catches the method handlers the generated registration builds."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.handlers = dict(handlers)


def _add_servicer(
    servicer: GatewayServicer,
    server: grpc.Server,
    *,
    stream_pool: ThreadPoolExecutor,
    limit: int,
) -> None:
    """The generated registration, except that SubmitEnvelope reads its
    envelope as bytes (``gateway.submit.submit_request``), StreamInbox sends its entries
    as the servicer encoded them (see ``gateway.inbox._inbox_entry``) and
    runs on ``stream_pool``, and every request above ``limit`` bytes is
    answered PAYLOAD_TOO_LARGE by the handler (see gateway.capacity)."""
    from intelshare.v1 import gateway_service_pb2, gateway_service_pb2_grpc

    caught = _Handlers()
    gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, caught)  # type: ignore[arg-type]
    handlers = caught.handlers
    handlers["SubmitEnvelope"] = grpc.unary_unary_rpc_method_handler(
        servicer.SubmitEnvelope,
        request_deserializer=submit_request,
        response_serializer=submit_response_bytes,
    )
    handlers["StreamInbox"] = grpc.unary_stream_rpc_method_handler(
        servicer.StreamInbox,
        request_deserializer=gateway_service_pb2.StreamInboxRequest.FromString,
        response_serializer=inbox_response_bytes,
    )
    handlers = {
        name: size_checked(
            handler,
            f"{SERVICE_NAME}/{name}",
            limit,
            pool=stream_pool if handler.response_streaming else None,
        )
        for name, handler in handlers.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]


def _streams_off_unary_threads(server: ManagedServer, pool: ThreadPoolExecutor) -> None:
    """Health watches and reflection streams on ``pool``, not on the unary threads.

    Both stay open as long as the client likes (any federation member can
    open them on this port), and each would otherwise hold a unary thread.
    Registered again over ManagedServer's own registration (a registered
    method handler is replaced by the later one).
    """
    health_servicer = server.health
    watch = grpc.unary_stream_rpc_method_handler(
        health_servicer.Watch,
        request_deserializer=health_pb2.HealthCheckRequest.FromString,
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
    )
    server.server.add_registered_method_handlers(  # type: ignore[attr-defined]
        grpc_health.SERVICE_NAME, {"Watch": on_pool(watch, pool)}
    )
    enable_reflection(
        server.server, [SERVICE_NAME, grpc_health.SERVICE_NAME], lambda h: on_pool(h, pool)
    )


def _agency_ids(state: GatewayState) -> list[str]:
    """The agencies whose inbox depth is reported even when zero."""
    return [a.agency_id for a in state.directory.agencies() if a.kind != "gateway"]


def serve(config: GatewayConfig, ready_file: Path | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    running = start(config)
    if ready_file is not None:
        # Atomically, so a watcher never reads a half-written port.
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(str(running.port))
        tmp.replace(ready_file)
    done = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    done.wait()
    running.stop()
