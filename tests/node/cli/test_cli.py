"""``intelshare node ...`` and ``intelshare alert ...`` as people use them.

The alert commands run against real nodes and a real gateway; they are
driven through click's runner in this process, with connection settings
from options, the environment and a client config file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from intelshare.cli import _load_plugins, cli
from tests.node.conftest import CUSTOMS, TASKFORCE, Cluster, RunningNode, node_config, wait_for

_load_plugins()


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def node_cfg(tmp_path: Path, fed) -> Path:  # type: ignore[no-untyped-def]
    values = node_config(fed, "nl-customs", f"sqlite:///{tmp_path / 'nl.db'}", 1)
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump({"node": values}))
    return path


def test_officer_commands(node_cfg: Path) -> None:
    result = run("node", "migrate", "--config", str(node_cfg))
    assert result.exit_code == 0, result.output
    result = run(
        "node",
        "officer",
        "add",
        "Anna Analyst",
        "--role",
        "analyst",
        "--config",
        str(node_cfg),
        "--json",
    )
    assert result.exit_code == 0, result.output
    added = json.loads(result.output)
    assert added["role"] == "analyst"
    assert len(added["token"]) == 43
    result = run(
        "node", "officer", "add", "Lars Liaison", "--role", "liaison", "--config", str(node_cfg)
    )
    assert result.exit_code == 0
    assert "shown only now" in result.output
    result = run("node", "officer", "list", "--config", str(node_cfg))
    assert result.exit_code == 0
    assert "Anna Analyst" in result.output
    assert "Lars Liaison" in result.output
    assert added["token"] not in result.output
    listed = json.loads(run("node", "officer", "list", "--config", str(node_cfg), "--json").output)
    assert [o["name"] for o in listed] == ["Anna Analyst", "Lars Liaison"]
    # Mistakes say what to fix, with exit status 2.
    result = run(
        "node", "officer", "add", "Anna Analyst", "--role", "analyst", "--config", str(node_cfg)
    )
    assert result.exit_code == 2
    assert "already exists" in result.output
    result = run("node", "officer", "disable", "Nobody", "--config", str(node_cfg))
    assert result.exit_code == 2
    bad = node_cfg.with_name("bad.yaml")
    bad.write_text(yaml.safe_dump({"node": {"agency_id": "nl-customs", "listen": "nowhere"}}))
    result = run("node", "officer", "list", "--config", str(bad))
    assert result.exit_code == 2
    assert "node." in result.output  # names the setting
    result = run("node", "audit", "verify", "--config", str(node_cfg))
    assert result.exit_code == 0, result.output


def _env(node: RunningNode, role: str, tmp_path: Path) -> dict[str, str]:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(node.ca_pem)
    return {
        "INTELSHARE_NODE": node.target,
        "INTELSHARE_CA": str(ca),
        "INTELSHARE_SERVER_NAME": node.agency,
        "INTELSHARE_TOKEN": node.tokens[role],
    }


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_alert_commands(cluster: Cluster, tmp_path: Path) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    cluster.start_node("de-customs")
    liaison = _env(nl, "liaison", tmp_path)
    result = run(
        "alert",
        "issue",
        "--kind", "counterfeit_goods",
        "--to", f"de-customs@{CUSTOMS}",
        "--to", f"be-police@{TASKFORCE}",
        "--description", "Counterfeit medicines in container MSCU1234566",
        "--urgency", "high",
        "--handling", "H1",
        "--tlp", "AMBER",
        "--reliability", "B",
        "--credibility", "2",
        "--expires", "7d",
        "--person", "name=Jan Jansen,dob=1980-02-29,nationality=NL,passport=NX1234567",
        "--container", "number=MSCU1234566,bl=MEDU1234567,hs=300490;300410",
        "--company", "name=Pharma Trading BV,country=BE,role=consignee",
        "--json",
        env=liaison,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    issued = json.loads(result.output)
    alert_id = issued["name"].removeprefix("alerts/")
    assert issued["subjects"]["containers"][0]["hs_codes"] == ["300490", "300410"]

    result = run("alert", "list", env=liaison)
    assert result.exit_code == 0
    assert alert_id in result.output
    assert "counterfeit_goods" in result.output

    result = run("alert", "show", alert_id, "--delivery", "be-police", env=liaison)
    assert result.exit_code == 0, result.output
    assert "subjects.persons.passport_number" in result.output  # listed as removed
    assert "NX1234567" not in result.output

    analyst_be = _env(be, "analyst", tmp_path)
    received = wait_for(
        lambda: json.loads(run("alert", "list", "--json", env=analyst_be).output),
        what="alert at be-police",
    )
    be_id = received[0]["name"].removeprefix("alerts/")
    result = run("alert", "show", be_id, env=analyst_be)
    assert result.exit_code == 0
    assert "Jan Jansen" in result.output
    assert "1980-02-29" not in result.output
    assert run("alert", "ack", be_id, env=analyst_be).exit_code == 0
    result = run(
        "alert",
        "hit",
        be_id,
        "--place",
        "Port of Antwerp",
        "--found",
        "the container",
        env=analyst_be,
    )
    assert result.exit_code == 0, result.output

    def hit_at_nl() -> bool:
        shown = run("alert", "show", alert_id, env=liaison).output
        return "Port of Antwerp" in shown and "hit" in shown

    wait_for(hit_at_nl, what="hit shown at nl-customs")
    result = run("alert", "update", alert_id, "--urgency", "critical", "--json", env=liaison)
    assert result.exit_code == 0
    assert json.loads(result.output)["revision"] == "2"
    result = run("alert", "revoke", alert_id, "--reason", "seized", env=liaison)
    assert result.exit_code == 0
    assert json.loads(run("alert", "show", alert_id, "--json", env=liaison).output)["state"] == (
        "ALERT_STATE_REVOKED"
    )

    # Errors say what to fix, field by field, and exit 2.
    result = run(
        "alert", "issue", "--kind", "counterfeit_goods", "--to", f"be-police@{TASKFORCE}",
        "--description", "x", "--container", "number=MSCU1234567", env=liaison,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "alert.subjects.containers[0].number" in result.output
    assert "check digit" in result.output
    result = run(
        "alert", "issue", "--kind", "firearms", "--to", f"be-police@{TASKFORCE}",
        "--description", "guns", env=liaison,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "CATEGORY_NOT_PERMITTED" in result.output
    assert TASKFORCE in result.output
    result = run("alert", "issue", "--kind", "dragons", "--to", "be-police", "-d", "x", env=liaison)
    assert result.exit_code == 2
    assert "--kind" in result.output
    result = run("alert", "ack", be_id, env=liaison)
    assert result.exit_code == 2
    assert "ROLE_NOT_PERMITTED" in result.output
    result = run("alert", "list", env={**liaison, "INTELSHARE_TOKEN": "nope"})
    assert result.exit_code == 2
    assert "TOKEN_INVALID" in result.output
    result = run("alert", "list", env={"INTELSHARE_NODE": "", "INTELSHARE_TOKEN": ""})
    assert result.exit_code == 2
    assert "--node" in result.output
    assert "--token" in result.output

    # A client config file instead of the environment.
    token_file = tmp_path / "token"
    token_file.write_text(nl.tokens["analyst"] + "\n")
    client_cfg = tmp_path / "client.yaml"
    client_cfg.write_text(
        yaml.safe_dump(
            {"node": nl.target, "ca": "ca.pem", "server_name": "nl-customs", "token_file": "token"}
        )
    )
    result = run("alert", "--client-config", str(client_cfg), "list", "--state", "revoked")
    assert result.exit_code == 0, result.output
    assert alert_id in result.output
