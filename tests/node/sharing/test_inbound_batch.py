"""Inbox entries in batches: one transaction for what has arrived, per-entry outcomes kept.

A bad entry in a batch (refused by a handler, not opening, a message stored
before) costs the good ones around it nothing; a problem on our side stores
what came before it and nothing after; the stream hands over what has
arrived without waiting for more; acknowledgements are coalesced.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from intelshare.v1 import envelope_pb2, gateway_service_pb2
from node.sharing.inbound import _Acker
from node.sharing.inbound_checks import _OurSide
from node.storage import tables as t
from tests.node.conftest import TASKFORCE, Cluster, wait_for
from tests.node.sharing.test_inbound import _entry, audit_leaves, count, seal_as, submit

pytestmark = pytest.mark.slow

GOOD = {"kind": "counterfeit_goods", "description": "good"}
LEAKY = {
    "kind": "counterfeit_goods",
    "description": "leaky",
    "subjects": {"persons": [{"name": "Jan Jansen", "passport_number": "NX1234567"}]},
}


def test_a_batch_keeps_the_outcome_of_every_entry(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    be.node.inbound.stop()  # drive the inbox by hand
    be.node.sharing.receipts.stop()  # and its receipts
    inbound = be.node.inbound
    first = seal_as(nl, {**GOOD, "description": "first"})
    leaky = seal_as(nl, LEAKY)
    second = seal_as(nl, {**GOOD, "description": "second"})
    tampered = bytearray(seal_as(nl, GOOD).envelope)
    tampered[-5] ^= 1
    third = seal_as(nl, {**GOOD, "description": "third"})
    batch = [
        _entry(first, 1),
        _entry(leaky, 2),  # the handler refuses it: the batch goes one by one
        _entry(second, 3),
        gateway_service_pb2.InboxEntry(
            sequence=4, envelope=envelope_pb2.Envelope.FromString(bytes(tampered))
        ),
        _entry(third, 5),
        _entry(first, 6),  # the same message again, in the same batch
    ]
    assert inbound.handle_batch(batch) == [
        "stored",
        "refused",
        "stored",
        "refused",
        "stored",
        "duplicate",
    ]
    assert inbound.cursor() == 6
    assert count(be, t.received) == 3
    assert count(be, t.alerts) == 3
    reasons = {e["gateway_sequence"]: e["reason"] for e in audit_leaves(be, "refused")}
    assert reasons == {2: "FIELD_NOT_PERMITTED", 4: "ENVELOPE_INVALID"}
    assert [e["gateway_sequence"] for e in audit_leaves(be, "received")] == [1, 3, 5]
    with be.node.store.engine.connect() as conn:
        sequences = sorted(r.sequence for r in conn.execute(select(t.received.c.sequence)))
        events = [r.type for r in conn.execute(select(t.events.c.type))]
    assert sequences == [1, 3, 5]
    assert events == ["alert.received"] * 3

    # A clean batch: one transaction; one receipt owed for each alert of the
    # two batches, sealed as one naming all five.
    fourth = seal_as(nl, {**GOOD, "description": "fourth"})
    fifth = seal_as(nl, {**GOOD, "description": "fifth"})
    assert inbound.handle_batch([_entry(fourth, 7), _entry(fifth, 8)]) == ["stored", "stored"]
    assert inbound.cursor() == 8
    assert be.node.sharing.receipts.due_count() == 5
    assert be.node.sharing.receipts.flush() == 1
    with be.node.store.engine.connect() as conn:
        rows = conn.execute(select(t.outbound).order_by(t.outbound.c.id)).all()
        received = dict(
            conn.execute(select(t.received.c.message_id, t.received.c.envelope_sha256)).all()
        )
    (row,) = rows
    assert row.kind == envelope_pb2.MESSAGE_KIND_RECEIPT
    order = [first, second, third, fourth, fifth]
    assert row.reference_id == first.message_id
    assert json.loads(row.payload) == {
        "receipts": [
            {"reference_id": s.message_id, "envelope_sha256": bytes(received[s.message_id]).hex()}
            for s in order
        ]
    }

    # Messages stored before, redelivered under new sequence numbers, with a
    # new one between them: stored once, the new one stored, the cursor moves.
    sixth = seal_as(nl, {**GOOD, "description": "sixth"})
    assert inbound.handle_batch([_entry(third, 9), _entry(sixth, 10), _entry(fifth, 11)]) == [
        "duplicate",
        "stored",
        "duplicate",
    ]
    assert inbound.cursor() == 11
    assert count(be, t.received) == 6
    assert count(be, t.alerts) == 6


def test_an_alert_and_its_update_and_revocation_in_one_batch(cluster: Cluster) -> None:
    """The alert's row is written at the end of the batch transaction.

    An update and a revocation arriving in the same batch find it all the
    same (the batch goes one by one), and both apply.
    """
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    be.node.inbound.stop()
    inbound = be.node.inbound
    alert = seal_as(nl, {**GOOD, "description": "first version"})
    changed = seal_as(
        nl,
        {**GOOD, "description": "second version"},
        kind=envelope_pb2.MESSAGE_KIND_ALERT_UPDATE,
        reference_id=alert.message_id,
    )
    revoked = seal_as(
        nl, {}, kind=envelope_pb2.MESSAGE_KIND_ALERT_REVOCATION, reference_id=alert.message_id
    )
    assert inbound.handle_batch([_entry(alert, 1), _entry(changed, 2), _entry(revoked, 3)]) == [
        "stored",
        "stored",
        "stored",
    ]
    assert inbound.cursor() == 3
    assert audit_leaves(be, "refused") == []
    with be.node.store.engine.connect() as conn:
        row = conn.execute(select(t.alerts).where(t.alerts.c.alert_id == alert.message_id)).one()
        received = sorted(r.sequence for r in conn.execute(select(t.received.c.sequence)))
        events = [r.type for r in conn.execute(select(t.events.c.type).order_by(t.events.c.seq))]
    assert '"second version"' in row.record
    assert (row.state, row.revision) == ("revoked", 2)
    assert received == [1, 2, 3]
    assert events == ["alert.received", "alert.updated", "alert.revoked"]


def test_our_side_stores_what_came_before_and_nothing_after(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    be.node.inbound.stop()
    inbound = be.node.inbound
    before = seal_as(nl, {**GOOD, "description": "before"})
    unknown = nl.node.sealer.seal(
        kind=envelope_pb2.MESSAGE_KIND_ALERT,
        recipients=["be-police"],
        treaty_id=TASKFORCE,
        treaty_version=99,  # a version this node does not know; no client to ask
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        categories=["counterfeit_goods"],
        expire_ms=before.expire_ms,
        payload=before.payload,
    )
    after = seal_as(nl, {**GOOD, "description": "after"})
    with pytest.raises(_OurSide):
        inbound.handle_batch([_entry(before, 1), _entry(unknown, 2), _entry(after, 3)])
    assert inbound.cursor() == 1
    assert count(be, t.received) == 1
    assert audit_leaves(be, "refused") == []


def test_the_stream_hands_over_what_has_arrived(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    be.node.inbound.stop()
    sent = [seal_as(nl, {**GOOD, "description": f"n{i}"}) for i in range(7)]
    for sealed in sent:
        submit(nl, sealed)
    client = be.node.gateway_client()
    batches: list[list[int]] = []
    try:
        stream = client.stream_inbox_batches(0, max_batch=3)
        for items in stream:
            batches.append([i.entry.sequence for i in items if i.WhichOneof("event") == "entry"])
            if sum(len(b) for b in batches) == len(sent):
                break
        stream.close()
        # Everything in order, no batch over the limit, nothing waited for company.
        assert [s for b in batches for s in b] == list(range(1, 8))
        assert all(1 <= len(b) <= 3 for b in batches)
        # A lone entry arriving later comes at once, alone.
        stream = client.stream_inbox_batches(7, max_batch=3)
        got: list[list[int]] = []

        def follow() -> None:
            for items in stream:
                entries = [i.entry.sequence for i in items if i.WhichOneof("event") == "entry"]
                if entries:
                    got.append(entries)
                    return

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        time.sleep(0.3)
        submit(nl, seal_as(nl, {**GOOD, "description": "late"}))
        reader.join(10)
        assert got == [[8]]
        stream.close()
    finally:
        client.close()


def test_the_running_inbox_acknowledges_what_it_stored(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    for i in range(5):
        submit(nl, seal_as(nl, {**GOOD, "description": f"n{i}"}))
    wait_for(lambda: be.node.inbound.cursor() == 5, what="five entries stored")
    store = cluster.gateway.state.store
    wait_for(lambda: store.position("be-police")[1] == 5, what="acknowledged at the gateway")
    assert count(be, t.received) == 5


class _Recorder:
    def __init__(self, fail_first: bool = False) -> None:
        self.calls: list[int] = []
        self.fail_first = fail_first

    def acknowledge(self, sequence: int, request_id: str | None = None) -> int:
        from intelshare import errors

        self.calls.append(sequence)
        if self.fail_first and len(self.calls) == 1:
            raise errors.Unavailable("gateway away")
        return sequence


def test_acknowledgements_are_coalesced_and_retried() -> None:
    recorder = _Recorder()
    acker = _Acker(recorder, 0.2)  # type: ignore[arg-type]
    try:
        acker.note(1)
        wait_for(lambda: recorder.calls == [1], timeout=5, what="the first at once")
        for seq in range(2, 50):
            acker.note(seq)
        wait_for(lambda: recorder.calls[-1:] == [49], timeout=5, what="the newest position")
        assert len(recorder.calls) <= 3
        acker.note(10)  # never backwards
        time.sleep(0.3)
        assert recorder.calls[-1] == 49
    finally:
        acker.close()
    failing = _Recorder(fail_first=True)
    acker = _Acker(failing, 0.05)  # type: ignore[arg-type]
    try:
        acker.note(3)
        wait_for(lambda: failing.calls == [3, 3], timeout=5, what="a retry after a failure")
    finally:
        acker.close()


def test_an_unknown_key_refreshes_the_directory_once_and_opens_with_it(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender enrolled after our directory was fetched: refresh, then open again."""
    from intelshare import errors

    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    be.node.inbound.stop()
    inbound = be.node.inbound
    real_open = inbound._open_once
    used: list[object] = []

    def open_once(data: bytes, now: Any, directory: Any) -> Any:
        used.append(directory)
        if len(used) == 1:
            raise errors.EnvelopeInvalid("cannot open", audit_detail="unknown signing key (test)")
        return real_open(data, now, directory)

    refreshed: list[object] = []
    real_refresh = be.node.trust.refresh_directory

    def refresh(client: Any) -> Any:
        refreshed.append(client)
        return real_refresh(client)

    monkeypatch.setattr(inbound, "_open_once", open_once)
    monkeypatch.setattr(be.node.trust, "refresh_directory", refresh)
    client = be.node.gateway_client()
    try:
        sealed = seal_as(nl, GOOD)
        assert inbound.handle_batch([_entry(sealed, 1)], client) == ["stored"]
        assert refreshed == [client]
        assert len(used) == 2
        assert used[1] is be.node.trust.directory
        # Rate-limited: a second unknown key within 30 s is refused, not refreshed.
        used.clear()
        assert inbound.handle_batch([_entry(seal_as(nl, GOOD), 2)], client) == ["refused"]
        assert refreshed == [client]
        assert audit_leaves(be, "refused")[-1]["reason"] == "ENVELOPE_INVALID"
    finally:
        client.close()


def test_a_cursor_behind_the_released_position_moves_on_with_an_audit_entry(
    cluster: Cluster,
) -> None:
    from node.sharing.inbound import Inbound

    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    old = be.node.inbound
    old.stop()
    for i in range(3):
        submit(nl, seal_as(nl, {**GOOD, "description": f"lost {i}"}))
    with be.node.gateway_client() as client:
        assert client.acknowledge(3) == 3  # released at the gateway, never stored here
    fresh = Inbound(
        agency_id=old.agency_id,
        keys=old.keys,
        store=old.store,
        trust=old.trust,
        client_factory=old.client_factory,
        max_backoff=0.5,
        max_payload_bytes=old.max_payload_bytes,
    )
    fresh.handlers = dict(old.handlers)
    fresh.start()
    try:
        wait_for(lambda: fresh.cursor() == 3, what="the cursor moved to the released position")
        expired = audit_leaves(be, "cursor_expired")
        assert [(e["cursor"], e["gateway_acknowledged"]) for e in expired] == [(0, 3)]
        submit(nl, seal_as(nl, {**GOOD, "description": "after"}))
        wait_for(lambda: fresh.cursor() == 4, what="the next entry stored")
        assert count(be, t.received) == 1
    finally:
        fresh.stop()
