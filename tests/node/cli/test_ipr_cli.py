"""``intelshare recordation / detention / ipr`` as an IPR unit uses them, against real nodes.

The walk-through of docs/ipr.md in commands: a recordation granted from
YAML at nl-customs, found by GTIN at de-customs, a detention created from
YAML, notified, the holder's list and answer with its own token, the
statistics as a table and CSV; bad files and bad options are refused in
the command's own words (exit 2, the field named).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from intelshare import devfed
from intelshare.cli import _load_plugins, cli
from tests.node.api.ipr_fixtures import ACME_GTIN, holder_token, ipr_fed
from tests.node.conftest import CUSTOMS, Cluster, RunningNode, wait_for

pytestmark = pytest.mark.slow
_load_plugins()


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    return ipr_fed(tmp_path)


def run(node: RunningNode, token: str, *args: str) -> Result:
    connection = [
        "--node",
        node.target,
        "--ca",
        str(node.node.config.ca_cert),
        "--server-name",
        node.agency,
        "--token",
        token,
    ]
    return CliRunner().invoke(cli, [args[0], *connection, *args[1:]], catch_exceptions=False)


def recordation_yaml(path: Path, gtin: str = ACME_GTIN) -> Path:
    grant = datetime.now(UTC) - timedelta(days=1)
    path.write_text(
        f"""
holder:
  name: Acme Sports B.V.
  eori: NL123456789
  country: NL
  contact: {{name: Brand protection, email: ip@acme.example, telephone: "+31 20 123 4567"}}
rights:
  - {{type: trade_mark, name: ACME, registration_number: "018123456", office: EUIPO}}
goods:
  - description: running shoes, model Sprint
    hs_codes: ["640411"]
    gtins: ["{gtin}"]
    right_names: [ACME]
authenticity_features:
  - description: hologram inside the tongue, green to blue when tilted
supply_chain:
  manufacturers: [{{name: Acme Vietnam Co., country: VN}}]
grant_time: {grant.strftime("%Y-%m-%dT%H:%M:%SZ")}
expire_time: {(grant + timedelta(days=300)).strftime("%Y-%m-%dT%H:%M:%SZ")}
agencies:
  - {{agency_id: de-customs, treaty_id: {CUSTOMS}}}
internal_notes: holder answered slowly in 2025
"""
    )
    return path


def detention_yaml(path: Path, container: str = "CSQU3054383") -> Path:
    path.write_text(
        f"""
goods:
  - description: sports shoes bearing the sign ACME
    hs_code: "6404110090"
    gtins: ["{ACME_GTIN}"]
    brand: ACME
    quantity: 1200
    unit: pair
    estimated_value: {{currency_code: EUR, units: 96000}}
    category: shoes
transport: {{mode: sea, container_number: {container}, vessel_imo: "9811000"}}
parties:
  declarant: {{name: Hans Muster, country: DE}}
