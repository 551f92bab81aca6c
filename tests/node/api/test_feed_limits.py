"""One officer cannot stall a node with feeds (issue 23, item 3), through a real node."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from intelshare import errors
from tests.node.conftest import Cluster

pytestmark = pytest.mark.slow


def open_feed(client: Any) -> tuple[Iterator[Any], Any]:
    """A WatchAlerts stream that has started (its first heartbeat or event arrived)."""
    stream = client.watch()
    first = next(stream)
    return stream, first


def test_feeds_per_officer_and_per_node_are_capped_and_unary_calls_stay_fast(
    cluster: Cluster,
) -> None:
    nl = cluster.start_node(
        "nl-customs", max_workers=4, max_feeds=6, max_feeds_per_officer=3, heartbeat_seconds=0.2
    )
    held: list[Any] = []
    clients = []
    try:
        # The analyst's token holds three feeds; a fourth is refused.
        for _ in range(3):
            c = nl.client("analyst")
            clients.append(c)
            held.append(open_feed(c)[0])
        extra = nl.client("analyst")
        clients.append(extra)
        with pytest.raises(errors.TooManyStreams) as exc:
            open_feed(extra)
        assert exc.value.metadata == {"scope": "officer", "limit": "3"}
        # The node as a whole holds six: three more of another officer, then no more.
        for _ in range(3):
            c = nl.client("admin")
            clients.append(c)
            held.append(open_feed(c)[0])
        other = nl.client("liaison")
        clients.append(other)
        with pytest.raises(errors.TooManyStreams) as exc:
            open_feed(other)
        assert exc.value.metadata == {"scope": "node", "limit": "6"}
        # Meanwhile unary calls answer within their deadline: feeds have their own threads
        # (before, feeds took every thread and other calls timed out).
        answered = []
        calls = []

        def call() -> None:
            with nl.client("liaison") as c:
                c.timeout = 5.0  # a call waiting for a thread would end DEADLINE_EXCEEDED
                answered.append(c.list_alerts())

        for _ in range(8):
            t = threading.Thread(target=call)
            t.start()
            calls.append(t)
        for t in calls:
            t.join(timeout=30)
        assert len(answered) == 8
        # A feed that ends gives its slot back.
        clients[0].close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                stream, _ = open_feed(extra)
                held.append(stream)
                break
            except errors.TooManyStreams:
                time.sleep(0.1)
        else:
            pytest.fail("the closed feed's slot was never given back")
    finally:
        for c in clients:
            c.close()
