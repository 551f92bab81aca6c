"""The treaty workflows across real processes: a gateway and three nodes, SQLite and PostgreSQL.

It reuses the process harness of ``test_processes`` (each service is
``python -m intelshare.cli ... serve`` in its own process, mTLS between
them) with the workflow treaties of ``test_workflows``, and plays the
issue's story with its attacks:

a wanted-person alert under the task force waits for review; its author
cannot release it, an approver does, and be-police receives it with the
attestation → envelopes sealed with nl-customs' own keys are refused by
the gateway process without an attestation, with the author's own, with a
stale one (``REVIEW_REQUIRED``); one whose attestation was given for
another payload passes the gateway and is refused by be-police's process
→ de-customs asks to pass a customs alert on to be-police, nl-customs
consents, the copy arrives with its provenance → copies sealed with
de-customs' keys without consent or with the consent for other recipients
are refused by the gateway (``CONSENT_INVALID``), one of a record under
the task force (``ONWARD_SHARING_FORBIDDEN``); one with the real consent
but a field only the onward treaty allows passes the gateway and is
refused by be-police (``FIELD_NOT_PERMITTED``) → nl-customs revokes, and
the recall reaches be-police's copy through de-customs.

Waits poll a condition with a deadline; nothing sleeps in place of waiting.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from intelshare import errors
from intelshare.db import make_engine
from intelshare.directory import Anchor, verify_directory
from intelshare.envelope import HeaderFields, lookup_recipient_keys, seal
from intelshare.gateway_client import GatewayClient
from intelshare.v1 import alert_pb2, alert_service_pb2, envelope_pb2
from node.cli.workflow_client import WorkflowClient
from node.config import load_config
from node.storage import tables as t
from node.storage.officers import OfficerRegistry
from tests.node.conftest import CUSTOMS, TASKFORCE, demo_alert, wait_for
from tests.node.kinds.test_workflows import (  # noqa: F401  (fed: the workflow treaties)
    BILATERAL,
    attestation,
    fed,
    wanted_alert,
)
from tests.node.sharing.test_inbound import leaves_in
from tests.node.test_processes import World, one_received, world  # noqa: F401  (world)

pytestmark = pytest.mark.slow


def engine_of(w: World, agency: str) -> Any:
    return make_engine(load_config(w.configs[agency]).database_url)


def officer(w: World, agency: str, role: str) -> WorkflowClient:
    """A client of ``agency``'s node as an officer with ``role`` (added on first use)."""
    if role not in w.tokens[agency]:
        engine = engine_of(w, agency)
        try:
            registry = OfficerRegistry(engine)
            w.tokens[agency][role] = registry.add(f"{role}-{uuid.uuid4().hex[:6]}", role)[1]
        finally:
            engine.dispose()
    return WorkflowClient(
        f"127.0.0.1:{w.nodes[agency].port}",
        ca_pem=w.fed.ca_file.read_bytes(),
        server_name=agency,
        token=w.tokens[agency][role],
        timeout=15.0,
    )


def refusals(w: World, agency: str) -> list[dict[str, Any]]:
    engine = engine_of(w, agency)
    try:
        return leaves_in(engine, "refused")
    finally:
        engine.dispose()


def by_hand(
    w: World,
    sender: str,
    payload: dict[str, Any],
    *,
    recipients: tuple[str, ...] = ("be-police",),
    treaty: str = TASKFORCE,
    kind: int = envelope_pb2.MESSAGE_KIND_ALERT,
    categories: tuple[str, ...] = ("wanted_person",),
    **header: Any,
) -> envelope_pb2.Envelope:
    """An envelope sealed with ``sender``'s own keys outside its node (a rogue node)."""
    directory = verify_directory(
        w.fed.directory_file.read_bytes(), Anchor.load(w.fed.anchor_file), now=datetime.now(UTC)
    )
    keys = w.fed.agencies[sender].keys
    now = datetime.now(UTC)
    fields = HeaderFields(
        sender=sender,
        recipients=recipients,
        treaty_id=treaty,
        treaty_version=1,
        kind=kind,  # type: ignore[arg-type]
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        categories=categories,
        expire_time=now + timedelta(days=1),
        create_time=now,
        **header,
    )
    return seal(
        fields,
        json.dumps(payload).encode(),
        signing_key=keys.signing,
        signing_key_id=keys.signing_key_id,
        recipient_keys=lookup_recipient_keys(directory, list(recipients)),
    )


