"""Attacks on the gateway by a federation member (issues 22 and 23), each
through a real gateway server on 127.0.0.1:0 with real certificates.

A rogue agency holds a valid certificate and its own keys; what it must not
be able to do is stall the gateway for the others, get a record the treaty
reserves for review past it, store an envelope for millennia, crash a
handler with out-of-range numbers, or get a refusal without a reason.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.capacity import AUX_STREAM_THREADS
from intelshare import devfed, errors
from intelshare.grpc_errors import from_rpc_error
from intelshare.treaty import Treaty
from intelshare.v1 import envelope_pb2, gateway_service_pb2, gateway_service_pb2_grpc
from tests.gateway.conftest import GatewayEnv, demo_treaties

TASKFORCE = "counterfeit-medicines-taskforce"
CUSTOMS = "customs-mutual-assistance"


def audit_events(gw: GatewayEnv) -> list[dict[str, Any]]:
    audit = gw.running.state.audit
    return [json.loads(audit.leaf(i)) for i in range(audit.size())]


def refused(gw: GatewayEnv, agency: str, env: envelope_pb2.Envelope) -> errors.IntelshareError:
    with gw.client(agency) as c, pytest.raises(errors.IntelshareError) as info:
        c.submit(env)
    return info.value


def inbox_is_empty(gw: GatewayEnv, agency: str) -> bool:
    with gw.client(agency) as c:
        return next(iter(c.stream_inbox(0))).HasField("heartbeat")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def channel(
    gw: GatewayEnv, agency: str, options: list[tuple[str, int]] | None = None
) -> grpc.Channel:
    a = gw.fed.agencies[agency]
    creds = grpc.ssl_channel_credentials(
        root_certificates=gw.fed.ca_file.read_bytes(),
        private_key=a.key_pem,
        certificate_chain=a.cert_pem,
    )
    return grpc.secure_channel(gw.target, creds, options=options or [])


class StreamWatcher:
    """Reads inbox streams on threads of its own and remembers how each ended."""

    def __init__(self) -> None:
        self.ended: dict[int, str] = {}
        self.first: dict[int, float] = {}
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def watch(self, number: int, call: Any) -> None:
        def read() -> None:
            outcome = "OK"
            try:
                for _ in call:
                    with self._lock:
                        self.first.setdefault(number, time.monotonic())
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.CANCELLED:
                    outcome = "CANCELLED"
                else:
                    exc = from_rpc_error(err)
                    outcome = f"{err.code().name}/{exc.reason}"
            with self._lock:
                self.ended[number] = outcome

        t = threading.Thread(target=read, daemon=True)
        t.start()
        self.threads.append(t)

    def outcomes(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for outcome in self.ended.values():
                counts[outcome] = counts.get(outcome, 0) + 1
            return counts


def submit_latencies(gw: GatewayEnv, agency: str, n: int) -> list[float]:
    """Seconds per SubmitEnvelope of ``agency`` (to nl-customs, customs treaty)."""
    out = []
    with gw.client(agency) as c:
        c.timeout = 10
        for _ in range(n):
            env = gw.seal(agency, ["nl-customs"], treaty=CUSTOMS)
            t0 = time.monotonic()
            c.submit(env)
            out.append(time.monotonic() - t0)
    return out


# --- one agency must not stall the gateway (issue 23, item 1) ------------------------------


def test_one_agencys_streams_do_not_stall_other_agencies_submissions(
    make_gateway: Callable[..., GatewayEnv],
) -> None:
    """The issue's attack: 200 StreamInbox calls with one agency's certificate.

    They held all 64 worker threads and every other call timed out for 20 s.
    Now streams run on a pool of their own and an agency holds at most
    ``max_inbox_streams_per_agency`` of them: each new one replaces the
    oldest, which ends RESOURCE_EXHAUSTED / STREAM_REPLACED (or is refused
    TOO_MANY_STREAMS while the agency's replaced ones are still ending), and
    de-customs' submissions answer promptly during and after the flood.
    """
    gw = make_gateway(heartbeat_seconds=0.5)
    limit = gw.config.max_inbox_streams_per_agency
    baseline = submit_latencies(gw, "de-customs", 10)
    watcher = StreamWatcher()
    channels = [channel(gw, "be-police") for _ in range(4)]
    calls: list[Any] = []
    flood_done = threading.Event()

    def flood() -> None:
        for i in range(200):
            stub = gateway_service_pb2_grpc.GatewayServiceStub(channels[i % len(channels)])
            call = stub.StreamInbox(gateway_service_pb2.StreamInboxRequest(after_sequence=0))
            calls.append(call)
            watcher.watch(i, call)
        flood_done.set()

    flooder = threading.Thread(target=flood, daemon=True)
    try:
        flooder.start()
        during = submit_latencies(gw, "de-customs", 20)
        assert flood_done.wait(30)
        streams = gw.running.state.streams
        # Every stream beyond the limit ended, with a reason.
        assert wait_for(lambda: len(watcher.ended) >= 200 - limit, timeout=20), watcher.outcomes()
        assert wait_for(lambda: streams.count("be-police") == limit)
        outcomes = watcher.outcomes()
        assert set(outcomes) <= {
            "RESOURCE_EXHAUSTED/STREAM_REPLACED",
            "RESOURCE_EXHAUSTED/TOO_MANY_STREAMS",
        }, outcomes
        assert sum(outcomes.values()) == 200 - limit
        after = submit_latencies(gw, "de-customs", 20)
        # The streams that remain are served: heartbeats keep coming.
        live = [i for i in range(200) if i not in watcher.ended]
        assert len(live) == limit
        assert wait_for(lambda: all(i in watcher.first for i in live), timeout=5)
        print(
            f"\nsubmit latency (s), de-customs: before p50 {statistics.median(baseline):.4f} "
            f"max {max(baseline):.4f}; during 200 be-police streams p50 "
            f"{statistics.median(during):.4f} max {max(during):.4f}; after p50 "
            f"{statistics.median(after):.4f} max {max(after):.4f}; stream outcomes {outcomes}"
        )
        assert max(during) < 2.0
        assert max(after) < 1.0
        # Metrics say what happened.
        limited = gw.running.state.metrics.streams_limited
        replaced = limited.labels(reason="STREAM_REPLACED", agency="be-police")._value.get()
        assert replaced >= 1
    finally:
        for call in calls:
            call.cancel()
        for ch in channels:
            ch.close()


def test_a_reconnecting_node_replaces_its_stale_stream(
    make_gateway: Callable[..., GatewayEnv],
) -> None:
    gw = make_gateway(max_inbox_streams_per_agency=1, heartbeat_seconds=0.5)
    with gw.client("nl-customs") as nl:
        nl.submit(gw.seal("nl-customs", ["be-police"]))
    with gw.client("be-police") as be:
        stale = be.stub.StreamInbox(gateway_service_pb2.StreamInboxRequest(after_sequence=0))
        assert next(stale).entry.sequence == 1
        fresh = be.stub.StreamInbox(gateway_service_pb2.StreamInboxRequest(after_sequence=0))
        assert next(fresh).entry.sequence == 1
        with pytest.raises(grpc.RpcError) as info:
            for _ in stale:
                pass
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        exc = from_rpc_error(info.value)
        assert isinstance(exc, errors.StreamReplaced)
        assert exc.metadata == {"limit": "1"}
        # The new stream carries on: a new entry arrives on it.
        with gw.client("nl-customs") as nl:
            nl.submit(gw.seal("nl-customs", ["be-police"]))
        got = next(m for m in fresh if m.HasField("entry"))
        assert got.entry.sequence == 2
        fresh.cancel()
    # The gateway notices the cancellation on its own time (slowly on a
    # loaded machine); until then a new stream of be-police would find one
    # still ending and be refused (TOO_MANY_STREAMS, scope agency).
    assert wait_for(lambda: gw.running.state.streams.count("be-police") == 0)
    # A refused stream (bad cursor) does not replace the good one.
    with gw.client("be-police") as be:
        good = be.stub.StreamInbox(gateway_service_pb2.StreamInboxRequest(after_sequence=0))
        next(good)
        with pytest.raises(errors.CursorAhead):
            next(iter(be.stream_inbox(99)))
        assert gw.running.state.streams.count("be-police") == 1
        assert next(good).HasField("entry")
        good.cancel()


def test_streams_beyond_the_gateway_limit_are_refused(
    make_gateway: Callable[..., GatewayEnv],
) -> None:
    gw = make_gateway(max_inbox_streams=2, max_inbox_streams_per_agency=1, heartbeat_seconds=0.5)
    opened = []
    calls: list[Any] = []
    try:
        for agency in ("be-police", "de-customs"):
            c = gw.client(agency)
            opened.append(c)
            call = c.stub.StreamInbox(gateway_service_pb2.StreamInboxRequest(after_sequence=0))
            calls.append(call)  # held: a call no longer referenced is cancelled
            next(call)  # a heartbeat: the stream is open
        with gw.client("fr-customs") as fr, pytest.raises(errors.TooManyStreams) as info:
            next(iter(fr.stream_inbox(0)))
        assert info.value.grpc_code == "RESOURCE_EXHAUSTED"
        assert info.value.metadata == {"scope": "gateway", "limit": "2"}
        # An agency that holds one may still reconnect while the gateway is full.
        with gw.client("be-police") as be:
            assert next(iter(be.stream_inbox(0))).HasField("heartbeat")
        # Unary calls are never counted against the streams.
        assert max(submit_latencies(gw, "de-customs", 5)) < 1.0
    finally:
        for c in opened:
            c.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_replaced_stream_that_does_not_read_is_cancelled(
    make_gateway: Callable[..., GatewayEnv], caplog: pytest.LogCaptureFixture
) -> None:
    """A stream blocked in a send (its client reads nothing) never sees the
    wake-up; it is cancelled a second later and its thread comes back."""
    gw = make_gateway(max_inbox_streams_per_agency=1, heartbeat_seconds=0.5)
    with gw.client("nl-customs") as nl:
        for _ in range(12):
            nl.submit(gw.seal("nl-customs", ["be-police"], payload=b"x" * 100_000))
    streams = gw.running.state.streams
    # No window growth on the stuck client's connection: 64 KiB unread and
    # the server's send blocks.
    slow = channel(gw, "be-police", [("grpc.http2.bdp_probe", 0)])
    try:
        stuck = gateway_service_pb2_grpc.GatewayServiceStub(slow).StreamInbox(
            gateway_service_pb2.StreamInboxRequest(after_sequence=0)
        )
        assert next(stuck).entry.sequence == 1  # and then it reads no more
        time.sleep(0.5)  # the server fills the flow-control window and blocks
        with (
            caplog.at_level(logging.WARNING, logger="gateway.capacity"),
            gw.client("be-police") as be,
        ):
            fresh = be.stub.StreamInbox(gateway_service_pb2.StreamInboxRequest(after_sequence=0))
            t0 = time.monotonic()
            assert [next(fresh).entry.sequence for _ in range(12)] == list(range(1, 13))
            assert wait_for(lambda: streams.count("be-police") == 1, timeout=5)
            took = time.monotonic() - t0
            fresh.cancel()
        assert "did not end; cancelling it" in caplog.text
        assert took < 4
        with pytest.raises(grpc.RpcError) as info:
            for _ in stuck:
                pass
        assert info.value.code() == grpc.StatusCode.CANCELLED
    finally:
        slow.close()


def test_health_watches_and_reflection_streams_take_no_unary_thread(
    make_gateway: Callable[..., GatewayEnv],
) -> None:
    """Health.Watch and reflection streams stay open as long as their client
    likes; 40 of them must not hold the four unary threads."""
    gw = make_gateway(max_workers=4)
    ch = channel(gw, "be-police")
    calls: list[Any] = []
    never_ending = threading.Event()

    def requests() -> Iterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        never_ending.wait()

    try:
        health = health_pb2_grpc.HealthStub(ch)
        reflect = reflection_pb2_grpc.ServerReflectionStub(ch)
        for _ in range(20):
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            calls.append(watch)
            info = reflect.ServerReflectionInfo(requests())
            calls.append(info)
        # They fill their own small pool (the rest wait there), not the unary one.
        assert wait_for(
            lambda: (
                sum(t.name.startswith("grpc-aux") for t in threading.enumerate())
                == AUX_STREAM_THREADS
            )
        )
        latencies = submit_latencies(gw, "de-customs", 10)
        assert max(latencies) < 1.0
        # The unary health check answers too.
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
    finally:
        never_ending.set()
        for call in calls:
            call.cancel()
        ch.close()


# --- smaller holes (issue 23, item 5) ------------------------------------------------------


def test_treaty_version_zero_is_refused(gw: GatewayEnv) -> None:
    """Version 0 used to be read as "the newest" and receipted, while the
    receiving node refuses it: the gateway refuses it too."""
    env = gw.seal("nl-customs", ["be-police"], treaty_version=0)
    err = refused(gw, "nl-customs", env)
    assert isinstance(err, errors.TreatyNotInForce)
    assert err.metadata["treaty_version"] == "0"
    assert inbox_is_empty(gw, "be-police")
    (refusal,) = [e for e in audit_events(gw) if e["event"] == "refused"]
    assert refusal["reason"] == "TREATY_NOT_IN_FORCE"


def test_envelope_expiry_is_capped(make_gateway: Callable[..., GatewayEnv]) -> None:
    gw = make_gateway()
    assert gw.config.max_expiry_days == 366
    with gw.client("nl-customs") as nl:
        nl.submit(gw.seal("nl-customs", ["be-police"], expire_in=timedelta(days=366)))
    for days in (367, 7000 * 365):
        err = refused(
            gw, "nl-customs", gw.seal("nl-customs", ["be-police"], expire_in=timedelta(days=days))
        )
        assert isinstance(err, errors.ExpiryTooFar)
        assert err.grpc_code == "INVALID_ARGUMENT"
        assert err.metadata == {"max_expiry_days": "366"}
    # Beyond what a datetime holds (a hand-made header, never signed): a
    # reason, not INTERNAL; the clock is checked before the expiry.
    now = datetime.now(UTC)
    header = envelope_pb2.Header(sender="nl-customs", message_id="m-far", recipients=["be-police"])
    header.create_time.FromDatetime(now)
    header.expire_time.seconds = 10**12
    far = envelope_pb2.Envelope(header_bytes=header.SerializeToString(), ciphertext=b"x")
    assert refused(gw, "nl-customs", far).reason == "EXPIRY_TOO_FAR"
    header.create_time.seconds = 10**12
    assert (
        refused(
            gw,
            "nl-customs",
            envelope_pb2.Envelope(header_bytes=header.SerializeToString(), ciphertext=b"x"),
        ).reason
        == "CLOCK_SKEW"
    )
    # The cap is a setting.
    short = make_gateway(max_expiry_days=30)
    err = refused(
        short, "nl-customs", short.seal("nl-customs", ["be-police"], expire_in=timedelta(days=31))
    )
    assert err.metadata == {"max_expiry_days": "30"}


def test_sequences_no_queue_can_hold_are_invalid_arguments(gw: GatewayEnv) -> None:
    """Acknowledging 2^63 was INTERNAL (SQLite overflow) and a cursor of
    2^64 - 1 failed inside the audit layer: both are SEQUENCE_OUT_OF_RANGE,
    a cursor inside the range but beyond the queue CURSOR_AHEAD, each audited."""
    with gw.client("nl-customs") as nl:
        nl.submit(gw.seal("nl-customs", ["be-police"]))
    with gw.client("be-police") as be:
        for value in (2**63, 2**64 - 1):
            with pytest.raises(errors.SequenceOutOfRange) as info:
                be.acknowledge(value)
            assert info.value.grpc_code == "INVALID_ARGUMENT"
            assert info.value.violations == {"sequence": f"must be at most {2**63 - 1}"}
            with pytest.raises(errors.SequenceOutOfRange) as info:
                next(iter(be.stream_inbox(value)))
            assert "after_sequence" in info.value.violations
        with pytest.raises(errors.CursorAhead):
            be.acknowledge(2**63 - 1)
        with pytest.raises(errors.CursorAhead):
            next(iter(be.stream_inbox(2**63 - 1)))
        # Nothing was released, and the queue still serves.
        entry = next(m for m in be.stream_inbox(0) if m.HasField("entry")).entry
        assert entry.sequence == 1
        assert be.acknowledge(1) == 1
    events = audit_events(gw)
    out_of_range = [e for e in events if e["event"] == "sequence_out_of_range"]
    assert [(e["agency"], e["field"], e["value"]) for e in out_of_range] == [
        ("be-police", "sequence", str(2**63)),
        ("be-police", "after_sequence", str(2**63)),
        ("be-police", "sequence", str(2**64 - 1)),
        ("be-police", "after_sequence", str(2**64 - 1)),
    ]
    ahead = [e for e in events if e["event"] == "cursor_ahead"]
    assert [e["cursor"] for e in ahead] == [2**63 - 1, 2**63 - 1]


# --- the review rule (issue 22, item 1) ----------------------------------------------------


def publish_reviewed_taskforce(gw: GatewayEnv, review: list[str]) -> None:
    """Version 2 of the task force, with ``review_required_for`` as the demo has it."""
    mapping = next(t for t in demo_treaties() if t["id"] == TASKFORCE)
    mapping.update(version=2, review_required_for=review)
    mapping["kinds"] = [*mapping["kinds"], "case_membership"]
    treaty = Treaty.from_mapping(mapping)
    doc = devfed.sign_by_parties(treaty, gw.fed.agencies)
    with gw.client("nl-customs") as nl:
        assert nl.publish_treaty(doc.to_proto()).in_force


def test_a_kind_the_treaty_reserves_for_review_is_refused(gw: GatewayEnv) -> None:
    """The demo task force says ``review_required_for: [wanted_person]``: an
    alert of kind WANTED_PERSON, whose header carries the kind's category,
    is REVIEW_REQUIRED at the gateway, even though the treaty does not list
    wanted_person among its categories and even beside a permitted one."""
    publish_reviewed_taskforce(gw, ["wanted_person", "case_entry"])
    for categories in (("wanted_person",), ("counterfeit_goods", "wanted_person")):
        env = gw.seal("nl-customs", ["be-police"], treaty_version=2, categories=categories)
        err = refused(gw, "nl-customs", env)
        assert isinstance(err, errors.ReviewRequired), err
        assert err.grpc_code == "FAILED_PRECONDITION"
        assert err.metadata == {
            "treaty_id": TASKFORCE,
            "treaty_version": "2",
            "rule": "review_required_for",
            "matched": "wanted_person",
        }
    # A rule naming a message kind.
    entry = gw.seal(
        "nl-customs",
        ["be-police"],
        treaty_version=2,
        kind=envelope_pb2.MESSAGE_KIND_CASE_ENTRY,
        categories=("narcotics",),
    )
    err = refused(gw, "nl-customs", entry)
    assert err.reason == "REVIEW_REQUIRED"
    assert err.metadata["matched"] == "case_entry"
    assert inbox_is_empty(gw, "be-police")
    reasons = [e["reason"] for e in audit_events(gw) if e["event"] == "refused"]
    assert reasons == ["REVIEW_REQUIRED"] * 3
    # What the rule does not name passes: another category, a control message.
    with gw.client("nl-customs") as nl:
        nl.submit(gw.seal("nl-customs", ["be-police"], treaty_version=2))
        nl.submit(
            gw.seal(
                "nl-customs",
                ["be-police"],
                treaty_version=2,
                kind=envelope_pb2.MESSAGE_KIND_ALERT_REVOCATION,
                categories=(),
            )
        )
    # More fundamental refusals come first: a treaty party check before review.
    err = refused(
        gw,
        "nl-customs",
        gw.seal("nl-customs", ["fr-customs"], treaty_version=2, categories=("wanted_person",)),
    )
    assert err.reason in ("NOT_A_PARTY", "AGENCY_UNKNOWN")


# --- oversized requests get a reason (issue 22, item 3) -------------------------------------


def big_client(gw: GatewayEnv, agency: str):  # type: ignore[no-untyped-def]
    from intelshare.gateway_client import GatewayClient

    a = gw.fed.agencies[agency]
    return GatewayClient(
        gw.target,
        ca_pem=gw.fed.ca_file.read_bytes(),
        cert_pem=a.cert_pem,
        key_pem=a.key_pem,
        max_message_bytes=32 * 1024 * 1024,
    )


def test_oversized_requests_get_payload_too_large_with_a_reason(gw: GatewayEnv) -> None:
    """A 5 MiB request used to get the runtime's bare RESOURCE_EXHAUSTED."""
    limit = gw.config.max_envelope_bytes + 64 * 1024
    header = envelope_pb2.Header.FromString(gw.seal("nl-customs", ["be-police"]).header_bytes)
    with big_client(gw, "nl-customs") as c:
        for size in (5 * 1024 * 1024, gw.config.max_envelope_bytes + 1000):
            env = envelope_pb2.Envelope(
                header_bytes=header.SerializeToString(), ciphertext=b"x" * size
            )
            with pytest.raises(errors.PayloadTooLarge) as info:
                c.submit(env)
            assert info.value.grpc_code == "RESOURCE_EXHAUSTED"
        # The handler's check names the limit (the 5 MiB request was never parsed).
        env = envelope_pb2.Envelope(ciphertext=b"x" * (5 * 1024 * 1024))
        with pytest.raises(errors.PayloadTooLarge) as info:
            c.submit(env)
        assert info.value.metadata["limit_bytes"] == str(limit)
        # Every method, not only submissions.
        from intelshare.v1 import treaty_pb2

        with pytest.raises(errors.PayloadTooLarge):
            c.publish_treaty(treaty_pb2.SignedTreaty(document=b"x" * (5 * 1024 * 1024)))
        # Above max_request_bytes the runtime refuses before any handler runs:
        # the documented edge, where no reason can be given.
        huge = envelope_pb2.Envelope(ciphertext=b"x" * (gw.config.max_request_bytes + 1))
        with pytest.raises(errors.IntelshareError) as bare:
            c.submit(huge)
        assert bare.value.grpc_code == "RESOURCE_EXHAUSTED"
        assert bare.value.reason == "INTERNAL"  # no ErrorInfo
    # Still serving, and nothing was queued.
    assert inbox_is_empty(gw, "be-police")
