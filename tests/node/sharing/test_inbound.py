"""The receiving side: refusals are audited and skipped, duplicates stored once,
nothing acknowledged before it is durable, retention purges with an audit entry.

Envelopes that a correct node would never send are sealed here by hand with
the sender's real keys, so the gateway (which checks headers only) lets them
through and the receiving node is the one that must refuse them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from intelshare import errors
from intelshare.audit.tables import audit_entries
from intelshare.v1 import alert_pb2, envelope_pb2, gateway_service_pb2, receipt_pb2
from node.sharing.inbound_checks import _OurSide
from node.sharing.sealing import Sealed
from node.storage import tables as t
from tests.node.conftest import TASKFORCE, Cluster, RunningNode, demo_alert, wait_for

pytestmark = pytest.mark.slow


def seal_as(
    node: RunningNode,
    payload: dict[str, Any] | bytes,
    *,
    to: str = "be-police",
    kind: int = envelope_pb2.MESSAGE_KIND_ALERT,
    reference_id: str = "",
    categories: tuple[str, ...] = ("counterfeit_goods",),
) -> Sealed:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return node.node.sealer.seal(
        kind=kind,  # type: ignore[arg-type]
        recipients=[to],
        treaty_id=TASKFORCE,
        treaty_version=1,
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        categories=categories,
        expire_ms=int((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1000),
        payload=data,
        reference_id=reference_id,
    )


def submit(node: RunningNode, sealed: Sealed) -> None:
    node.node.client.submit(envelope_pb2.Envelope.FromString(sealed.envelope))


def audit_leaves(node: RunningNode, event: str) -> list[dict[str, Any]]:
    return leaves_in(node.node.store.engine, event)


def leaves_in(engine: Any, event: str) -> list[dict[str, Any]]:
    """The ``event`` entries of the audit log in ``engine``'s database, in order."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_entries.c.leaf)
            .where(audit_entries.c.event == event)
            .order_by(audit_entries.c.idx)
        ).all()
    return [json.loads(bytes(r.leaf)) for r in rows]


def count(node: RunningNode, table: Any) -> int:
    with node.node.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def count_where(node: RunningNode, table: Any, condition: Any) -> int:
    with node.node.store.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one()
        )


def receipt_stored(issuer: RunningNode) -> bool:
    """Every delivery of the issuer's alerts is confirmed by a stored receipt."""
    with issuer.node.store.engine.connect() as conn:
        marks = [r.delivered_ms for r in conn.execute(select(t.deliveries.c.delivered_ms))]
    return bool(marks) and all(m is not None for m in marks)


def refusal(node: RunningNode, message_id: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: next(
            (e for e in audit_leaves(node, "refused") if e.get("message_id") == message_id), None
        ),
        what=f"refusal of {message_id}",
    )
    return found


def test_refusals_are_audited_acknowledged_and_do_not_block(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    # A record with a field the task-force treaty does not allow (passport number).
    leaky = seal_as(
        nl,
        {
            "kind": "counterfeit_goods",
            "description": "leaky",
            "subjects": {"persons": [{"name": "Jan Jansen", "passport_number": "NX1234567"}]},
        },
    )
    garbage = seal_as(nl, b"\xff not json")
    wrong_shape = seal_as(nl, {"kind": "counterfeit_goods", "subjects": {"persons": "Jan"}})
    orphan_update = seal_as(
        nl,
        {"description": "update of nothing"},
        kind=envelope_pb2.MESSAGE_KIND_ALERT_UPDATE,
        reference_id="01a00000-0000-7000-8000-000000000000",
    )
    orphan_ack = seal_as(
        be,
        {},
        to="nl-customs",
        kind=envelope_pb2.MESSAGE_KIND_ACKNOWLEDGEMENT,
        reference_id="01a00000-0000-7000-8000-000000000000",
        categories=(),
    )
    for sealed in (leaky, garbage, wrong_shape, orphan_update):
        submit(nl, sealed)
    submit(be, orphan_ack)
    assert refusal(be, leaky.message_id)["reason"] == "FIELD_NOT_PERMITTED"
    assert "subjects.persons.passport_number" in refusal(be, leaky.message_id)["detail"]
    assert refusal(be, garbage.message_id)["reason"] == "MALFORMED"
    assert refusal(be, wrong_shape.message_id)["reason"] == "MALFORMED"
    assert refusal(be, orphan_update.message_id)["reason"] == "REFERENCE_UNKNOWN"
    assert refusal(nl, orphan_ack.message_id)["reason"] == "REFERENCE_UNKNOWN"
    # Nothing of them was stored ...
    assert count(be, t.alerts) == 0
    assert count(be, t.received) == 0
    assert count(be, t.events) == 0
    # ... yet the queue moved on: a good alert behind them arrives.
    to_be = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(recipients=to_be, description="good one"))
    with be.client("analyst") as c:
        got = wait_for(lambda: c.list_all(), what="the good alert")
        assert [a.description for a in got] == ["good one"]
    wait_for(lambda: be.node.inbound.cursor() >= 5, what="cursor past the refusals")