def gateway(w: World, agency: str) -> GatewayClient:
    a = w.fed.agencies[agency]
    return GatewayClient(
        f"127.0.0.1:{w.gateway.port}",
        ca_pem=w.fed.ca_file.read_bytes(),
        cert_pem=a.cert_pem,
        key_pem=a.key_pem,
        server_name="localhost",
    )


def gateway_refuses(w: World, sender: str, envelope: envelope_pb2.Envelope) -> Any:
    with gateway(w, sender) as gw, pytest.raises(errors.IntelshareError) as info:
        gw.submit(envelope)
    return info.value


def receiver_refuses(w: World, sender: str, envelope: envelope_pb2.Envelope) -> dict[str, Any]:
    """The gateway passes ``envelope``; be-police's process refuses it: its audit entry."""
    before = len(refusals(w, "be-police"))
    with gateway(w, sender) as gw:
        gw.submit(envelope)
    found: list[dict[str, Any]] = wait_for(
        lambda: refusals(w, "be-police")[before:], 45, "be-police's refusal"
    )
    return found[0]


WANTED = {"kind": "wanted_person", "description": "sealed by hand"}


def test_review_and_onward_sharing_across_processes(world: World) -> None:  # noqa: F811
    w = world
    now = datetime.now(UTC)

    # --- review before release ---
    with officer(w, "nl-customs", "liaison") as liaison:
        held = liaison.create_alert(wanted_alert(("be-police", TASKFORCE)))
        assert held.state == alert_pb2.ALERT_STATE_PENDING_REVIEW
        with pytest.raises(errors.PermissionDenied):
            liaison.approve_alert(held.name)
    with officer(w, "nl-customs", "admin") as admin:
        own = admin.create_alert(
            wanted_alert(("be-police", TASKFORCE), description="Written by the admin")
        )
        with pytest.raises(errors.ApproverIsAuthor):
            admin.approve_alert(own.name)
    with officer(w, "nl-customs", "approver") as approver:
        assert {p.alert.name for p in approver.pending_reviews()} == {held.name, own.name}
        approver.approve_alert(held.name)
    got = one_received(w, "be-police", held.description)
    assert not got.subjects.persons[0].passport_number

    for case, review in {
        "without attestation": None,
        "the author's own approval": attestation("officer-a", "officer-a", now),
        "a stale approval": attestation("officer-a", "officer-b", now - timedelta(days=8)),
    }.items():
        err = gateway_refuses(w, "nl-customs", by_hand(w, "nl-customs", WANTED, review=review))
        assert err.reason == "REVIEW_REQUIRED", case
    lifted = by_hand(
        w, "nl-customs", WANTED, review=attestation("officer-a", "officer-b", now, b"\x01" * 32)
    )
    refusal = receiver_refuses(w, "nl-customs", lifted)
    assert refusal["reason"] == "REVIEW_REQUIRED"
    assert "another payload" in refusal["detail"]

    # --- onward sharing with the originator's consent ---
    with officer(w, "nl-customs", "liaison") as liaison:
        issued = liaison.create_alert(
            demo_alert(
                recipients=[alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=CUSTOMS)]
            )
        )
    at_de = one_received(w, "de-customs", issued.description)
    with officer(w, "de-customs", "liaison") as forwarder:
        fwd = forwarder.forward_alert(at_de.name, ["be-police"], BILATERAL)
        assert fwd.state == alert_service_pb2.FORWARD_STATE_AWAITING_CONSENT
    with officer(w, "nl-customs", "approver") as originator:
        request = wait_for(originator.consent_requests, 45, "the consent request")[0]
        granted = originator.grant_consent(request.name)
    copy = one_received(w, "be-police", issued.description)
    with officer(w, "be-police", "analyst") as reader:
        shown = reader.get_alert(copy.name)
    assert shown.provenance.originator == "nl-customs"
    assert shown.provenance.forwarder == "de-customs"
    assert shown.provenance.consent_id == granted.consent_id
    assert not shown.subjects.persons[0].passport_number

    # Copies sealed with de-customs' keys, refused where they can be seen.
    engine = engine_of(w, "de-customs")
    try:
        with engine.connect() as conn:
            consent_envelope = bytes(
                conn.execute(
                    select(t.received.c.envelope).where(
                        t.received.c.message_id == granted.consent_id
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()

    def forwarded(
        payload: dict[str, Any], original_treaty: str = CUSTOMS, consent: bytes = b""
    ) -> envelope_pb2.Envelope:
        consent_id = (
            envelope_pb2.Header.FromString(
                envelope_pb2.Envelope.FromString(consent).header_bytes
            ).message_id
            if consent
            else ""
        )
        return by_hand(
            w,
            "de-customs",
            payload,
            treaty=BILATERAL,
            categories=("counterfeit_goods",),
            provenance=envelope_pb2.Provenance(
                originator="nl-customs",
                original_message_id=at_de.received.message_id,
                original_treaty_id=original_treaty,
                original_treaty_version=1,
                consent_id=consent_id,
                consent_envelope=consent,
            ),
        )

    plain = {"kind": "counterfeit_goods", "description": "passed on by hand"}
    err = gateway_refuses(w, "de-customs", forwarded(plain))
    assert (err.reason, err.metadata["rule"]) == ("CONSENT_INVALID", "consent_missing")
    elsewhere = by_hand(  # nl-customs' consent, but for another agency than be-police
        w,
        "nl-customs",
        {},
        recipients=("de-customs",),
        treaty=CUSTOMS,
        kind=envelope_pb2.MESSAGE_KIND_CONSENT_GRANT,
        categories=(),
        consent=envelope_pb2.OnwardConsent(
            original_message_id=at_de.received.message_id,
            onward_recipients=["fr-douane"],
            onward_treaty_id=BILATERAL,
        ),
    )
    err = gateway_refuses(w, "de-customs", forwarded(plain, consent=elsewhere.SerializeToString()))
    assert (err.reason, err.metadata["rule"]) == ("CONSENT_INVALID", "consent_recipients")
    err = gateway_refuses(w, "de-customs", forwarded(plain, TASKFORCE, consent_envelope))
    assert err.reason == "ONWARD_SHARING_FORBIDDEN"
    leaky = forwarded(
        {"kind": "counterfeit_goods", "subjects": {"persons": [{"name": "J", "role": "director"}]}},
        consent=consent_envelope,
    )
    refusal = receiver_refuses(w, "de-customs", leaky)
    assert refusal["reason"] == "FIELD_NOT_PERMITTED"
    assert "subjects.persons.role" in refusal["detail"]

    # --- recall ---
    with officer(w, "nl-customs", "liaison") as liaison:
        liaison.revoke_alert(issued.name, reason="subject arrested")

    def recalled() -> bool:
        with officer(w, "be-police", "analyst") as reader:
            return reader.get_alert(copy.name).state == alert_pb2.ALERT_STATE_REVOKED

    wait_for(recalled, 45, "the recall at be-police")
    with officer(w, "de-customs", "liaison") as forwarder:
        assert [f.state for f in forwarder.forwards(at_de.name)] == [
            alert_service_pb2.FORWARD_STATE_RECALLED
        ]
