"""Risk targeting across agencies, through real nodes and a real gateway (SQLite and PostgreSQL).

nl-customs shares a profile (HS 3004 from IN loaded at INNSA) with
de-customs; de-customs screens 10,000 generated declarations: 3 are
targeted, one of which also carries the container of an earlier alert, and
the officer sees the link; the hit reports reach nl-customs, whose
statistics count them and the inspection outcome; the withdrawal stops
matching at de-customs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct
from sqlalchemy import select

from intelshare import errors
from intelshare.v1 import alert_pb2, envelope_pb2, risk_profile_pb2, risk_service_pb2
from node.cli.risk_client import RiskClient
from node.storage import tables as t
from tests.node.conftest import CUSTOMS, RunningNode, demo_alert, expire_in, wait_for

pytestmark = pytest.mark.slow

P = risk_profile_pb2
S = risk_service_pb2
CONTAINER = "MSCU1234566"
TARGETS = (17, 4242, 9001)
CRITERIA = {"all_of": [{"hs_prefix": "3004"}, {"origin_country": "IN"}, {"loading_port": "INNSA"}]}


def client(node: RunningNode, role: str = "admin") -> RiskClient:
    return RiskClient(
        node.target, ca_pem=node.ca_pem, server_name=node.agency, token=node.tokens[role]
    )


def struct(data: dict[str, Any]) -> Struct:
    s = Struct()
    s.update(data)
    return s


def profile(**over: Any) -> P.RiskProfile:
    p = P.RiskProfile(
        title="Counterfeit medicines from IN via INNSA",
        rationale="Three seizures of falsified antibiotics this quarter",
        action=P.RISK_ACTION_PHYSICAL_INSPECTION,
        end_time=expire_in(timedelta(days=30)),
        criteria=struct(CRITERIA),
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        recipients=[P.RiskProfileRecipient(agency_id="de-customs", treaty_id=CUSTOMS)],
    )
    for key, value in over.items():
        if isinstance(value, list):
            del getattr(p, key)[:]
            getattr(p, key).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(p, key).CopyFrom(value)
        else:
            setattr(p, key, value)
    return p


def declarations(n: int = 10_000) -> Iterator[S.Declaration]:
    """Generated declarations; those at TARGETS match the profile, the second one the alert."""
    origins = ["CN", "TR", "US", "VN", "IN"]
    ports = ["CNSHA", "TRIST", "USNYC", "VNSGN", "INBOM"]
    for i in range(n):
        d = S.Declaration(
            line=i + 2,
            reference=f"26DE{i:014d}",
            hs_code="8504401000" if i % 3 else "300490",
            origin_country=origins[i % 5],
            loading_port=ports[(i // 5) % 5],
            discharge_port="DEHAM",
            transport_mode="sea",
            consignee_name=f"Importer {i % 97}",
            value=1000.0 + i,
            net_mass_kg=100.0,
        )
        if i in TARGETS:
            d.hs_code, d.origin_country, d.loading_port = "3004901000", "IN", "INNSA"
        if i == TARGETS[1]:
            d.containers.append(CONTAINER)
        yield d


def test_a_shared_profile_targets_declarations_reports_hits_and_stops_when_withdrawn(
    cluster: Any,
) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    # An earlier alert names the container; de-customs holds it.
    with nl.client("liaison") as c:
        alert = c.create_alert(
            demo_alert(
                recipients=[alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=CUSTOMS)]
            )
        )
    alert_id = alert.name.split("/")[1]
    with client(de) as c:
        wait_for(
            lambda: any(a.name == alert.name for a in c.list_all()),
            what="the alert at de-customs",
        )

    with client(nl, "liaison") as c:
        issued = c.create_profile(profile())
    assert issued.state == P.RISK_PROFILE_STATE_ACTIVE
    assert issued.direction == P.RISK_PROFILE_DIRECTION_ISSUED
    with client(de, "analyst") as c:
        received = wait_for(lambda: c.all_profiles(), what="the profile at de-customs")[0]
        assert received.name == issued.name  # one treaty: the same id on both sides
        assert received.direction == P.RISK_PROFILE_DIRECTION_RECEIVED
        assert received.origin_agency == "nl-customs"
        assert dict(received.criteria) == dict(issued.criteria)

        results = list(c.screen(declarations()))
    assert len(results) == 10_000
    assert [r.line for r in results[:3]] == [2, 3, 4]
    targeted = [r for r in results if r.targeted]
    assert [r.reference for r in targeted] == [f"26DE{i:014d}" for i in TARGETS]
    assert not any(r.errors for r in results)
    for r in targeted:
        (match,) = r.profiles
        assert match.profile == issued.name
        assert match.origin_agency == "nl-customs"
        assert match.action == P.RISK_ACTION_PHYSICAL_INSPECTION
        assert {(x.field, tuple(x.matched)) for x in match.reasons} == {
            ("hs_prefix", ("3004",)),
            ("origin_country", ("IN",)),
            ("loading_port", ("INNSA",)),
        }
    linked = targeted[1]
    assert [(s.role, s.key, list(s.records)) for s in linked.subjects] == [
        ("container", f"iso6346:{CONTAINER}", [alert.name])
    ]
    assert len(linked.hits) == 2  # the profile's hit and the watched container's

    # Only hits were stored, with identifying fields only.
    with de.node.store.engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(select(t.records.c.kind))]
    assert kinds.count("risk_hit") == 4
    with client(de, "analyst") as c:
        hits = c.all_hits()
        assert sorted(h.reference for h in hits if h.profile) == sorted(
            r.reference for r in targeted
        )
        container_hit = c.get_hit(linked.hits[0])
        assert list(container_hit.identifiers) == [
            f"iso6346:{CONTAINER}",
            f"company:importer {TARGETS[1] % 97}",
        ]
        # The officer sees the link: FindRelated, the hit's related list, the alert's feed.
        related = c.find_related(identifier=f"iso6346:{CONTAINER.lower()}")
        assert related.keys == [f"iso6346:{CONTAINER}"]
        names = {r.name for r in related.related}
        assert alert.name in names
        assert set(linked.hits) <= names
        assert alert.name in {r.name for r in container_hit.related}
    with de.node.store.engine.connect() as conn:
        links = conn.execute(
            select(t.events.c.alert_id).where(t.events.c.type == "link.found")
        ).all()
    assert (alert_id,) in links

    # The hit reports reach nl-customs; the statistics follow the outcome.
    with client(nl, "liaison") as c:
        stats = wait_for(
            lambda: (s := c.statistics(issued.name)).hits == 3 and s,
            what="three hit reports at nl-customs",
        )
        assert [(a.agency_id, a.hits) for a in stats.agencies] == [("de-customs", 3)]
        reports = c.all_hits(profile=issued.name)
        assert {h.direction for h in reports} == {P.RISK_PROFILE_DIRECTION_RECEIVED}
        assert {h.screening_agency for h in reports} == {"de-customs"}
    with client(de, "analyst") as c:
        profile_hit = next(h for h in hits if h.reference == linked.reference and h.profile)
        profile_hit.inspection = P.INSPECTION_STATE_INSPECTED
        profile_hit.finding = P.FINDING_CONFIRMED
        profile_hit.note = "informant 7 was right"
        c.update_hit(profile_hit, ["inspection", "finding", "note"])
    with client(nl, "liaison") as c:
        stats = wait_for(
            lambda: (s := c.statistics(issued.name)).confirmed_findings == 1 and s,
            what="the confirmed finding at nl-customs",
        )
        assert (stats.hits, stats.inspections) == (3, 1)
        report = next(h for h in c.all_hits(profile=issued.name) if h.reference == linked.reference)
        assert report.note == ""  # the treaty keeps the note home

    # Withdrawn at nl-customs: it stops matching at de-customs.
    with client(nl, "liaison") as c:
        c.withdraw_profile(issued.name, "campaign over")
    with client(de, "analyst") as c:
        wait_for(
            lambda: c.get_profile(issued.name).state == P.RISK_PROFILE_STATE_WITHDRAWN,
            what="the withdrawal at de-customs",
        )
        again = list(c.screen(d for d in declarations() if d.line - 2 in TARGETS))
    assert [r.profiles for r in again] == [[], [], []]
    assert [r.targeted for r in again] == [False, True, False]  # the container is still watched


def test_bad_criteria_and_bad_declarations_are_named_and_the_rest_is_screened(
    cluster: Any,
) -> None:
    nl = cluster.start_node("nl-customs")
    with client(nl, "liaison") as c:
        bad = {"all_of": [{"hs_prefix": "3004"}, {"hs_prefix": 3004}, {"colour": "red"}]}
        with pytest.raises(errors.CriteriaInvalid) as exc:
            c.create_profile(profile(criteria=struct(bad), recipients=[]))
        assert set(exc.value.violations) == {
            "risk_profile.criteria.all_of[1].hs_prefix",
            "risk_profile.criteria.all_of[2].colour",
        }
        with pytest.raises(errors.CriteriaInvalid) as exc:
            c.create_profile(profile(criteria=struct({"all_of": []}), recipients=[]))
        assert "risk_profile.criteria.all_of" in exc.value.violations
        with pytest.raises(errors.InvalidArgument) as exc:
            c.create_profile(profile(title="", recipients=[]))
        assert "risk_profile.title" in exc.value.violations
        own = c.create_profile(profile(recipients=[]))
        assert not own.recipients
    with nl.node.store.engine.connect() as conn:
        assert conn.execute(select(t.records.c.kind)).scalars().all() == ["risk_profile"]

    good = S.Declaration(
        line=2, reference="A1", hs_code="300490", origin_country="IN", loading_port="INNSA"
    )
    wrong = S.Declaration(
        line=3, reference="A2", hs_code="30", containers=["CSQU3054384"], origin_country="XX"
    )
    huge = S.Declaration(line=4, reference="A3", hs_code="300490", identifiers=["x" * 70_000])
    with client(nl, "analyst") as c:
        results = list(c.screen([good, wrong, huge, good]))
    assert [r.line for r in results] == [2, 3, 4, 2]
    assert results[0].targeted
    assert results[3].targeted
    assert set(results[1].errors) == {"hs_code", "containers", "origin_country"}
    assert "check digit" in results[1].errors["containers"]
    assert not results[1].targeted
    assert "larger than 65536 bytes" in results[2].errors["declaration"]
    with client(nl, "analyst") as c:
        assert len(c.all_hits()) == 2  # nothing of the bad ones was stored
