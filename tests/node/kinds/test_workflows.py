"""Treaty workflows through a real gateway and real nodes (SQLite and PostgreSQL):
review before release (four eyes), onward sharing with the originator's
consent, recall of forwarded copies — and the attacks on each, refused with
their reason at the sending node, at the gateway and at the receiving node.

The treaties are the demo's two, with the task force permitting the
``wanted_person`` category (so a reviewed wanted-person alert can pass),
and a bilateral treaty between de-customs and be-police for onward sharing
whose allow-list names ``subjects.persons.role``, which the customs treaty
does not allow.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intelshare import devfed, errors
from intelshare.v1 import alert_pb2, alert_service_pb2, envelope_pb2, gateway_service_pb2
from node.cli.workflow_client import WorkflowClient
from node.sharing.sealing import Sealed
from node.storage import tables as t
from node.storage.officers import OfficerRegistry
from tests.node.conftest import (
    AGENCIES,
    CUSTOMS,
    TASKFORCE,
    Cluster,
    RunningNode,
    demo_alert,
    treaties,
    wait_for,
)
from tests.node.sharing.test_inbound import audit_leaves, leaves_in

BILATERAL = "de-be-bilateral"

BILATERAL_YAML = {
    "id": BILATERAL,
    "version": 1,
    "title": "Bilateral exchange between German customs and Belgian police",
    "parties": ["de-customs", "be-police"],
    "kinds": ["alert", "alert_update"],
    "categories": ["counterfeit_goods", "narcotics", "wanted_person"],
    "max_handling": {"code": "H2", "tlp": "AMBER"},
    "fields": {
        "alert": [
            "kind",
            "urgency",
            "description",
            "subjects.persons.name",
            "subjects.persons.role",
            "subjects.containers",
            "handling",
            "tlp",
            "expires_at",
        ]
    },
    "retention_days": 30,
    "purpose": "onward sharing tests",
    "onward_sharing": "forbidden",
}


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    data = treaties()
    for treaty in data:
        # A wanted-person alert is always of the wanted_person category (its kind
        # implies it), so both treaties it goes out under must permit it.
        if treaty["id"] in (TASKFORCE, CUSTOMS):
            treaty["categories"] = [*treaty["categories"], "wanted_person"]
    bilateral = dict(BILATERAL_YAML)
    bilateral["valid"] = dict(data[0]["valid"])
    return devfed.build(tmp_path / "fed", AGENCIES, [*data, bilateral])


def workflow(node: RunningNode, role: str = "admin") -> WorkflowClient:
    if role not in node.tokens:
        node.tokens[role] = OfficerRegistry(node.node.store.engine).add(
            f"{role}-{uuid.uuid4().hex[:6]}", role
        )[1]
    return WorkflowClient(
        node.target, ca_pem=node.ca_pem, server_name=node.agency, token=node.tokens[role]
    )


def wanted_alert(*recipients: tuple[str, str], **over: Any) -> alert_pb2.Alert:
    over.setdefault(
        "description", "Director of the consignee, sought for trafficking counterfeit medicines"
    )
    return demo_alert(
        kind=alert_pb2.ALERT_KIND_WANTED_PERSON,
        recipients=[alert_pb2.AlertRecipient(agency_id=a, treaty_id=tr) for a, tr in recipients],
        **over,
    )


def received(node: RunningNode, role: str = "analyst") -> list[alert_pb2.Alert]:
    with node.client(role) as c:
        return [a for a in c.list_all() if a.direction == alert_pb2.ALERT_DIRECTION_RECEIVED]


def header_of(node: RunningNode, message_id: str) -> envelope_pb2.Header:
    with node.node.store.engine.connect() as conn:
        data = conn.execute(
            select(t.received.c.envelope).where(t.received.c.message_id == message_id)
        ).scalar_one()
    return envelope_pb2.Header.FromString(
        envelope_pb2.Envelope.FromString(bytes(data)).header_bytes
    )


def seal(node: RunningNode, payload: dict[str, Any], **kw: Any) -> Sealed:
    """An envelope sealed by hand with ``node``'s keys (what a rogue node can do)."""
    args: dict[str, Any] = {
        "kind": envelope_pb2.MESSAGE_KIND_ALERT,
        "recipients": ["be-police"],
        "treaty_id": TASKFORCE,
        "treaty_version": 1,
        "handling": envelope_pb2.HANDLING_CODE_H1,
        "tlp": envelope_pb2.TLP_AMBER,
        "categories": ["wanted_person"],
        "expire_ms": int((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1000),
    }
    args.update(kw)
    return node.node.sealer.seal(payload=json.dumps(payload).encode(), **args)


def gateway_refuses(node: RunningNode, sealed: Sealed) -> errors.IntelshareError:
    with pytest.raises(errors.IntelshareError) as info:
        node.node.client.submit(envelope_pb2.Envelope.FromString(sealed.envelope))
    return info.value


def inbox(node: RunningNode, sealed: Sealed, sequence: int) -> str:
    """Hand an envelope to ``node``'s inbox directly (as if the gateway had let it through)."""
    return node.node.inbound.handle_entry(
        gateway_service_pb2.InboxEntry(
            sequence=sequence, envelope=envelope_pb2.Envelope.FromString(sealed.envelope)
        ),
        node.node.client,  # to fetch a treaty it has not seen yet, as the inbox does
    )


def last_refusal(node: RunningNode) -> dict[str, Any]:
    return audit_leaves(node, "refused")[-1]


def attestation(author: str, approver: str, at: datetime, digest: bytes = b"\x01" * 32) -> Any:
    review = envelope_pb2.ReviewAttestation(author=author, approver=approver, payload_sha256=digest)
    review.approve_time.FromDatetime(at)
    return review


WANTED = {"kind": "wanted_person", "description": "by hand"}


# --- review before release -----------------------------------------------------------


def test_an_alert_a_treaty_reserves_waits_for_an_approver_who_is_not_its_author(
    cluster: Cluster,
) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    de = cluster.start_node("de-customs")
    with workflow(nl, "liaison") as liaison:
        alert = liaison.create_alert(
            wanted_alert(
                ("be-police", TASKFORCE), ("de-customs", CUSTOMS), categories=["counterfeit_goods"]
            )
        )
        # The customs treaty reserves nothing: de-customs has it at once; the
        # task force holds it for review.
        assert alert.state == alert_pb2.ALERT_STATE_ACTIVE
        assert [d.agency_id for d in alert.deliveries] == ["de-customs"]
        held = liaison.create_alert(
            wanted_alert(("be-police", TASKFORCE), ("de-customs", TASKFORCE))
        )
        assert held.state == alert_pb2.ALERT_STATE_PENDING_REVIEW
        assert list(held.deliveries) == []
        with pytest.raises(errors.PermissionDenied):
            liaison.pending_reviews()  # liaison officers do not approve
    wait_for(lambda: len(received(de)) == 1, what="the customs copy")
    with workflow(nl, "approver") as approver:
        pending = approver.pending_reviews()
        assert sorted((p.alert.name, p.treaty_id) for p in pending) == sorted(
            [(alert.name, TASKFORCE), (held.name, TASKFORCE)]
        )
        registry = OfficerRegistry(nl.node.store.engine)
        liaison_name = registry.authenticate(nl.tokens["liaison"]).name
        registry.close()  # its lookup connection
        for p in pending:
            assert p.matched == ["wanted_person"]
            assert p.author == liaison_name
            previews = {v.agency_id: v for v in p.previews}
            assert previews["be-police"].permitted
            # the task force's preview: no passport number, no date of birth
            assert "subjects.persons.passport_number" in previews["be-police"].removed_fields
        with pytest.raises(errors.InvalidArgument):
            approver.reject_alert(held.name, reason="")
        approved = approver.approve_alert(held.name)
        assert approved.state == alert_pb2.ALERT_STATE_ACTIVE
        assert sorted(d.agency_id for d in approved.deliveries) == ["be-police", "de-customs"]
        rejected = approver.reject_alert(alert.name, reason="not for the task force")
        assert [d.agency_id for d in rejected.deliveries] == ["de-customs"]
        assert approver.pending_reviews() == []
        with pytest.raises(errors.FailedPrecondition):
            approver.approve_alert(alert.name)
    # The author may not approve their own alert, even as an admin.
    with workflow(nl, "admin") as admin:
        own = admin.create_alert(wanted_alert(("be-police", TASKFORCE)))
        with pytest.raises(errors.ApproverIsAuthor) as exc:
            admin.approve_alert(own.name)
        assert exc.value.reason == "APPROVER_IS_AUTHOR"
    got = wait_for(lambda: received(be), what="the approved alert at be-police")
    assert [a.description for a in got] == [held.description]
    header = header_of(be, got[0].received.message_id)
    assert header.review.approver
    assert header.review.author != header.review.approver
    with nl.node.store.engine.connect() as conn:
        creator = conn.execute(
            select(t.alerts.c.created_by).where(t.alerts.c.alert_id == held.name.split("/")[1])
        ).scalar_one()
    assert header.review.author == creator
    assert len(leaves_in(nl.node.store.engine, "review_approved")) == 1


def test_review_attestations_are_checked_at_the_gateway_and_at_the_receiver(
    cluster: Cluster,
) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    now = datetime.now(UTC)
    cases = {
        "none": {},
        "own approval": {"review": attestation("officer-a", "officer-a", now)},
        "no approver": {"review": attestation("officer-a", "", now)},
        "from the future": {
            "review": attestation("officer-a", "officer-b", now + timedelta(hours=1))
        },
        "stale": {"review": attestation("officer-a", "officer-b", now - timedelta(days=8))},
        "no digest": {"review": attestation("officer-a", "officer-b", now, b"")},
    }
    be.node.inbound.stop()  # the receiver is driven by hand below
    sequence = 0
    for case, kw in cases.items():
        sealed = seal(nl, WANTED, **kw)
        err = gateway_refuses(nl, sealed)
        assert err.reason == "REVIEW_REQUIRED", case
        assert err.metadata["rule"] == "review_required_for"
        sequence += 1
        assert inbox(be, sealed, sequence) == "refused", case
        assert last_refusal(be)["reason"] == "REVIEW_REQUIRED", case
    # An attestation that holds in the header but was given for another
    # payload: the gateway cannot see it (it passes), the receiver refuses.
    lifted = seal(nl, WANTED, review=attestation("officer-a", "officer-b", now))
    nl.node.client.submit(envelope_pb2.Envelope.FromString(lifted.envelope))
    sequence += 1
    assert inbox(be, lifted, sequence) == "refused"
    refusal = last_refusal(be)
    assert refusal["reason"] == "REVIEW_REQUIRED"
    assert "another payload" in refusal["detail"]
    # The same attestation over its own payload passes both.
    import hashlib

    payload = json.dumps(WANTED).encode()
    good = seal(
        nl,
        WANTED,
        review=attestation("officer-a", "officer-b", now, hashlib.sha256(payload).digest()),
    )
    nl.node.client.submit(envelope_pb2.Envelope.FromString(good.envelope))
    sequence += 1
    assert inbox(be, good, sequence) == "stored"
    # A wanted-person alert hidden under another category: the gateway sees
    # only the header (and lets it through), the receiver reads the kind.
    hidden = seal(nl, WANTED, categories=["counterfeit_goods"])
    nl.node.client.submit(envelope_pb2.Envelope.FromString(hidden.envelope))
    sequence += 1
    assert inbox(be, hidden, sequence) == "refused"
    assert last_refusal(be)["reason"] == "REVIEW_REQUIRED"


# --- onward sharing ------------------------------------------------------------------


def customs_alert(nl: RunningNode) -> alert_pb2.Alert:
    with nl.client("liaison") as c:
        return c.create_alert(
            demo_alert(
                recipients=[alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=CUSTOMS)]
            )
        )


