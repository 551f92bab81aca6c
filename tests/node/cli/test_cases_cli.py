"""``intelshare case ...`` as officers use it, against real nodes and a real gateway.

Driven through click's runner in this process, connection settings from
the environment, like the alert command tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from intelshare.cli import _load_plugins, cli
from node.cli.case import attachments_digest
from tests.node.conftest import TASKFORCE, Cluster, RunningNode, wait_for
from tests.node.kinds.test_cases import fed  # noqa: F401  (the case treaties)

_load_plugins()

pytestmark = pytest.mark.slow


def env_for(node: RunningNode, role: str = "liaison") -> dict[str, str]:
    return {
        "INTELSHARE_NODE": node.target,
        "INTELSHARE_CA": str(node.node.config.ca_cert),
        "INTELSHARE_SERVER_NAME": node.agency,
        "INTELSHARE_TOKEN": node.tokens[role],
    }


def run(node: RunningNode, *args: str, role: str = "liaison") -> Result:
    return CliRunner().invoke(cli, ["case", *args], env=env_for(node, role), catch_exceptions=False)


def shown(node: RunningNode, case_id: str) -> dict[str, Any] | None:
    """``case show --json``, or None while the case has not arrived."""
    result = run(node, "show", case_id, "--json")
    if result.exit_code != 0:
        return None
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_case_commands(cluster: Cluster, tmp_path: Path) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    de = cluster.start_node("de-customs")
    result = run(
        nl,
        "create",
        "--title",
        "Operation Pangea",
        "--treaty",
        TASKFORCE,
        "--member",
        "be-police",
        "--category",
        "counterfeit_goods",
        "--handling",
        "H1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    case = json.loads(result.stdout)
    name = case["name"]
    case_id = name.removeprefix("cases/")
    assert case["standing"] == "CASE_STANDING_OWNER"

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 not really a photo")
    result = run(
        nl,
        "add-entry",
        case_id,
        "--text",
        "Container booked on MSC Anna",
        "--container",
        "number=MSCU1234566,bl=MEDU1234567",
        "--person",
        "name=Jan Jansen,nationality=NL,passport=NX1234567",
        "--attach",
        str(photo),
    )
    assert result.exit_code == 0, result.output
    assert "added cases/" in result.output
    assert "not shared: subjects.persons.passport_number" in result.output
    assert attachments_digest([photo]) in result.output

    be_entries = wait_for(
        lambda: (data := shown(be, case_id)) and data.get("entries"), what="entry at be"
    )
    assert be_entries[0]["author_agency"] == "nl-customs"
    assert "passport_number" not in be_entries[0]["subjects"]["persons"][0]

    result = run(be, "add-entry", case_id, "--text", "Consignee seen in Antwerp", "--json")
    assert result.exit_code == 0, result.output
    result = run(nl, "member", "add", case_id, "de-customs")
    assert result.exit_code == 0, result.output
    assert "de-customs added" in result.output
    wait_for(
        lambda: len((shown(de, case_id) or {}).get("entries", [])) == 2,
        what="history at de",
    )
    result = run(de, "show", case_id)
    assert result.exit_code == 0
    assert "Operation Pangea" in result.output
    assert "author's envelope, forwarded" in result.output
    assert "Consignee seen in Antwerp" in result.output

    result = run(nl, "list")
    assert result.exit_code == 0
    assert case_id in result.output
    assert "owner" in result.output
    listed = json.loads(run(de, "list", "--state", "open", "--json").stdout)
    assert [c["name"] for c in listed] == [name]

    # Case team and follow: the analyst sees the case once assigned.
    assert run(de, "show", case_id, role="analyst").exit_code == 2
    assert run(de, "officer", "add", case_id, "analyst").exit_code == 0
    result = run(de, "follow", case_id, "--count", "3", "--json", role="analyst")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["type"] == "case.received"
    assert [int(e["cursor"]) for e in events] == sorted(int(e["cursor"]) for e in events)
    resumed = run(de, "follow", case_id, "--after", events[1]["cursor"], "--count", "1", "--json")
    assert json.loads(resumed.stdout)["event_id"] == events[2]["event_id"]

    result = run(nl, "member", "remove", case_id, "de-customs")
    assert result.exit_code == 0, result.output
    assert "de-customs (removed)" in result.output
    result = run(nl, "close", case_id)
    assert result.exit_code == 0
    assert "closed" in result.output

    # Mistakes say what to fix and exit 2.
    result = run(
        nl,
        "create",
        "--title",
        " ",
        "--treaty",
        TASKFORCE,
        "--member",
        "nl-customs",
        "--category",
        "Bad Category",
    )
    assert result.exit_code == 2
    assert "case.title" in result.output
    assert "case.members[0].agency_id" in result.output
    result = run(nl, "add-entry", case_id, "--text", "late")
    assert result.exit_code == 2
    assert "closed" in result.output
    result = run(
        nl,
        "create",
        "--title",
        "Firearms",
        "--treaty",
        TASKFORCE,
        "--member",
        "be-police",
        "--category",
        "firearms",
    )
    assert result.exit_code == 2
    assert "CATEGORY_NOT_PERMITTED" in result.output
    assert "rule: categories" in result.output
    result = run(nl, "show", "not-a-case")
    assert result.exit_code == 2
    assert "name must look like cases/{id}" in result.output
    assert "NAME_INVALID" in result.output
    result = CliRunner().invoke(cli, ["case", "list"], env={"INTELSHARE_NODE": ""})
    assert result.exit_code == 2
    assert "missing connection settings" in result.output
