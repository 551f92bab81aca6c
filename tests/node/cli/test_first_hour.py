"""What stood in a new officer's way (issue 16): options anywhere, errors in the command's words."""

from __future__ import annotations

import json

import pytest

from tests.node.cli.test_cli import run
from tests.node.conftest import CUSTOMS, Cluster

pytestmark = pytest.mark.slow


def test_connection_options_after_the_subcommand_and_errors_in_cli_terms(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    ca = cluster.fed.ca_file
    conn = ["--node", nl.target, "--ca", str(ca), "--server-name", "nl-customs"]
    # After the subcommand ...
    after = run("alert", "list", *conn, "--token", nl.tokens["analyst"], "--json")
    assert after.exit_code == 0, after.output
    assert json.loads(after.output) == []
    # ... and before it, alike; the subcommand's value wins over the group's.
    mixed = run("alert", "--token", "wrong", "list", *conn, "--token", nl.tokens["analyst"])
    assert mixed.exit_code == 0, mixed.output
    # An invalid alert's problems are said once each.
    invalid = run(
        "alert", "issue", *conn, "--token", nl.tokens["liaison"],
        "--kind", "narcotics", "--to", f"de-customs@{CUSTOMS}", "-d", "", "--expires", "2d",
    )  # fmt: skip
    assert invalid.exit_code == 2, invalid.output
    assert "description" in invalid.output
    assert invalid.output.count("description") == 1, invalid.output
    # A recipient without a treaty is explained in the command's terms.
    no_treaty = run(
        "alert", "issue", *conn, "--token", nl.tokens["liaison"],
        "--kind", "narcotics", "--to", "de-customs", "-d", "x",
    )  # fmt: skip
    assert no_treaty.exit_code == 2
    assert "--to AGENCY@TREATY" in no_treaty.output
    assert "treaty_id" not in no_treaty.output
    # An agency that is not in the directory is said to be so.
    unknown = run(
        "alert", "issue", *conn, "--token", nl.tokens["liaison"],
        "--kind", "narcotics", "--to", f"fr-douane@{CUSTOMS}", "-d", "x",
    )  # fmt: skip
    assert unknown.exit_code == 2
    assert "[AGENCY_UNKNOWN]" in unknown.output
    assert "fr-douane is not an agency of the federation's directory" in unknown.output
    assert unknown.output.count("is not an agency") == 1  # said once
    # Missing settings name the client config file too.
    missing = run("alert", "list", env={"INTELSHARE_NODE": "", "INTELSHARE_CLIENT_CONFIG": ""})
    assert missing.exit_code == 2
    assert "--client-config FILE (or INTELSHARE_CLIENT_CONFIG)" in missing.output


def test_show_names_every_treaty_and_the_hit_columns_say_what_they_hold(
    cluster: Cluster,
) -> None:
    from datetime import UTC, datetime

    from google.protobuf.timestamp_pb2 import Timestamp

    from intelshare.v1 import alert_pb2
    from tests.node.conftest import demo_alert, wait_for

    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    cluster.start_node("be-police")
    with nl.client("liaison") as c:
        issued = c.create_alert(demo_alert())  # de-customs and be-police, two treaties
    with de.client("analyst") as c:
        got = wait_for(
            lambda: c.list_alerts(direction=alert_pb2.ALERT_DIRECTION_RECEIVED).alerts,
            what="the alert at de-customs",
        )[0]
        found = Timestamp()
        found.FromDatetime(datetime.now(UTC))
        c.report_hit(got.name, found_time=found, place="Port of Hamburg", found="the container")
    with nl.client("liaison") as c:
        wait_for(lambda: c.get_alert(issued.name).hits, what="the hit at nl-customs")
    conn = ["--node", nl.target, "--ca", str(cluster.fed.ca_file), "--server-name", "nl-customs"]
    shown = run("alert", "show", issued.name, *conn, "--token", nl.tokens["analyst"])
    assert shown.exit_code == 0, shown.output
    treaty_line = next(line for line in shown.output.splitlines() if "treaty " in line)
    assert CUSTOMS in treaty_line
    assert "counterfeit-medicines-taskforce" in treaty_line
    header = next(line for line in shown.output.splitlines() if line.startswith("HIT BY"))
    assert header.split() == ["HIT", "BY", "WHEN", "FOUND", "WHERE", "WHAT", "WAS", "FOUND"]
    row = shown.output.splitlines()[shown.output.splitlines().index(header) + 2]  # after ----
    assert row.split()[0] == "de-customs"
    assert row.rstrip().endswith("the container")
