"""The treaty workflows' attacks the other workflow tests leave out, each refused with its reason.

tests/node/kinds/test_workflows.py covers the review attestations at the
gateway and the receiver and the forged consents of a rogue forwarder.
Here, with the same treaties (SQLite and PostgreSQL, a real gateway and
real nodes):

* the **sender** seals a kind reserved for review only with a valid
  approval (none, the author's own, no approver, dated in the future or
  stale: each ``REVIEW_REQUIRED``), and an approval written into a header
  after it was signed is a forgery the gateway and the receiver refuse
  (``SIGNATURE_INVALID``);
* a copy of a record whose treaty **forbids** onward sharing, sealed by
  hand, is refused by the gateway and by the third agency
  (``ONWARD_SHARING_FORBIDDEN``), consent or not;
* the **forwarder** sends nothing until the originator itself consents to
  exactly what was asked: a grant for another agency, another treaty or
  another record, or one from an agency that is not the originator,
  reaches it through the gateway (which cannot know what was asked) and is
  refused (``CONSENT_INVALID``), leaving the forward waiting; and a field
  the onward treaty allows but the original does not never leaves it;
* **recall**: the originator's update reaches the third agency redacted as
  the copy was, a revocation of the copy from anyone but its forwarder is
  refused, and the originator's revocation reaches it through the
  forwarder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from intelshare import errors
from intelshare.v1 import alert_pb2, alert_service_pb2, envelope_pb2
from node.sharing.engine import Refusal, Share, View
from node.sharing.sealing import Sealed
from node.storage import tables as t
from tests.node.conftest import CUSTOMS, TASKFORCE, Cluster, RunningNode, demo_alert, wait_for
from tests.node.kinds.test_workflows import (  # noqa: F401  (fed: the workflow treaties)
    BILATERAL,
    WANTED,
    attestation,
    customs_alert,
    fed,
    gateway_refuses,
    inbox,
    last_refusal,
    received,
    seal,
    workflow,
)
from tests.node.sharing.test_inbound import audit_leaves

#: Seconds to wait for what takes several hops (originator, forwarder, third agency,
#: each through the gateway): generous, as the test machine may be loaded.
PATIENCE = 90.0


def _expire_ms(days: int = 1) -> int:
    return int((datetime.now(UTC) + timedelta(days=days)).timestamp() * 1000)


def control(
    by: RunningNode, kind: int, to: str, treaty: str, payload: bytes = b"{}", **kw: Any
) -> Sealed:
    """A control message (consent, revocation) sealed by hand with ``by``'s keys."""
    return by.node.sealer.seal(
        kind=kind,  # type: ignore[arg-type]
        recipients=[to],
        treaty_id=treaty,
        treaty_version=1,
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        categories=[],
        expire_ms=_expire_ms(),
        payload=payload,
        **kw,
    )


def wanted_share(review: envelope_pb2.ReviewAttestation | None) -> Share:
    return Share(
        record=WANTED,
        treaty_kind="alert",
        fields_kind="alert",
        message_kind=envelope_pb2.MESSAGE_KIND_ALERT,
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        categories=["wanted_person"],
        expire_ms=_expire_ms(),
        alert_kind="wanted_person",
        review=review,
    )


# --- review before release -------------------------------------------------------------


def test_the_sender_seals_a_kind_reserved_for_review_only_with_a_valid_approval(
    cluster: Cluster,
) -> None:
    nl = cluster.start_node("nl-customs")
    cluster.start_node("be-police")
    now = datetime.now(UTC)
    sharing = nl.node.sharing
    cases = {
        "none": None,
        "the author's own": attestation("officer-a", "officer-a", now),
        "no approver": attestation("officer-a", "", now),
        "dated in the future": attestation("officer-a", "officer-b", now + timedelta(hours=1)),
        "stale": attestation("officer-a", "officer-b", now - timedelta(days=8)),
    }
    for case, review in cases.items():
        [planned] = sharing.plan(wanted_share(review), {TASKFORCE: ["be-police"]})
        assert isinstance(planned, Refusal), case
        assert planned.error.reason == "REVIEW_REQUIRED", case
        assert planned.error.metadata["rule"] == "review_required_for", case
        with pytest.raises(errors.IntelshareError) as exc:
            sharing.views(wanted_share(review), {TASKFORCE: ["be-police"]})
        assert exc.value.reason == "REVIEW_REQUIRED", case
    # A second ago: sealing times are whole milliseconds, and an approval a few
    # microseconds after the sealing's millisecond would be "after sealing".
    good = attestation("officer-a", "officer-b", now - timedelta(seconds=1))
    [released] = sharing.plan(wanted_share(good), {TASKFORCE: ["be-police"]})
    assert isinstance(released, View)


