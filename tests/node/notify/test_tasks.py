"""The tasks themselves, run in this process against real nodes: idempotence and beat jobs.

The nodes run with ``maintenance_in_node: false``, so what expires and what
gets signed here is the work of the beat tasks, not of the node's own
maintenance thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from intelshare.v1 import alert_pb2
from node.notify import celery_app as ca
from node.notify.tasks import context, make_worker_app
from node.server import build
from node.storage import tables as t
from tests.node.conftest import TASKFORCE, Cluster, RunningNode, demo_alert, expire_in, wait_for

TO_BE = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]


@pytest.fixture
def pair(cluster: Cluster) -> tuple[RunningNode, RunningNode]:
    nl = cluster.start_node("nl-customs", maintenance_in_node=False)
    be = cluster.start_node("be-police", maintenance_in_node=False)
    return nl, be


@pytest.fixture
def app(pair: tuple[RunningNode, RunningNode]) -> Iterator[Any]:
    celery = make_worker_app(pair[1].node.config, build)
    yield celery
    ctx = getattr(celery, "_intelshare_ctx", None)
    if ctx is not None:
        ctx.close()
    celery.close()


def run(app: Any, name: str, *args: Any) -> Any:
    """Execute a task here, as a worker would (no broker involved)."""
    result = app.tasks[name].apply(args=args)
    assert result.successful(), result.traceback
    return result.get()


def test_fan_out_confirms_once_and_second_run_does_nothing(
    pair: tuple[RunningNode, RunningNode], app: Any
) -> None:
    nl, be = pair
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(description="fan-out", recipients=TO_BE))
    store = be.node.store
    (event,) = wait_for(
        lambda: [e for e in store.unnotified() if e.type == "alert.received"], 30, "event at be"
    )
    generation = store.hub.generation("node:events")
    assert run(app, ca.TASK_FAN_OUT, event.seq) == "notified 0 webhooks"
    assert run(app, ca.TASK_FAN_OUT, event.seq) == "already"
    with store.engine.connect() as conn:
        notified = conn.execute(
            select(t.events.c.notified_ms).where(t.events.c.seq == event.seq)
        ).scalar_one()
    assert notified is not None
    assert event.seq not in [e.seq for e in store.unnotified()]
    assert run(app, ca.TASK_FAN_OUT, 10**9) == "missing"
    # the worker's wake-up went through its own hub (no Redis configured here)
    assert context(app).store.hub.generation("node:events") >= 1
    assert store.hub.generation("node:events") >= generation


def test_beat_tasks_expire_sign_refresh_and_sweep(
    pair: tuple[RunningNode, RunningNode], app: Any
) -> None:
    nl, be = pair
    with nl.client("liaison") as c:
        c.create_alert(
            demo_alert(
                description="short", recipients=TO_BE, expire_time=expire_in(timedelta(seconds=2))
            )
        )
    with be.client("analyst") as c:
        (received,) = wait_for(lambda: c.list_all(), 30, "the alert at be")
        assert received.state == alert_pb2.ALERT_STATE_ACTIVE
        wait_for(lambda: run(app, ca.TASK_EXPIRE) == 1, 30, "the expiry task to expire it")
        assert c.get_alert(received.name).state == alert_pb2.ALERT_STATE_EXPIRED
    assert run(app, ca.TASK_EXPIRE) == 0  # idempotent
    types = [e.type for e in be.node.store.events_after(0, 100)]
    assert types.count("alert.expired") == 1
    assert run(app, ca.TASK_PURGE) == 0  # nothing past its retention yet
    size = run(app, ca.TASK_AUDIT_HEAD)
    assert size > 0
    audit = be.node.store.audit
    assert audit is not None
    assert audit.verify(audit.public_key).heads_checked >= 1
    assert run(app, ca.TASK_DIRECTORY) >= 1
    assert run(app, ca.TASK_SWEEP) == "0 events, 0 deliveries"


def test_fan_out_of_several_events_confirms_them_in_one_task(
    pair: tuple[RunningNode, RunningNode], app: Any
) -> None:
    nl, be = pair
    with nl.client("liaison") as c:
        for n in range(3):
            c.create_alert(demo_alert(description=f"batch {n}", recipients=TO_BE))
    store = be.node.store
    events = wait_for(
        lambda: (lambda es: es if len(es) == 3 else None)(
            [e for e in store.unnotified() if e.type == "alert.received"]
        ),
        30,
        "three events at be",
    )
    seqs = [e.seq for e in events]
    assert run(app, ca.TASK_FAN_OUT, seqs[:2]) == "notified 2 events, 0 webhook deliveries"
    # confirmed ones are left out; with none left the task does nothing
    assert run(app, ca.TASK_FAN_OUT, seqs) == "notified 1 events, 0 webhook deliveries"
    assert run(app, ca.TASK_FAN_OUT, seqs) == "already"
    assert not [e for e in store.unnotified() if e.seq in seqs]


def test_a_claim_confirms_itself_only_while_no_webhook_is_enabled(
    pair: tuple[RunningNode, RunningNode],
) -> None:
    """No webhook: the relay's claim confirms the event and nothing goes to a worker.
    An enabled webhook: the event is claimed for ``fan_out`` and stays unconfirmed."""
    from sqlalchemy import update

    from node.notify.relay import claim_new
    from node.notify.webhooks import WebhookRegistry

    nl, be = pair
    store = be.node.store

    def next_event(description: str, after: int = 0) -> Any:
        with nl.client("liaison") as c:
            c.create_alert(demo_alert(description=description, recipients=TO_BE))
        (event,) = wait_for(
            lambda: [e for e in store.unnotified() if e.type == "alert.received" and e.seq > after],
            30,
            f"the {description} event at be",
        )
        return event

    def notified(seq: int) -> int | None:
        with store.engine.connect() as conn:
            value = conn.execute(
                select(t.events.c.notified_ms).where(t.events.c.seq == seq)
            ).scalar_one()
        return None if value is None else int(value)

    first = next_event("nobody listens")
    claimed = claim_new(store.engine, look=False)
    assert claimed.to_send == []
    assert claimed.confirmed >= 1
    assert notified(first.seq) is not None
    assert claimed.at_ms >= max(claimed.confirmed_created_ms)
    assert len(claimed.confirmed_created_ms) == claimed.confirmed

    registry = WebhookRegistry(store.engine, be.node.keys)
    hook, _secret = registry.add("http://127.0.0.1:9/hook", ["alert.*"], allow_http=True)
    second = next_event("a webhook listens", after=first.seq)
    claimed = claim_new(store.engine, look=False)
    assert (second.seq, second.event_id) in claimed.to_send
    assert claimed.confirmed == 0
    assert notified(second.seq) is None  # fan_out's to confirm

    with store.engine.begin() as conn:  # a disabled webhook wants nothing
        conn.execute(update(t.webhooks).values(disabled=True))
    third = next_event("the webhook is disabled", after=second.seq)
    claimed = claim_new(store.engine, look=False)
    assert claimed.to_send == []
    assert claimed.confirmed >= 1
    assert notified(third.seq) is not None
    registry.remove(hook.webhook_id)


def test_events_the_relay_confirms_itself_are_in_the_nodes_latency_histogram(
    pair: tuple[RunningNode, RunningNode], app: Any
) -> None:
    """No worker sees them, so the node's relay observes their notification latency."""
    from node.notify.relay import Relay

    nl, be = pair
    store = be.node.store
    assert store.metrics is not None
    registry = store.metrics.registry
    name = "intelshare_node_notification_latency_seconds"

    def observed() -> float:
        return registry.get_sample_value(f"{name}_count") or 0.0

    before = observed()
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(description="relay latency", recipients=TO_BE))
    wait_for(
        lambda: [e for e in store.unnotified() if e.type == "alert.received"], 30, "event at be"
    )
    relay = Relay(store, app, poll_seconds=1.0, deadline_seconds=30.0)
    taken = relay.relay_once(look=False)
    assert taken >= 1
    assert relay.confirmed == taken
    assert relay.sent == 0
    assert observed() == before + taken
    assert (registry.get_sample_value(f"{name}_sum") or 0.0) >= 0.0
    assert registry.get_sample_value(f"{name}_bucket", {"le": "3600.0"}) == before + taken
