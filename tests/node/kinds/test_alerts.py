"""Alerts between real nodes and a real gateway (gRPC, mTLS), in this process.

Each test starts a gateway and the nodes it needs, each node on its own
database (SQLite files or fresh PostgreSQL databases), and talks to the
nodes through the officer API exactly as the command line does.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Table, func, select

from intelshare import errors
from intelshare.v1 import alert_pb2, envelope_pb2
from node.cli.client import NodeClient
from node.storage import tables as t
from tests.node.conftest import (
    CUSTOMS,
    TASKFORCE,
    Cluster,
    RunningNode,
    demo_alert,
    expire_in,
    wait_for,
)

pytestmark = pytest.mark.slow

Three = tuple[RunningNode, RunningNode, RunningNode]


def received(node: RunningNode, timeout: float = 30.0) -> alert_pb2.Alert:
    with node.client("analyst") as c:
        alerts = wait_for(
            lambda: c.list_alerts(direction=alert_pb2.ALERT_DIRECTION_RECEIVED).alerts,
            timeout,
            f"an alert at {node.agency}",
        )
        return c.get_alert(alerts[0].name)


def delivery_states(c: NodeClient, name: str) -> dict[str, int]:
    return {d.agency_id: d.state for d in c.get_alert(name).deliveries}


def count(node: RunningNode, table: Table) -> int:
    with node.node.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def audit_events(node: RunningNode) -> list[dict[str, object]]:
    from intelshare.audit.tables import audit_entries

    with node.node.store.engine.connect() as conn:
        rows = conn.execute(select(audit_entries.c.leaf).order_by(audit_entries.c.idx)).all()
    return [json.loads(bytes(r.leaf)) for r in rows]


@pytest.fixture
def three(cluster: Cluster) -> tuple[RunningNode, RunningNode, RunningNode]:
    return (
        cluster.start_node("nl-customs"),
        cluster.start_node("be-police"),
        cluster.start_node("de-customs"),
    )


def test_issue_redacts_per_treaty_and_tracks_delivery(three: Three) -> None:
    nl, be, de = three
    with nl.client("liaison") as c:
        issued = c.create_alert(demo_alert())
        assert issued.direction == alert_pb2.ALERT_DIRECTION_ISSUED
        assert {d.agency_id: d.treaty_id for d in issued.deliveries} == {
            "be-police": TASKFORCE,
            "de-customs": CUSTOMS,
        }
        # The issuer keeps the full record.
        assert issued.subjects.persons[0].passport_number == "NX1234567"

    at_de = received(de)
    at_be = received(be)
    # de-customs (customs treaty) gets date of birth and passport number ...
    assert at_de.subjects.persons[0].date_of_birth == "1980-02-29"
    assert at_de.subjects.persons[0].passport_number == "NX1234567"
    # ... be-police (task-force treaty) does not, and neither sees the role.
    person = at_be.subjects.persons[0]
    assert (person.name, person.nationality) == ("Jan Jansen", "NL")
    assert person.date_of_birth == ""
    assert person.passport_number == ""
    assert person.role == ""
    assert "subjects.persons.passport_number" not in at_be.received.fields
    assert "subjects.persons.passport_number" in at_de.received.fields
    assert at_be.origin_agency == "nl-customs"
    assert at_be.treaty_id == TASKFORCE
    assert at_de.treaty_id == CUSTOMS
    assert at_be.subjects.containers[0].number == "MSCU1234566"
    assert len(at_be.received.envelope_sha256) == 32
    # The recipient's alert id is the message id of the envelope it received,
    # which the issuer's delivery record names too.
    with nl.client("analyst") as c:
        wait_for(
            lambda: (
                set(delivery_states(c, issued.name).values())
                == {alert_pb2.DELIVERY_STATE_DELIVERED}
            ),
            what="both deliveries confirmed",
        )
        final = c.get_alert(issued.name)
        by_agency = {d.agency_id: d for d in final.deliveries}
        assert at_be.name == f"alerts/{by_agency['be-police'].message_id}"
        assert at_de.name == f"alerts/{by_agency['de-customs'].message_id}"
        # Exactly what each recipient received.
        seen_be = c.get_delivery(issued.name, "be-police")
        assert seen_be.alert.subjects.persons[0].passport_number == ""
        assert "subjects.persons.passport_number" in seen_be.removed_fields
        assert "subjects.persons.date_of_birth" in seen_be.removed_fields
        seen_de = c.get_delivery(issued.name, "de-customs")
        assert seen_de.alert.subjects.persons[0].passport_number == "NX1234567"
        assert seen_de.removed_fields == ["subjects.persons.role"]
        assert [m.kind for m in seen_de.messages] == [envelope_pb2.MESSAGE_KIND_ALERT]
        assert seen_de.messages[0].HasField("accept_time")
    # Officer reads of received alerts are audited at the recipient.
    reads = [e for e in audit_events(be) if e["event"] == "read"]
    assert any(at_be.name.removeprefix("alerts/") in e["alert_ids"] for e in reads)


def test_acknowledge_hit_update_revoke(three: Three) -> None:
    nl, be, de = three
    with nl.client("liaison") as c:
        issued = c.create_alert(demo_alert())
    at_be = received(be)
    at_de = received(de)
    with be.client("analyst") as c:
        acked = c.acknowledge_alert(at_be.name)
        assert acked.received.HasField("acknowledge_time")
        again = c.acknowledge_alert(at_be.name)  # acknowledging twice changes nothing
        assert again.received.acknowledge_time == acked.received.acknowledge_time
        hit = c.report_hit(
            at_be.name,
            found_time=expire_in(timedelta(minutes=-30)),
            place="Port of Antwerp, terminal 913",
            found="Consignee's director seen collecting the container",
        )
        assert hit.hits[0].place == "Port of Antwerp, terminal 913"
    with nl.client("analyst") as c:
        wait_for(
            lambda: delivery_states(c, issued.name)["be-police"] == alert_pb2.DELIVERY_STATE_HIT,
            what="hit at the issuer",
        )
        seen = c.get_alert(issued.name)
        d_be = {d.agency_id: d for d in seen.deliveries}["be-police"]
        assert d_be.HasField("acknowledge_time")
        assert d_be.hit_count == 1
        assert [(h.agency_id, h.place) for h in seen.hits] == [
            ("be-police", "Port of Antwerp, terminal 913")
        ]
        assert seen.hits[0].found.startswith("Consignee")
    # Update: both recipients get the new version, still redacted per treaty.
    with nl.client("liaison") as c:
        change = alert_pb2.Alert(
            name=issued.name,
            description="Container now expected at Antwerp",
            urgency=alert_pb2.URGENCY_CRITICAL,
        )
        updated = c.update_alert(change, ["description", "urgency"])
        assert updated.revision == 2
        assert updated.description == "Container now expected at Antwerp"
    for node, name in ((be, at_be.name), (de, at_de.name)):
        with node.client("analyst") as c:
            now = wait_for(
                lambda c=c, name=name: (a := c.get_alert(name)).revision == 2 and a,
                what=f"update at {node.agency}",
            )
            assert now.description == "Container now expected at Antwerp"
            assert now.urgency == alert_pb2.URGENCY_CRITICAL
    with be.client("analyst") as c:
        assert c.get_alert(at_be.name).subjects.persons[0].passport_number == ""
    with de.client("analyst") as c:
        assert c.get_alert(at_de.name).subjects.persons[0].passport_number == "NX1234567"
    # Revoke reaches everyone; afterwards nothing more can be done with it.
    with nl.client("liaison") as c:
        revoked = c.revoke_alert(issued.name, reason="seized")
        assert revoked.state == alert_pb2.ALERT_STATE_REVOKED
        assert revoked.revoke_reason == "seized"
        with pytest.raises(errors.FailedPrecondition):
            c.update_alert(alert_pb2.Alert(name=issued.name, description="x"), ["description"])
        with pytest.raises(errors.FailedPrecondition):
            c.revoke_alert(issued.name)
    for node, name in ((be, at_be.name), (de, at_de.name)):
        with node.client("analyst") as c:
            wait_for(
                lambda c=c, name=name: c.get_alert(name).state == alert_pb2.ALERT_STATE_REVOKED,
                what=f"revocation at {node.agency}",
            )
            assert c.get_alert(name).revoke_reason == ""  # the reason stays with the issuer
    with de.client("analyst") as c, pytest.raises(errors.FailedPrecondition):
        c.acknowledge_alert(at_de.name)
    # Events, in commit order, ids only.
    with nl.node.store.engine.connect() as conn:
        types = [r.type for r in conn.execute(select(t.events).order_by(t.events.c.seq))]
    assert types[0] == "alert.issued"
    for expected in (
        "alert.delivered",
        "alert.acknowledged",
        "alert.hit_reported",
        "alert.updated",
        "alert.revoked",
    ):
        assert expected in types
    with be.node.store.engine.connect() as conn:
        be_types = [r.type for r in conn.execute(select(t.events).order_by(t.events.c.seq))]
    assert be_types == [
        "alert.received",
        "alert.acknowledged",
        "alert.hit_reported",
        "alert.updated",
        "alert.revoked",
    ]


def test_policy_refusals_name_the_rule_and_write_nothing(three: Three) -> None:
    nl, _be, _de = three
    to_be = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
    with nl.client("liaison") as c:
        with pytest.raises(errors.CategoryNotPermitted) as exc:
            c.create_alert(demo_alert(kind=alert_pb2.ALERT_KIND_FIREARMS, recipients=to_be))
        assert exc.value.metadata["treaty_id"] == TASKFORCE
        assert "firearms" in exc.value.message
        with pytest.raises(errors.HandlingNotPermitted):
            c.create_alert(demo_alert(handling=envelope_pb2.HANDLING_CODE_H2, recipients=to_be))
        with pytest.raises(errors.HandlingNotPermitted):
            c.create_alert(demo_alert(tlp=envelope_pb2.TLP_RED, recipients=to_be))
        with pytest.raises(errors.NotAParty):
            c.create_alert(
                demo_alert(
                    recipients=[alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=CUSTOMS)]
                )
            )
        with pytest.raises(errors.TreatyNotInForce):
            c.create_alert(
                demo_alert(
                    recipients=[alert_pb2.AlertRecipient(agency_id="be-police", treaty_id="nope")]
                )
            )
        # Held for review, but checked on everything else first: the task force
        # does not permit the category (node.kinds.reviews).
        with pytest.raises(errors.PolicyRefused) as review:
            c.create_alert(
                demo_alert(
                    kind=alert_pb2.ALERT_KIND_WANTED_PERSON,
                    categories=["counterfeit_goods", "wanted_person"],
                    recipients=to_be,
                )
            )
        assert review.value.reason == "CATEGORY_NOT_PERMITTED"
        # A refusal of one recipient refuses the whole alert.
        with pytest.raises(errors.CategoryNotPermitted):
            c.create_alert(
                demo_alert(
                    kind=alert_pb2.ALERT_KIND_FIREARMS,
                    recipients=[
                        alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=CUSTOMS),
                        alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE),
                    ],
                )
            )
        assert c.list_alerts().alerts == []
    for table in (t.alerts, t.outbound, t.events, t.views, t.deliveries, t.requests):
        assert count(nl, table) == 0, table.name


def test_invalid_input_lists_every_field_and_writes_nothing(three: Three) -> None:
    nl, _be, _de = three
    bad = demo_alert(
        description="",
        expire_time=expire_in(timedelta(days=-1)),
        recipients=[
            alert_pb2.AlertRecipient(agency_id="nl-customs", treaty_id=CUSTOMS),
            alert_pb2.AlertRecipient(agency_id="be-police"),
        ],
    )
    bad.subjects.containers[0].number = "MSCU1234567"  # wrong ISO 6346 check digit
    bad.subjects.persons[0].date_of_birth = "1980-02-30"
    bad.subjects.vessels.add(name="Ever Given", imo_number="9811001")
    bad.subjects.vehicles.add(vin="1HGCM82633A00435I")
    with nl.client("liaison") as c:
        with pytest.raises(errors.InvalidArgument) as exc:
            c.create_alert(bad)
        v = exc.value.violations
        assert set(v) >= {
            "alert.description",
            "alert.expire_time",
            "alert.recipients[0].agency_id",
            "alert.recipients[1].treaty_id",
            "alert.subjects.containers[0].number",
            "alert.subjects.persons[0].date_of_birth",
            "alert.subjects.vessels[0].imo_number",
            "alert.subjects.vehicles[0].vin",
        }, v
        assert "check digit" in v["alert.subjects.containers[0].number"]
        with pytest.raises(errors.InvalidArgument) as exc:
            c.create_alert(alert_pb2.Alert())
        assert {"alert.kind", "alert.recipients", "alert.handling", "alert.tlp"} <= set(
            exc.value.violations
        )
        with pytest.raises(errors.InvalidArgument):
            c.get_alert("alerts/")
        with pytest.raises(errors.NotFound):
            c.get_alert("alerts/01a00000-0000-7000-8000-000000000000")
        with pytest.raises(errors.InvalidArgument) as exc:
            c.create_alert(demo_alert(), request_id="not a valid id!")
        assert "request_id" in exc.value.violations
    for table in (t.alerts, t.outbound, t.events, t.requests):
        assert count(nl, table) == 0, table.name


def test_roles_and_tokens(three: Three) -> None:
    nl, be, _de = three
    with nl.client("analyst") as c, pytest.raises(errors.PermissionDenied):
        c.create_alert(demo_alert())
    with nl.client("liaison") as c:
        issued = c.create_alert(demo_alert())
    at_be = received(be)
    with be.client("liaison") as c:
        with pytest.raises(errors.PermissionDenied):
            c.acknowledge_alert(at_be.name)
        with pytest.raises(errors.PermissionDenied):
            c.report_hit(at_be.name, found_time=expire_in(timedelta(0)), place="x", found="y")
        c.get_alert(at_be.name)  # liaison officers read
    with be.client("admin") as c:
        c.acknowledge_alert(at_be.name)  # admins may do everything
    for token in ("", "wrong-token", nl.tokens["admin"] + "x"):
        client = NodeClient(nl.target, ca_pem=nl.ca_pem, server_name=nl.agency, token=token)
        with client, pytest.raises(errors.Unauthenticated):
            client.get_alert(issued.name)
    # An officer of one agency is nobody at another agency's node.
    client = NodeClient(
        be.target, ca_pem=be.ca_pem, server_name=be.agency, token=nl.tokens["admin"]
    )
    with client, pytest.raises(errors.Unauthenticated):
        client.list_alerts()
    # Tokens are stored only as SHA-256.
    with nl.node.store.engine.connect() as conn:
        stored = {r.token_sha256 for r in conn.execute(select(t.officers))}
    assert nl.tokens["admin"] not in stored
    import hashlib

    assert hashlib.sha256(nl.tokens["admin"].encode()).hexdigest() in stored


def test_request_id_makes_mutations_idempotent(three: Three) -> None:
    nl, be, _de = three
    alert = demo_alert()
    with nl.client("liaison") as c:
        first = c.create_alert(alert, request_id="req-1")
        again = c.create_alert(alert, request_id="req-1")
        assert again == first
        assert len(c.list_alerts().alerts) == 1
        with pytest.raises(errors.RequestIdReused):
            c.create_alert(demo_alert(description="something else"), request_id="req-1")
        revoked = c.revoke_alert(first.name, request_id="req-2")
        assert c.revoke_alert(first.name, request_id="req-2") == revoked
        with pytest.raises(errors.RequestIdReused):
            c.update_alert(
                alert_pb2.Alert(name=first.name, description="x"), ["description"], "req-2"
            )
    assert count(nl, t.outbound) == 4  # two alert envelopes, two revocations: nothing twice
    with nl.node.store.engine.connect() as conn:
        types = [r.type for r in conn.execute(select(t.events.c.type))]
    assert sorted(types).count("alert.issued") == 1
    assert types.count("alert.revoked") == 1
    # The same request_id from another officer is not theirs to replay.
    with nl.client("admin") as c, pytest.raises(errors.RequestIdReused):
        c.create_alert(alert, request_id="req-1")
    _ = be


def test_list_filters_and_pages(three: Three) -> None:
    nl, be, _de = three
    to_be = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
    to_de = [alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=CUSTOMS)]
    with nl.client("liaison") as c:
        names = [c.create_alert(demo_alert(recipients=to_be)).name for _ in range(3)]
        names.append(
            c.create_alert(demo_alert(kind=alert_pb2.ALERT_KIND_NARCOTICS, recipients=to_de)).name
        )
        names.append(c.create_alert(demo_alert(recipients=to_de)).name)
        c.revoke_alert(names[0])
        pages = []
        token = ""
        while True:
            page = c.list_alerts(page_size=2, page_token=token)
            pages.append([a.name for a in page.alerts])
            token = page.next_page_token
            if not token:
                break
        assert [len(p) for p in pages] == [2, 2, 1]
        assert [n for p in pages for n in p] == list(reversed(names))  # newest first
        assert len(c.list_all(kind=alert_pb2.ALERT_KIND_NARCOTICS)) == 1
        assert len(c.list_all(treaty_id=CUSTOMS)) == 2
        assert len(c.list_all(state=alert_pb2.ALERT_STATE_REVOKED)) == 1
        assert len(c.list_all(state=alert_pb2.ALERT_STATE_ACTIVE)) == 4
        assert c.list_all(direction=alert_pb2.ALERT_DIRECTION_RECEIVED) == []
        with pytest.raises(errors.InvalidArgument) as exc:
            c.list_alerts(page_token="garbage!")
        assert "page_token" in exc.value.violations
        first = c.list_alerts(page_size=2)
        with pytest.raises(errors.InvalidArgument):
            c.list_alerts(page_size=2, page_token=first.next_page_token, treaty_id=CUSTOMS)
        with pytest.raises(errors.InvalidArgument):
            c.list_alerts(page_size=-1)
    with be.client("analyst") as c:
        got = wait_for(lambda: len(c.list_all()) == 3 and c.list_all(), what="three at be")
        assert {a.direction for a in got} == {alert_pb2.ALERT_DIRECTION_RECEIVED}
        assert len(c.list_all(treaty_id=TASKFORCE)) == 3
        wait_for(
            lambda: len(c.list_all(state=alert_pb2.ALERT_STATE_REVOKED)) == 1, what="revoked at be"
        )


def test_expired_alerts_leave_every_active_list(three: Three) -> None:
    nl, be, de = three
    with nl.client("liaison") as c:
        short = c.create_alert(demo_alert(expire_time=expire_in(timedelta(seconds=3))))
        long = c.create_alert(demo_alert())
    for node in (be, de):
        with node.client("analyst") as c:
            wait_for(lambda c=c: len(c.list_all()) == 2, what=f"two alerts at {node.agency}")
    for node in (nl, be, de):
        with node.client("analyst") as c:
            active = wait_for(
                lambda c=c: (
                    (a := c.list_all(state=alert_pb2.ALERT_STATE_ACTIVE)) and len(a) == 1 and a
                ),
                what=f"expiry at {node.agency}",
            )
            if node is nl:
                assert active[0].name == long.name
            expired = c.list_all(state=alert_pb2.ALERT_STATE_EXPIRED)
            assert len(expired) == 1
            assert expired[0].state == alert_pb2.ALERT_STATE_EXPIRED
        with node.node.store.engine.connect():
            wait_for(
                lambda node=node: _types(node).count("alert.expired") == 1,
                what=f"alert.expired event at {node.agency}",
            )
    with nl.client("liaison") as c, pytest.raises(errors.FailedPrecondition):
        c.update_alert(alert_pb2.Alert(name=short.name, description="late"), ["description"])


def _types(node: RunningNode) -> list[str]:
    with node.node.store.engine.connect() as conn:
        return [r.type for r in conn.execute(select(t.events.c.type).order_by(t.events.c.seq))]


def test_issue_while_gateway_is_down_then_delivered(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    port = cluster.gateway.port
    cluster.gateway.stop(grace=0.1)
    to_de = [alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=CUSTOMS)]
    with nl.client("liaison") as c:
        issued = c.create_alert(demo_alert(recipients=to_de))
        assert issued.deliveries[0].state == alert_pb2.DELIVERY_STATE_QUEUED
        wait_for(
            lambda: nl.node.sender.pending_count() == 1 and _last_error(nl),
            what="a failed attempt while the gateway is down",
        )
    cluster.restart_gateway(port)
    received(de)
    with nl.client("analyst") as c:
        wait_for(
            lambda: (
                c.get_alert(issued.name).deliveries[0].state == alert_pb2.DELIVERY_STATE_DELIVERED
            ),
            what="delivery after the outage",
        )


def _last_error(node: RunningNode) -> str:
    with node.node.store.engine.connect() as conn:
        return str(conn.execute(select(t.outbound.c.last_error)).scalar_one() or "")


def test_watch_alerts_replays_then_follows(three: Three) -> None:
    nl, be, _de = three
    to_be = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(recipients=to_be))
    received(be)
    import threading

    seen: list[tuple[int, str]] = []
    done = threading.Event()
    client = be.client("analyst")

    def follow() -> None:
        for item in client.watch(0):
            if item.WhichOneof("item") == "event":
                seen.append((item.event.cursor, item.event.type))
                if len(seen) == 3:
                    done.set()
                    return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    wait_for(lambda: len(seen) >= 1, what="replayed event")
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(recipients=to_be, description="second"))
    with be.client("analyst") as c:
        wait_for(lambda: len(c.list_all()) == 2, what="second alert at be")
        c.acknowledge_alert(c.list_all()[0].name)
    assert done.wait(20), seen
    client.close()
    assert [s[1] for s in seen] == ["alert.received", "alert.received", "alert.acknowledged"]
    cursors = [s[0] for s in seen]
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == 3
    # Resuming after the first event gives exactly the rest, once.
    with be.client("analyst") as c:
        rest = []
        for item in c.watch(cursors[0]):
            if item.WhichOneof("item") == "heartbeat":
                break
            rest.append(item.event.cursor)
        assert rest == cursors[1:]
        with pytest.raises(errors.InvalidArgument):
            next(iter(c.watch(10_000)))
        kinds = []
        for item in c.watch(0, kind=alert_pb2.ALERT_KIND_NARCOTICS):
            if item.WhichOneof("item") == "heartbeat":
                break
            kinds.append(item.event.type)
        assert kinds == []


def test_a_kind_reserved_for_review_is_held_and_sent_nowhere(cluster: Cluster) -> None:
    """A treaty published after the node started is fetched on first use.

    The alert waits for an approver (tests/node/kinds/test_workflows.py has
    the approval); nothing is queued for the gateway meanwhile.
    """
    from intelshare.treaty import Treaty
    from tests.node.conftest import publish_treaties

    nl = cluster.start_node("nl-customs")
    cluster.start_node("be-police")
    wanted = Treaty.from_mapping(
        {
            "id": "wanted-persons",
            "title": "Wanted persons",
            "parties": ["nl-customs", "be-police"],
            "valid": {
                "from": "2020-01-01",
                "until": "2099-12-31",
            },
            "kinds": ["alert"],
            "categories": ["wanted_person"],
            "max_handling": {"code": "H2", "tlp": "AMBER"},
            "fields": {"alert": ["kind", "description"]},
            "retention_days": 30,
            "onward_sharing": "forbidden",
            "review_required_for": ["wanted_person"],
        }
    )
    from intelshare import devfed

    path = cluster.fed.root / "treaties" / "wanted-persons.v1.treaty"
    path.write_bytes(devfed.sign_by_parties(wanted, cluster.fed.agencies).to_bytes())
    cluster.fed.treaties["wanted-persons"] = path
    publish_treaties(cluster.fed, cluster.gateway.port)
    with nl.client("liaison") as c:
        held = c.create_alert(
            demo_alert(
                kind=alert_pb2.ALERT_KIND_WANTED_PERSON,
                recipients=[
                    alert_pb2.AlertRecipient(agency_id="be-police", treaty_id="wanted-persons")
                ],
            )
        )
    assert held.state == alert_pb2.ALERT_STATE_PENDING_REVIEW
    assert count(nl, t.alerts) == 1
    assert count(nl, t.outbound) == 0


def test_resending_after_a_crash_delivers_once(cluster: Cluster) -> None:
    """Submitted but not recorded as accepted (crash in between): the resend is harmless."""
    from node.sharing.outbound import Sender

    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    old = nl.node.sender
    old.stop()
    to_be = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
    with nl.client("liaison") as c:
        issued = c.create_alert(demo_alert(recipients=to_be))
    with nl.node.store.engine.connect() as conn:
        envelope = conn.execute(select(t.outbound.c.envelope)).scalar_one()
    first = nl.node.client.submit(envelope_pb2.Envelope.FromString(bytes(envelope)))
    assert not first.duplicate
    fresh = Sender(nl.node.store, nl.node.sealer, nl.node.client, max_backoff=1.0)
    fresh.on_failed = old.on_failed
    nl.node.sender = fresh
    nl.node.sharing.wake_sender = fresh.wake
    fresh.start()
    with nl.client("analyst") as c:
        wait_for(
            lambda: (
                c.get_alert(issued.name).deliveries[0].state == alert_pb2.DELIVERY_STATE_DELIVERED
            ),
            what="delivery",
        )
    received(be)
    assert count(be, t.alerts) == 1
    assert count(be, t.received) == 1
    with nl.node.store.engine.connect() as conn:
        row = conn.execute(select(t.outbound).where(t.outbound.c.kind == 1)).one()
    assert row.state == "accepted"
    from intelshare.v1 import receipt_pb2

    assert receipt_pb2.Receipt.FromString(row.receipt) == first.receipt


def test_watch_alerts_rechecks_access_for_every_batch(three: Three) -> None:
    """An officer disabled while following the feed sees no event after that."""
    import threading

    from intelshare import errors
    from node.cli.client import NodeClient
    from node.storage.officers import OfficerRegistry

    nl, be, _de = three
    registry = OfficerRegistry(be.node.store.engine)
    officer, token = registry.add(f"temp-{uuid.uuid4().hex[:6]}", "analyst")
    client = NodeClient(be.target, ca_pem=be.ca_pem, server_name=be.agency, token=token)
    seen: list[str] = []
    ended: list[BaseException] = []
    live = threading.Event()

    def follow() -> None:
        try:
            for item in client.watch(be.node.store.head_seq()):
                live.set()
                if item.WhichOneof("item") == "event":
                    seen.append(item.event.type)
        except errors.IntelshareError as exc:
            ended.append(exc)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert live.wait(30), "no heartbeat on the feed"
    registry.disable(officer.name)
    to_be = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(recipients=to_be, description="after the officer left"))
    received(be)
    thread.join(30)
    client.close()
    assert seen == []
    assert ended
    assert isinstance(ended[0], errors.Unauthenticated)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_started_node_has_its_database_connections_open(cluster: Cluster) -> None:
    """The pool is open at start (node.database_pool_size), not grown by the first burst."""
    node = cluster.start_node("nl-customs", database_pool_size=8)
    engine = node.node.store.engine
    pool = engine.pool
    assert pool.checkedin() + pool.checkedout() >= 8  # type: ignore[attr-defined]
    with engine.connect() as conn:
        sessions = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).scalar()
    assert sessions is not None
    assert sessions >= 8  # the node's threads alone hold two or three