def test_an_approval_written_into_a_signed_header_is_refused_as_a_forgery(
    cluster: Cluster,
) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    be.node.inbound.stop()
    payload = json.dumps(WANTED).encode()
    unreviewed = seal(nl, WANTED)
    envelope = envelope_pb2.Envelope.FromString(unreviewed.envelope)
    header = envelope_pb2.Header.FromString(envelope.header_bytes)
    header.review.CopyFrom(
        attestation("officer-a", "officer-b", datetime.now(UTC), hashlib.sha256(payload).digest())
    )
    envelope.header_bytes = header.SerializeToString()
    forged = dataclasses.replace(unreviewed, envelope=envelope.SerializeToString())
    err = gateway_refuses(nl, forged)
    assert err.reason == "SIGNATURE_INVALID"
    assert inbox(be, forged, 1) == "refused"
    refusal = last_refusal(be)
    assert refusal["reason"] == "ENVELOPE_INVALID", refusal
    assert "signature" in refusal["detail"], refusal


# --- onward sharing --------------------------------------------------------------------


def test_a_copy_of_a_record_whose_treaty_forbids_onward_sharing_is_refused_by_gateway_and_receiver(
    cluster: Cluster,
) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    be = cluster.start_node("be-police")
    with nl.client("liaison") as c:
        c.create_alert(
            demo_alert(
                recipients=[alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=TASKFORCE)]
            )
        )
    got = wait_for(lambda: received(de), what="the task-force alert at de-customs")[0]
    be.node.inbound.stop()
    provenance = envelope_pb2.Provenance(
        originator="nl-customs",
        original_message_id=got.received.message_id,
        original_treaty_id=TASKFORCE,
        original_treaty_version=1,
    )
    copy = seal(
        de,
        {"kind": "counterfeit_goods", "description": "passed on"},
        treaty_id=BILATERAL,
        categories=["counterfeit_goods"],
        provenance=provenance,
    )
    err = gateway_refuses(de, copy)
    assert err.reason == "ONWARD_SHARING_FORBIDDEN"
    assert err.metadata["rule"] == "onward_sharing"
    assert err.metadata["treaty_id"] == TASKFORCE
    assert inbox(be, copy, 1) == "refused"
    refusal = last_refusal(be)
    assert refusal["reason"] == "ONWARD_SHARING_FORBIDDEN"
    assert TASKFORCE in refusal["detail"]
    # No consent makes it permitted: a grant by the originator changes nothing.
    grant = control(
        nl,
        envelope_pb2.MESSAGE_KIND_CONSENT_GRANT,
        "de-customs",
        TASKFORCE,
        consent=envelope_pb2.OnwardConsent(
            original_message_id=got.received.message_id,
            onward_recipients=["be-police"],
            onward_treaty_id=BILATERAL,
        ),
    )
    provenance.consent_id = grant.message_id
    provenance.consent_envelope = grant.envelope
    consented = seal(
        de,
        {"kind": "counterfeit_goods", "description": "passed on, consented"},
        treaty_id=BILATERAL,
        categories=["counterfeit_goods"],
        provenance=provenance,
    )
    assert gateway_refuses(de, consented).reason == "ONWARD_SHARING_FORBIDDEN"
    assert inbox(be, consented, 2) == "refused"
    assert last_refusal(be)["reason"] == "ONWARD_SHARING_FORBIDDEN"
    assert received(be) == []


def _forward_states(de: RunningNode, alert: str) -> list[int]:
    with workflow(de, "liaison") as c:
        return [int(f.state) for f in c.forwards(alert)]


