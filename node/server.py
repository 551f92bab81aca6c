"""Assembling and running a node process from its configuration.

``start`` wires the pieces (see :mod:`node` for the design) and starts four
kinds of activity in one process:

* the officer API (gRPC over TLS, health, reflection);
* the inbox thread (:mod:`node.sharing.inbound`);
* the sender thread (:mod:`node.sharing.outbound`);
* a maintenance thread: directory and treaty refresh from the gateway,
  alert expiry events and retention purges. Celery beat
  (``intelshare worker --beat``) runs the same jobs; every one of them is
  idempotent and safe to run from several processes at once, and
  ``maintenance_in_node: false`` leaves expiry, purges and audit heads to
  beat (see :mod:`node.notify`);
* the outbox relay thread of :mod:`node.notify` (events to Celery).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

from intelshare import errors, migrate
from intelshare.audit import AuditLog, audit_metadata
from intelshare.db import make_engine, warm_pool
from intelshare.directory import Anchor
from intelshare.gateway_client import GatewayClient
from intelshare.grpc_server import ManagedServer
from intelshare.keys import AgencyKeys
from intelshare.metrics import MetricsServer
from intelshare.pagetokens import PageTokens
from intelshare.tls import server_credentials
from intelshare.v1 import (
    alert_service_pb2_grpc,
    case_service_pb2_grpc,
    ipr_service_pb2_grpc,
    risk_service_pb2_grpc,
    treaty_service_pb2_grpc,
)
from intelshare.wakeup import WakeupHub
from node.api.alerts import AlertServicer
from node.api.cases import CaseServicer
from node.api.feeds import SPARE_THREADS as FEED_SPARE_THREADS
from node.api.feeds import FeedLimiter
from node.api.ipr import IprServicer
from node.api.risk import RiskServicer
from node.api.treaties import TreatyServicer
from node.config import NodeConfig
from node.kinds.alerts import Alerts
from node.kinds.cases import Cases
from node.kinds.correlation import Correlator
from node.kinds.detentions import Detentions
from node.kinds.ipr_common import calendar_provider
from node.kinds.recordations import Recordations
from node.kinds.risk_profiles import RiskProfiles
from node.kinds.screening import Screener
from node.metrics import NodeMetrics, serve_node_metrics
from node.notify import Notifier, start_notifier
from node.notify.webhooks import WebhookRegistry
from node.sharing.engine import Sharing
from node.sharing.inbound import Inbound
from node.sharing.outbound import Sender
from node.sharing.records import Records
from node.sharing.sealing import Sealer
from node.sharing.trust import Trust
from node.storage import tables as t
from node.storage.officers import OfficerRegistry
from node.storage.store import Store

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "storage" / "migrations"
SERVICE_NAME = "intelshare.v1.AlertService"
CASE_SERVICE_NAME = "intelshare.v1.CaseService"
IPR_SERVICE_NAME = "intelshare.v1.IprService"
RISK_SERVICE_NAME = "intelshare.v1.RiskService"
TREATY_SERVICE_NAME = "intelshare.v1.TreatyService"


@dataclass
class Node:
    """Everything a node process holds; built by :func:`build`, started by :func:`start`."""

    config: NodeConfig
    keys: AgencyKeys
    store: Store
    trust: Trust
    officers: OfficerRegistry
    sealer: Sealer
    sender: Sender
    inbound: Inbound
    sharing: Sharing
    alerts: Alerts
    cases: Cases
    records: Records
    hub: WakeupHub
    client: GatewayClient
    server: ManagedServer | None = None
    port: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    #: the outbox relay (and bundled Redis) of node.notify, once started
    notifier: Notifier | None = None
    #: counters of this node (node.metrics), shared with its store
    metrics: NodeMetrics = field(default_factory=NodeMetrics)
    #: the /metrics endpoint, when ``metrics_listen`` is set and the node started
    metrics_server: MetricsServer | None = None
    #: IPR enforcement (node.kinds.recordations / detentions), wired by build
    recordations: Recordations | None = None
    detentions: Detentions | None = None
    #: risk targeting (node.kinds.risk_profiles) and the identifier index's follower
    risk: RiskProfiles | None = None
    correlator: Correlator | None = None

    def purge_retention(self) -> int:
        """Every kind's received records past their treaty's retention, purged (audited)."""
        return (
            self.alerts.purge_retention()
            + self.cases.purge_retention()
            + self.records.purge_retention()
            + (self.risk.purge_retention() if self.risk is not None else 0)
        )

    def gateway_client(self) -> GatewayClient:
        return gateway_client(self.config)

    def refresh_trust(self) -> None:
        """Fetch the directory and any new treaties from the gateway (raises on failure)."""
        self.trust.refresh_directory(self.client)
        self.trust.refresh_treaties(self.client)

    def stop(self, grace: float = 5.0) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.stop(grace)
        self.inbound.stop()
        self.sharing.receipts.stop()
        self.sender.stop()
        if self.correlator is not None:
            self.correlator.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.notifier is not None:
            self.notifier.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.hub.close()
        self.client.close()
        self.officers.close()
        self.store.engine.dispose()


def gateway_client(config: NodeConfig) -> GatewayClient:
    """An mTLS client to the gateway with this agency's certificate."""
    max_backoff_ms = int(
        max(config.inbox_backoff_max_seconds, config.send_backoff_max_seconds) * 1000
    )
    return GatewayClient(
        config.gateway,
        ca_pem=config.ca_cert.read_bytes(),
        cert_pem=config.tls_cert.read_bytes(),
        key_pem=config.tls_key.read_bytes(),
        server_name=config.gateway_server_name or None,
        timeout=config.gateway_timeout_seconds,
        max_message_bytes=config.max_payload_bytes + 256 * 1024,
        options=[
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", max_backoff_ms),
        ],
    )


