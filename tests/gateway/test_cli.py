"""``intelshare gateway audit verify`` on a real gateway's log, and after tampering.

The log is written by a running gateway (submit, deliver, acknowledge,
refuse), then changed behind its back with plain SQL, the way an insider
with database access would: the command must notice and name the entry.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import text

from intelshare import errors
from intelshare.audit.merkle import leaf_hash
from intelshare.cli import _load_plugins, cli
from intelshare.db import make_engine
from tests.gateway.conftest import GatewayEnv

_load_plugins()


def write_config_file(gw: GatewayEnv, path: Path) -> Path:
    """The in-process gateway's settings as the YAML file an operator would write."""
    section = {
        k: str(v)
        for k, v in dataclasses.asdict(gw.config).items()
        if v is not None and k != "listen"
    }
    path.write_text(yaml.safe_dump({"gateway": {**section, "listen": "127.0.0.1:0"}}))
    return path


def audit_verify(config: Path) -> Result:
    return CliRunner().invoke(cli, ["gateway", "audit", "verify", "--config", str(config)])


@pytest.fixture
def busy_gateway(gw: GatewayEnv) -> GatewayEnv:
    """A gateway whose log holds every kind of entry."""
    with gw.client("nl-customs") as nl:
        nl.submit(gw.seal("nl-customs", ["be-police"]))
        nl.submit(gw.seal("nl-customs", ["be-police", "de-customs"]))
        with pytest.raises(errors.CategoryNotPermitted):
            nl.submit(gw.seal("nl-customs", ["be-police"], categories=("firearms",)))
    with gw.client("be-police") as be:
        stream = be.stream_inbox(0)
        for msg in stream:
            if msg.HasField("entry") and msg.entry.sequence == 2:
                break
        be.acknowledge(2)
    return gw


def events(db_url: str) -> list[tuple[int, str]]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT idx, event FROM audit_entries ORDER BY idx")).all()
    finally:
        engine.dispose()
    return [(int(i), str(e)) for i, e in rows]


def test_audit_verify_ok_on_a_real_log(busy_gateway: GatewayEnv, tmp_path: Path) -> None:
    config = write_config_file(busy_gateway, tmp_path / "gateway.yaml")
    names = {e for _, e in events(busy_gateway.config.database_url)}
    assert {"accepted", "refused", "delivered", "acknowledged"} <= names
    result = audit_verify(config)
    assert result.exit_code == 0, result.output
    size = busy_gateway.running.state.audit.size()
    assert f"audit log gateway OK: {size} entries" in result.output


def test_audit_verify_names_a_tampered_leaf(busy_gateway: GatewayEnv, tmp_path: Path) -> None:
    config = write_config_file(busy_gateway, tmp_path / "gateway.yaml")
    db_url = busy_gateway.config.database_url
    index = next(i for i, e in events(db_url) if e == "refused")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            leaf = conn.execute(
                text("SELECT leaf FROM audit_entries WHERE idx = :i"), {"i": index}
            ).scalar_one()
            # Rewrite history: the refusal becomes a refusal for another reason.
            forged = bytes(leaf).replace(b"CATEGORY_NOT_PERMITTED", b"HANDLING_NOT_PERMITTED")
            assert forged != bytes(leaf)
            conn.execute(
                text("UPDATE audit_entries SET leaf = :leaf WHERE idx = :i"),
                {"leaf": forged, "i": index},
            )
        result = audit_verify(config)
        assert result.exit_code != 0
        assert "INVALID" in result.output
        assert f"audit entry {index}: leaf does not match its stored hash" in result.output

        # A more careful forger also updates the stored leaf hash: the tree
        # nodes above it (and the signed heads) no longer match.
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE audit_entries SET leaf_hash = :h WHERE idx = :i"),
                {"h": leaf_hash(forged), "i": index},
            )
        result = audit_verify(config)
        assert result.exit_code != 0
        assert f"(completed by entry {index}) is missing or does not match" in result.output
    finally:
        engine.dispose()


def test_audit_verify_notices_a_deleted_entry(busy_gateway: GatewayEnv, tmp_path: Path) -> None:
    config = write_config_file(busy_gateway, tmp_path / "gateway.yaml")
    db_url = busy_gateway.config.database_url
    index = next(i for i, e in events(db_url) if e == "delivered")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_entries WHERE idx = :i"), {"i": index})
    finally:
        engine.dispose()
    result = audit_verify(config)
    assert result.exit_code != 0
    assert f"audit entry {index} is missing" in result.output