def _entry(sealed: Sealed, sequence: int) -> gateway_service_pb2.InboxEntry:
    return gateway_service_pb2.InboxEntry(
        sequence=sequence,
        envelope=envelope_pb2.Envelope.FromString(sealed.envelope),
        receipt=receipt_pb2.Receipt(message_id=sealed.message_id),
    )


def test_duplicates_are_stored_once_and_bad_envelopes_refused(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    be.node.inbound.stop()  # drive the inbox by hand
    be.node.sharing.receipts.stop()  # and its receipts
    record = {"kind": "counterfeit_goods", "description": "by hand"}
    sealed = seal_as(nl, record)
    inbound = be.node.inbound
    assert inbound.handle_entry(_entry(sealed, 1)) == "stored"
    assert inbound.handle_entry(_entry(sealed, 2)) == "duplicate"
    assert inbound.cursor() == 2
    assert count(be, t.alerts) == 1
    assert count(be, t.received) == 1
    with be.node.store.engine.connect() as conn:
        assert [r.type for r in conn.execute(select(t.events))] == ["alert.received"]
        stored = conn.execute(select(t.received)).one()
    assert bytes(stored.envelope) == sealed.envelope  # verbatim, as evidence
    assert stored.sequence == 1
    # The receipt for the issuer is owed from the same transaction, once.
    assert be.node.sharing.receipts.due_count() == 1
    assert be.node.sharing.receipts.flush() == 1
    with be.node.store.engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(select(t.outbound))]
    assert kinds == [envelope_pb2.MESSAGE_KIND_RECEIPT]
    # A flipped bit anywhere: refused with the precise reason in the audit log only.
    tampered = bytearray(seal_as(nl, record).envelope)
    tampered[-5] ^= 1
    entry = gateway_service_pb2.InboxEntry(
        sequence=3, envelope=envelope_pb2.Envelope.FromString(bytes(tampered))
    )
    assert inbound.handle_entry(entry) == "refused"
    last = audit_leaves(be, "refused")[-1]
    assert last["reason"] == "ENVELOPE_INVALID"
    assert last["detail"]  # the precise cause, for the audit log
    assert inbound.cursor() == 3
    # Not for us: sealed to de-customs only.
    cluster.start_node("de-customs")
    other = seal_as(nl, record, to="de-customs")
    assert inbound.handle_entry(_entry(other, 4)) == "refused"
    assert count(be, t.alerts) == 1