def test_the_forwarder_sends_nothing_until_the_originator_consents_to_what_was_asked(
    cluster: Cluster,
) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    be = cluster.start_node("be-police")
    customs_alert(nl)
    got = wait_for(lambda: received(de), what="the alert at de-customs")[0]
    # de-customs holds a field the bilateral treaty allows and the customs treaty
    # does not (a person's role, as if an officer had added it locally).
    alert_id = got.name.split("/")[1]
    with de.node.store.engine.begin() as conn:
        record = json.loads(
            conn.execute(
                select(t.alerts.c.record).where(t.alerts.c.alert_id == alert_id)
            ).scalar_one()
        )
        record["subjects"]["persons"][0]["role"] = "director of the consignee"
        conn.execute(
            update(t.alerts)
            .where(t.alerts.c.alert_id == alert_id)
            .values(record=json.dumps(record, separators=(",", ":")))
        )
    with workflow(de, "liaison") as forwarder:
        fwd = forwarder.forward_alert(got.name, ["be-police"], BILATERAL)
    assert "subjects.persons.role" in fwd.removed_fields
    with workflow(nl, "approver") as originator:
        request = wait_for(originator.consent_requests, PATIENCE, "the consent request")[0]
    request_id = request.name.removeprefix("consentRequests/")

    def answer(by: RunningNode, treaty: str, **terms: Any) -> Sealed:
        consent = envelope_pb2.OnwardConsent(
            original_message_id=got.received.message_id,
            onward_recipients=["be-police"],
            onward_treaty_id=BILATERAL,
            request_message_id=request_id,
        )
        for key, value in terms.items():
            if isinstance(value, list):
                consent.ClearField(key)  # type: ignore[arg-type]
                getattr(consent, key).extend(value)
            else:
                setattr(consent, key, value)
        return control(
            by,
            envelope_pb2.MESSAGE_KIND_CONSENT_GRANT,
            "de-customs",
            treaty,
            b'{"granted": true}',
            reference_id=request_id,
            consent=consent,
        )

    cases = [
        ("for another agency", nl, CUSTOMS, {"onward_recipients": ["fr-douane"]}),
        ("for another treaty", nl, CUSTOMS, {"onward_treaty_id": TASKFORCE}),
        ("about another record", nl, CUSTOMS, {"original_message_id": "01NOTTHERECORD"}),
        ("not from the originator", be, TASKFORCE, {}),
    ]
    for n, (case, by, treaty, terms) in enumerate(cases, start=1):
        rogue = answer(by, treaty, **terms)
        # The gateway cannot know what was asked: it passes the answer on.
        by.node.client.submit(envelope_pb2.Envelope.FromString(rogue.envelope))
        refusals = wait_for(
            lambda n=n: len(audit_leaves(de, "refused")) >= n and audit_leaves(de, "refused"),
            PATIENCE,
            f"de-customs refusing the answer {case}",
        )
        assert refusals[n - 1]["reason"] == "CONSENT_INVALID", case
        assert request_id in refusals[n - 1]["detail"], case
    assert _forward_states(de, got.name) == [alert_service_pb2.FORWARD_STATE_AWAITING_CONSENT]
    assert received(be) == []

    # The originator's officer consents: the copy goes, without the role.
    with workflow(nl, "approver") as originator:
        granted = originator.grant_consent(request.name)
    copy = wait_for(lambda: received(be), PATIENCE, "the copy at be-police")[0]
    with be.client("analyst") as c:
        shown = c.get_alert(copy.name)
    assert shown.provenance.consent_id == granted.consent_id
    assert shown.subjects.persons[0].name == "Jan Jansen"
    assert not shown.subjects.persons[0].role
    assert _forward_states(de, got.name) == [alert_service_pb2.FORWARD_STATE_SENT]


def test_recall_and_updates_reach_the_third_agency_only_through_the_forwarder(
    cluster: Cluster,
) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    be = cluster.start_node("be-police")
    issued = customs_alert(nl)
    got = wait_for(lambda: received(de), what="the alert at de-customs")[0]
    with workflow(de, "liaison") as forwarder:
        forwarder.forward_alert(got.name, ["be-police"], BILATERAL)
    with workflow(nl, "approver") as originator:
        request = wait_for(originator.consent_requests, PATIENCE, "the consent request")[0]
        originator.grant_consent(request.name)
    copy = wait_for(lambda: received(be), PATIENCE, "the copy at be-police")[0]
    with workflow(de, "liaison") as forwarder:
        [sent] = forwarder.forwards(got.name)
    # The originator updates: the new text reaches the copy, redacted as before.
    changed = alert_pb2.Alert(name=issued.name, description="Consignee moved to Ghent")
    with nl.client("liaison") as c:
        c.update_alert(changed, ["description"])
    wait_for(
        lambda: received(be)[0].description == "Consignee moved to Ghent",
        PATIENCE,
        "the update at be-police",
    )
    with be.client("analyst") as c:
        updated = c.get_alert(copy.name)
    assert not updated.subjects.persons[0].passport_number
    assert updated.provenance.originator == "nl-customs"
    # A revocation of the copy from the originator itself (not its forwarder):
    # the gateway cannot tell what it refers to; be-police got the copy from
    # de-customs, and refuses it.
    rogue = control(
        nl,
        envelope_pb2.MESSAGE_KIND_ALERT_REVOCATION,
        "be-police",
        TASKFORCE,
        reference_id=sent.message_id,
    )
    before = len(audit_leaves(be, "refused"))
    nl.node.client.submit(envelope_pb2.Envelope.FromString(rogue.envelope))
    refusal = wait_for(
        lambda: audit_leaves(be, "refused")[before:], PATIENCE, "be-police refusing the revocation"
    )[0]
    assert refusal["reason"] == "REFERENCE_MISMATCH", refusal
    assert "came from de-customs" in refusal["detail"]
    assert received(be)[0].state == alert_pb2.ALERT_STATE_ACTIVE
    # The originator revokes its alert: the forwarder passes the recall on.
    with nl.client("liaison") as c:
        c.revoke_alert(issued.name, reason="subject arrested")
    wait_for(
        lambda: received(be)[0].state == alert_pb2.ALERT_STATE_REVOKED,
        PATIENCE,
        "the recall at be-police",
    )
