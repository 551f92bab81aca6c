"""``intelshare profile``, ``screen`` and ``related`` against real nodes and a real gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from intelshare.cli import _load_plugins, cli
from tests.node.api.ipr_fixtures import holder_token
from tests.node.conftest import CUSTOMS, RunningNode, wait_for

pytestmark = pytest.mark.slow

_load_plugins()

CRITERIA_YAML = """\
title: Counterfeit medicines from IN via INNSA
rationale: Falsified antibiotics seized three times this quarter
action: physical_inspection
days: 30
criteria:
  all_of:
    - hs_prefix: "3004"
    - origin_country: IN
    - loading_port: INNSA
"""

HEADER = "reference,hs_code,origin_country,loading_port,containers,consignee_name,value,net_mass_kg"


def env_for(node: RunningNode, role: str) -> dict[str, str]:
    return {
        "INTELSHARE_NODE": node.target,
        "INTELSHARE_CA": str(node.node.config.ca_cert),
        "INTELSHARE_SERVER_NAME": node.agency,
        "INTELSHARE_TOKEN": node.tokens[role],
    }


def run(node: RunningNode, *args: str, role: str = "liaison") -> Result:
    return CliRunner().invoke(cli, list(args), env=env_for(node, role), catch_exceptions=False)


def test_profile_screen_and_related_commands(cluster: Any, tmp_path: Path) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    spec = tmp_path / "profile.yaml"
    spec.write_text(CRITERIA_YAML)
    created = run(
        nl,
        "profile",
        "create",
        "--criteria",
        str(spec),
        "--share",
        f"de-customs:{CUSTOMS}",
        "--json",
    )
    assert created.exit_code == 0, created.output
    name = json.loads(created.output)["name"]
    shown = run(nl, "profile", "show", name)
    assert "state     active" in shown.output
    assert f"shared    de-customs under {CUSTOMS}" in shown.output
    wait_for(
        lambda: name.split("/")[1] in run(de, "profile", "list", role="analyst").output,
        what="the profile at de-customs",
    )

    rows = [HEADER]
    for i in range(3000):
        hs, origin, port = (
            ("300490", "IN", "INNSA") if i in (5, 2500) else ("850440", "CN", "CNSHA")
        )
        rows.append(f"R{i},{hs},{origin},{port},,Importer {i % 7},100,10")
    rows[9] = "R-bad,85,CN,CNSHA,CSQU3054384,x,100,10"  # line 10: two bad columns
    rows[19] = "R-short,850440"  # line 20: too few fields
    data = tmp_path / "declarations.csv"
    data.write_text("\n".join(rows) + "\n")
    result = run(de, "screen", str(data), role="analyst")
    assert result.exit_code == 1, result.output  # some lines were not screened
    assert "line 10, column hs_code:" in result.output
    assert "line 10, column containers:" in result.output
    assert "line 20: has 2 fields, the header has 8" in result.output
    assert "Counterfeit medicines from IN via INNSA" in result.output
    as_json = run(de, "screen", str(data), "--json", role="analyst")
    report = json.loads(as_json.stdout)
    assert report["summary"]["declarations_read"] == 2998
    assert report["summary"]["screened"] == 2998
    assert report["summary"]["targeted"] == 2
    assert report["summary"]["lines_not_screened"] == 2
    assert [t["reference"] for t in report["targeted"]] == ["R5", "R2500"]
    assert {(p["line"], p["column"]) for p in report["problems"]} == {
        (10, "hs_code"),
        (10, "containers"),
        (20, ""),
    }

    missing = tmp_path / "missing.csv"
    missing.write_text("hs_code,origin_country\n300490,IN\n")
    refused = run(de, "screen", str(missing), role="analyst")
    assert refused.exit_code == 1
    assert "line 1, column reference: missing column" in refused.output

    related = run(de, "related", "company:Importer 5", "--json", role="analyst")
    found = json.loads(related.stdout)
    assert found["keys"] == ["company:importer 5"]
    assert len(found["related"]) == 2  # both runs stored their hit on R5

    stats = wait_for(
        lambda: (
            json.loads(run(nl, "profile", "stats", name, "--json").stdout).get("hits") == "4"
            and run(nl, "profile", "stats", name).output
        ),
        what="the hit reports at nl-customs",
    )
    assert "4 hits" in stats
    gone = run(nl, "profile", "withdraw", name, "--reason", "campaign over")
    assert "withdrawn" in gone.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("all_of:\n  - hs_prefix: 30\n  - colour: red\n")
    refused = run(
        nl, "profile", "create", "--criteria", str(bad), "--action", "scan", "--title", "x"
    )
    assert refused.exit_code == 2
    assert "risk_profile.criteria.all_of[0].hs_prefix" in refused.output
    assert "risk_profile.criteria.all_of[1].colour" in refused.output


def test_screen_reports_what_the_node_refuses(cluster: Any, tmp_path: Path) -> None:
    """An error on the screening stream is the project's exception with its reason, exit 2."""
    de = cluster.start_node("de-customs")
    data = tmp_path / "declarations.csv"
    data.write_text(f"{HEADER}\nR1,300490,IN,INNSA,,Importer 1,100,10\n")
    screened = run(de, "screen", str(data), role="analyst")
    assert screened.exit_code == 0, screened.output  # the file is fine: what follows is the node
    for token, said in (
        ("not-a-token", "error: the bearer token is not valid [TOKEN_INVALID]\n"),
        (
            holder_token(de),
            "error: role rights_holder may not read [ROLE_NOT_PERMITTED]\n"
            "  (permission: read)\n  (role: rights_holder)\n",
        ),
    ):
        env = {**env_for(de, "analyst"), "INTELSHARE_TOKEN": token}
        result = CliRunner().invoke(cli, ["screen", str(data)], env=env, catch_exceptions=False)
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        # The node's reason and metadata, as for any other call (not INTERNAL).
        assert result.stderr == said
