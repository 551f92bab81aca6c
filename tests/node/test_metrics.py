"""Node and worker /metrics after real traffic, on SQLite and PostgreSQL.

The in-process tests run a gateway and nodes over gRPC/mTLS (``cluster``)
and scrape each node's endpoint over HTTP. The worker test adds a real
``intelshare worker`` process and a private ``redis-server``: the node's
relay hands events to Celery, the worker fans them out and delivers
webhooks, and its own endpoint shows the notification latency and the
delivery outcomes.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from intelshare.v1 import alert_pb2
from node.notify import start_notifier
from node.notify.webhooks import WebhookRegistry
from tests.intelshare.test_metrics import Scrape
from tests.node.conftest import (
    TASKFORCE,
    Cluster,
    RunningNode,
    demo_alert,
    expire_in,
    node_config,
    wait_for,
)
from tests.node.notify.conftest import (
    NOTIFY_SETTINGS,
    Receiver,
    RedisServer,
    Route,
    free_port,
)
from tests.node.sharing.test_inbound import seal_as, submit
from tests.node.test_processes import Service, _write

TO_BE = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
METRICS = {"metrics_listen": "127.0.0.1:0", "metrics_refresh_seconds": 0}


def scraper(node: RunningNode) -> Callable[[], Scrape]:
    server = node.node.metrics_server
    assert server is not None
    return lambda: Scrape(server.url)


def test_alerts_refusals_and_queues_are_counted(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs", **METRICS)
    be = cluster.start_node("be-police", **METRICS)
    de = cluster.start_node("de-customs", **METRICS)
    nl_m, be_m, de_m = scraper(nl), scraper(be), scraper(de)
    wait_for(lambda: be_m().value("intelshare_node_inbox_connected") == 1, 30, "be connected")

    with nl.client("liaison") as c:
        c.create_alert(demo_alert())  # to de-customs and be-police, one view each
    for node in (be, de):
        with node.client("analyst") as c:
            wait_for(lambda c=c: c.list_all(), 30, f"the alert at {node.agency}")
    # A record with a field the task-force treaty does not allow: the gateway
    # cannot see it, be-police refuses it.
    leaky = seal_as(
        nl,
        {"kind": "counterfeit_goods", "subjects": {"persons": [{"passport_number": "NX1"}]}},
    )
    submit(nl, leaky)
    refused = "intelshare_node_inbound_refused_total"
    wait_for(lambda: be_m().value(refused, reason="FIELD_NOT_PERMITTED") == 1, 30, "the refusal")

    sent = nl_m()
    assert sent.value("intelshare_node_alerts_issued_total") == 1
    assert sent.value("intelshare_node_events_total", type="alert.issued") == 1
    assert sent.value("intelshare_node_outbound_submitted_total") == 2
    assert sent.value("intelshare_node_outbound_queue_depth") == 0
    assert sent.value("intelshare_node_outbound_oldest_pending_seconds") == 0
    got = be_m()
    assert got.value("intelshare_node_alerts_received_total", sender="nl-customs") == 1
    assert got.value("intelshare_node_events_total", type="alert.received") == 1
    assert got.series(refused) == {frozenset({("reason", "FIELD_NOT_PERMITTED")}): 1}
    # no relay in these nodes: the events wait for a worker, and the gauges say so
    assert got.value("intelshare_node_notify_relay_healthy") == 0
    assert got.value("intelshare_node_notify_backlog") >= 1
    assert got.value("intelshare_node_notify_oldest_unconfirmed_seconds") > 0
    assert got.value("intelshare_node_webhook_dead_letters") == 0
    assert de_m().value("intelshare_node_alerts_received_total", sender="nl-customs") == 1
    # nothing of the record in any label or value
    for scrape in (sent, got):
        assert "Rotterdam" not in scrape.text
        assert "NX1" not in scrape.text


def test_gateway_outage_shows_as_queue_depth_and_retries(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs", **METRICS)
    cluster.start_node("be-police")
    nl_m = scraper(nl)
    port = cluster.gateway.port
    cluster.gateway.stop(grace=0)
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(description="during the outage", recipients=TO_BE))
    waiting = wait_for(
        lambda: (s := nl_m()).value("intelshare_node_send_retries_total") >= 1 and s,
        30,
        "a deferred submission",
    )
    assert waiting.value("intelshare_node_outbound_queue_depth") == 1
    assert waiting.value("intelshare_node_inbox_connected") == 0
    wait_for(
        lambda: nl_m().value("intelshare_node_outbound_oldest_pending_seconds") > 0,
        10,
        "the pending envelope to age",
    )
    cluster.restart_gateway(port)
    wait_for(
        lambda: nl_m().value("intelshare_node_outbound_queue_depth") == 0, 60, "the queue to drain"
    )
    assert nl_m().value("intelshare_node_outbound_submitted_total") == 1


def test_no_metrics_listen_no_endpoint_but_counted(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    assert nl.node.metrics_server is None
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(description="counted", recipients=TO_BE))
    assert nl.node.metrics.registry.get_sample_value("intelshare_node_alerts_issued_total") == 1


# --- the worker process --------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    from shutil import which

    if which("redis-server") is None:
        pytest.skip("redis-server binary not found")
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.mark.slow
def test_worker_exports_latency_retries_and_webhook_outcomes(
    cluster: Cluster,
    redis_server: RedisServer,
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This node runs its outbox relay (the cluster leaves it out by default).
    monkeypatch.setattr("node.server.start_notifier", start_notifier)
    notify: dict[str, Any] = {
        **NOTIFY_SETTINGS,
        "redis_url": redis_server.url,
        "redis_prefix": f"intelshare-test:{uuid.uuid4().hex[:8]}:",
        "webhook_max_attempts": 3,
    }
    nl = cluster.start_node("nl-customs")
    db = cluster.make_db("be-police-w")
    be = cluster.start_node("be-police", db=db, **METRICS, **notify)
    be_m = scraper(be)
    registry = WebhookRegistry(be.node.store.engine, be.node.keys)
    flaky, dead = Route(fail_first=1), Route(always_fail=True)
    for path, route in (("/flaky", flaky), ("/dead", dead)):
        route.secret = registry.add(receiver.url(path), ["alert.received"], allow_http=True)[1]
        receiver.routes[path] = route

    worker_port = free_port()
    values = node_config(cluster.fed, "be-police", db, cluster.gateway.port, **notify)
    config = _write(tmp_path / "be-worker.yaml", "node", values)
    monkeypatch.setenv("INTELSHARE_NODE_METRICS_LISTEN", f"127.0.0.1:{worker_port}")
    worker = Service("worker-be", ["worker", "--config", str(config)], tmp_path)
    worker.start()
    try:
        worker_m: Callable[[], Scrape] = lambda: Scrape(  # noqa: E731
            f"http://127.0.0.1:{worker_port}/metrics"
        )
        with nl.client("liaison") as c:
            c.create_alert(demo_alert(description="notify me", recipients=TO_BE))
        latency = "intelshare_worker_notification_latency_seconds"
        wait_for(lambda: worker_m().value(f"{latency}_count") >= 1, 60, "a confirmed fan-out")
        deliveries = "intelshare_worker_webhook_deliveries_total"
        wait_for(
            lambda: (
                worker_m().value(deliveries, outcome="dead") == 1
                and worker_m().value(deliveries, outcome="delivered") == 1
            ),
            60,
            "the webhook outcomes",
        )
        w = worker_m()
        assert w.value(f"{latency}_sum") > 0
        assert w.value(f"{latency}_bucket", le="+Inf") == w.value(f"{latency}_count")
        # flaky: fails once, then delivered; dead: fails all three attempts
        assert w.value(deliveries, outcome="retry") == 1 + 2
        deliver = "intelshare.notify.deliver_webhook"
        assert w.value("intelshare_worker_task_retries_total", task=deliver) == 3
        assert (
            w.value(
                "intelshare_worker_tasks_total", task="intelshare.notify.fan_out", state="SUCCESS"
            )
            >= 1
        )
        assert flaky.accepted
        assert not dead.accepted
        # the node's side: relay healthy, backlog confirmed, one dead letter
        wait_for(
            lambda: (
                (s := be_m()).value("intelshare_node_notify_backlog") == 0
                and s.value("intelshare_node_webhook_dead_letters") == 1
                and s.value("intelshare_node_webhook_pending") == 0
            ),
            30,
            "the node's notification gauges",
        )
        assert be_m().value("intelshare_node_notify_relay_healthy") == 1
        # the worker logs JSON lines only (log shippers read them as they come)
        lines = [ln for ln in worker.log_text().splitlines() if ln.strip()]
        assert lines
        for line in lines:
            assert isinstance(json.loads(line), dict), line
    finally:
        worker.stop()


def test_worker_metrics_in_process_count_fan_out(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The task signals also work for tasks run in this process (eager apply)."""
    from node.metrics import worker_metrics
    from node.notify import celery_app as ca
    from node.notify.tasks import make_worker_app
    from node.server import build

    nl = cluster.start_node("nl-customs", maintenance_in_node=False)
    be = cluster.start_node("be-police", maintenance_in_node=False)
    with nl.client("liaison") as c:
        c.create_alert(
            demo_alert(
                description="brief", recipients=TO_BE, expire_time=expire_in(timedelta(seconds=2))
            )
        )
    (event,) = wait_for(
        lambda: [e for e in be.node.store.unnotified() if e.type == "alert.received"], 30, "event"
    )
    app = make_worker_app(be.node.config, build)
    try:
        reg = worker_metrics(app).registry
        assert app.tasks[ca.TASK_FAN_OUT].apply(args=(event.seq,)).get() == "notified 0 webhooks"
        assert app.tasks[ca.TASK_FAN_OUT].apply(args=(event.seq,)).get() == "already"
        assert reg.get_sample_value("intelshare_worker_notification_latency_seconds_count") == 1
        fan_out = {"task": ca.TASK_FAN_OUT, "state": "SUCCESS"}
        assert reg.get_sample_value("intelshare_worker_tasks_total", fan_out) == 2
        # a batch (the relay's form under load) observes each event it confirms, once
        with nl.client("liaison") as c:
            for n in range(2):
                c.create_alert(demo_alert(description=f"batch {n}", recipients=TO_BE))
        more = wait_for(
            lambda: (
                found
                if len(
                    found := [
                        e.seq
                        for e in be.node.store.unnotified()
                        if e.type == "alert.received" and e.seq != event.seq
                    ]
                )
                == 2
                else None
            ),
            30,
            "two more events",
        )
        with caplog.at_level(logging.WARNING, logger="node.metrics"):
            done = app.tasks[ca.TASK_FAN_OUT].apply(args=(more,)).get()
        assert done == "notified 2 events, 0 webhook deliveries"
        assert not [r for r in caplog.records if r.name == "node.metrics"]
        assert reg.get_sample_value("intelshare_worker_notification_latency_seconds_count") == 3
        assert reg.get_sample_value("intelshare_worker_tasks_total", fan_out) == 3
        # what the worker's tasks commit (beat's expiry here) is exported by the worker too
        wait_for(lambda: app.tasks[ca.TASK_EXPIRE].apply().get() == 1, 30, "the expiry task")
        expired = {"type": "alert.expired"}
        assert reg.get_sample_value("intelshare_node_events_total", expired) == 1
    finally:
        ctx = getattr(app, "_intelshare_ctx", None)
        if ctx is not None:
            ctx.close()
        app.close()
