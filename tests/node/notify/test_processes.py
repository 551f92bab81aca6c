"""Notifications with real processes: gateway, two nodes, Celery workers, Redis, HTTP.

Alerts go from nl-customs to be-police through the gateway; be-police's
events (``alert.received``) are what its feed streams show and its webhooks
receive. Workers are ``intelshare worker`` processes; Redis is a private
``redis-server`` (append-only) that the last test kills and restarts.

Waits poll a condition with a deadline; nothing sleeps in place of waiting.
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from typing import Any

import pytest

from intelshare import errors
from intelshare.v1 import alert_pb2
from node.cli.client import NodeClient
from node.notify import webhooks as wh
from tests.node.conftest import wait_for
from tests.node.notify.conftest import NOTIFY_SETTINGS, NotifyWorld, Route, cli, kill_worker

pytestmark = [pytest.mark.slow, pytest.mark.redis]


class Follower:
    """A WatchAlerts subscriber in a thread, recording every event it sees."""

    def __init__(self, client: NodeClient, after: int, **filters: Any) -> None:
        self.client = client
        self.events: list[alert_pb2.AlertEvent] = []
        self.error: Exception | None = None
        self._stream = client.watch(after_cursor=after, **filters)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._stream:
                if item.HasField("event"):
                    self.events.append(item.event)
        except Exception as exc:
            self.error = exc

    def received(self) -> list[alert_pb2.AlertEvent]:
        return [e for e in self.events if e.type == "alert.received"]

    def close(self) -> None:
        self.client.close()  # cancels the stream
        self._thread.join(timeout=10)


def _alert_feed(world: NotifyWorld, start: int) -> list[Any]:
    """The events a WatchAlerts feed carries: those of alerts, without the identifier
    index's ``link.found`` (a feed gets those only when it sets ``include_links``)."""
    return [e for e in world.events(after=start) if e.alert_id and not e.type.startswith("link.")]


def _assert_exactly_once_in_order(seen: list[alert_pb2.AlertEvent], expected: list[Any]) -> None:
    cursors = [e.cursor for e in seen]
    assert cursors == sorted(set(cursors)), "events out of order or repeated"
    assert [e.event_id for e in seen] == [r.event_id for r in expected]


def test_reconnecting_subscriber_gets_every_event_once_in_order(world: NotifyWorld) -> None:
    start = world.head()
    tag = uuid.uuid4().hex[:6]
    first = Follower(world.client("be-police", "analyst"), start)
    for n in range(4):
        world.issue(f"resume {tag} {n}")
    wait_for(lambda: len(first.received()) >= 2, 60, "two events on the first stream")
    first.close()
    seen = list(first.events)
    cursor = seen[-1].cursor
    for n in range(4, 8):
        world.issue(f"resume {tag} {n}")
    world.received(start, 8)
    second = Follower(world.client("be-police", "analyst"), cursor)
    expected = _alert_feed(world, start)
    wait_for(
        lambda: len(seen) + len(second.events) >= len(expected), 60, "the rest after reconnecting"
    )
    second.close()
    assert first.error is None
    assert second.error is None
    _assert_exactly_once_in_order(seen + second.events, expected)


def test_webhook_recovering_after_three_failures_and_dead_letters(world: NotifyWorld) -> None:
    flaky, dead = Route(fail_first=3), Route(always_fail=True)
    flaky_id = world.add_webhook("/flaky", flaky)
    dead_id = world.add_webhook("/dead", dead)
    start = world.head()
    world.start_worker()
    world.issue("webhook retry")
    (event,) = world.received(start, 1)
    wait_for(lambda: flaky.accepted[event.event_id] == 1, 60, "the flaky webhook to accept")
    assert flaky.attempts[event.event_id] == 4  # three failures, then the one that worked
    assert flaky.bad_signatures == 0
    body = flaky.bodies[event.event_id]
    assert body["type"] == "alert.received"
    assert body["alert"] == f"alerts/{event.alert_id}"
    assert set(body) == {
        "event_id",
        "type",
        "cursor",
        "alert",
        "case",
        "agency_id",
        "create_time_ms",
    }

    cfg = str(world.configs["be-police"])

    def dead_letters() -> list[dict[str, Any]]:
        out = cli("node", "webhook", "dead-letters", "list", "--config", cfg, "--json")
        return [d for d in json.loads(out) if d["event_id"] == event.event_id]

    (letter,) = wait_for(dead_letters, 60, "the dead letter")
    assert letter["webhook_id"] == dead_id
    assert letter["attempts"] == NOTIFY_SETTINGS["webhook_max_attempts"]
    assert letter["last_error"] == "HTTP 503"
    assert dead.accepted[event.event_id] == 0
    assert dead.attempts[event.event_id] == NOTIFY_SETTINGS["webhook_max_attempts"]
    listed = {
        h["webhook_id"]: h
        for h in json.loads(cli("node", "webhook", "list", "--config", cfg, "--json"))
    }
    assert listed[flaky_id]["delivered"] >= 1
    assert listed[dead_id]["dead"] >= 1
    assert "secret" not in listed[flaky_id]

    # The endpoint is fixed; an admin sends the dead letters again.
    dead.always_fail = False
    assert "1 dead letters queued again" in cli(
        "node", "webhook", "dead-letters", "retry", "--webhook", dead_id, "--config", cfg
    )
    wait_for(lambda: dead.accepted[event.event_id] == 1, 60, "the retried dead letter")
    assert dead_letters() == []
    assert flaky.accepted[event.event_id] == 1  # never twice


