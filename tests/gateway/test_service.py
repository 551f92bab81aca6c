"""The gateway over real gRPC with mTLS, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

from intelshare import errors
from intelshare.audit.heads import verify_inclusion, verify_tree_head
from intelshare.envelope import envelope_sha256, open_envelope
from intelshare.v1 import envelope_pb2, gateway_service_pb2
from tests.gateway.conftest import GatewayEnv
from tests.reflection_client import V1, V1ALPHA, ask, file_names


def entries_until(stream, count: int) -> list[gateway_service_pb2.InboxEntry]:  # type: ignore[no-untyped-def]
    got = []
    for msg in stream:
        if msg.HasField("entry"):
            got.append(msg.entry)
            if len(got) == count:
                break
    return got


def test_submit_deliver_open_acknowledge(gw: GatewayEnv) -> None:
    env = gw.seal("nl-customs", ["be-police", "de-customs"], payload=b"secret alert body")
    with gw.client("nl-customs") as nl:
        resp = nl.submit(env)
    assert not resp.duplicate
    receipt = resp.receipt
    assert receipt.envelope_sha256 == envelope_sha256(env.SerializeToString())
    # The receipt verifies offline against the gateway's key from the directory.
    directory = gw.directory()
    gw_key = directory.signing_key("gateway", receipt.tree_head.key_id, datetime.now(UTC))
    verify_tree_head(receipt.tree_head, gw_key)
    verify_inclusion(
        receipt.leaf, receipt.log_index, receipt.tree_head, list(receipt.inclusion_proof)
    )

    for agency in ("be-police", "de-customs"):
        with gw.client(agency) as c:
            (entry,) = entries_until(c.stream_inbox(0), 1)
            assert entry.sequence == 1
            assert entry.receipt.message_id == receipt.message_id
            keys = gw.fed.agencies[agency].keys
            opened = open_envelope(
                entry.envelope,
                directory,
                recipient=agency,
                encryption_key=keys.encryption,
                now=datetime.now(UTC),
            )
            assert opened.payload == b"secret alert body"
            assert c.acknowledge(entry.sequence) == 1
            # Acknowledging again is a no-op; resuming from the ack sees nothing new.
            assert c.acknowledge(entry.sequence) == 1
            stream = c.stream_inbox(1)
            first = next(iter(stream))
            assert first.HasField("heartbeat")
            assert first.heartbeat.head_sequence == 1
            with pytest.raises(errors.CursorExpired):
                next(iter(c.stream_inbox(0)))
    # The sender has nothing in its own inbox.
    with gw.client("nl-customs") as nl:
        first = next(iter(nl.stream_inbox(0)))
        assert first.HasField("heartbeat")


def test_resubmit_returns_first_receipt_and_delivers_once(gw: GatewayEnv) -> None:
    env = gw.seal("nl-customs", ["de-customs"], treaty="customs-mutual-assistance")
    with gw.client("nl-customs") as nl:
        first = nl.submit(env)
        again = nl.submit(env)
    assert again.duplicate
    assert not first.duplicate
    assert again.receipt == first.receipt
    second = gw.seal("nl-customs", ["de-customs"], treaty="customs-mutual-assistance")
    with gw.client("nl-customs") as nl:
        nl.submit(second)
    with gw.client("de-customs") as de:
        got = entries_until(de.stream_inbox(0), 2)
    assert [e.sequence for e in got] == [1, 2]
    assert [e.receipt.message_id for e in got] == [
        first.receipt.message_id,
        envelope_pb2.Header.FromString(second.header_bytes).message_id,
    ]


def test_replayed_message_id_with_other_content_refused(gw: GatewayEnv) -> None:
    env = gw.seal("nl-customs", ["de-customs"], treaty="customs-mutual-assistance")
    header = envelope_pb2.Header.FromString(env.header_bytes)
    with gw.client("nl-customs") as nl:
        nl.submit(env)
        from intelshare.envelope import HeaderFields, lookup_recipient_keys, seal

        fields = HeaderFields.from_header(header)
        keys = gw.fed.agencies["nl-customs"].keys
        other = seal(
            fields,
            b"different body",
            signing_key=keys.signing,
            signing_key_id=keys.signing_key_id,
            recipient_keys=lookup_recipient_keys(gw.directory(), ["de-customs"]),
        )
        with pytest.raises(errors.MessageIdReused):
            nl.submit(other)
    # Refused like any other refusal: in the audit log, with its reason.
    audit = gw.running.state.audit
    import json

    refusals = [json.loads(audit.leaf(i)) for i in range(audit.size())]
    assert [
        r["message_id"]
        for r in refusals
        if r["event"] == "refused" and r["reason"] == "MESSAGE_ID_REUSED"
    ] == [header.message_id]


def test_live_stream_wakes_on_submit(gw: GatewayEnv) -> None:
    got: list[gateway_service_pb2.InboxEntry] = []
    ready = threading.Event()

    def consume() -> None:
        with gw.client("be-police") as c:
            stream = c.stream_inbox(0)
            for msg in stream:
                ready.set()
                if msg.HasField("entry"):
                    got.append(msg.entry)
                    return

    t = threading.Thread(target=consume)
    t.start()
    ready.wait(5)  # first heartbeat: the stream is live
    with gw.client("nl-customs") as nl:
        nl.submit(gw.seal("nl-customs", ["be-police"]))
    t.join(10)
    assert len(got) == 1
    assert got[0].sequence == 1


# --- attacks and bad input, each refused with a precise reason -------------------


def _refused(gw: GatewayEnv, agency: str, env: envelope_pb2.Envelope) -> errors.IntelshareError:
    with gw.client(agency) as c, pytest.raises(errors.IntelshareError) as info:
        c.submit(env)
    return info.value


def test_sender_must_be_the_mtls_peer(gw: GatewayEnv) -> None:
    env = gw.seal("de-customs", ["nl-customs"], treaty="customs-mutual-assistance")
    err = _refused(gw, "nl-customs", env)  # nl's certificate, de's envelope
    assert err.reason == "SENDER_MISMATCH"


def test_forged_signature_refused(gw: GatewayEnv) -> None:
    # Claims nl-customs, signed with be-police's key under nl's key id.
    env = gw.seal("nl-customs", ["be-police"], keys_of="be-police")
    env.signing_key_id = gw.fed.agencies["nl-customs"].keys.signing_key_id
    err = _refused(gw, "nl-customs", env)
    assert err.reason == "SIGNATURE_INVALID"
    assert "be-police" not in err.message  # opaque to the caller


def test_recipient_outside_treaty_refused(gw: GatewayEnv) -> None:
    env = gw.seal("nl-customs", ["fr-customs"])
    assert _refused(gw, "nl-customs", env).reason == "NOT_A_PARTY"


def test_category_and_handling_above_treaty_refused(gw: GatewayEnv) -> None:
    env = gw.seal("nl-customs", ["be-police"], categories=("firearms",))
    assert _refused(gw, "nl-customs", env).reason == "CATEGORY_NOT_PERMITTED"
    env = gw.seal("nl-customs", ["be-police"], handling=envelope_pb2.HANDLING_CODE_H2)
    assert _refused(gw, "nl-customs", env).reason == "HANDLING_NOT_PERMITTED"
    env = gw.seal("nl-customs", ["be-police"], tlp=envelope_pb2.TLP_RED)
    assert _refused(gw, "nl-customs", env).reason == "HANDLING_NOT_PERMITTED"
    env = gw.seal("nl-customs", ["be-police"], kind=envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP)
    assert _refused(gw, "nl-customs", env).reason == "KIND_NOT_PERMITTED"


def test_unknown_treaty_refused(gw: GatewayEnv) -> None:
    env = gw.seal("nl-customs", ["be-police"], treaty="no-such-treaty")
    assert _refused(gw, "nl-customs", env).reason == "TREATY_NOT_IN_FORCE"


def test_treaty_missing_a_signature_is_not_published(
    make_gateway: Callable[..., GatewayEnv],
) -> None:
    from intelshare.devfed import sign_by_parties

    gw = make_gateway(publish_treaties=False)
    treaty = gw.fed.signed_treaty("counterfeit-medicines-taskforce").treaty
    partial = sign_by_parties(treaty, gw.fed.agencies, signers=["nl-customs", "de-customs"])
    with gw.client("nl-customs") as c:
        with pytest.raises(errors.TreatyNotInForce, match="be-police"):
            c.publish_treaty(partial.to_proto())
        assert c.list_treaties() == []
    env = gw.seal("nl-customs", ["be-police"])
    assert _refused(gw, "nl-customs", env).reason == "TREATY_NOT_IN_FORCE"


def test_expired_treaty_refused(make_gateway: Callable[..., GatewayEnv]) -> None:
    from intelshare.devfed import sign_by_parties
    from intelshare.treaty import Treaty

    gw = make_gateway()
    current = gw.fed.signed_treaty("customs-mutual-assistance").treaty
    mapping = current.to_mapping()
    mapping["version"] = 2
    today = datetime.now(UTC).date()
    mapping["valid"] = {
        "from": (today - timedelta(days=400)).isoformat(),
        "until": (today - timedelta(days=1)).isoformat(),
    }
    expired = sign_by_parties(Treaty.from_mapping(mapping), gw.fed.agencies)
    with gw.client("nl-customs") as c:
        resp = c.publish_treaty(expired.to_proto())
        assert not resp.in_force
    env = gw.seal("nl-customs", ["de-customs"], treaty="customs-mutual-assistance")
    env2 = envelope_pb2.Envelope()
    env2.CopyFrom(env)
    header = envelope_pb2.Header.FromString(env.header_bytes)
    assert header.treaty_version == 1
    # Version 1 is still in force; an envelope under the expired version 2 is refused.
    from intelshare.envelope import HeaderFields, lookup_recipient_keys, seal

    fields = HeaderFields.from_header(header)
    fields = HeaderFields(**{**fields.__dict__, "treaty_version": 2, "message_id": None})
    keys = gw.fed.agencies["nl-customs"].keys
    v2 = seal(
        fields,
        b"x",
        signing_key=keys.signing,
        signing_key_id=keys.signing_key_id,
        recipient_keys=lookup_recipient_keys(gw.directory(), ["de-customs"]),
    )
    assert _refused(gw, "nl-customs", v2).reason == "TREATY_NOT_IN_FORCE"


def test_revoked_agency_refused(gw: GatewayEnv) -> None:
    sealed_before = gw.seal("nl-customs", ["be-police"])
    gw.fed.federation.revoke("be-police")
    signed = gw.fed.federation.publish_directory()
    with gw.client("nl-customs") as c:
        assert c.publish_directory(signed) == 2
    assert _refused(gw, "nl-customs", sealed_before).reason == "AGENCY_NOT_ACTIVE"
    with gw.client("be-police") as c, pytest.raises(errors.IntelshareError) as info:
        next(iter(c.stream_inbox(0)))
    assert info.value.reason in ("AGENCY_NOT_ACTIVE", "AGENCY_UNKNOWN")


def test_older_directory_refused(gw: GatewayEnv) -> None:
    old = gw.fed.federation.publish_directory()
    gw.fed.federation.publish_directory()
    newer = gw.fed.federation.publish_directory()
    with gw.client("nl-customs") as c:
        assert c.publish_directory(newer) == newer_version(newer)
        with pytest.raises(errors.DirectoryInvalid):
            c.publish_directory(old)


def newer_version(signed) -> int:  # type: ignore[no-untyped-def]
    from intelshare.v1 import directory_pb2

    return directory_pb2.Directory.FromString(signed.directory_bytes).version


def test_clock_skew_and_expired_envelopes_refused(gw: GatewayEnv) -> None:
    skewed = gw.seal(
        "nl-customs", ["be-police"], create_time=datetime.now(UTC) + timedelta(hours=1)
    )
    assert _refused(gw, "nl-customs", skewed).reason == "CLOCK_SKEW"
    expired = gw.seal(
        "nl-customs",
        ["be-police"],
        create_time=datetime.now(UTC) - timedelta(seconds=60),
        expire_in=timedelta(seconds=30),
    )
    assert _refused(gw, "nl-customs", expired).reason == "EXPIRED"


def test_oversized_and_malformed_envelopes_refused(make_gateway: Callable[..., GatewayEnv]) -> None:
    gw = make_gateway(max_envelope_bytes=4096)
    big = gw.seal("nl-customs", ["be-police"], payload=b"x" * 8000)
    err = _refused(gw, "nl-customs", big)
    assert err.reason == "PAYLOAD_TOO_LARGE"
    assert err.grpc_code == "RESOURCE_EXHAUSTED"
    garbage = envelope_pb2.Envelope(header_bytes=b"\xff\xff\xff", ciphertext=b"junk")
    err = _refused(gw, "nl-customs", garbage)
    assert err.reason == "MALFORMED"
    # Nothing was queued by any refusal.
    with gw.client("be-police") as c:
        assert next(iter(c.stream_inbox(0))).HasField("heartbeat")


def test_clients_without_or_with_foreign_certificates_refused(
    gw: GatewayEnv,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    from intelshare import devfed
    from intelshare.gateway_client import GatewayClient
    from tests.gateway.conftest import AGENCIES

    with gw.client(None) as anon, pytest.raises(errors.IntelshareError) as info:
        anon.get_directory()
    assert info.value.grpc_code in ("UNAVAILABLE", "UNAUTHENTICATED")
    other = devfed.build(tmp_path / "other", AGENCIES[:1], federation_id="other-fed")
    a = other.agencies["nl-customs"]
    foreign = GatewayClient(
        gw.target, ca_pem=gw.fed.ca_file.read_bytes(), cert_pem=a.cert_pem, key_pem=a.key_pem
    )
    with foreign, pytest.raises(errors.IntelshareError) as info:
        foreign.get_directory()
    assert info.value.grpc_code == "UNAVAILABLE"


def test_refusals_and_deliveries_are_audited(gw: GatewayEnv) -> None:
    with gw.client("nl-customs") as c:
        c.submit(gw.seal("nl-customs", ["be-police"]))
        with pytest.raises(errors.IntelshareError):
            c.submit(gw.seal("nl-customs", ["be-police"], categories=("firearms",)))
    with gw.client("be-police") as c:
        (entry,) = entries_until(c.stream_inbox(0), 1)
        c.acknowledge(entry.sequence)
    audit = gw.running.state.audit
    events = []
    import json

    for i in range(audit.size()):
        doc = json.loads(audit.leaf(i))
        events.append((doc["event"], doc.get("reason")))
        assert "payload" not in doc
    names = [e for e, _ in events]
    assert "accepted" in names
    assert "delivered" in names
    assert "acknowledged" in names
    assert ("refused", "CATEGORY_NOT_PERMITTED") in events
    report = audit.verify(audit.public_key)
    assert report.tree_size == audit.size()


def test_list_treaties_pages(gw: GatewayEnv) -> None:
    with gw.client("nl-customs") as c:
        page1 = c.stub.ListTreaties(gateway_service_pb2.ListTreatiesRequest(page_size=1))
        assert len(page1.treaties) == 1
        assert page1.next_page_token
        page2 = c.stub.ListTreaties(
            gateway_service_pb2.ListTreatiesRequest(page_size=1, page_token=page1.next_page_token)
        )
        assert len(page2.treaties) == 1
        assert not page2.next_page_token
        ids = {page1.treaties[0].treaty.treaty_id, page2.treaties[0].treaty.treaty_id}
        assert ids == {"customs-mutual-assistance", "counterfeit-medicines-taskforce"}
        assert all(t.in_force for t in (*page1.treaties, *page2.treaties))
        with pytest.raises(grpc.RpcError) as info:
            c.stub.ListTreaties(gateway_service_pb2.ListTreatiesRequest(page_token="bogus"))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        got = c.get_treaty("customs-mutual-assistance")
        assert len(got.signatures) == 2


def test_gateway_picks_up_a_newer_directory_file(gw: GatewayEnv) -> None:
    """The operator publishes into the configured file; the gateway serves it."""
    import time

    assert gw.running.state.current_version() == 1
    gw.fed.federation.revoke("fr-customs")
    gw.fed.federation.publish_directory()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and gw.running.state.current_version() < 2:
        time.sleep(0.05)
    assert gw.running.state.current_version() == 2
    with gw.client("nl-customs") as c:
        assert newer_version(c.get_directory()) == 2


def test_plaintext_health_port_answers_probes(make_gateway: Callable[..., GatewayEnv]) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    gw = make_gateway(health_listen="127.0.0.1:0")
    port = gw.running.server.health_port
    assert port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        got = stub.Check(health_pb2.HealthCheckRequest(service="intelshare.v1.GatewayService"))
        assert got.status == health_pb2.HealthCheckResponse.SERVING
        # Only health is served there: the gateway API needs the mTLS port.
        from intelshare.v1 import gateway_service_pb2_grpc

        with pytest.raises(grpc.RpcError) as info:
            gateway_service_pb2_grpc.GatewayServiceStub(ch).GetDirectory(
                gateway_service_pb2.GetDirectoryRequest()
            )
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_cancelled_streams_give_their_threads_back(
    make_gateway: Callable[..., GatewayEnv],
) -> None:
    """A stream cancelled while it waits frees its worker thread at once.

    Four worker threads and a heartbeat of a minute: six streams opened and
    cancelled one after the other would leave every thread waiting out its
    heartbeat, and the next call would find none, unless the end of a call
    wakes its own wait.
    """
    gw = make_gateway(max_workers=4, heartbeat_seconds=60)
    with gw.client("nl-customs") as nl:
        nl.submit(gw.seal("nl-customs", ["be-police"]))
    with gw.client("be-police") as c:
        for _ in range(6):
            call = c.stub.StreamInbox(gateway_service_pb2.StreamInboxRequest(after_sequence=0))
            first = next(call)  # the handler runs on a worker thread now
            assert first.HasField("entry")
            call.cancel()
        again = c.stub.StreamInbox(
            gateway_service_pb2.StreamInboxRequest(after_sequence=0), timeout=10
        )
        assert next(again).entry.sequence == 1
        again.cancel()


def test_a_stream_reads_again_only_when_something_was_committed(gw: GatewayEnv) -> None:
    """After a short batch the stream waits for a commit's wake-up instead of
    reading the (empty) queue again: one read per submit, and nothing missed."""
    store = gw.running.state.store
    reads: list[int] = []
    read = store.read_inbox

    def counted(agency: str, after: int, limit: int, now_ms: int) -> Any:
        rows = read(agency, after, limit, now_ms)
        if agency == "be-police":
            reads.append(len(rows))
        return rows

    store.read_inbox = counted  # type: ignore[method-assign]
    with gw.client("nl-customs") as nl, gw.client("be-police") as be:
        nl.submit(gw.seal("nl-customs", ["be-police"]))
        stream = be.stream_inbox(0)
        got = []
        for msg in stream:
            if msg.HasField("entry"):
                got.append(msg.entry.sequence)
                if len(got) == 1:
                    nl.submit(gw.seal("nl-customs", ["be-police"]))
                if len(got) == 2:
                    break
        stream.close()
    assert got == [1, 2]
    assert reads[:2] == [1, 1]  # no empty read in between
    assert 0 not in reads[:2]


def test_a_prompt_acknowledgement_records_the_delivery_itself(
    gw: GatewayEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short batch's delivery record waits a moment; the recipient's
    acknowledgement comes first and writes the one ``delivered`` entry."""
    import json

    from gateway import state
    from tests.node.conftest import wait_for

    # Long enough that the acknowledgement below comes first on a loaded machine.
    monkeypatch.setattr(state, "DELIVERY_DELAY_SECONDS", 5.0)

    store = gw.running.state.store
    marked: list[list[int]] = []
    mark = store.mark_delivered

    def counted(agency: str, rows: Any, now_ms: int) -> list[int]:
        marked.append([r.sequence for r in rows])
        return mark(agency, rows, now_ms)

    store.mark_delivered = counted  # type: ignore[method-assign]
    with gw.client("nl-customs") as nl, gw.client("be-police") as be:
        nl.submit(gw.seal("nl-customs", ["be-police"]))
        stream = be.stream_inbox(0)
        (entry,) = entries_until(stream, 1)
        assert be.acknowledge(entry.sequence) == 1
        stream.close()
    # The channel is closed, so the stream ends; its record of what it sent is
    # written before the gateway forgets it. Nothing was left to record: the
    # acknowledgement did it.
    wait_for(lambda: gw.running.state.open_deliveries("be-police") == [], what="the stream ended")
    assert not marked

    def delivered() -> list[dict[str, Any]]:
        audit = store.audit
        leaves = [json.loads(audit.leaf(i)) for i in range(audit.size())]
        return [e for e in leaves if e["event"] == "delivered"]

    (only,) = wait_for(delivered, what="the delivered entry")
    assert only["sequence"] == 1
    assert only.get("via") == "acknowledgement"


def test_reflection_is_served_as_v1_and_v1alpha(gw: GatewayEnv) -> None:
    client = gw.client("be-police")
    try:
        names = {}
        for path in (V1, V1ALPHA):
            (answer,) = ask(
                client.channel, path, reflection_pb2.ServerReflectionRequest(list_services="")
            )
            names[path] = {s.name for s in answer.list_services_response.service}
        assert names[V1] == names[V1ALPHA]
        assert {"intelshare.v1.GatewayService", "grpc.reflection.v1.ServerReflection"} <= names[V1]
        (files,) = ask(
            client.channel,
            V1,
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="intelshare.v1.GatewayService"
            ),
        )
        assert file_names(files)[0] == "intelshare/v1/gateway_service.proto"
    finally:
        client.close()