def test_no_directory_means_no_acknowledgement(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    be.node.inbound.stop()
    sealed = seal_as(nl, {"description": "wait for me"})
    be.node.trust._directory = None  # e.g. expired and not refreshable
    with pytest.raises(_OurSide):
        be.node.inbound.handle_entry(_entry(sealed, 1))
    assert be.node.inbound.cursor() == 0
    assert count(be, t.received) == 0
    with pytest.raises(errors.DirectoryInvalid):
        be.node.trust.directory  # noqa: B018  (the property raises)
    # Sealing fails closed too: nothing is issued without a directory.
    with be.client("admin") as c, pytest.raises(errors.DirectoryInvalid):
        c.create_alert(
            demo_alert(
                recipients=[alert_pb2.AlertRecipient(agency_id="nl-customs", treaty_id=TASKFORCE)]
            )
        )
    be.node.refresh_trust()
    assert be.node.inbound.handle_entry(_entry(sealed, 1)) == "stored"


def test_retention_purges_received_records_with_an_audit_entry(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    to_be = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(recipients=to_be))
    with be.client("analyst") as c:
        alert = wait_for(lambda: c.list_all(), what="alert at be")[0]
        c.report_hit(
            alert.name,
            found_time=alert.create_time,
            place="Antwerp",
            found="container",
        )
        retain = alert.received.retain_until.ToDatetime(tzinfo=UTC)
        assert timedelta(days=364) < retain - datetime.now(UTC) <= timedelta(days=365)
    wait_for(lambda: count(nl, t.hits) == 1, what="hit at nl")
    # And be's receipt for the alert (sealed a moment after the alert was
    # stored), so that nothing reaches nl after its retention is moved below.
    # The hit alone marks the delivery done, so wait for the receipt itself.
    wait_for(lambda: receipt_stored(nl), what="delivery marked at nl")
    wait_for(
        lambda: (
            count_where(nl, t.received, t.received.c.kind == envelope_pb2.MESSAGE_KIND_RECEIPT) == 1
        ),
        what="be's receipt stored at nl",
    )
    # Time passes: the treaty's 365 days are over.
    for node in (be, nl):
        with node.node.store.engine.begin() as conn:
            conn.execute(
                update(t.alerts).where(t.alerts.c.direction == "received").values(retain_until_ms=1)
            )
            conn.execute(update(t.received).values(retain_until_ms=1))
            conn.execute(
                update(t.hits).where(t.hits.c.direction == "received").values(retain_until_ms=1)
            )
    # The maintenance thread purges too (every 0.5 s here); whichever runs first does it.
    be.node.alerts.purge_retention()
    with be.client("analyst") as c:
        assert c.list_all() == []
        with pytest.raises(errors.NotFound):
            c.get_alert(alert.name)
    assert count(be, t.received) == 0
    purged = audit_leaves(be, "purged")
    assert any(p.get("alert_id") == alert.name.removeprefix("alerts/") for p in purged)
    with be.node.store.engine.connect() as conn:
        assert "alert.purged" in [r.type for r in conn.execute(select(t.events))]
    # At the issuer, received control messages and hit details go; its own alert stays.
    nl.node.alerts.purge_retention()
    assert count(nl, t.hits) == 0
    assert count(nl, t.received) == 0
    assert count(nl, t.alerts) == 1


def test_a_record_reserved_for_review_is_refused_even_under_another_category(
    cluster: Cluster,
) -> None:
    """A rogue sender skips the review its treaty requires and hides the kind.

    The task-force treaty reserves ``wanted_person`` for review. The header
    says ``counterfeit_goods`` (which the gateway lets through: it cannot see
    the record), but the record is a wanted-person alert: the receiving node
    refuses it with REVIEW_REQUIRED and stores nothing.
    """
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    hidden = seal_as(nl, {"kind": "wanted_person", "description": "not reviewed"})
    submit(nl, hidden)
    assert refusal(be, hidden.message_id)["reason"] == "REVIEW_REQUIRED"
    assert count(be, t.alerts) == 0
    assert count(be, t.received) == 0


def test_a_record_that_contradicts_its_signed_header_is_refused(cluster: Cluster) -> None:
    """Issue 23, item 2: the category, handling and TLP a treaty was checked with must hold."""
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    # A firearms alert declared as counterfeit goods: the treaty permits the header,
    # the gateway lets it through, be-police refuses it and stores nothing.
    hidden = seal_as(nl, {"kind": "firearms", "description": "pistols in the spare tyre"})
    # A record claiming a laxer marking than the header it travels under.
    laxer = seal_as(nl, {"kind": "counterfeit_goods", "description": "x", "tlp": "CLEAR"})
    for sealed in (hidden, laxer):
        submit(nl, sealed)
    assert refusal(be, hidden.message_id)["reason"] == "CATEGORY_NOT_PERMITTED"
    assert refusal(be, laxer.message_id)["reason"] == "HANDLING_NOT_PERMITTED"
    assert count(be, t.alerts) == 0
    # The sending node never seals the first: a kind's own category is always declared.
    with nl.client("liaison") as c, pytest.raises(errors.CategoryNotPermitted):
        c.create_alert(
            demo_alert(
                kind=alert_pb2.ALERT_KIND_FIREARMS,
                categories=["counterfeit_goods"],
                recipients=[alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)],
            )
        )
    assert count(nl, t.alerts) == 0
