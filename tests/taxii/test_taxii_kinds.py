"""The TAXII server serves recordations, detentions, detention reports and risk profiles too.

The IPR federation of the node tests (its customs treaty carries
recordations and detention reports). nl-customs grants a recordation
shared with de-customs, detains goods, writes a risk profile; de-customs
reports a detention to nl-customs. Read with taxii2-client: the own
collection holds what nl-customs made, the treaty's collection what went
or came under the treaty (the received report with the treaty's
onward-sharing statement), and a rights holder's token sees only what
the node lets a rights holder read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct
from taxii2client.v21 import Server, as_pages

from intelshare import devfed
from intelshare.interop import extension as ext
from intelshare.v1 import envelope_pb2, risk_profile_pb2
from node.cli.risk_client import RiskClient
from tests.node.api.ipr_fixtures import acme, client, holder_token, ipr_fed, shoes
from tests.node.conftest import expire_in, wait_for

from .conftest import AGENCY, CUSTOMS, PARTNER, TASKFORCE, World

pytestmark = pytest.mark.slow


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    return ipr_fed(tmp_path)


def _objects(collection: Any, **filters: Any) -> list[dict[str, Any]]:
    return [
        o
        for envelope in as_pages(collection.get_objects, per_request=500, **filters)
        for o in envelope.get("objects", [])
    ]


def _kinds(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in objects:
        if o["type"] in ("report", "grouping"):
            kind = o["extensions"][ext.EXTENSION_ID]["record_kind"]
            out.setdefault(kind, []).append(o)
    return out


def _collections(world: World, token: str) -> dict[str, Any]:
    root = Server(world.discovery, user="officer", password=token).api_roots[0]
    return {c.alias: c for c in root.collections}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_kind_in_its_collections(world_factory: Callable[..., World]) -> None:
    world = world_factory(4)
    nl = world.node
    de = world.cluster.nodes[PARTNER]
    with client(nl) as c:
        c.create_recordation(acme(), "acme-2026")
        c.create_detention(shoes("recordations/acme-2026"), "rtm-1")
    criteria = Struct()
    criteria.update({"any_of": [{"hs_prefix": "6404"}, {"gtin": "4006381333931"}]})
    profile = risk_profile_pb2.RiskProfile(
        title="Fake ACME shoes",
        rationale="seizures at Rotterdam",
        action=risk_profile_pb2.RISK_ACTION_SCAN,
        criteria=criteria,
        end_time=expire_in(timedelta(days=30)),
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
    )
    with RiskClient(
        nl.target, ca_pem=nl.ca_pem, server_name=nl.agency, token=nl.tokens["liaison"]
    ) as rc:
        rc.create_profile(profile)
    with client(de, "analyst") as c:
        wait_for(lambda: c.all_recordations(), what="the recordation at de-customs")
    with client(de) as c:
        c.create_detention(shoes("recordations/acme-2026"), "hh-0412")
        c.share_report("hh-0412", [(AGENCY, CUSTOMS)], summary="fake ACME shoes at Hamburg")
    with client(nl, "analyst") as c:
        wait_for(lambda: c.all_reports(), what="the report at nl-customs")

    token = nl.tokens["analyst"]
    collections = _collections(world, token)
    own = _kinds(_objects(collections["own"]))
    assert len(own["alert"]) == 2  # the issued half of the seeded alerts
    assert [g["name"].split(":")[0] for g in own["recordation"]] == ["recordation acme-2026"]
    assert len(own["detention"]) == 1
    assert len(own["risk_profile"]) == 1
    assert "detention_report" not in own  # the received report is de-customs'
    indicators = [o for o in _objects(collections["own"], type="indicator")]
    assert len(indicators) == 1
    # The node's canonical criteria: GTINs as GTIN-14.
    assert "intelshare-declaration:gtins[*] IN ('04006381333931')" in indicators[0]["pattern"]

    customs_objects = _objects(collections[CUSTOMS])
    customs = _kinds(customs_objects)
    assert len(customs["alert"]) == 4
    assert len(customs["recordation"]) == 1  # granted here, shared under the treaty
    assert "detention" not in customs  # detentions never leave the node
    (report,) = customs["detention_report"]
    props = report["extensions"][ext.EXTENSION_ID]
    assert (props["direction"], props["treaty_id"]) == ("received", CUSTOMS)
    statement = next(
        o
        for o in customs_objects
        if o["type"] == "marking-definition"
        and o["id"] in report["object_marking_refs"]
        and o.get("definition_type") == "statement"
    )
    assert f"from {PARTNER} under treaty {CUSTOMS}" in statement["definition"]["statement"]
    taskforce = _kinds(_objects(collections[TASKFORCE]))
    assert set(taskforce) <= {"alert"}

    # A withdrawal after a poll comes with the next added_after poll, revoked.
    newest = max(
        m["date_added"]
        for env in as_pages(collections[CUSTOMS].get_manifest, per_request=1000)
        for m in env.get("objects", [])
    )
    with client(nl) as c:
        c.move_recordation("withdraw", "acme-2026", "holder's request")
    polled = _kinds(_objects(collections[CUSTOMS], added_after=newest))
    assert set(polled) == {"recordation"}
    assert polled["recordation"][0]["revoked"] is True
    assert polled["recordation"][0]["modified"] > customs["recordation"][0]["modified"]

    # A rights holder's token: its own recordation and detention, no alerts, no reports.
    holder = holder_token(nl)
    mine = _kinds(_objects(_collections(world, holder)["own"]))
    assert set(mine) == {"recordation", "detention"}
    assert mine["recordation"][0]["external_references"][0]["external_id"] == (
        "recordations/acme-2026"
    )