def test_forward_with_the_originators_consent_then_recall(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    be = cluster.start_node("be-police")
    issued = customs_alert(nl)
    got = wait_for(lambda: received(de), what="the alert at de-customs")[0]
    assert got.subjects.persons[0].passport_number  # the customs treaty lets it through
    with workflow(de, "liaison") as forwarder:
        fwd = forwarder.forward_alert(
            got.name, ["be-police"], BILATERAL, reason="the consignee is in Antwerp"
        )
        assert fwd.state == alert_service_pb2.FORWARD_STATE_AWAITING_CONSENT
        assert "subjects.persons.passport_number" in fwd.removed_fields
    with workflow(nl, "liaison") as originator:
        asked = wait_for(lambda: originator.consent_requests(), what="the consent request")
        assert [(r.requester, list(r.onward_recipients), r.onward_treaty_id) for r in asked] == [
            ("de-customs", ["be-police"], BILATERAL)
        ]
        assert asked[0].alert == issued.name
        assert asked[0].reason == "the consignee is in Antwerp"
        granted = originator.grant_consent(asked[0].name)
        assert granted.state == alert_service_pb2.CONSENT_STATE_GRANTED
        with pytest.raises(errors.FailedPrecondition):
            originator.refuse_consent(asked[0].name, reason="changed my mind")
    copy = wait_for(lambda: received(be), what="the forwarded copy")[0]
    with be.client("analyst") as c:
        shown = c.get_alert(copy.name)
    assert shown.origin_agency == "de-customs"
    assert shown.provenance.originator == "nl-customs"
    assert shown.provenance.forwarder == "de-customs"
    assert shown.provenance.original_message_id == got.received.message_id
    assert shown.provenance.consent_id == granted.consent_id
    # What both treaties allow, no more: no passport number (the bilateral
    # treaty), no date of birth, and no role (the customs treaty).
    person = shown.subjects.persons[0]
    assert person.name == "Jan Jansen"
    assert not person.passport_number
    assert not person.date_of_birth
    assert not person.role
    # Retention: the shorter of the two treaties' (30 days, not 1095).
    retain = shown.received.retain_until.ToDatetime(tzinfo=UTC)
    assert retain <= datetime.now(UTC) + timedelta(days=30, minutes=1)
    with workflow(de, "liaison") as forwarder:
        forwards = forwarder.forwards(got.name)
        assert [f.state for f in forwards] == [alert_service_pb2.FORWARD_STATE_SENT]
    # The originator revokes: the recall reaches the third agency.
    with nl.client("liaison") as c:
        c.revoke_alert(issued.name, reason="subject arrested")
    wait_for(
        lambda: received(be)[0].state == alert_pb2.ALERT_STATE_REVOKED,
        what="the recall at be-police",
    )
    with workflow(de, "liaison") as forwarder:
        assert [f.state for f in forwarder.forwards(got.name)] == [
            alert_service_pb2.FORWARD_STATE_RECALLED
        ]


def test_forwarding_refusals_at_the_sender(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    cluster.start_node("be-police")
    with nl.client("liaison") as c:
        c.create_alert(
            demo_alert(
                recipients=[alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=TASKFORCE)]
            )
        )
    got = wait_for(lambda: received(de), what="the task-force alert")[0]
    with workflow(de, "liaison") as forwarder:
        with pytest.raises(errors.OnwardSharingForbidden) as exc:
            forwarder.forward_alert(got.name, ["be-police"], BILATERAL)
        assert exc.value.metadata["rule"] == "onward_sharing"
        assert exc.value.metadata["treaty_id"] == TASKFORCE
    with workflow(de, "analyst") as analyst, pytest.raises(errors.PermissionDenied):
        analyst.forward_alert(got.name, ["be-police"], BILATERAL)
    with de.node.store.engine.connect() as conn:
        assert conn.execute(select(t.records.c.record_id)).all() == []


def test_forwarded_copies_without_a_valid_consent_are_refused_at_gateway_and_receiver(
    cluster: Cluster,
) -> None:
    """A rogue forwarder seals copies by hand: each is refused with its reason."""
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    be = cluster.start_node("be-police")
    customs_alert(nl)
    got = wait_for(lambda: received(de), what="the alert at de-customs")[0]
    original_id = got.received.message_id
    be.node.inbound.stop()
    copy = {"kind": "counterfeit_goods", "description": "passed on"}

    def consent(by: RunningNode, to: str, recipients: list[str], treaty: str = BILATERAL) -> Sealed:
        return by.node.sealer.seal(
            kind=envelope_pb2.MESSAGE_KIND_CONSENT_GRANT,
            recipients=[to],
            treaty_id=CUSTOMS if by.agency != "be-police" else TASKFORCE,
            treaty_version=1,
            handling=envelope_pb2.HANDLING_CODE_H1,
            tlp=envelope_pb2.TLP_AMBER,
            categories=[],
            expire_ms=int((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1000),
            payload=b"{}",
            consent=envelope_pb2.OnwardConsent(
                original_message_id=original_id,
                onward_recipients=recipients,
                onward_treaty_id=treaty,
            ),
        )

    def forwarded(grant: Sealed | None, payload: dict[str, Any] = copy) -> Sealed:
        provenance = envelope_pb2.Provenance(
            originator="nl-customs",
            original_message_id=original_id,
            original_treaty_id=CUSTOMS,
            original_treaty_version=1,
        )
        if grant is not None:
            provenance.consent_id = grant.message_id
            provenance.consent_envelope = grant.envelope
        return seal(
            de,
            payload,
            treaty_id=BILATERAL,
            categories=["counterfeit_goods"],
            provenance=provenance,
        )

    cases = [
        ("no consent", None, "consent_missing"),
        (
            "consent for another agency",
            consent(nl, "de-customs", ["nl-customs"]),
            "consent_recipients",
        ),
        (
            "consent to another forwarder",
            consent(nl, "be-police", ["be-police"], treaty=BILATERAL),
            "consent_forwarder",
        ),
        (
            "consent for another treaty",
            consent(nl, "de-customs", ["be-police"], treaty=TASKFORCE),
            "consent_treaty",
        ),
        (
            "consent not from the originator",
            consent(be, "de-customs", ["be-police"]),
            "consent_originator",
        ),
    ]
    sequence = 0
    for case, grant, rule in cases:
        sealed = forwarded(grant)
        err = gateway_refuses(de, sealed)
        assert (err.reason, err.metadata.get("rule")) == ("CONSENT_INVALID", rule), case
        sequence += 1
        assert inbox(be, sealed, sequence) == "refused", case
        assert last_refusal(be)["reason"] == "CONSENT_INVALID", case
    # A real consent, but a field the bilateral treaty allows and the customs
    # treaty does not (a person's role): the gateway cannot see fields, the
    # receiver refuses.
    good = consent(nl, "de-customs", ["be-police"])
    leaky = forwarded(
        good,
        {"kind": "counterfeit_goods", "subjects": {"persons": [{"name": "J", "role": "director"}]}},
    )
    de.node.client.submit(envelope_pb2.Envelope.FromString(leaky.envelope))
    sequence += 1
    assert inbox(be, leaky, sequence) == "refused"
    refusal = last_refusal(be)
    assert refusal["reason"] == "FIELD_NOT_PERMITTED"
    assert "subjects.persons.role" in refusal["detail"]
    # The same consent and an allowed copy: stored, with its provenance.
    fine = forwarded(good)
    de.node.client.submit(envelope_pb2.Envelope.FromString(fine.envelope))
    sequence += 1
    assert inbox(be, fine, sequence) == "stored"
    # Forbidden by the original treaty, and the other attacks: test_workflow_attacks.py.