#: A pooled connection idle for longer is pinged before use.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it sat idle a while.

    Instead of ``pool_pre_ping``'s round trip before every transaction: a
    busy node uses its connections again within milliseconds, and one that
    the server dropped (a restart, an idle timeout) has been idle. A failed
    ping makes the pool replace the connection.
    """

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is not None and time.monotonic() - since > PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except Exception as exc:
                raise DisconnectionError("pooled connection lost") from exc


def open_database(config: NodeConfig) -> Store:
    """Engine with migrations applied, audit log and wake-up hub (for the CLI too)."""
    if config.database_url.startswith("sqlite"):
        engine = make_engine(config.database_url)
    else:
        engine = make_engine(
            config.database_url, pool_pre_ping=False, pool_size=config.database_pool_size
        )
        _ping_when_idle(engine)
    migrate.upgrade(engine, MIGRATIONS)
    keys = AgencyKeys.load(config.identity_dir)
    audit = AuditLog(engine, config.agency_id, keys.signing, keys.signing_key_id)
    hub = WakeupHub(config.redis_url, channel_prefix=config.redis_prefix)
    return Store(engine, audit, hub)


def build(config: NodeConfig) -> Node:
    """Migrate the database and wire the node without starting anything."""
    keys = AgencyKeys.load(config.identity_dir)
    store = open_database(config)
    store.metrics = metrics = NodeMetrics()
    # Page tokens keyed by the agency's own key: another node cannot read or forge them.
    store.page_tokens = PageTokens(keys.signing.private_bytes_raw())
    trust = Trust(
        agency_id=config.agency_id,
        anchor=Anchor.load(config.anchor),
        directory_file=config.directory_file,
        engine=store.engine,
    )
    trust.load_cached()
    client = gateway_client(config)
    trust.client = client
    sealer = Sealer(config.agency_id, keys, trust, config.max_payload_bytes)
    sender = Sender(store, sealer, client, max_backoff=config.send_backoff_max_seconds)
    inbound = Inbound(
        agency_id=config.agency_id,
        keys=keys,
        store=store,
        trust=trust,
        client_factory=lambda: gateway_client(config),
        max_backoff=config.inbox_backoff_max_seconds,
        max_payload_bytes=config.max_payload_bytes,
    )
    sharing = Sharing(
        agency_id=config.agency_id,
        store=store,
        trust=trust,
        sealer=sealer,
        inbound=inbound,
        wake_sender=sender.wake,
        control_message_days=config.control_message_days,
    )
    sender.on_failed = sharing.send_failed
    alerts = Alerts(
        agency_id=config.agency_id,
        store=store,
        sharing=sharing,
        max_alert_days=config.max_alert_days,
    )
    cases = Cases(
        agency_id=config.agency_id,
        store=store,
        sharing=sharing,
        keys=keys,
        max_payload_bytes=config.max_payload_bytes,
    )
    node = Node(
        config=config,
        keys=keys,
        store=store,
        trust=trust,
        officers=OfficerRegistry(store.engine),
        sealer=sealer,
        sender=sender,
        inbound=inbound,
        sharing=sharing,
        alerts=alerts,
        cases=cases,
        records=Records(agency_id=config.agency_id, store=store, sharing=sharing),
        hub=store.hub,
        client=client,
        metrics=metrics,
    )
    node.recordations = Recordations(agency_id=config.agency_id, store=store, records=node.records)
    node.detentions = Detentions(
        agency_id=config.agency_id,
        store=store,
        records=node.records,
        sharing=sharing,
        calendar=calendar_provider(
            lambda: trust.directory.agency(config.agency_id).country,
            subdivision=config.holiday_subdivision,
            time_zone=config.deadline_time_zone,
            closed_days=config.closed_days,
        ),
    )
    node.risk = RiskProfiles(agency_id=config.agency_id, store=store, records=node.records)
    node.correlator = Correlator(store)
    return node


def start(config: NodeConfig) -> Node:
    """Build the node, fetch trust material if the gateway answers, start serving."""
    node = build(config)
    warm_pool(node.store.engine, [*t.metadata.tables, *audit_metadata.tables])
    try:
        node.refresh_trust()
    except errors.IntelshareError as exc:
        log.warning("gateway not reachable at start (%s); continuing with cached trust", exc.reason)
    _check_deadline_calendar(node)
    # Feeds hold a thread each for as long as they are open: they get threads
    # of their own on top of max_workers, and a limit (node.api.feeds).
    # An officer's largest valid request carries one record of at most
    # max_payload_bytes; the runtime reads far more, so an oversized request is
    # refused by the handler with PAYLOAD_TOO_LARGE and a reason, not bare.
    max_request = config.max_payload_bytes + 64 * 1024
    server = ManagedServer(
        max_request_bytes=max_request,
        max_message_bytes=max(8 * 1024 * 1024, 4 * max_request),
        max_workers=config.max_workers + config.max_feeds + FEED_SPARE_THREADS,
        service_names=[
            SERVICE_NAME,
            CASE_SERVICE_NAME,
            IPR_SERVICE_NAME,
            RISK_SERVICE_NAME,
            TREATY_SERVICE_NAME,
        ],
    )
    common: dict[str, Any] = {
        "officers": node.officers,
        "store": node.store,
        "hub": node.hub,
        "heartbeat_seconds": config.heartbeat_seconds,
        "feeds": FeedLimiter(per_officer=config.max_feeds_per_officer, total=config.max_feeds),
    }
    alert_service_pb2_grpc.add_AlertServiceServicer_to_server(
        AlertServicer(
            alerts=node.alerts,
            **common,
        ),
        server.server,
    )
    case_service_pb2_grpc.add_CaseServiceServicer_to_server(
        CaseServicer(
            cases=node.cases,
            **common,
        ),
        server.server,
    )
    assert node.recordations is not None
    assert node.detentions is not None
    ipr_service_pb2_grpc.add_IprServiceServicer_to_server(
        IprServicer(
            recordations=node.recordations,
            detentions=node.detentions,
            webhooks=WebhookRegistry(node.store.engine, node.keys),
            **common,
        ),
        server.server,
    )
    assert node.risk is not None
    assert node.correlator is not None
    risk_service_pb2_grpc.add_RiskServiceServicer_to_server(
        RiskServicer(
            risk=node.risk,
            screener=Screener(risk=node.risk, store=node.store),
            correlator=node.correlator,
            **common,
        ),
        server.server,
    )
    treaty_service_pb2_grpc.add_TreatyServiceServicer_to_server(
        TreatyServicer(trust=node.trust, **common), server.server
    )
    creds = server_credentials(
        config.tls_cert.read_bytes(),
        config.tls_key.read_bytes(),
        config.ca_cert.read_bytes(),
        require_client_auth=False,
    )
    node.port = server.bind(config.listen, creds)
    if config.health_listen:
        server.bind_health(config.health_listen)
    server.start()
    node.server = server
    node.sender.start()
    node.sharing.receipts.start()
    node.inbound.start()
    node.correlator.start(config.agency_id)
    node.notifier = start_notifier(config, node.store)
    try:
        node.metrics_server = serve_node_metrics(node)
    except OSError:
        node.stop(grace=0)
        raise
    maint = threading.Thread(target=_maintenance, args=(node,), name="node-maint", daemon=True)
    maint.start()
    node._threads.append(maint)
    log.info("node %s listening on port %d", config.agency_id, node.port)
    return node


def _maintenance(node: Node) -> None:
    """Directory/treaty refresh, expiry events, retention purges; errors never stop it."""
    cfg = node.config
    next_trust = time.monotonic() + (
        cfg.directory_refresh_seconds if node.trust.has_fresh_directory() else 0
    )
    next_jobs = 0.0
    signed_size = -1
    while not node._stop.is_set():
        now = time.monotonic()
        if now >= next_trust:
            try:
                node.refresh_trust()
                next_trust = now + min(cfg.directory_refresh_seconds, cfg.treaty_refresh_seconds)
            except errors.IntelshareError as exc:
                log.info("trust refresh failed: %s %s", exc.reason, exc.message[:200])
                next_trust = now + min(2.0, cfg.directory_refresh_seconds)
            except Exception:
                log.exception("trust refresh failed")
                next_trust = now + 5.0
        if now >= next_jobs and cfg.maintenance_in_node:
            try:
                expired = node.alerts.note_expired()
                purged = node.purge_retention()
                if expired or purged:
                    log.info("maintenance: %d alerts expired, %d records purged", expired, purged)
                signed_size = _sign_audit_head(node, signed_size)
                _ipr_jobs(node)
            except Exception:
                log.exception("maintenance job failed")
            next_jobs = now + cfg.maintenance_seconds
        node._stop.wait(max(0.05, min(next_trust, next_jobs) - time.monotonic()))


def _check_deadline_calendar(node: Node) -> None:
    """Stop at start when the deadline settings do not fit the agency's country.

    (``holiday_subdivision`` in another country; a country without a default
    zone and no ``deadline_time_zone``.) A country not known yet is checked
    again on first use.
    """
    if node.detentions is None:
        return
    try:
        node.detentions.calendar()
    except errors.ConfigError:
        node.stop(grace=0)
        raise
    except errors.IntelshareError as exc:
        log.info("deadline calendar not checked at start: %s", exc.reason)


def _ipr_jobs(node: Node) -> None:
    """IPR deadlines (reminders, deadline_passed) and recordation expiry."""
    if node.detentions is not None:
        node.detentions.check_deadlines()
    if node.recordations is not None:
        node.recordations.expire_due()


def _sign_audit_head(node: Node, signed_size: int) -> int:
    """Sign a tree head when the audit log grew, so its state is committed to by the agency key."""
    audit = node.store.audit
    if audit is None:
        return signed_size
    size = audit.size()
    if size != signed_size and size > 0:
        audit.sign_head()
    return size


def serve(config: NodeConfig, ready_file: Path | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    node = start(config)
    if ready_file is not None:
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(str(node.port))
        tmp.replace(ready_file)
    done = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    done.wait()
    node.stop()
