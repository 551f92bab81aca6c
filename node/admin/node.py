"""``intelshare node ...``: running a node and managing its officers.

For the agency's IT team. Officer tokens are printed once, when the officer
is added; the node keeps only their SHA-256.
"""

from __future__ import annotations

from pathlib import Path

import click

from intelshare.cli import emit, json_option, print_table
from intelshare.errors import AuditLogInvalid
from node.admin.options import config_option
from node.config import NodeConfig, load_config


def _config(path: Path) -> NodeConfig:
    return load_config(path)


@click.group("node")
def group() -> None:
    """Run the agency node and manage its officers."""


@group.command("serve")
@config_option
@click.option("--ready-file", type=click.Path(path_type=Path), help="Write the bound port here.")
@click.option("--log-level", default="INFO", show_default=True)
def serve_cmd(config_path: Path, ready_file: Path | None, log_level: str) -> None:
    """Serve the officer API and keep the gateway inbox open, until SIGTERM / Ctrl-C."""
    from intelshare.logs import configure_logging

    configure_logging(log_level)
    from node.server import serve

    serve(_config(config_path), ready_file=ready_file)


@group.command("migrate")
@config_option
def migrate_cmd(config_path: Path) -> None:
    """Create or upgrade the node database (serve does this too)."""
    from node.server import open_database

    store = open_database(_config(config_path))
    store.engine.dispose()
    click.echo("database is up to date")


@group.group("officer")
def officer_group() -> None:
    """Officers of this agency (admins, liaison officers, analysts)."""


@officer_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["admin", "liaison", "analyst", "rights_holder", "approver"]),
    required=True,
    help="admin: everything; liaison: issue/update/revoke; analyst: read, acknowledge, hits; "
    "rights_holder: a rights holder's own recordations and detentions only (needs --holder); "
    "approver: releases records a treaty reserves for review (never their own).",
)
@click.option(
    "--holder",
    "holder_key",
    default="",
    help="rights_holder only: the holder it acts for, eori:<EORI> or reg:<country>:<number>.",
)
@config_option
@json_option
def officer_add(name: str, role: str, holder_key: str, config_path: Path, as_json: bool) -> None:
    """Add an officer and print their token (shown only this once)."""
    from node.server import open_database
    from node.storage.officers import OfficerRegistry

    store = open_database(_config(config_path))
    try:
        officer, token = OfficerRegistry(store.engine).add(name, role, holder_key)
    finally:
        store.engine.dispose()
    data = {
        "officer_id": officer.officer_id,
        "name": officer.name,
        "role": officer.role,
        "token": token,
    }
    if officer.holder_key:
        data["holder"] = officer.holder_key

    def table() -> None:
        click.echo(f"officer {officer.name} ({officer.role}) added, id {officer.officer_id}")
        click.echo(f"token (shown only now; give it to the officer): {token}")

    emit(data, as_json=as_json, table=table)


@officer_group.command("list")
@config_option
@json_option
def officer_list(config_path: Path, as_json: bool) -> None:
    """List officers (tokens are never shown again)."""
    from datetime import UTC, datetime

    from node.server import open_database
    from node.storage.officers import OfficerRegistry

    store = open_database(_config(config_path))
    try:
        officers = OfficerRegistry(store.engine).list()
    finally:
        store.engine.dispose()
    data = [
        {
            "officer_id": o.officer_id,
            "name": o.name,
            "role": o.role,
            "holder": o.holder_key,
            "disabled": o.disabled,
            "created": datetime.fromtimestamp(o.created_ms / 1000, UTC).isoformat(
                timespec="seconds"
            ),
        }
        for o in officers
    ]
    emit(
        data,
        as_json=as_json,
        table=lambda: print_table(
            ["NAME", "ROLE", "ID", "CREATED", "DISABLED"],
            [
                [
                    d["name"],
                    d["role"],
                    d["officer_id"],
                    d["created"],
                    "yes" if d["disabled"] else "",
                ]
                for d in data
            ],
        ),
    )


@officer_group.command("disable")
@click.argument("name")
@config_option
def officer_disable(name: str, config_path: Path) -> None:
    """Disable an officer's token."""
    from node.server import open_database
    from node.storage.officers import OfficerRegistry

    store = open_database(_config(config_path))
    try:
        OfficerRegistry(store.engine).disable(name)
    finally:
        store.engine.dispose()
    click.echo(f"officer {name} disabled")


@group.group("audit")
def audit_group() -> None:
    """The node's audit log."""


@audit_group.command("verify")
@config_option
def audit_verify(config_path: Path) -> None:
    """Recompute the audit log from its entries and check every signed tree head."""
    from node.server import open_database

    cfg = _config(config_path)
    store = open_database(cfg)
    try:
        assert store.audit is not None
        report = store.audit.verify(store.audit.public_key)
    except AuditLogInvalid as exc:
        raise click.ClickException(f"audit log INVALID: {exc.message}") from None
    finally:
        store.engine.dispose()
    click.echo(
        f"audit log {cfg.agency_id} OK: {report.entries_checked} entries, "
        f"{report.heads_checked} signed tree heads verified"
    )


def _add_webhook_commands() -> None:
    from node.admin.worker import webhook_group

    group.add_command(webhook_group)


_add_webhook_commands()

__all__ = ["group"]
