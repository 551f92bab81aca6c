"""Joint cases between real nodes and a real gateway (gRPC, mTLS), in this process.

The treaties are the test treaties of ``conftest`` extended for cases, as
the demo federation's would have to be (it lists ``case_entry`` but not
``case_membership``, the kind of the owner's messages):

* the task-force treaty (all three agencies) lists ``case_membership``
  (titles shared) and lets entries carry persons by name and nationality
  only, like its alert allow-list;
* the customs treaty (nl-customs, de-customs) lists ``case_membership``
  without an allow-list (titles are not shared) and lets entries carry
  subjects whole;
* two small treaties between nl-customs and be-police each lack one of the
  two case kinds, for the refusals.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from intelshare import devfed, errors
from intelshare.envelope import verify
from intelshare.v1 import case_pb2, envelope_pb2, gateway_service_pb2
from node.cli.case_client import CaseClient
from node.kinds.cases import db as case_db
from node.sharing.evidence import open_disclosed
from node.sharing.outbox import enqueue
from node.storage import tables as t
from node.storage.officers import OfficerRegistry
from tests.node.conftest import (
    AGENCIES,
    CUSTOMS,
    TASKFORCE,
    Cluster,
    RunningNode,
    treaties,
    wait_for,
)

pytestmark = pytest.mark.slow

PRECURSORS = "precursors-exchange"
VEHICLES = "vehicle-crime-notices"

Three = tuple[RunningNode, RunningNode, RunningNode]


def case_treaties() -> list[dict[str, Any]]:
    data = treaties()
    by_id = {d["id"]: d for d in data}
    tf = by_id[TASKFORCE]
    tf["kinds"].append("case_membership")
    tf["fields"]["case_membership"] = ["title"]
    tf["fields"]["case_entry"] = [
        "text",
        "subjects.persons.name",
        "subjects.persons.nationality",
        "subjects.companies",
        "subjects.containers",
        "subjects.vessels",
        "subjects.vehicles",
        "attachments_digest",
    ]
    cu = by_id[CUSTOMS]
    cu["kinds"].append("case_membership")
    cu["fields"]["case_entry"] = ["text", "subjects", "attachments_digest"]
    valid = tf["valid"]
    common = {
        "version": 1,
        "parties": ["nl-customs", "be-police"],
        "max_handling": {"code": "H1", "tlp": "AMBER"},
        "retention_days": 30,
        "onward_sharing": "within_treaty",
        "valid": valid,
    }
    data.append(
        {
            **common,
            "id": PRECURSORS,
            "title": "Exchange on drug precursors",
            "purpose": "precursors",
            "kinds": ["alert", "case_entry"],
            "categories": ["narcotics"],
            "fields": {"case_entry": ["text"]},
        }
    )
    data.append(
        {
            **common,
            "id": VEHICLES,
            "title": "Notices on vehicle crime",
            "purpose": "vehicle crime",
            "kinds": ["alert", "case_membership"],
            "categories": ["stolen_vehicle"],
            "fields": {"case_membership": ["title"]},
        }
    )
    return data


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    """The federation of ``conftest`` with the case treaties (overrides its ``fed``)."""
    return devfed.build(tmp_path / "fed", AGENCIES, case_treaties())


@pytest.fixture
def three(cluster: Cluster) -> Three:
    return (
        cluster.start_node("nl-customs"),
        cluster.start_node("be-police"),
        cluster.start_node("de-customs"),
    )


def cc(node: RunningNode, role: str = "liaison", token: str | None = None) -> CaseClient:
    return CaseClient(
        node.target,
        ca_pem=node.ca_pem,
        server_name=node.agency,
        token=token or node.tokens[role],
    )


def new_case(
    treaty: str = TASKFORCE, members: tuple[str, ...] = ("be-police", "de-customs"), **over: Any
) -> case_pb2.Case:
    case = case_pb2.Case(
        title="Operation Pangea: counterfeit medicines via Rotterdam",
        treaty_id=treaty,
        categories=["counterfeit_goods"],
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        members=[case_pb2.CaseMember(agency_id=m) for m in members],
    )
    for key, value in over.items():
        if isinstance(value, list):
            del getattr(case, key)[:]
            getattr(case, key).extend(value)
        else:
            setattr(case, key, value)
    return case


def entry(text: str, **person: str) -> case_pb2.CaseEntry:
    e = case_pb2.CaseEntry(text=text, attachments_digest="sha256:" + "ab" * 32)
    e.subjects.persons.add(
        name=person.get("name", "Jan Jansen"),
        nationality="NL",
        date_of_birth="1980-02-29",
        passport_number="NX1234567",
    )
    e.subjects.containers.add(number="MSCU1234566")
    return e


def held(node: RunningNode, case_name: str) -> case_pb2.Case | None:
    with cc(node, "admin") as c:
        try:
            return c.get_case(case_name)
        except (errors.NotFound, errors.PermissionDenied):
            return None


def entries_at(node: RunningNode, case_name: str) -> list[case_pb2.CaseEntry]:
    with cc(node, "admin") as c:
        try:
            return c.all_entries(case_name, page_size=2)
        except errors.NotFound:
            return []


def wait_entries(
    node: RunningNode, case_name: str, n: int, what: str = ""
) -> list[case_pb2.CaseEntry]:
    def enough() -> list[case_pb2.CaseEntry] | None:
        got = entries_at(node, case_name)
        return got if len(got) >= n else None

    found: list[case_pb2.CaseEntry] = wait_for(enough, what=what or f"{n} entries at {node.agency}")
    return found


def event_types(node: RunningNode, case_id: str) -> list[tuple[str, str | None]]:
    with node.node.store.engine.connect() as conn:
        return [
            (r.type, r.agency_id)
            for r in conn.execute(
                select(t.events).where(t.events.c.case_id == case_id).order_by(t.events.c.seq)
            )
        ]


def count(node: RunningNode, table: Any) -> int:
    with node.node.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def audit_events(node: RunningNode) -> list[dict[str, Any]]:
    from intelshare.audit.tables import audit_entries

    with node.node.store.engine.connect() as conn:
        rows = conn.execute(select(audit_entries.c.leaf).order_by(audit_entries.c.idx)).all()
    return [json.loads(bytes(r.leaf)) for r in rows]


# --- the tests ----------------------------------------------------------------------------


def test_three_agency_case_entries_reach_every_member_redacted(three: Three) -> None:
    nl, be, de = three
    with cc(nl) as c:
        case = c.create_case(new_case())
    assert case.standing == case_pb2.CASE_STANDING_OWNER
    assert [m.agency_id for m in case.members] == ["be-police", "de-customs", "nl-customs"]
    assert case.officers == ["liaison"]  # the creator is on the team
    for node in (be, de):
        got = wait_for(lambda node=node: held(node, case.name), what=f"case at {node.agency}")
        assert got.title == case.title  # the task-force treaty shares titles
        assert got.standing == case_pb2.CASE_STANDING_MEMBER
        assert got.owner_agency == "nl-customs"
        assert got.treaty_id == TASKFORCE
        assert [m.agency_id for m in got.members] == ["be-police", "de-customs", "nl-customs"]
        assert list(got.categories) == ["counterfeit_goods"]
    # One entry from each agency; at be-police an analyst on the case team writes.
    with cc(be, "liaison") as c:
        c.add_officer(case.name, "analyst")
    written = {}
    with cc(nl, "liaison") as c:
        written["nl-customs"] = c.add_entry(case.name, entry("nl: container booked", name="A"))
    with cc(be, "analyst") as c:
        written["be-police"] = c.add_entry(case.name, entry("be: consignee seen", name="B"))
    with cc(de, "admin") as c:
        written["de-customs"] = c.add_entry(case.name, entry("de: payment traced", name="C"))
    for author, e in written.items():
        assert e.author_agency == author
        assert e.evidence.signature == case_pb2.ENTRY_SIGNATURE_SEALED_HERE
        assert len(e.evidence.envelope_sha256) == 32
        # The author keeps the full entry and sees what the others did not get.
        assert e.subjects.persons[0].passport_number == "NX1234567"
        assert e.removed_fields == [
            "subjects.persons.date_of_birth",
            "subjects.persons.passport_number",
        ]
    ids = sorted(e.name for e in written.values())
    for node in (nl, be, de):
        got = wait_entries(node, case.name, 3)
        assert sorted(e.name for e in got) == ids  # same ids everywhere
        assert [e.create_time.ToMilliseconds() for e in got] == sorted(
            e.create_time.ToMilliseconds() for e in got
        )
        for e in got:
            if e.author_agency == node.agency:
                continue
            original = written[e.author_agency]
            person = e.subjects.persons[0]
            assert (person.name, person.nationality) == (original.subjects.persons[0].name, "NL")
            assert person.passport_number == ""
            assert person.date_of_birth == ""
            assert "subjects.persons.passport_number" not in e.fields
            assert e.subjects.containers[0].number == "MSCU1234566"
            assert e.text == original.text
            assert e.attachments_digest == original.attachments_digest
            assert e.evidence.signature == case_pb2.ENTRY_SIGNATURE_AUTHOR_ENVELOPE
            assert e.evidence.signer_agency == e.author_agency
            assert e.evidence.message_id == e.name.rsplit("/", 1)[-1]
            # The envelope kept is the author's, byte for byte, and verifies.
            assert e.evidence.envelope_sha256 == original.evidence.envelope_sha256
            with node.node.store.engine.connect() as conn:
                kept = conn.execute(
                    select(t.received.c.envelope).where(
                        t.received.c.message_id == e.evidence.message_id
                    )
                ).scalar_one()
            header = verify(bytes(kept), node.node.trust.directory, now=datetime.now(UTC))
            assert header.sender == e.author_agency
            assert header.kind == envelope_pb2.MESSAGE_KIND_CASE_ENTRY
            assert header.case_id == case.name.removeprefix("cases/")
    with cc(nl) as c:
        wait_for(
            lambda: (
                {
                    e.delivery_state
                    for e in c.all_entries(case.name)
                    if e.author_agency == "nl-customs"
                }
                == {case_pb2.ENTRY_DELIVERY_STATE_SENT}
            ),
            what="nl's entry accepted by the gateway",
        )
        assert c.get_case(case.name).entry_count == 3
    # Events carry ids only, in commit order.
    case_id = case.name.removeprefix("cases/")
    assert event_types(nl, case_id)[0] == ("case.created", "nl-customs")
    assert event_types(be, case_id)[0] == ("case.received", "nl-customs")
    assert sorted(a for ty, a in event_types(de, case_id) if ty == "case.entry_added") == [
        "be-police",
        "de-customs",
        "nl-customs",
    ]
    # Reads of received cases and entries are audited at the member.
    reads = [e for e in audit_events(be) if e["event"] == "read"]
    assert any(e.get("method") == "ListCaseEntries" for e in reads)

    # The same entry in a case under the customs treaty: de-customs gets the
    # passport number (subjects whole), and not the title (no allow-list).
    with cc(nl) as c:
        customs_case = c.create_case(new_case(CUSTOMS, ("de-customs",)))
        c.add_entry(customs_case.name, entry("nl: passport confirmed"))
    got = wait_entries(de, customs_case.name, 1)
    assert got[0].subjects.persons[0].passport_number == "NX1234567"
    assert got[0].subjects.persons[0].date_of_birth == "1980-02-29"
    at_de = held(de, customs_case.name)
    assert at_de is not None
    assert at_de.title == ""
    assert held(be, customs_case.name) is None


def _stored_entry(node: RunningNode, entry_id: str) -> Any:
    with node.node.store.engine.connect() as conn:
        return conn.execute(
            select(t.case_entries).where(t.case_entries.c.entry_id == entry_id)
        ).one()


def test_added_member_receives_history_with_author_signatures(
    three: Three, cluster: Cluster
) -> None:
    nl, be, de = three
    with cc(nl) as c:
        case = c.create_case(new_case(members=("be-police",)))
        first = c.add_entry(case.name, entry("nl: first"))
    wait_for(lambda: held(be, case.name), what="case at be")
    with cc(be) as c:
        second = c.add_entry(case.name, entry("be: second"))
    wait_entries(nl, case.name, 2)
    assert held(de, case.name) is None
    with cc(nl) as c:
        after = c.add_member(case.name, "de-customs")
    assert after.revision == 2
    assert [m.agency_id for m in after.members] == ["be-police", "de-customs", "nl-customs"]
    history = wait_entries(de, case.name, 2, "history at de-customs")
    by_author = {e.author_agency: e for e in history}
    assert by_author["nl-customs"].text == "nl: first"
    assert by_author["be-police"].text == "be: second"
    for e in history:
        assert e.subjects.persons[0].passport_number == ""  # still redacted per treaty
    # nl's own entry travels in nl's (the author's) signed history envelope ...
    own = by_author["nl-customs"]
    assert own.name == first.name
    assert own.evidence.signature == case_pb2.ENTRY_SIGNATURE_AUTHOR_ENVELOPE
    assert own.evidence.signer_agency == "nl-customs"
    # ... be's entry as be's original envelope with its disclosed content key.
    fwd = by_author["be-police"]
    assert fwd.name == second.name
    assert fwd.evidence.signature == case_pb2.ENTRY_SIGNATURE_FORWARDED_AUTHOR_ENVELOPE
    assert fwd.evidence.signer_agency == "be-police"
    assert fwd.evidence.forwarded_by == "nl-customs"
    assert fwd.evidence.envelope_sha256 == second.evidence.envelope_sha256
    row = _stored_entry(de, fwd.name.rsplit("/", 1)[-1])
    directory = de.node.trust.directory
    opened = open_disclosed(
        bytes(row.author_envelope), bytes(row.content_key), directory, now=datetime.now(UTC)
    )
    assert opened.header.sender == "be-police"
    assert opened.header.message_id == fwd.name.rsplit("/", 1)[-1]
    assert "de-customs" not in opened.header.recipients  # it was never addressed to de
    assert json.loads(opened.payload)["text"] == "be: second"
    assert opened.envelope_sha256 == second.evidence.envelope_sha256
    # Any change to the key or the envelope fails verification.
    bad_key = bytes([row.content_key[0] ^ 1]) + bytes(row.content_key[1:])
    with pytest.raises(errors.EnvelopeInvalid):
        open_disclosed(bytes(row.author_envelope), bad_key, directory, now=datetime.now(UTC))
    tampered = bytearray(row.author_envelope)
    tampered[-70] ^= 1
    with pytest.raises(errors.EnvelopeInvalid):
        open_disclosed(bytes(tampered), bytes(row.content_key), directory, now=datetime.now(UTC))
    # be learns that de joined; de's node joined with case.received.
    wait_for(
        lambda: (
            [m.agency_id for m in held(be, case.name).members]  # type: ignore[union-attr]
            == ["be-police", "de-customs", "nl-customs"]
        ),
        what="membership at be",
    )
    case_id = case.name.removeprefix("cases/")
    assert ("case.member_added", "de-customs") in event_types(be, case_id)
    assert event_types(de, case_id)[0] == ("case.received", "nl-customs")
    # The new member writes; everyone gets it.
    with cc(de) as c:
        third = c.add_entry(case.name, entry("de: third"))
    for node in (nl, be):
        assert third.name in {e.name for e in wait_entries(node, case.name, 3)}

    # An author that has not learnt of a new member yet: be's node is offline
    # (no gateway) while nl adds... nobody new, so use a fresh case: be writes
    # before it hears that de joined, and the owner relays the entry to de.
    with cc(nl) as c:
        relay_case = c.create_case(new_case(members=("be-police",)))
    wait_for(lambda: held(be, relay_case.name), what="relay case at be")
    be_url = be.node.config.database_url
    be.node.stop(grace=0.2)
    with cc(nl) as c:
        c.add_member(relay_case.name, "de-customs")
    offline = cluster.start_node("be-police", db=be_url, gateway="127.0.0.1:9")
    with cc(offline) as c:
        stale = c.add_entry(relay_case.name, entry("be: written before hearing of de"))
        assert stale.delivery_state == case_pb2.ENTRY_DELIVERY_STATE_QUEUED
    offline.node.stop(grace=0.2)
    back = cluster.start_node("be-police", db=be_url)
    relayed = wait_entries(de, relay_case.name, 1, "relayed entry at de")[0]
    assert relayed.name == stale.name
    assert relayed.evidence.signature == case_pb2.ENTRY_SIGNATURE_FORWARDED_AUTHOR_ENVELOPE
    assert relayed.evidence.signer_agency == "be-police"
    wait_for(
        lambda: len(held(back, relay_case.name).members) == 3,  # type: ignore[union-attr]
        what="be catches up with the membership",
    )
    assert any(e["event"] == "case_entry_relayed" for e in audit_events(nl))


def test_removed_member_receives_nothing_after(three: Three) -> None:
    nl, be, de = three
    with cc(nl) as c:
        case = c.create_case(new_case())
        c.add_entry(case.name, entry("nl: before the removal"))
    wait_entries(de, case.name, 1)
    wait_entries(be, case.name, 1)
    with cc(nl) as c:
        after = c.remove_member(case.name, "de-customs")
        states = {m.agency_id: m.state for m in after.members}
        assert states["de-customs"] == case_pb2.CASE_MEMBER_STATE_REMOVED
        with pytest.raises(errors.FailedPrecondition):
            c.remove_member(case.name, "de-customs")
    wait_for(
        lambda: held(de, case.name).standing == case_pb2.CASE_STANDING_REMOVED,  # type: ignore[union-attr]
        what="de learns it was removed",
    )
    wait_for(
        lambda: (
            {m.agency_id: m.state for m in held(be, case.name).members}["de-customs"]  # type: ignore[union-attr]
            == case_pb2.CASE_MEMBER_STATE_REMOVED
        ),
        what="be learns that de was removed",
    )
    with cc(de) as c, pytest.raises(errors.FailedPrecondition):
        c.add_entry(case.name, entry("de: after removal"))
    received_before = count(de, t.received)
    with cc(nl) as c:
        late_nl = c.add_entry(case.name, entry("nl: after the removal"))
    with cc(be) as c:
        late_be = c.add_entry(case.name, entry("be: after the removal"))
    wait_entries(be, case.name, 3)
    wait_entries(nl, case.name, 3)
    with cc(be) as c:
        wait_for(
            lambda: (
                c.all_entries(case.name)[-1].delivery_state == case_pb2.ENTRY_DELIVERY_STATE_SENT
            ),
            what="be's entry accepted",
        )
    # Nothing after the removal is even addressed to de-customs.
    for node, late in ((nl, late_nl), (be, late_be)):
        with node.node.store.engine.connect() as conn:
            recipients = conn.execute(
                select(t.outbound.c.recipients).where(
                    t.outbound.c.message_id == late.name.rsplit("/", 1)[-1]
                )
            ).scalar_one()
        assert "de-customs" not in json.loads(recipients)
    assert len(entries_at(de, case.name)) == 1
    assert count(de, t.received) == received_before
    case_id = case.name.removeprefix("cases/")
    assert ("case.member_removed", "de-customs") in event_types(de, case_id)


def test_watch_case_shows_only_cases_the_officer_may_see(three: Three) -> None:
    nl, be, _de = three
    registry = OfficerRegistry(be.node.store.engine)
    _, outsider_token = registry.add("Otto Outsider", "analyst")
    with cc(nl) as c:
        secret = c.create_case(new_case(members=("be-police",)))
        open_ = c.create_case(new_case(members=("be-police",), title="Second case"))
    wait_for(lambda: held(be, secret.name) and held(be, open_.name), what="cases at be")
    with cc(be) as c:
        c.add_officer(secret.name, "analyst")
        c.add_officer(open_.name, "analyst")
        c.add_officer(open_.name, "Otto Outsider")
    with cc(nl) as c:
        c.add_entry(secret.name, entry("secret entry"))
        c.add_entry(open_.name, entry("open entry"))
    wait_entries(be, secret.name, 1)
    wait_entries(be, open_.name, 1)
    secret_id = secret.name.removeprefix("cases/")
    with cc(be, token=outsider_token) as c:
        # Not on the team: no case, no entries, no stream, whether it exists or not.
        with pytest.raises(errors.PermissionDenied):
            c.get_case(secret.name)
        with pytest.raises(errors.PermissionDenied):
            c.list_entries(secret.name)
        with pytest.raises(errors.PermissionDenied):
            c.get_case("cases/0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b")
        with pytest.raises(errors.PermissionDenied):
            next(iter(c.watch_case(secret.name)))
        assert [x.name for x in c.all_cases()] == [open_.name]
        with pytest.raises(errors.PermissionDenied):
            c.add_entry(secret.name, entry("sneaky"))
        seen: list[case_pb2.CaseEvent] = []
        for item in c.watch_case():
            if item.WhichOneof("item") == "heartbeat":
                break
            seen.append(item.event)
    assert seen
    assert {e.case for e in seen} == {open_.name}
    # The analyst on both teams sees both, and resumes exactly after a cursor.
    with cc(be, "analyst") as c:
        everything: list[case_pb2.CaseEvent] = []
        for item in c.watch_case():
            if item.WhichOneof("item") == "heartbeat":
                break
            everything.append(item.event)
        assert {e.case for e in everything} == {secret.name, open_.name}
        cursors = [e.cursor for e in everything]
        assert cursors == sorted(set(cursors))
        middle = everything[len(everything) // 2]
        rest = []
        for item in c.watch_case(after_cursor=middle.cursor):
            if item.WhichOneof("item") == "heartbeat":
                break
            rest.append(item.event.event_id)
        assert rest == [e.event_id for e in everything if e.cursor > middle.cursor]
        # One case, live: an entry written now arrives on the open stream.
        stream = c.watch_case(secret.name, after_cursor=max(cursors))
        with cc(nl) as writer:
            live = writer.add_entry(secret.name, entry("live entry"))
        for item in stream:
            if item.WhichOneof("item") == "event" and item.event.type == "case.entry_added":
                assert item.event.entry == live.name
                assert item.event.agency_id == "nl-customs"
                break
        stream.close()
    # Taken off the team: the one-case stream ends, the all-cases stream skips it.
    with cc(be) as c:
        c.remove_officer(secret.name, "analyst")
    with cc(be, "analyst") as c:
        with pytest.raises(errors.PermissionDenied):
            next(iter(c.watch_case(secret.name)))
        after = []
        for item in c.watch_case():
            if item.WhichOneof("item") == "heartbeat":
                break
            after.append(item.event)
        assert all(e.case != secret.name for e in after)
    assert event_types(be, secret_id)  # the events exist; they were withheld


def test_refusals_name_the_treaty_rule_and_write_nothing(three: Three) -> None:
    nl, be, _de = three
    before = {tab.name: count(nl, tab) for tab in (t.cases, t.outbound, t.events, t.case_entries)}
    with cc(nl) as c:
        with pytest.raises(errors.NotAParty) as na:
            c.create_case(new_case(CUSTOMS, ("be-police",)))
        assert na.value.metadata["rule"] == "parties"
        assert na.value.metadata["treaty_id"] == CUSTOMS
        assert "be-police" in na.value.message
        with pytest.raises(errors.KindNotPermitted) as km:
            c.create_case(new_case(PRECURSORS, ("be-police",), categories=["narcotics"]))
        assert "case_membership" in km.value.message
        assert km.value.metadata["rule"] == "kinds"
        with pytest.raises(errors.KindNotPermitted) as ke:
            c.create_case(new_case(VEHICLES, ("be-police",), categories=["stolen_vehicle"]))
        assert "case_entry" in ke.value.message
        with pytest.raises(errors.CategoryNotPermitted) as cat:
            c.create_case(new_case(categories=["firearms"]))
        assert "firearms" in cat.value.message
        with pytest.raises(errors.HandlingNotPermitted):
            c.create_case(new_case(handling=envelope_pb2.HANDLING_CODE_H2))
        with pytest.raises(errors.TreatyNotInForce):
            c.create_case(new_case("no-such-treaty"))
        with pytest.raises(errors.InvalidArgument) as bad:
            c.create_case(
                case_pb2.Case(
                    title=" padded ",
                    categories=["Not Snake", "x"],
                    members=[
                        case_pb2.CaseMember(agency_id="nl-customs"),
                        case_pb2.CaseMember(agency_id="BAD ID"),
                    ],
                )
            )
        assert set(bad.value.violations) >= {
            "case.title",
            "case.treaty_id",
            "case.categories[0]",
            "case.handling",
            "case.tlp",
            "case.members[0].agency_id",
            "case.members[1].agency_id",
        }
        case = c.create_case(new_case(CUSTOMS, ("de-customs",)))
        with pytest.raises(errors.NotAParty) as na2:
            c.add_member(case.name, "be-police")
        assert na2.value.metadata["rule"] == "parties"
        with pytest.raises(errors.InvalidArgument) as bad_entry:
            c.add_entry(
                case.name,
                case_pb2.CaseEntry(
                    text="",
                    attachments_digest="md5:123",
                    subjects={"containers": [{"number": "MSCU1234567"}]},
                ),
            )
        assert set(bad_entry.value.violations) == {
            "entry.text",
            "entry.attachments_digest",
            "entry.subjects.containers[0].number",
        }
        with pytest.raises(errors.InvalidArgument):
            c.get_case("cases/not-a-uuid")
        with pytest.raises(errors.NotFound):
            c.get_case("cases/0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b")
    after = {tab.name: count(nl, tab) for tab in (t.cases, t.outbound, t.events, t.case_entries)}
    assert after["node_cases"] == before["node_cases"] + 1  # only the valid customs case
    assert after["node_case_entries"] == before["node_case_entries"]
    assert after["node_outbound"] == before["node_outbound"] + 1
    # Roles: analysts do not open cases; only the owner manages members.
    with cc(nl, "analyst") as c, pytest.raises(errors.PermissionDenied):
        c.create_case(new_case())
    with cc(nl) as c:
        shared = c.create_case(new_case(members=("be-police",)))
    wait_for(lambda: held(be, shared.name), what="case at be")
    with cc(be) as c:
        with pytest.raises(errors.FailedPrecondition) as owner_only:
            c.add_member(shared.name, "de-customs")
        assert "nl-customs" in owner_only.value.message
        with pytest.raises(errors.FailedPrecondition):
            c.close_case(shared.name)
    # A closed case takes no entries, here or at the members.
    with cc(nl) as c:
        closed = c.close_case(shared.name)
        assert closed.state == case_pb2.CASE_STATE_CLOSED
        with pytest.raises(errors.FailedPrecondition):
            c.add_entry(shared.name, entry("too late"))
    wait_for(
        lambda: held(be, shared.name).state == case_pb2.CASE_STATE_CLOSED,  # type: ignore[union-attr]
        what="closed at be",
    )
    with cc(be) as c, pytest.raises(errors.FailedPrecondition):
        c.add_entry(shared.name, entry("too late"))


def test_request_ids_make_case_mutations_idempotent(three: Three) -> None:
    nl, _be, _de = three
    with cc(nl) as c:
        first = c.create_case(new_case(), request_id="case-1")
        again = c.create_case(new_case(), request_id="case-1")
        assert again == first
        with pytest.raises(errors.RequestIdReused):
            c.create_case(new_case(title="Another"), request_id="case-1")
        e1 = c.add_entry(first.name, entry("once"), request_id="entry-1")
        e2 = c.add_entry(first.name, entry("once"), request_id="entry-1")
        assert e1.name == e2.name
        r1 = c.remove_member(first.name, "de-customs", request_id="rm-1")
        r2 = c.remove_member(first.name, "de-customs", request_id="rm-1")
        assert r1 == r2
        a1 = c.add_member(first.name, "de-customs", request_id="add-1")
        a2 = c.add_member(first.name, "de-customs", request_id="add-1")
        assert a1 == a2
        assert a1.revision == 3
        assert [x.name for x in c.all_cases()] == [first.name]
        assert len(c.all_entries(first.name)) == 1
    case_id = first.name.removeprefix("cases/")
    with nl.node.store.engine.connect() as conn:
        sent = conn.execute(
            select(func.count()).select_from(t.outbound).where(t.outbound.c.case_id == case_id)
        ).scalar_one()
    # create + entry + removal + (notice to be + history to de)
    assert sent == 5


def test_forged_history_is_refused_and_nothing_is_stored(three: Three) -> None:
    """A history entry whose disclosed key does not match is refused as a whole, audited."""
    nl, be, de = three
    with cc(nl) as c:
        case = c.create_case(new_case(members=("be-police",)))
    wait_for(lambda: held(be, case.name), what="case at be")
    with cc(be) as c:
        genuine = c.add_entry(case.name, entry("be: genuine"))
    wait_entries(nl, case.name, 1)
    cases = nl.node.cases
    case_id = case.name.removeprefix("cases/")
    with nl.node.store.engine.connect() as conn:
        row = case_db.case_row(conn, case_id)
        assert row is not None
        envelope = conn.execute(
            select(t.received.c.envelope).where(
                t.received.c.message_id == genuine.name.rsplit("/", 1)[-1]
            )
        ).scalar_one()
    treaty = nl.node.trust.current(TASKFORCE).treaty
    item = {
        "entry_id": genuine.name.rsplit("/", 1)[-1],
        "author": "be-police",
        "created_ms": 1,
        "envelope": base64.b64encode(bytes(envelope)).decode(),
        "content_key": base64.b64encode(b"\x00" * 32).decode(),
    }
    state = dict(row._mapping)
    payload = cases._state(state, treaty, ["be-police", "de-customs", "nl-customs"], [item])
    sealed = cases._seal(
        treaty,
        state,
        kind=envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP,
        recipients=["de-customs"],
        payload=payload,
    )
    with nl.node.store.write() as w:
        enqueue(w, sealed)
    nl.node.sender.wake()
    wait_for(
        lambda: any(
            e["event"] == "refused" and e.get("message_id") == sealed.message_id
            for e in audit_events(de)
        ),
        what="refusal audited at de",
    )
    refusal = next(e for e in audit_events(de) if e.get("message_id") == sealed.message_id)
    assert refusal["reason"] == "SIGNATURE_INVALID"
    assert held(de, case.name) is None
    assert count(de, t.case_entries) == 0


def test_retention_purges_received_entries_with_an_audit_entry(three: Three) -> None:
    nl, be, _de = three
    with cc(nl) as c:
        case = c.create_case(new_case(members=("be-police",)))
        c.add_entry(case.name, entry("nl: to be purged"))
    wait_entries(be, case.name, 1)
    with cc(be) as c:
        own = c.add_entry(case.name, entry("be: own entries stay"))
    case_id = case.name.removeprefix("cases/")
    with be.node.store.engine.begin() as conn:
        conn.execute(
            t.case_entries.update()
            .where(t.case_entries.c.case_id == case_id, t.case_entries.c.direction == "received")
            .values(retain_until_ms=1)
        )
    be.node.cases.purge_retention()
    assert [e.name for e in entries_at(be, case.name)] == [own.name]
    purged = [e for e in audit_events(be) if e["event"] == "purged" and e.get("case_id") == case_id]
    assert purged
    assert purged[0]["rule"] == "retention_days"


def test_history_larger_than_one_envelope_arrives_in_several(three: Three) -> None:
    nl, be, de = three
    with cc(nl) as c:
        case = c.create_case(new_case(members=("be-police",)))
        for n in range(3):
            c.add_entry(case.name, entry(f"nl: entry {n} " + "x" * 3000))
    wait_for(lambda: held(be, case.name), what="case at be")
    with cc(be) as c:
        for n in range(2):
            c.add_entry(case.name, entry(f"be: entry {n} " + "y" * 3000))
    wait_entries(nl, case.name, 5)
    nl.node.cases.max_payload_bytes = 12_000  # history chunks of about 6 kB
    with cc(nl) as c:
        c.add_member(case.name, "de-customs")
    got = wait_entries(de, case.name, 5, "the whole history at de")
    assert [e.text[:10] for e in got] == [
        "nl: entry ",
        "nl: entry ",
        "nl: entry ",
        "be: entry ",
        "be: entry ",
    ]
    with nl.node.store.engine.connect() as conn:
        to_de = [
            json.loads(r.recipients)
            for r in conn.execute(
                select(t.outbound.c.recipients).where(
                    t.outbound.c.case_id == case.name.removeprefix("cases/"),
                    t.outbound.c.kind == envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP,
                )
            )
        ].count(["de-customs"])
    assert to_de >= 3


def test_a_member_cannot_claim_a_case_id_before_its_owner_adds_an_agency(three: Three) -> None:
    """The case-id claim attack (issue 23, item 6), refused at the gateway and at the receiver.

    be-police, a member of nl-customs' case, seals a membership of that case
    id naming itself owner and de-customs a member, before nl-customs adds
    de-customs. Were it accepted, de-customs would take be-police for the
    owner and refuse the real owner's membership later. The case id binds
    its owner, so the gateway refuses the claim on the header alone, and
    de-customs refuses it too when it arrives by another route; the real
    owner's membership then opens the case at de-customs.
    """
    nl, be, de = three
    de.node.inbound.stop()  # de-customs' inbox is driven by hand below
    with cc(nl) as c:
        case = c.create_case(new_case(members=("be-police",)))
    wait_for(lambda: held(be, case.name), what="case at be")
    case_id = case.name.removeprefix("cases/")
    with be.node.store.engine.connect() as conn:
        row = case_db.case_row(conn, case_id)
        assert row is not None
        assert row.owner_agency == "nl-customs"
    treaty = be.node.trust.current(TASKFORCE).treaty
    claim = be.node.cases._seal(
        treaty,
        dict(row._mapping),
        kind=envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP,
        recipients=["de-customs"],
        payload=be.node.cases._state(dict(row._mapping), treaty, ["be-police", "de-customs"]),
    )
    signed = verify(claim.envelope, be.node.trust.directory, now=datetime.now(UTC))
    assert signed.case_id == case_id
    assert signed.sender == "be-police"
    # The gateway sees the case id and the sender in the signed header.
    with pytest.raises(errors.CaseOwnerMismatch) as refused:
        be.node.client.submit(envelope_pb2.Envelope.FromString(claim.envelope))
    assert "be-police" in refused.value.message
    # A route around the gateway: the receiving node checks the same binding.
    inbound = de.node.inbound
    assert inbound.handle_entry(_inbox_entry(claim.envelope, 1)) == "refused"
    refusal = next(e for e in audit_events(de) if e.get("message_id") == claim.message_id)
    assert refusal["reason"] == "CASE_OWNER_MISMATCH"
    assert held(de, case.name) is None
    # The real owner adds de-customs: its membership opens the case there.
    with cc(nl) as c:
        c.add_member(case.name, "de-customs")
    with nl.node.store.engine.connect() as conn:
        real = conn.execute(
            select(t.outbound.c.envelope)
            .where(
                t.outbound.c.case_id == case_id,
                t.outbound.c.kind == envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP,
                t.outbound.c.recipients.contains("de-customs"),
            )
            .order_by(t.outbound.c.id.desc())
        ).first()
    assert real is not None
    assert inbound.handle_entry(_inbox_entry(bytes(real.envelope), 2)) == "stored"
    with de.node.store.engine.connect() as conn:
        opened = case_db.case_row(conn, case_id)
    assert opened is not None
    assert opened.owner_agency == "nl-customs"


def _inbox_entry(envelope: bytes, sequence: int) -> gateway_service_pb2.InboxEntry:
    return gateway_service_pb2.InboxEntry(
        sequence=sequence, envelope=envelope_pb2.Envelope.FromString(envelope)
    )
