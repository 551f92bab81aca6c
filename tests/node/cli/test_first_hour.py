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
