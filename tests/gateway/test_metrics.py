"""The gateway's /metrics endpoint after real gRPC traffic (mTLS), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable

from intelshare import errors
from intelshare.v1 import gateway_service_pb2
from tests.gateway.conftest import GatewayEnv
from tests.intelshare.test_metrics import Scrape
from tests.node.conftest import wait_for


def _metrics(make_gateway: Callable[..., GatewayEnv]) -> tuple[GatewayEnv, Callable[[], Scrape]]:
    gw = make_gateway(metrics_listen="127.0.0.1:0", metrics_refresh_seconds=0)
    server = gw.running.metrics
    assert server is not None
    return gw, lambda: Scrape(server.url)


def test_submissions_counted_by_outcome_reason_and_agency(
    make_gateway: Callable[..., GatewayEnv],
) -> None:
    gw, scrape = _metrics(make_gateway)
    before = scrape()
    assert before.value("intelshare_gateway_envelopes_accepted_total", sender="nl-customs") == 0
    env = gw.seal("nl-customs", ["be-police"])
    with gw.client("nl-customs") as nl:
        assert not nl.submit(env).duplicate
        assert nl.submit(env).duplicate  # idempotent retry
        for bad in (
            gw.seal("nl-customs", ["be-police"], categories=("firearms",)),
            gw.seal("nl-customs", ["be-police"], categories=("firearms",)),
            gw.seal("de-customs", ["nl-customs"], treaty="customs-mutual-assistance"),
        ):
            try:
                nl.submit(bad)
            except errors.IntelshareError:
                pass
            else:
                raise AssertionError("the gateway accepted a bad envelope")
    after = scrape()
    assert after.value("intelshare_gateway_envelopes_accepted_total", sender="nl-customs") == 1
    assert after.value("intelshare_gateway_envelopes_duplicate_total") == 1
    refused = after.series("intelshare_gateway_envelopes_refused_total")
    assert refused == {
        frozenset({("reason", "CATEGORY_NOT_PERMITTED"), ("peer", "nl-customs")}): 2,
        frozenset({("reason", "SENDER_MISMATCH"), ("peer", "nl-customs")}): 1,
    }
    assert after.value("intelshare_gateway_submit_seconds_count") == 5
    assert after.value("intelshare_gateway_submit_seconds_sum") > 0
    # labels hold agency ids and reasons only: nothing from the envelope itself
    assert env.ciphertext.hex()[:32] not in after.text
    assert env.header_bytes.hex()[:32] not in after.text


def test_inbox_depth_streams_and_delivery_lag(make_gateway: Callable[..., GatewayEnv]) -> None:
    gw, scrape = _metrics(make_gateway)
    with gw.client("nl-customs") as nl:
        nl.submit(gw.seal("nl-customs", ["be-police", "de-customs"]))
        nl.submit(gw.seal("nl-customs", ["be-police"]))
    queued = scrape()
    depth = "intelshare_gateway_inbox_depth"
    undelivered = "intelshare_gateway_inbox_undelivered"
    assert queued.value(depth, agency="be-police") == 2
    assert queued.value(depth, agency="de-customs") == 1
    assert queued.value(undelivered, agency="be-police") == 2
    # agencies of the directory with nothing queued read 0 rather than vanish
    assert queued.get(depth, agency="fr-customs") == 0
    assert queued.get(depth, agency="gateway") is None
    assert queued.value("intelshare_gateway_delivery_lag_seconds_count", recipient="be-police") == 0

    got: list[gateway_service_pb2.InboxEntry] = []
    done = threading.Event()
    release = threading.Event()

    def stream() -> None:
        with gw.client("be-police") as be:
            for msg in be.stream_inbox(0):
                if msg.HasField("entry"):
                    got.append(msg.entry)
                if len(got) == 2:
                    done.set()
                    release.wait(20)
                    return

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    try:
        assert done.wait(20)
        # The lag is observed once gRPC has sent an entry, which may be just
        # after the client has it in hand; the delivery is recorded in the
        # database up to DELIVERY_DELAY_SECONDS later (this client never
        # acknowledges, which would record it sooner).
        lag = "intelshare_gateway_delivery_lag_seconds"
        wait_for(
            lambda: scrape().value(f"{lag}_count", recipient="be-police") == 2,
            10,
            "both entries observed as sent",
        )
        wait_for(
            lambda: scrape().value(undelivered, agency="be-police") == 0,
            10,
            "both entries to be recorded as delivered",
        )
        open_ = scrape()
        assert open_.value("intelshare_gateway_inbox_streams", agency="be-police") == 1
        assert open_.value(undelivered, agency="be-police") == 0
        assert open_.value(depth, agency="be-police") == 2  # delivered, not yet acknowledged
        assert open_.value(f"{lag}_count", recipient="be-police") == 2
        assert open_.value(f"{lag}_bucket", recipient="be-police", le="+Inf") == 2
        assert open_.value(f"{lag}_count", recipient="de-customs") == 0
    finally:
        release.set()
        thread.join(10)
    wait_for(
        lambda: scrape().value("intelshare_gateway_inbox_streams", agency="be-police") == 0,
        10,
        "the closed stream to leave the gauge",
    )
    with gw.client("be-police") as be:
        assert be.acknowledge(got[-1].sequence) == 2
    drained = scrape()
    assert drained.value(depth, agency="be-police") == 0
    assert drained.value(depth, agency="de-customs") == 1  # de-customs never fetched


def test_replicas_count_their_own_calls_and_share_the_depth(
    make_gateway: Callable[..., GatewayEnv],
) -> None:
    """Two gateways on one database in one process: separate registries, no collision."""
    first, scrape_first = _metrics(make_gateway)
    second, scrape_second = _metrics(lambda **kw: make_gateway(publish_treaties=False, **kw))
    with first.client("nl-customs") as nl:
        nl.submit(first.seal("nl-customs", ["be-police"]))
    with second.client("nl-customs") as nl:
        nl.submit(second.seal("nl-customs", ["be-police"]))
        nl.submit(second.seal("nl-customs", ["be-police"]))
    a, b = scrape_first(), scrape_second()
    accepted = "intelshare_gateway_envelopes_accepted_total"
    assert a.value(accepted, sender="nl-customs") == 1
    assert b.value(accepted, sender="nl-customs") == 2
    depth = "intelshare_gateway_inbox_depth"
    assert a.value(depth, agency="be-police") == b.value(depth, agency="be-police") == 3


def test_no_metrics_listen_no_endpoint(make_gateway: Callable[..., GatewayEnv]) -> None:
    gw = make_gateway(publish_treaties=False)
    assert gw.running.metrics is None
