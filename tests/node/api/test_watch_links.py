"""WatchAlerts carries link.found events only for a feed that asks for them."""

from __future__ import annotations

import pytest

from intelshare.v1 import alert_pb2
from tests.node.conftest import TASKFORCE, Cluster, demo_alert, wait_for

pytestmark = pytest.mark.slow


def events(client: object, *, include_links: bool) -> list[str]:
    """Every event type the feed replays, up to its first heartbeat (the replay is done)."""
    out: list[str] = []
    for item in client.watch(0, include_links=include_links):  # type: ignore[attr-defined]
        if item.WhichOneof("item") != "event":
            return out
        out.append(item.event.type)
    return out


def test_a_shared_container_is_a_link_for_the_feed_that_asked(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police", heartbeat_seconds=0.3)
    to_be = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(recipients=to_be, description="first"))
        c.create_alert(demo_alert(recipients=to_be, description="second, same container"))
    with be.client("analyst") as c:
        wait_for(lambda: len(c.list_all()) == 2, what="both alerts at be-police")

        def linked() -> bool:
            return "link.found" in events(c, include_links=True)

        wait_for(linked, what="the link between the two alerts")
        plain = events(c, include_links=False)
    assert plain.count("alert.received") == 2
    assert not [t for t in plain if t.startswith("link.")]