def test_worker_killed_mid_fan_out_loses_nothing(world: NotifyWorld) -> None:
    blocking, plain = Route(block_first=True), Route()
    world.add_webhook("/block", blocking)
    world.add_webhook("/plain", plain)
    start = world.head()
    follower = Follower(world.client("be-police", "analyst"), start)
    first = world.start_worker()
    tag = uuid.uuid4().hex[:6]
    for n in range(5):
        world.issue(f"kill {tag} {n}")
    wait_for(blocking.blocked.is_set, 60, "a webhook POST held open by the receiver")
    kill_worker(first)  # mid-fan-out: a delivery is in flight, others may be queued
    blocking.release.set()
    for n in range(5, 10):
        world.issue(f"kill {tag} {n}")
    events = world.received(start, 10)
    world.start_worker()
    ids = {e.event_id for e in events}
    # The POST held open when the worker died was processed by the receiver, never
    # confirmed to the node, and sent again by the next worker: the receiver's
    # dedupe on the event id is what keeps it once.
    wait_for(lambda: blocking.accepted[blocking.blocked_event] == 2, 90, "the resent POST")
    for route, name in ((blocking, "blocking"), (plain, "plain")):
        wait_for(lambda route=route: ids <= set(route.accepted), 90, f"all events at {name}")
        assert route.bad_signatures == 0
        # At-least-once: only a POST in flight when the worker died can come twice,
        # and the receiver keeps each event id once.
        assert route.duplicates() <= NOTIFY_SETTINGS["worker_concurrency"]
    wait_for(
        lambda: all(e.notified_ms is not None for e in world.events(after=start)),
        60,
        "every event confirmed",
    )
    wait_for(lambda: len(follower.received()) >= 10, 60, "every event on the feed")
    follower.close()
    _assert_exactly_once_in_order(follower.events, _alert_feed(world, start))


def test_feed_shows_nothing_to_officers_without_access(world: NotifyWorld) -> None:
    start = world.head()
    cfg = str(world.configs["be-police"])
    token = json.loads(
        cli(
            "node",
            "officer",
            "add",
            f"gone-{uuid.uuid4().hex[:6]}",
            "--role",
            "analyst",
            "--config",
            cfg,
            "--json",
        )
    )
    cli("node", "officer", "disable", token["name"], "--config", cfg)
    for bad in (token["token"], "not-a-token"):
        with world.client("be-police", token=bad) as c, pytest.raises(errors.Unauthenticated):
            next(iter(c.watch(after_cursor=start)))
    narcotics = Follower(
        world.client("be-police", "analyst"), start, kind=alert_pb2.ALERT_KIND_NARCOTICS
    )
    tag = uuid.uuid4().hex[:6]
    world.issue(f"filter {tag} counterfeit")
    world.issue(f"filter {tag} narcotics", kind=alert_pb2.ALERT_KIND_NARCOTICS)
    events = world.received(start, 2)
    with world.client("be-police", "analyst") as c:
        kinds = {e.alert_id: c.get_alert(f"alerts/{e.alert_id}").kind for e in events}
    wanted = [e for e in events if kinds[e.alert_id] == alert_pb2.ALERT_KIND_NARCOTICS]
    wait_for(lambda: len(narcotics.received()) >= 1, 60, "the narcotics alert on the feed")
    narcotics.close()
    assert [e.event_id for e in narcotics.received()] == [e.event_id for e in wanted]


@pytest.mark.parametrize("files", ["kept", "lost"])
def test_redis_killed_and_restarted_during_a_burst(world: NotifyWorld, files: str) -> None:
    """Kept: Redis replays its append-only file. Lost: it comes back empty, and the
    outbox and the pending deliveries in the database are all that is left."""
    hook = Route()
    hook_id = world.add_webhook("/burst", hook)
    start = world.head()
    world.start_worker()
    follower = Follower(world.client("be-police", "analyst"), start)
    tag = uuid.uuid4().hex[:6]
    for n in range(3):
        world.issue(f"burst {tag} {n}")
    world.redis.kill()  # SIGKILL: what the append-only file had not synced is gone too
    for n in range(3, 12):
        world.issue(f"burst {tag} {n}")
    events = world.received(start, 12)  # records flow without Redis
    if files == "lost":
        for path in world.redis.dir.iterdir():
            if path.name.startswith("appendonly") and path.is_dir():
                shutil.rmtree(path)  # Redis 7: appendonlydir/
            elif path.name.startswith("appendonly"):
                path.unlink()
    world.redis.start()  # same port, same folder
    ids = {e.event_id for e in events}
    wait_for(lambda: ids <= set(hook.accepted), 120, "every webhook notification after Redis")
    assert hook.bad_signatures == 0
    wait_for(
        lambda: all(e.notified_ms is not None for e in world.events(after=start)),
        60,
        "every event confirmed",
    )
    wait_for(lambda: len(follower.received()) >= 12, 60, "every event on the feed")
    follower.close()
    _assert_exactly_once_in_order(follower.events, _alert_feed(world, start))
    assert set(hook.bodies) == ids
    assert all(b["type"] == "alert.received" for b in hook.bodies.values())
    # The receiver answers before the worker records DELIVERED: wait for the
    # database's row, since a delivery left pending is what this test is about.
    wait_for(
        lambda: {d.state for d in world.deliveries()} == {wh.DELIVERED},
        60,
        "every delivery recorded as delivered",
    )
    assert {d.event_id for d in world.deliveries() if d.webhook_id == hook_id} == ids
