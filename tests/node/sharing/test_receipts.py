"""Receipts: owed with the alert, sealed one per issuer, and what the issuer accepts of one.

A recipient owes a receipt for every alert it stores, from the alert's own
transaction, and seals one ``RECEIPT`` naming every alert of one issuer,
treaty and marking owed by then; receipts owed survive a restart; the
issuer marks each alert named delivered. Receipts sealed by hand with the recipient's
real keys (so the gateway, which checks headers only, lets them through)
show what the issuer refuses: a malformed list, an alert shared under
another treaty, a receipt naming nothing it sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from intelshare import errors
from intelshare.v1 import alert_pb2, envelope_pb2, gateway_service_pb2
from node.sharing.receipts import receipt_payload
from node.storage import tables as t
from tests.node.conftest import CUSTOMS, TASKFORCE, Cluster, RunningNode, demo_alert, wait_for
from tests.node.sharing.test_inbound import audit_leaves, refusal, seal_as, submit

pytestmark = pytest.mark.slow

UNKNOWN = "01a00000-0000-7000-8000-000000000000"


def issue(nl: RunningNode, to: str = "be-police", treaty: str = TASKFORCE) -> str:
    """An alert from nl-customs to ``to``; the id of the view (= message) ``to`` receives."""
    with nl.client("liaison") as c:
        created = c.create_alert(
            demo_alert(recipients=[alert_pb2.AlertRecipient(agency_id=to, treaty_id=treaty)])
        )
    return str(created.deliveries[0].message_id)


def inbox(node: RunningNode, count: int) -> list[gateway_service_pb2.InboxEntry]:
    """The first ``count`` entries of ``node``'s queue at the gateway, read by hand."""
    entries: list[gateway_service_pb2.InboxEntry] = []
    stream = node.node.client.stream_inbox_batches(0)
    try:
        for items in stream:
            entries += [i.entry for i in items if i.WhichOneof("event") == "entry"]
            if len(entries) >= count:
                break
    finally:
        stream.close()
    return entries


def by_hand(cluster: Cluster, *, seal: bool = False) -> tuple[RunningNode, RunningNode]:
    """nl-customs, and be-police with its inbox driven by hand (and its receipts, ``seal``)."""
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    be.node.inbound.stop()
    if seal:
        be.node.sharing.receipts.stop()
    return nl, be


def outbox(node: RunningNode) -> list[Any]:
    with node.node.store.engine.connect() as conn:
        return list(conn.execute(select(t.outbound).order_by(t.outbound.c.id)).all())


def delivered(node: RunningNode) -> dict[str, bool]:
    """view id -> whether the issuer has it as delivered."""
    with node.node.store.engine.connect() as conn:
        rows = conn.execute(select(t.deliveries.c.view_id, t.deliveries.c.delivered_ms)).all()
    return {r.view_id: r.delivered_ms is not None for r in rows}


def receipt(
    sender: RunningNode, refs: list[str], *, header_ref: str | None = None, **over: Any
) -> Any:
    payload = receipt_payload([(r, bytes(32)) for r in refs])
    return seal_as(
        sender,
        payload,
        to="nl-customs",
        kind=envelope_pb2.MESSAGE_KIND_RECEIPT,
        reference_id=refs[0] if header_ref is None else header_ref,
        categories=(),
        **over,
    )


def test_a_batch_of_alerts_is_answered_by_one_receipt(cluster: Cluster) -> None:
    nl, be = by_hand(cluster)  # one batch of three
    views = [issue(nl) for _ in range(3)]
    entries = inbox(be, 3)  # waits for the three (nl-customs submits them in the background)
    assert be.node.inbound.handle_batch(entries) == ["stored"] * 3

    sent = wait_for(lambda: outbox(be), what="the receipt sealed")
    assert [r.kind for r in sent] == [envelope_pb2.MESSAGE_KIND_RECEIPT]
    assert json.loads(sent[0].recipients) == ["nl-customs"]
    assert [e["reference_id"] for e in json.loads(sent[0].payload)["receipts"]] == views

    # The issuer marks every one of them delivered, with an event each.
    wait_for(lambda: all(delivered(nl)[v] for v in views), what="all three delivered")
    with nl.node.store.engine.connect() as conn:
        events = conn.execute(
            select(t.events.c.alert_id).where(t.events.c.type == "alert.delivered")
        ).all()
    assert sorted(e.alert_id for e in events) == sorted(views)
    with nl.client("liaison") as c:
        for v in views:
            status = c.get_alert(v).deliveries[0].state
            assert status == alert_pb2.DELIVERY_STATE_DELIVERED


def test_receipts_owed_by_several_transactions_go_as_one(cluster: Cluster) -> None:
    nl, be = by_hand(cluster, seal=True)
    receipts = be.node.sharing.receipts
    views = [issue(nl) for _ in range(3)]
    entries = inbox(be, 3)
    assert be.node.inbound.handle_batch(entries[:1]) == ["stored"]
    assert be.node.inbound.handle_batch(entries[1:]) == ["stored", "stored"]
    assert receipts.due_count() == 3
    assert outbox(be) == []
    assert receipts.flush() == 1
    assert receipts.due_count() == 0
    assert receipts.flush() == 0  # nothing owed twice
    (row,) = outbox(be)
    assert [e["reference_id"] for e in json.loads(row.payload)["receipts"]] == views
    sealed = [e for e in audit_leaves(be, "sealed") if e["kind"] == "receipt"]
    assert [e["message_id"] for e in sealed] == [row.message_id]


