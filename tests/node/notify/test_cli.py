"""``intelshare node webhook ...``: what an admin types, and what bad input gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from intelshare import devfed
from intelshare.cli import _load_plugins, cli
from intelshare.keys import AgencyKeys
from node.config import load_config
from node.notify.webhooks import WebhookRegistry
from node.server import open_database
from tests.node.conftest import node_config

_load_plugins()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def cfg(tmp_path: Path, fed: devfed.LocalFederation) -> str:
    values = node_config(fed, "nl-customs", f"sqlite:///{tmp_path / 'nl.db'}", 1)
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump({"node": values}))
    return str(path)


def test_webhook_commands(cfg: str) -> None:
    added = run(
        "node", "webhook", "add", "https://siem.example.org/in", "--events", "alert.*",
        "--events", "case.*", "--config", cfg, "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    hook = json.loads(added.output)
    assert hook["events"] == ["alert.*", "case.*"]
    assert hook["secret"].startswith("whsec_")
    listed = run("node", "webhook", "list", "--config", cfg)
    assert hook["webhook_id"] in listed.output
    assert hook["secret"] not in listed.output  # shown once, at registration
    assert "alert.*,case.*" in listed.output
    # the admin sees whose each webhook is: the agency's, or an officer's or a
    # rights holder's registered through the API
    config = load_config(Path(cfg))
    registry = WebhookRegistry(open_database(config).engine, AgencyKeys.load(config.identity_dir))
    try:
        theirs, _secret = registry.add(
            "https://hooks.acme.example/ipr",
            ["detention.*"],
            officer_id="holder-acme",
            holder_key="acme-brands",
        )
    finally:
        registry.engine.dispose()
    owners = {
        h["webhook_id"]: (h["owner"], h["holder"])
        for h in json.loads(run("node", "webhook", "list", "--config", cfg, "--json").output)
    }
    assert owners == {
        hook["webhook_id"]: ("agency", None),
        theirs.webhook_id: ("holder-acme", "acme-brands"),
    }
    assert "holder-acme (acme-brands)" in run("node", "webhook", "list", "--config", cfg).output
    run("node", "webhook", "remove", theirs.webhook_id, "--config", cfg)
    empty = run("node", "webhook", "dead-letters", "list", "--config", cfg, "--json")
    assert json.loads(empty.output) == []
    again = run("node", "webhook", "dead-letters", "retry", "--all", "--config", cfg)
    assert again.exit_code == 0
    assert "0 dead letters queued again" in again.output
    gone = run("node", "webhook", "remove", hook["webhook_id"], "--config", cfg)
    assert gone.exit_code == 0
    assert json.loads(run("node", "webhook", "list", "--config", cfg, "--json").output) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://siem.example.org/in", "--events", "alert.*"], "plain http://"),
        (["https://siem.example.org/in", "--events", "alert.nope"], "unknown event type"),
        (["not a url", "--events", "*"], "absolute https://"),
    ],
)
def test_bad_webhooks_are_refused_with_exit_2(cfg: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["node", "webhook", "add", *args, "--config", cfg])
    assert result.exit_code == 2
    assert message in result.output
    assert json.loads(run("node", "webhook", "list", "--config", cfg, "--json").output) == []


def test_retry_needs_a_selection(cfg: str) -> None:
    result = CliRunner().invoke(cli, ["node", "webhook", "dead-letters", "retry", "--config", cfg])
    assert result.exit_code == 2
    assert "--webhook, --event, or --all" in result.output
