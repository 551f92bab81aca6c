"""Times keep their microseconds from the officer who gave them to every node that shows them.

Issue 22, item 7: an alert's expire_time lost its fraction of a second; a
hit's found_time lost it on the way to the issuer; the issuer's
acknowledge_time was when the acknowledgement reached it, which could come
after the hit the officer reported later. Two real nodes and a real gateway,
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.v1 import alert_pb2
from node.schema import alert as rec
from tests.node.conftest import Cluster, demo_alert, wait_for

pytestmark = pytest.mark.slow


def _at(delta: timedelta, nanos: int) -> Timestamp:
    """A whole second ``delta`` from now, plus ``nanos``."""
    ts = Timestamp(seconds=int((datetime.now(UTC) + delta).timestamp()), nanos=nanos)
    return ts


def test_times_cross_to_the_issuer_to_the_microsecond(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    expire = _at(timedelta(days=3), 123_456_789)  # nanoseconds beyond the µs are dropped
    alert = demo_alert(expire_time=expire)
    del alert.recipients[0]  # de-customs: only be-police here
    with nl.client("liaison") as c:
        issued = c.create_alert(alert)
    micro = Timestamp(seconds=expire.seconds, nanos=123_456_000)
    assert issued.expire_time == micro
    with nl.client("analyst") as c:
        assert c.get_alert(issued.name).expire_time == micro
    with be.client("analyst") as c:
        (listed,) = wait_for(
            lambda: c.list_alerts(direction=alert_pb2.ALERT_DIRECTION_RECEIVED).alerts,
            what="the alert at be-police",
        )
        at_be = c.get_alert(listed.name)
        assert at_be.expire_time == micro
        assert at_be.received.treaty_id == at_be.treaty_id != ""
        acked = c.acknowledge_alert(at_be.name)
        found = _at(timedelta(minutes=-20), 654_321_000)
        hit = c.report_hit(
            at_be.name, found_time=found, place="Port of Antwerp", found="the consignee"
        )
    ack_at_be = acked.received.acknowledge_time
    assert ack_at_be.nanos % 1000 == 0
    (hit_at_be,) = hit.hits
    assert hit_at_be.found_time == found
    with nl.client("analyst") as c:
        seen = wait_for(
            lambda: (
                (a := c.get_alert(issued.name)).deliveries[0].state == alert_pb2.DELIVERY_STATE_HIT
                and a.deliveries[0].HasField("acknowledge_time")
                and a
            ),
            what="the acknowledgement and the hit at nl-customs",
        )
    (delivery,) = seen.deliveries
    (hit_at_nl,) = seen.hits
    # The issuer shows the recipient's own times, exactly.
    assert delivery.acknowledge_time == ack_at_be
    assert hit_at_nl.found_time == found
    assert hit_at_nl.report_time == hit_at_be.report_time
    assert delivery.hit_time == hit_at_be.report_time
    # The officer acknowledged before reporting the hit, and so it stays.
    assert rec.ts_to_us(delivery.acknowledge_time) <= rec.ts_to_us(delivery.hit_time)


def test_microsecond_times_in_the_json_forms() -> None:
    us = 1_780_000_000_123_456
    assert rec.us_to_rfc3339(us) == "2026-05-28T20:26:40.123456Z"
    assert rec.rfc3339_to_us("2026-05-28T20:26:40.123456Z") == us
    assert rec.rfc3339_to_us("2026-05-28T22:26:40.123456+02:00") == us
    assert rec.us_to_rfc3339(1_780_000_000_000_000) == "2026-05-28T20:26:40Z"
    assert rec.us_to_ts(us) == Timestamp(seconds=1_780_000_000, nanos=123_456_000)
    assert rec.ts_to_us(Timestamp(seconds=1_780_000_000, nanos=123_456_999)) == us
    alert = demo_alert(expire_time=Timestamp(seconds=1_780_000_000, nanos=123_456_000))
    record = rec.alert_to_record(alert)
    assert record["expires_at"] == "2026-05-28T20:26:40.123456Z"
    assert rec.record_to_alert(record).expire_time == alert.expire_time