def test_a_small_payload_limit_splits_receipts_to_fit(cluster: Cluster) -> None:
    nl, be = by_hand(cluster, seal=True)
    receipts = be.node.sharing.receipts
    views = [issue(nl) for _ in range(3)]
    assert be.node.inbound.handle_batch(inbox(be, 3)) == ["stored"] * 3
    be.node.sealer.max_payload = 32 + 2 * 180  # room for two alerts a receipt
    assert receipts.flush() == 2
    rows = outbox(be)
    assert [len(json.loads(r.payload)["receipts"]) for r in rows] == [2, 1]
    assert all(len(r.payload) <= be.node.sealer.max_payload for r in rows)
    named = [e["reference_id"] for r in rows for e in json.loads(r.payload)["receipts"]]
    assert named == views
    wait_for(lambda: all(delivered(nl)[v] for v in views), what="all three delivered")


def test_without_a_directory_receipts_stay_owed(cluster: Cluster) -> None:
    nl, be = by_hand(cluster, seal=True)
    receipts = be.node.sharing.receipts
    view = issue(nl)
    assert be.node.inbound.handle_batch(inbox(be, 1)) == ["stored"]
    be.node.trust._directory = None  # e.g. expired and not refreshable: our side
    with pytest.raises(errors.DirectoryInvalid):
        receipts.flush()
    assert receipts.due_count() == 1  # rolled back, still owed
    assert outbox(be) == []
    be.node.refresh_trust()
    assert receipts.flush() == 1
    wait_for(lambda: delivered(nl)[view], what="delivered once the directory is back")


def test_receipts_owed_at_a_stop_are_sent_after_the_restart(cluster: Cluster) -> None:
    nl, be = by_hand(cluster, seal=True)  # the node goes down before it seals them
    views = [issue(nl) for _ in range(2)]
    assert be.node.inbound.handle_batch(inbox(be, 2)) == ["stored", "stored"]
    db = be.node.config.database_url
    be.node.stop(grace=0.2)
    assert not any(delivered(nl).values())
    again = cluster.start_node("be-police", db=db)
    wait_for(lambda: all(delivered(nl)[v] for v in views), what="both delivered after restart")
    assert again.node.sharing.receipts.due_count() == 0
    assert [r.kind for r in outbox(again)] == [envelope_pb2.MESSAGE_KIND_RECEIPT]


def test_the_issuer_refuses_receipts_it_cannot_believe(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    de = cluster.start_node("de-customs")
    be.node.inbound.stop()  # the real receipts never come: these are hand-made
    de.node.inbound.stop()
    to_be = issue(nl)
    to_de = issue(nl, to="de-customs", treaty=CUSTOMS)

    twice = receipt(be, [to_be, to_be])
    not_first = receipt(be, [to_be, UNKNOWN], header_ref=UNKNOWN)
    nothing_sent = receipt(be, [UNKNOWN])
    # de-customs got to_de under the customs treaty, and claims it under the task force's
    other_treaty = receipt(de, [to_de])
    for who, sealed in ((be, twice), (be, not_first), (be, nothing_sent), (de, other_treaty)):
        submit(who, sealed)
    assert refusal(nl, twice.message_id)["reason"] == "MALFORMED"
    assert refusal(nl, not_first.message_id)["reason"] == "MALFORMED"
    assert refusal(nl, nothing_sent.message_id)["reason"] == "REFERENCE_UNKNOWN"
    assert refusal(nl, other_treaty.message_id)["reason"] == "REFERENCE_MISMATCH"
    assert delivered(nl) == {to_be: False, to_de: False}

    # A receipt naming one alert sent to be-police and one never sent: the
    # real one is marked, the other ignored.
    partly = receipt(be, [to_be, UNKNOWN])
    submit(be, partly)
    wait_for(lambda: delivered(nl)[to_be], what="the real alert delivered")
    assert delivered(nl) == {to_be: True, to_de: False}
    stored = [e["message_id"] for e in audit_leaves(nl, "received")]
    assert partly.message_id in stored
    assert all(e.get("message_id") != partly.message_id for e in audit_leaves(nl, "refused"))


def test_a_receipt_of_one_alert_in_the_earlier_form_is_read(cluster: Cluster) -> None:
    """``{"envelope_sha256": ...}`` with the alert in the header, as receipts were first sent."""
    nl, be = by_hand(cluster)
    view = issue(nl)
    old = seal_as(
        be,
        {"envelope_sha256": "00" * 32},
        to="nl-customs",
        kind=envelope_pb2.MESSAGE_KIND_RECEIPT,
        reference_id=view,
        categories=(),
    )
    submit(be, old)
    wait_for(lambda: delivered(nl)[view], what="delivered by the one-alert receipt")
