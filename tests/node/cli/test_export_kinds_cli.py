"""``intelshare recordation|detention|profile export`` against real nodes: valid STIX out.

The IPR federation of the node tests (its customs treaty carries
recordations and detention reports): nl-customs grants a recordation and
writes a risk profile, de-customs receives the recordation, detains goods
and reports the detention to nl-customs. Each export is checked with
stix2-validator, and what must stay home stays home.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from google.protobuf.struct_pb2 import Struct
from stix2validator import ValidationOptions, validate_string

from intelshare import devfed
from intelshare.cli import _load_plugins, cli
from intelshare.v1 import envelope_pb2, risk_profile_pb2
from node.cli.risk_client import RiskClient
from tests.node.api.ipr_fixtures import acme, client, ipr_fed, shoes
from tests.node.conftest import CUSTOMS, Cluster, RunningNode, wait_for

pytestmark = pytest.mark.slow
_load_plugins()


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    return ipr_fed(tmp_path)


def run(node: RunningNode, role: str, *args: str) -> Result:
    connection = ["--node", node.target, "--ca", str(node.node.config.ca_cert)]
    connection += ["--server-name", node.agency, "--token", node.tokens[role]]
    return CliRunner().invoke(cli, [args[0], *connection, *args[1:]], catch_exceptions=False)


def _bundle(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    check = validate_string(result.output, ValidationOptions(version="2.1", disabled=["103"]))
    assert [str(e) for e in check.errors] == []
    assert [str(w) for w in check.warnings] == []
    return list(json.loads(result.output)["objects"])


def _record(objects: list[dict[str, Any]], stix_type: str) -> dict[str, Any]:
    return next(o for o in objects if o["type"] == stix_type)


def _ext(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(next(iter(obj["extensions"].values())))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_recordation_detention_report_and_profile_exports(
    cluster: Cluster, fed: devfed.LocalFederation, tmp_path: Path
) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    with client(nl) as c:
        c.create_recordation(acme(), "acme-2026")

    objects = _bundle(run(nl, "liaison", "recordation", "export", "acme-2026"))
    grouping = _record(objects, "grouping")
    assert _ext(grouping)["record_kind"] == "recordation"
    assert grouping["external_references"][0]["external_id"] == "recordations/acme-2026"
    assert "answered slowly" not in json.dumps(objects)  # internal notes stay home

    # de-customs' copy states what the treaty says about passing it on.
    with client(de, "analyst") as c:
        wait_for(lambda: c.all_recordations(), what="the recordation at de-customs")
    treaty_file = tmp_path / f"{CUSTOMS}.treaty"
    treaty_file.write_bytes(fed.signed_treaty(CUSTOMS).to_proto().SerializeToString())
    copy = _bundle(
        run(de, "analyst", "recordation", "export", "acme-2026", "--treaty-file", str(treaty_file))
    )
    statement = next(o for o in copy if o.get("definition_type") == "statement")
    assert f"from nl-customs under treaty {CUSTOMS}" in statement["definition"]["statement"]
    # Same recordation, same STIX id on both nodes.
    assert _record(copy, "grouping")["id"] == grouping["id"]

    with client(de) as c:
        c.create_detention(shoes("recordations/acme-2026"), "hh-0412")
        c.share_report("hh-0412", [("nl-customs", CUSTOMS)], summary="fake ACME shoes")
    detention = _bundle(run(de, "liaison", "detention", "export", "hh-0412"))
    report = _record(detention, "report")
    assert _ext(report)["record_kind"] == "detention"
    assert "port's risk unit" not in json.dumps(detention)

    with client(nl, "analyst") as c:
        received = wait_for(lambda: c.all_reports(), what="the report at nl-customs")[0]
    assert received.treaty_id == CUSTOMS
    out = tmp_path / "report.stix.json"
    result = run(nl, "analyst", "detention", "export", received.name, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"to {out}" in result.output
    check = validate_string(out.read_text(), ValidationOptions(version="2.1", disabled=["103"]))
    assert (check.errors, check.warnings) == ([], [])
    props = _ext(_record(json.loads(out.read_text())["objects"], "report"))
    assert (props["record_kind"], props["treaty_id"]) == ("detention_report", CUSTOMS)

    criteria = Struct()
    criteria.update({"all_of": [{"hs_prefix": "3004"}, {"origin_country": ["IN"]}]})
    profile = risk_profile_pb2.RiskProfile(
        title="Counterfeit medicines from IN",
        rationale="falsified antibiotics",
        action=risk_profile_pb2.RISK_ACTION_SCAN,
        criteria=criteria,
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
    )
    profile.end_time.GetCurrentTime()
    profile.end_time.seconds += 30 * 86_400
    with RiskClient(
        nl.target, ca_pem=nl.ca_pem, server_name=nl.agency, token=nl.tokens["liaison"]
    ) as rc:
        made = rc.create_profile(profile)
    objects = _bundle(run(nl, "liaison", "profile", "export", made.name))
    indicator = _record(objects, "indicator")
    assert "intelshare-declaration:hs_code LIKE '3004%'" in indicator["pattern"]

    # A record the officer cannot name is the node's error, in the command's words.
    result = run(nl, "liaison", "profile", "export", "riskProfiles/nope")
    assert result.exit_code != 0
    assert "does not exist" in result.output or "not found" in result.output.lower()
