"""``intelshare alert export`` / ``import`` against real nodes: STIX out, drafts in, issued."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from stix2validator import ValidationOptions, validate_string

from intelshare.cli import _load_plugins, cli
from intelshare.v1 import alert_pb2
from tests.node.conftest import CUSTOMS, Cluster, RunningNode, demo_alert, wait_for

_load_plugins()

DATA = Path(__file__).parents[2] / "intelshare" / "interop" / "data"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _env(node: RunningNode, role: str, tmp_path: Path) -> dict[str, str]:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(node.ca_pem)
    return {
        "INTELSHARE_NODE": node.target,
        "INTELSHARE_CA": str(ca),
        "INTELSHARE_SERVER_NAME": node.agency,
        "INTELSHARE_TOKEN": node.tokens[role],
    }


def _valid(text: str) -> None:
    # 103 (UUIDv4 recommended) is off: our ids are UUIDv5 on purpose (intelshare.interop).
    result = validate_string(text, ValidationOptions(version="2.1", disabled=["103"]))
    assert result.errors == []
    assert result.warnings == []


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_export_then_import_then_issue(cluster: Cluster, tmp_path: Path) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    alert = demo_alert(
        recipients=[alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=CUSTOMS)]
    )
    with nl.client("liaison") as client:
        issued = client.create_alert(alert)
    alert_id = issued.name.removeprefix("alerts/")
    liaison = _env(nl, "liaison", tmp_path)

    out = tmp_path / "alert.stix.json"
    result = run("alert", "export", alert_id, "--out", str(out), env=liaison)
    assert result.exit_code == 0, result.output
    assert f"to {out}" in result.output
    text = out.read_text()
    _valid(text)
    objects = json.loads(text)["objects"]
    report = next(o for o in objects if o["type"] == "report")
    assert report["external_references"][0]["external_id"] == issued.name
    # Exporting again gives the same objects (same ids): consumers update, not duplicate.
    again = run("alert", "export", alert_id, env=liaison)
    assert again.exit_code == 0
    assert json.loads(again.output)["objects"] == objects

    # The received copy at de-customs states the treaty's onward-sharing rule.
    analyst_de = _env(de, "analyst", tmp_path)
    with de.client("analyst") as client:
        received = wait_for(lambda: client.list_alerts().alerts, what="alert at de-customs")
    treaty_file = tmp_path / f"{CUSTOMS}.treaty"
    treaty_file.write_bytes(cluster.fed.signed_treaty(CUSTOMS).to_proto().SerializeToString())
    result = run(
        "alert",
        "export",
        received[0].name,
        "--treaty-file",
        str(treaty_file),
        env=analyst_de,
    )
    assert result.exit_code == 0, result.output
    _valid(result.output)
    statement = next(
        o for o in json.loads(result.output)["objects"] if o.get("definition_type") == "statement"
    )
    assert "Received by de-customs from nl-customs" in statement["definition"]["statement"]
    assert "only with the consent of nl-customs" in statement["definition"]["statement"]

    # Import makes a draft; the suggested command, completed, issues it.
    result = run("alert", "import", str(out))
    assert result.exit_code == 0, result.output
    assert "nothing was sent" in result.output
    assert "subjects.persons[0]" in result.output
    assert "your agency issues the draft" in result.output
    draft_file = tmp_path / "draft.json"
    result = run("alert", "import", str(out), "--json", "--out", str(draft_file))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert json.loads(draft_file.read_text()) == summary
    assert summary["missing"] == ["recipients", "expiry"]
    with nl.client("liaison") as client:
        before = len(client.list_all())
    assert before == 1  # the import sent nothing
    args = shlex.split(summary["issue_command"])
    assert args[:3] == ["intelshare", "alert", "issue"]
    args = [f"de-customs@{CUSTOMS}" if a == "AGENCY@TREATY" else a for a in args[1:]]
    result = run(*args, "--json", env=liaison)
    assert result.exit_code == 0, result.output
    reissued = json.loads(result.output)
    assert (
        reissued["subjects"]
        == json.loads(run("alert", "show", alert_id, "--json", env=liaison).output)["subjects"]
    )
    assert reissued["description"] == issued.description


def test_import_of_a_misp_event_and_of_bad_input(tmp_path: Path) -> None:
    result = run("alert", "import", str(DATA / "misp_event.json"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["source_format"] == "misp"
    assert summary["missing"] == ["kind", "recipients", "expiry"]
    assert "--kind KIND --to AGENCY@TREATY" in summary["issue_command"]
    assert any("ip-src" in s["reason"] for s in summary["skipped"])

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run("alert", "import", str(bad))
    assert result.exit_code == 2
    assert "is not JSON" in result.output
    bad.write_text('{"hello": "world"}')
    result = run("alert", "import", str(bad))
    assert result.exit_code == 2
    assert "neither a STIX 2.1 bundle nor a MISP event" in result.output
    result = run("alert", "import", str(bad), "--format", "stix")
    assert result.exit_code == 2
    assert "not a STIX bundle" in result.output
    result = run("alert", "import", str(tmp_path / "missing.json"))
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_export_needs_the_node_settings(tmp_path: Path) -> None:
    result = run("alert", "export", "some-id", env={"INTELSHARE_NODE": ""})
    assert result.exit_code == 2
    assert "missing connection settings" in result.output