origin_country: CN
destination_country: NL
procedure: standard
customs_office: DE004850
recordations: [recordations/acme-2026]
"""
    )
    return path


def test_the_walk_through_in_commands(cluster: Cluster, tmp_path: Path) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    liaison_nl = nl.tokens["liaison"]
    liaison_de = de.tokens["liaison"]

    granted = run(
        nl,
        liaison_nl,
        "recordation",
        "grant",
        "--file",
        str(recordation_yaml(tmp_path / "acme.yaml")),
        "--id",
        "acme-2026",
    )
    assert granted.exit_code == 0, granted.output
    assert granted.output.startswith("recordations/acme-2026  granted  ACME (trade mark, EUIPO")
    assert f"shared with: de-customs ({CUSTOMS})" in granted.output

    def found() -> str:
        result = run(de, liaison_de, "recordation", "find", "--gtin", ACME_GTIN)
        return result.output if "recordations/acme-2026" in result.output else ""

    line = wait_for(found, what="the recordation found at de-customs")
    assert "from nl-customs" in line
    assert "matched by: gtin" in line
    shown = run(de, liaison_de, "recordation", "show", "acme-2026", "--json")
    assert json.loads(shown.output)["holder"]["eori"] == "NL123456789"
    assert "internal_notes" not in json.loads(shown.output)

    created = run(
        de,
        liaison_de,
        "detention",
        "create",
        "--file",
        str(detention_yaml(tmp_path / "hh.yaml")),
        "--id",
        "hh-0412",
    )
    assert created.exit_code == 0, created.output
    assert created.output.splitlines()[0] == "detentions/hh-0412  detained  standard procedure"
    assert "suggested recordations: recordations/acme-2026" in created.output
    assert "(Europe/Berlin)" in created.output

    moved = run(
        de,
        liaison_de,
        "detention",
        "move",
        "hh-0412",
        "holder_notified",
        "--reason",
        "holder and declarant notified by e-mail",
    )
    assert moved.exit_code == 0, moved.output
    assert "holder_answer" in moved.output
    assert "(10 working days)" in moved.output

    holder = holder_token(de)
    mine = run(de, holder, "detention", "list")
    assert "hh-0412" in mine.output
    assert "holder_notified" in mine.output
    answered = run(
        de,
        holder,
        "detention",
        "move",
        "hh-0412",
        "destruction_agreed",
        "--reason",
        "counterfeit: no hologram",
    )
    assert answered.exit_code == 0, answered.output
    refused = run(de, holder, "ipr", "stats")
    assert refused.exit_code == 2
    assert "[ROLE_NOT_PERMITTED]" in refused.output

    stats = run(de, de.tokens["analyst"], "ipr", "stats", "--by", "country,category")
    assert stats.exit_code == 0, stats.output
    assert "CN" in stats.output
    assert "1200" in stats.output
    as_csv = run(de, de.tokens["analyst"], "ipr", "stats", "--by", "month,right", "--csv")
    rows = list(csv.reader(io.StringIO(as_csv.output)))
    assert rows[0] == ["month", "right", "detentions", "articles", "estimated value"]
    assert rows[1][1:4] == ["trade_mark", "1", "1200"]
    assert rows[-1][0] == "total"

    def reported() -> str:
        result = run(nl, nl.tokens["analyst"], "detention", "reports", "--recordation", "acme-2026")
        return result.output if "de-customs" in result.output else ""

    assert "recordations/acme-2026" in wait_for(reported, what="the report at nl-customs")


def test_bad_files_and_options_are_refused_in_the_commands_words(
    cluster: Cluster, tmp_path: Path
) -> None:
    nl = cluster.start_node("nl-customs")
    token = nl.tokens["liaison"]
    bad = run(
        nl,
        token,
        "recordation",
        "grant",
        "--file",
        str(recordation_yaml(tmp_path / "bad.yaml", gtin="4006381333932")),
    )
    assert bad.exit_code == 2
    assert "[GTIN_INVALID]" in bad.output
    assert "recordation.goods[0].gtins[0]" in bad.output
    (tmp_path / "list.yaml").write_text("- not a mapping\n")
    notmap = run(nl, token, "detention", "create", "--file", str(tmp_path / "list.yaml"))
    assert notmap.exit_code == 2
    assert "must hold one detention" in notmap.output
    (tmp_path / "typo.yaml").write_text("goods: [{descriptoin: shoes}]\n")
    typo = run(nl, token, "detention", "create", "--file", str(tmp_path / "typo.yaml"))
    assert typo.exit_code == 2
    assert "descriptoin" in typo.output
    wrong_state = run(nl, token, "detention", "move", "x", "burnt", "--reason", "r")
    assert wrong_state.exit_code == 2
    assert "STATE 'burnt' is not one of detained, holder_notified" in wrong_state.output
    wrong_dim = run(nl, token, "ipr", "stats", "--by", "colour")
    assert wrong_dim.exit_code == 2
    assert "--by colour" in wrong_dim.output
    nothing = run(nl, token, "recordation", "find")
    assert nothing.exit_code == 2
    assert "give --gtin, --hs-code or --right-name" in nothing.output
    container = run(
        nl,
        token,
        "detention",
        "create",
        "--file",
        str(detention_yaml(tmp_path / "c.yaml", container="CSQU3054384")),
    )
    assert container.exit_code == 2
    assert "[CONTAINER_NUMBER_INVALID]" in container.output


def test_webhook_commands_of_a_holder(cluster: Cluster) -> None:
    de = cluster.start_node("de-customs")
    holder = holder_token(de)
    added = run(
        de,
        holder,
        "ipr",
        "webhook",
        "add",
        "https://hooks.acme.example/ipr",
        "--events",
        "detention.*,recordation.*",
        "--json",
    )
    assert added.exit_code == 0, added.output
    made = json.loads(added.output)
    assert made["secret"].startswith("whsec_")
    assert made["events"] == ["detention.*", "recordation.*"]
    listed = run(de, holder, "ipr", "webhook", "list")
    assert made["name"] in listed.output
    assert "whsec_" not in listed.output
    # a holder cannot ask for everything, nor for partners' reports
    wider = run(
        de, holder, "ipr", "webhook", "add", "https://hooks.acme.example/x", "--events", "*"
    )
    assert wider.exit_code == 2
    assert "detention.*, recordation.* events only" in wider.output
    # nor remove an officer's webhook
    officer = run(
        de,
        de.tokens["liaison"],
        "ipr",
        "webhook",
        "add",
        "https://siem.de-customs.example/ipr",
        "--events",
        "detention_report.*",
        "--json",
    )
    theirs = json.loads(officer.output)["name"]
    gone = run(de, holder, "ipr", "webhook", "remove", theirs)
    assert gone.exit_code == 2
    assert "[WEBHOOK_NOT_FOUND]" in gone.output
    assert "of yours" in gone.output
    removed = run(de, holder, "ipr", "webhook", "remove", made["name"])
    assert removed.exit_code == 0, removed.output
    assert made["name"] not in run(de, holder, "ipr", "webhook", "list").output
