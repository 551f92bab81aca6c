"""A record kind declared in a test, delivered end to end: no engine module knows it.

``toy_note`` is a :class:`~node.sharing.record_kind.RecordKind` written here
and nowhere else: a ``google.protobuf.Struct`` message, its JSON form,
a validation, a category and an expiry. Registered with two real nodes
behind a real gateway, it is redacted by the treaty's ``toy_note``
allow-list, sealed, admitted by the gateway on the header's record kind,
stored at the recipient, receipted back, updated and withdrawn — through
the same engine alerts and cases use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.struct_pb2 import Struct
from sqlalchemy import select

from intelshare import devfed, errors
from intelshare.treaty import RECORD_KINDS, register_record_kind
from intelshare.v1 import envelope_pb2
from node.sharing.record_kind import WITHDRAWN, RecordKind, StoredRecord
from node.storage import tables as t
from node.storage.officers import Officer
from tests.node.conftest import AGENCIES, CUSTOMS, TASKFORCE, RunningNode, treaties, wait_for
from tests.node.sharing.test_inbound import audit_leaves

pytestmark = pytest.mark.slow


@pytest.fixture
def toy_kind() -> Iterator[None]:
    """``toy_note`` in the federation's vocabulary for one test, and out again after it."""
    register_record_kind("toy_note")
    yield
    RECORD_KINDS.discard("toy_note")


def _validate(note: Struct) -> None:
    title = note.fields.get("title")
    if title is None or not title.string_value:
        raise errors.InvalidArgument("a toy note needs a title", violations={"title": "required"})


def _from_record(record: Any) -> Struct:
    note = Struct()
    try:
        ParseDict(dict(record), note)
    except (ParseError, TypeError, ValueError) as exc:
        raise errors.Malformed(f"not a toy note: {exc}") from None
    return note


TOY: RecordKind[Struct] = RecordKind(
    name="toy_note",
    collection="toyNotes",
    message=Struct,
    to_record=lambda note: MessageToDict(note),
    from_record=_from_record,
    validate=_validate,
    categories=lambda note: ["suspect_shipment"],
    expire_ms=lambda note: int((datetime.now(UTC) + timedelta(days=7)).timestamp() * 1000),
)


@pytest.fixture
def fed(tmp_path: Path, toy_kind: None) -> devfed.LocalFederation:
    """The node tests' federation, with ``toy_note`` under the customs treaty only."""
    data = treaties()
    customs = next(d for d in data if d["id"] == CUSTOMS)
    customs["kinds"] = [*customs["kinds"], "toy_note"]
    customs["fields"]["toy_note"] = ["title", "body"]  # never "secret"
    return devfed.build(tmp_path / "fed", AGENCIES, data)


def officer(node: RunningNode) -> Officer:
    return next(o for o in node.node.officers.list() if o.role == "liaison")


def note(**fields: str) -> Struct:
    s = Struct()
    s.update(fields)
    return s


def create(node: RunningNode, message: Struct, **recipients: list[str]) -> StoredRecord[Struct]:
    with node.node.store.write() as w:
        return node.node.records.create(
            w,
            officer(node),
            TOY,
            message,
            recipients=recipients or {CUSTOMS: ["de-customs"]},
            handling=envelope_pb2.HANDLING_CODE_H1,
            tlp=envelope_pb2.TLP_AMBER,
        )


def received_rows(node: RunningNode) -> list[Any]:
    with node.node.store.engine.connect() as conn:
        return list(conn.execute(select(t.records).where(t.records.c.direction == "received")))


def test_a_toy_kind_travels_redacted_and_is_receipted_updated_and_withdrawn(cluster: Any) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    for n in (nl, de):
        n.node.records.register(TOY)

    issued = create(nl, note(title="Blue vans", body="Seen at Venlo", secret="informant 7"))
    assert issued.name == f"toyNotes/{issued.record_id}"
    assert issued.message.fields["secret"].string_value == "informant 7"  # the issuer keeps all
    assert [(d.agency_id, d.treaty_id) for d in issued.deliveries] == [("de-customs", CUSTOMS)]

    rows = wait_for(lambda: received_rows(de), what="the toy note at de-customs")
    assert rows[0].record_id == issued.record_id  # one treaty: the same id on both sides
    assert json.loads(rows[0].record) == {"title": "Blue vans", "body": "Seen at Venlo"}
    assert rows[0].origin_agency == "nl-customs"
    with de.node.store.engine.connect() as conn:
        env = conn.execute(
            select(t.received).where(t.received.c.message_id == issued.record_id)
        ).one()
    assert env.record_id == issued.record_id
    header = envelope_pb2.Header.FromString(
        envelope_pb2.Envelope.FromString(env.envelope).header_bytes
    )
    assert (header.kind, header.record_kind) == (envelope_pb2.MESSAGE_KIND_RECORD, "toy_note")

    # The recipient's receipt marks the delivery at the issuer.
    def delivered() -> bool:
        with nl.node.store.engine.connect() as conn:
            return conn.execute(select(t.record_deliveries.c.delivered_ms)).scalar_one() is not None

    wait_for(delivered, what="the receipt at nl-customs")

    # An update reaches the copy; the secret stays home.
    with nl.node.store.write() as w:
        nl.node.records.update(
            w,
            officer(nl),
            TOY,
            issued.name,
            note(title="Blue vans", body="Now at Emmerich", secret="informant 8"),
        )
    wait_for(
        lambda: json.loads(received_rows(de)[0].record).get("body") == "Now at Emmerich",
        what="the update at de-customs",
    )
    assert "secret" not in json.loads(received_rows(de)[0].record)
    # A withdrawal reaches it too.
    with nl.node.store.write() as w:
        nl.node.records.withdraw(w, officer(nl), TOY, issued.name, "resolved")
    wait_for(lambda: received_rows(de)[0].state == WITHDRAWN, what="the withdrawal at de-customs")
    assert received_rows(de)[0].revoke_reason == "resolved"
    # Reading it at the recipient is audited.
    got = de.node.records.get(officer(de), TOY, issued.name)
    assert got.state == WITHDRAWN
    reads = [e for e in audit_leaves(de, "read") if e.get("kind") == "toy_note"]
    assert reads
    assert reads[-1]["record_ids"] == [issued.record_id]


def test_a_treaty_that_does_not_list_the_kind_refuses_it_at_the_sender(cluster: Any) -> None:
    nl = cluster.start_node("nl-customs")
    nl.node.records.register(TOY)
    with pytest.raises(errors.KindNotPermitted) as exc:
        create(nl, note(title="x"), **{TASKFORCE: ["be-police"]})
    assert exc.value.metadata["rule"] == "kinds"
    with pytest.raises(errors.InvalidArgument):
        create(nl, note(body="no title"))
    with nl.node.store.engine.connect() as conn:
        assert conn.execute(select(t.records)).first() is None
        assert conn.execute(select(t.outbound)).first() is None


def test_a_node_without_the_kind_refuses_it_and_audits_why(cluster: Any) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")  # does not register the toy kind
    nl.node.records.register(TOY)
    issued = create(nl, note(title="Blue vans"))
    leaf = wait_for(
        lambda: next(
            (e for e in audit_leaves(de, "refused") if e.get("message_id") == issued.record_id),
            None,
        ),
        what="the refusal at de-customs",
    )
    assert leaf["reason"] == "KIND_NOT_PERMITTED"
    assert received_rows(de) == []
