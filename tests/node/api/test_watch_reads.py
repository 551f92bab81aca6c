"""WatchAlerts reads the database only when something can be there that memory lacks.

Events this node process committed are served from memory; the event log is
read when a stream falls behind memory, when another process says (through
Redis) that it committed events, and after every idle heartbeat. A second
``Store`` on the node's database, with a wake-up hub of its own on the same
Redis, stands for another process (a worker, another node process).
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest

from intelshare.wakeup import WakeupHub
from node.storage.store import Store
from tests.node.conftest import Cluster, RunningNode, demo_alert, wait_for
from tests.node.sharing.test_outbound_concurrent import TO_BE

pytestmark = [pytest.mark.slow, pytest.mark.redis]


class Watch:
    """A WatchAlerts stream read on a thread; its events in a queue."""

    def __init__(self, node: RunningNode, after: int) -> None:
        self.client = node.client("analyst")
        self.events: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(after,), daemon=True)
        self._thread.start()

    def _run(self, after: int) -> None:
        for item in self.client.watch(after_cursor=after):
            if item.HasField("event"):
                self.events.put(item.event)

    def next_of(self, type_: str, timeout: float = 10.0) -> Any:
        while True:
            event = self.events.get(timeout=timeout)
            if event.type == type_:
                return event

    def close(self) -> None:
        self.client.close()
        self._thread.join(timeout=5)


def test_local_events_come_from_memory_and_others_after_their_wake_up(
    cluster: Cluster, redis_url: str, redis_prefix: str
) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node(
        "be-police", redis_url=redis_url, redis_prefix=redis_prefix, heartbeat_seconds=60
    )
    store = be.node.store
    assert store.hub.connected.wait(5)
    reads: list[int] = []
    events_after = store.events_after

    def counted(cursor: int, limit: int, *, alert_only: bool = False) -> Any:
        if alert_only:  # the alert feed's reads (the identifier index follows the log too)
            reads.append(cursor)
        return events_after(cursor, limit, alert_only=alert_only)

    store.events_after = counted  # type: ignore[method-assign]
    watch = Watch(be, store.head_seq())
    try:
        wait_for(lambda: reads, what="the stream's first read")
        with nl.client("liaison") as c:
            for n in range(3):
                c.create_alert(demo_alert(recipients=TO_BE, description=f"local {n}"))
                watch.next_of("alert.received")
        assert len(reads) == 1  # only the read when the stream opened

        # Another process commits an event: its wake-up comes through Redis,
        # and the stream reads the database for it (no heartbeat for a minute).
        other = Store(store.engine, store.audit, WakeupHub(redis_url, channel_prefix=redis_prefix))
        try:
            assert other.hub.connected.wait(5)
            with other.write() as w:
                w.event("alert.expired", alert_id="from-elsewhere")
            got = watch.next_of("alert.expired", timeout=10)
            assert got.alert == "alerts/from-elsewhere"
            assert len(reads) == 2
        finally:
            other.hub.close()
    finally:
        watch.close()
