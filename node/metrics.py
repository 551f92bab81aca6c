"""The Prometheus metrics of a node process and of its workers.

Node process (``intelshare node serve``, ``metrics_listen`` of the node):

``intelshare_node_events_total{type}``
    events committed (``alert.issued``, ``alert.received``, ``case.entry_added`` …);
``intelshare_node_alerts_issued_total`` / ``intelshare_node_alerts_received_total{sender}``
    alerts issued by officers here / received from partners;
``intelshare_node_inbound_refused_total{reason}``
    inbox entries refused (signature, treaty, fields …), by reason;
``intelshare_node_outbound_submitted_total``
    envelopes the gateway accepted from this node;
``intelshare_node_outbound_failed_total{reason}``
    envelopes refused for good (policy, expired before acceptance);
``intelshare_node_send_retries_total``
    submissions deferred because the gateway was unreachable or busy;
``intelshare_node_inbox_connected``
    1 while the inbox stream from the gateway is open;
``intelshare_node_notify_relay_healthy``
    1 while the outbox relay hands events to the broker;
``intelshare_node_notification_latency_seconds``
    from an event's commit to its confirmation by the relay itself, for the
    events no enabled webhook wants (they need no worker, so the workers'
    histogram below never sees them; the two together cover every event).

Read from the database when scraped (at most every ``metrics_refresh_seconds``;
node process only, so a worker does not report them twice):

``intelshare_node_outbound_queue_depth`` / ``…_oldest_pending_seconds``
    envelopes waiting for the gateway, and how long the oldest has waited;
``intelshare_node_notify_backlog`` / ``…_oldest_unconfirmed_seconds``
    events whose fan-out no worker confirmed yet;
``intelshare_node_webhook_pending`` / ``intelshare_node_webhook_dead_letters``
    webhook deliveries waiting for an attempt, and the dead letters.

Worker process (``intelshare worker``, the same ``metrics_listen`` setting —
give the worker a port of its own when it shares a host with the node, e.g.
with ``INTELSHARE_NODE_METRICS_LISTEN``):

``intelshare_worker_notification_latency_seconds``
    from an event's commit (``node_events.created_ms``) to the confirmation
    of its fan-out (``notified_ms``);
``intelshare_worker_tasks_total{task,state}`` / ``intelshare_worker_task_retries_total{task}``
    Celery tasks run (SUCCESS, FAILURE, RETRY) and retries;
``intelshare_worker_webhook_deliveries_total{outcome}``
    delivery attempts: ``delivered``, ``retry``, ``dead``, ``gone``,
    ``not_pending`` (another worker held it), ``error``;

and the node counters above for what the worker's tasks commit (expiry and
purges run there with ``maintenance_in_node: false``). Task metrics come
from Celery's signals in the process that runs the task: with the default
threads pool that is the worker process; with ``--pool prefork`` they are
counted in the pool's children and not exported.

Labels hold event types, reasons, outcomes, task names and agency ids only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select

from intelshare.metrics import (
    CachedCollector,
    MetricsServer,
    agency_label,
    new_registry,
    reason_label,
    serve_metrics,
    wait_buckets,
)
from node.storage import tables as t

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.server import Node

log = logging.getLogger(__name__)

#: Notification latency: milliseconds when the workers keep up, minutes when
#: Redis or every worker was down (the sweep resends after the deadline).
LATENCY_BUCKETS = wait_buckets(0.005, 3600.0)

_EVENT_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz._")
_OUTCOMES = frozenset({"delivered", "dead", "gone", "not pending"})


def _event_type(value: str) -> str:
    return value if len(value) <= 64 and set(value) <= _EVENT_TYPE_CHARS else "other"


class NodeMetrics:
    """Counters of a node (process or worker); see the module docstring."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = new_registry() if registry is None else registry
        #: the counters alone, without process metrics: a worker's endpoint exports them too
        self.counters = CollectorRegistry(auto_describe=True)
        r = self.counters
        self.events = Counter(
            "intelshare_node_events",
            "Events committed to the node's event log, by type",
            ["type"],
            registry=r,
        )
        self.alerts_issued = Counter(
            "intelshare_node_alerts_issued", "Alerts issued by this agency's officers", registry=r
        )
        self.alerts_received = Counter(
            "intelshare_node_alerts_received",
            "Alerts received from partner agencies, by sending agency",
            ["sender"],
            registry=r,
        )
        self.inbound_refused = Counter(
            "intelshare_node_inbound_refused",
            "Inbox entries refused (audited and skipped), by reason",
            ["reason"],
            registry=r,
        )
        self.outbound_submitted = Counter(
            "intelshare_node_outbound_submitted",
            "Envelopes the gateway accepted from this node",
            registry=r,
        )
        self.outbound_failed = Counter(
            "intelshare_node_outbound_failed",
            "Envelopes that failed for good (refused by the gateway, expired), by reason",
            ["reason"],
            registry=r,
        )
        self.send_retries = Counter(
            "intelshare_node_send_retries",
            "Gateway submissions deferred for a later attempt (gateway unreachable or busy)",
            registry=r,
        )
        self.registry.register(self.counters)
        # Node process only (not in ``counters``): the relay runs there.
        self.relay_latency = Histogram(
            "intelshare_node_notification_latency_seconds",
            "From an event's commit to its confirmation by the node's outbox relay "
            "(events no webhook wanted: no worker runs for them)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._watched = False

    def observe_relay_confirmed(self, confirmed_ms: int, created_ms: Sequence[int]) -> None:
        """Latency of the events one relay claim confirmed itself (see ``node.notify.relay``)."""
        for created in created_ms:
            self.relay_latency.observe(max(0, confirmed_ms - int(created)) / 1000)

    def committed(
        self,
        events: Sequence[tuple[str, str | None]],
        audits: Sequence[tuple[str, Mapping[str, Any]]],
    ) -> None:
        """Count what one transaction committed: its events and audited outcomes."""
        for type_, agency in events:
            self.events.labels(type=_event_type(type_)).inc()
            if type_ == "alert.issued":
                self.alerts_issued.inc()
            elif type_ == "alert.received":
                self.alerts_received.labels(sender=agency_label(agency)).inc()
        for event, fields in audits:
            if event == "refused":
                self.inbound_refused.labels(reason=reason_label(fields.get("reason"))).inc()
            elif event == "submitted":
                self.outbound_submitted.inc()
            elif event == "send_failed":
                self.outbound_failed.labels(reason=reason_label(fields.get("reason"))).inc()

    def watch(self, node: Node, max_age: float) -> None:
        """Export the node's queues (database) and connection states (in memory)."""
        if self._watched:
            return
        self._watched = True
        engine = node.store.engine
        connected = Gauge(
            "intelshare_node_inbox_connected",
            "1 while the inbox stream from the gateway is open",
            registry=self.registry,
        )
        connected.set_function(lambda: float(node.inbound.connected.is_set()))
        relay = Gauge(
            "intelshare_node_notify_relay_healthy",
            "1 while the outbox relay hands events to the broker (0: no broker reachable)",
            registry=self.registry,
        )
        relay.set_function(
            lambda: float(node.notifier is not None and node.notifier.relay.healthy.is_set())
        )

        def compute() -> Iterator[Metric]:
            from node.notify.webhooks import DEAD, PENDING
            from node.sharing.outbox import PENDING as OUT_PENDING
            from node.storage.store import now_ms

            ob, ev, wd = t.outbound, t.events, t.webhook_deliveries
            with engine.connect() as conn:
                out_n, out_oldest = conn.execute(
                    select(func.count(), func.min(ob.c.created_ms)).where(ob.c.state == OUT_PENDING)
                ).one()
                ev_n, ev_oldest = conn.execute(
                    select(func.count(), func.min(ev.c.created_ms)).where(
                        ev.c.notified_ms.is_(None)
                    )
                ).one()
                states: dict[str, int] = dict(
                    conn.execute(
                        select(wd.c.state, func.count())
                        .where(wd.c.state.in_([PENDING, DEAD]))
                        .group_by(wd.c.state)
                    ).all()
                )
            now = now_ms()
            values = (
                out_n,
                _age(now, out_oldest),
                ev_n,
                _age(now, ev_oldest),
                states.get(PENDING, 0),
                states.get(DEAD, 0),
            )
            for family, value in zip(_db_families(), values, strict=True):
                family.add_metric([], float(value))
                yield family

        self.registry.register(
            CachedCollector("intelshare_node_metrics", compute, _db_families, max_age)
        )


def _age(now_ms: int, oldest_ms: int | None) -> float:
    return 0.0 if oldest_ms is None else max(0, now_ms - int(oldest_ms)) / 1000


def _db_families() -> list[GaugeMetricFamily]:
    return [
        GaugeMetricFamily(
            "intelshare_node_outbound_queue_depth", "Envelopes waiting to be submitted"
        ),
        GaugeMetricFamily(
            "intelshare_node_outbound_oldest_pending_seconds",
            "How long the oldest envelope waiting for the gateway has waited (0: none)",
        ),
        GaugeMetricFamily(
            "intelshare_node_notify_backlog", "Events whose fan-out no worker confirmed yet"
        ),
        GaugeMetricFamily(
            "intelshare_node_notify_oldest_unconfirmed_seconds",
            "Age of the oldest event not confirmed by a worker (0: none)",
        ),
        GaugeMetricFamily(
            "intelshare_node_webhook_pending", "Webhook deliveries waiting for an attempt"
        ),
        GaugeMetricFamily(
            "intelshare_node_webhook_dead_letters",
            "Webhook deliveries that failed every attempt (dead letters)",
        ),
    ]


def serve_node_metrics(node: Node) -> MetricsServer | None:
    """Register the node's gauges and serve its registry on ``metrics_listen``."""
    config = node.config
    node.metrics.watch(node, max_age=config.metrics_refresh_seconds)
    return serve_metrics(node.metrics.registry, config.metrics_listen, key="node.metrics_listen")


# --- workers ------------------------------------------------------------------------------


class WorkerMetrics:
    """What ``intelshare worker`` exports; see the module docstring."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = new_registry() if registry is None else registry
        r = self.registry
        self.latency = Histogram(
            "intelshare_worker_notification_latency_seconds",
            "From an event's commit to the confirmation of its fan-out by a worker",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tasks = Counter(
            "intelshare_worker_tasks",
            "Celery tasks run, by task and final state (SUCCESS, FAILURE, RETRY)",
            ["task", "state"],
            registry=r,
        )
        self.retries = Counter(
            "intelshare_worker_task_retries",
            "Celery task retries, by task",
            ["task"],
            registry=r,
        )
        self.webhooks = Counter(
            "intelshare_worker_webhook_deliveries",
            "Webhook delivery attempts, by outcome",
            ["outcome"],
            registry=r,
        )
        self._linked: set[int] = set()
        self._lock = threading.Lock()

    def link(self, registry: CollectorRegistry) -> None:
        """Also export ``registry`` (the node counters of what the tasks commit), once."""
        with self._lock:
            if id(registry) in self._linked:
                return
            self._linked.add(id(registry))
            self.registry.register(registry)

    def task_done(self, name: str, retval: Any, state: str) -> None:
        from node.notify.celery_app import TASK_DELIVER

        self.tasks.labels(task=_task_label(name), state=reason_label(state)).inc()
        if name == TASK_DELIVER:
            if state == "RETRY":
                outcome = "retry"
            elif state == "SUCCESS" and isinstance(retval, str) and retval in _OUTCOMES:
                outcome = retval.replace(" ", "_")
            else:
                outcome = "error"
            self.webhooks.labels(outcome=outcome).inc()

    def observe_notified(self, confirmed_ms: int, created_ms: Sequence[int]) -> None:
        """Latency of the events a ``fan_out`` just confirmed, from their rows' times.

        The task passes the creation times its confirming statement returned,
        so the metric costs no query of its own (and covers a batch's events).
        """
        for created in created_ms:
            self.latency.observe(max(0, confirmed_ms - int(created)) / 1000)


def _task_label(name: str) -> str:
    return name if name.startswith("intelshare.") and len(name) <= 64 else "other"


_signals_lock = threading.Lock()
_signals_connected = False


def worker_metrics(app: Any) -> WorkerMetrics:
    """The metrics of Celery app ``app`` (created on first use), counted from its signals."""
    _connect_signals()
    with _signals_lock:
        metrics: WorkerMetrics | None = getattr(app, "intelshare_metrics", None)
        if metrics is None:
            metrics = WorkerMetrics()
            app.intelshare_metrics = metrics
        return metrics


def _metrics_of(task: Any) -> WorkerMetrics | None:
    app = getattr(task, "app", None)
    return getattr(app, "intelshare_metrics", None) if app is not None else None


def _connect_signals() -> None:
    global _signals_connected
    with _signals_lock:
        if _signals_connected:
            return
        from celery import signals

        signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="intelshare-metrics")
        signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="intelshare-metrics")
        signals.task_retry.connect(_on_retry, weak=False, dispatch_uid="intelshare-metrics")
        _signals_connected = True


def _on_prerun(sender: Any = None, **_: Any) -> None:
    metrics = _metrics_of(sender)
    if metrics is None:
        return
    try:
        from node.notify.tasks import context

        counters = context(sender.app).node.metrics.counters
    except Exception as exc:  # the task itself reports why its context cannot be built
        log.debug("worker metrics: no context yet (%s)", type(exc).__name__)
        return
    try:
        metrics.link(counters)
    except ValueError:
        log.warning("worker metrics: the node counters cannot be exported", exc_info=True)


def _on_postrun(sender: Any = None, retval: Any = None, state: str = "", **_: Any) -> None:
    metrics = _metrics_of(sender)
    if metrics is None:
        return
    try:
        metrics.task_done(str(sender.name), retval, str(state))
    except Exception:
        log.warning("worker metrics: could not count task %s", sender.name, exc_info=True)


def _on_retry(sender: Any = None, **_: Any) -> None:
    metrics = _metrics_of(sender)
    if metrics is not None:
        metrics.retries.labels(task=_task_label(str(sender.name))).inc()


def serve_worker_metrics(app: Any, config: NodeConfig) -> None:
    """Count ``app``'s tasks and serve them once the worker is ready (after beat's fork)."""
    metrics = worker_metrics(app)
    if not config.metrics_listen:
        return
    from celery import signals

    holder: list[MetricsServer] = []

    def _ready(**_: Any) -> None:
        server = serve_metrics(metrics.registry, config.metrics_listen, key="node.metrics_listen")
        if server is not None:
            holder.append(server)

    def _shutdown(**_: Any) -> None:
        for server in holder:
            server.stop()
        holder.clear()

    signals.worker_ready.connect(_ready, weak=False)
    signals.worker_shutdown.connect(_shutdown, weak=False)
