"""``intelshare gateway ...`` commands (registered through the entry-point group)."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.config import GatewayConfig
from intelshare import config as cfgmod
from intelshare.errors import AuditLogInvalid

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="INTELSHARE_CONFIG",
    required=True,
    help="YAML configuration file (section 'gateway').",
)


def load_config(path: Path) -> GatewayConfig:
    data = cfgmod.read_file(path)
    return cfgmod.load(GatewayConfig, "gateway", data, base=path.parent)


@click.group("gateway")
def group() -> None:
    """Run and inspect the federation gateway."""


@group.command("serve")
@config_option
@click.option("--ready-file", type=click.Path(path_type=Path), help="Write the bound port here.")
@click.option("--log-level", default="INFO", show_default=True)
def serve_cmd(config_path: Path, ready_file: Path | None, log_level: str) -> None:
    """Serve the gateway until SIGTERM / Ctrl-C."""
    from intelshare.logs import configure_logging

    configure_logging(log_level)
    from gateway.server import serve

    serve(load_config(config_path), ready_file=ready_file)


@group.group("audit")
def audit_group() -> None:
    """The gateway's audit log."""


@audit_group.command("verify")
@config_option
def audit_verify(config_path: Path) -> None:
    """Recompute the audit log from its entries and check every signed tree head."""
    from gateway.server import open_audit

    cfg = load_config(config_path)
    log = open_audit(cfg)
    try:
        report = log.verify(log.public_key)
    except AuditLogInvalid as exc:
        raise click.ClickException(f"audit log INVALID: {exc.message}") from None
    click.echo(
        f"audit log {cfg.gateway_id} OK: {report.entries_checked} entries, "
        f"{report.heads_checked} signed tree heads verified, root {report.root_hash.hex()}"
    )


@group.group("queues")
def queues_group() -> None:
    """The per-recipient queues."""


@queues_group.command("fence")
@config_option
@click.option(
    "--gap",
    type=click.IntRange(min=1),
    default=1_000_000_000,
    show_default=True,
    help="How far ahead every queue's next sequence moves: more than the "
    "messages accepted between the backup and the failure.",
)
@click.confirmation_option(prompt="Fence every queue (only after restoring from a backup)?")
def queues_fence(config_path: Path, gap: int) -> None:
    """After restoring the database from a backup: number new messages above every cursor.

    Run it on the restored database before nodes reconnect (see
    docs/operations.md, "Restoring the gateway from a backup").
    """
    from gateway.server import open_store

    store = open_store(load_config(config_path))
    try:
        moved = store.fence_queues(gap)
    finally:
        store.engine.dispose()
    for agency, (old, new) in moved.items():
        click.echo(f"{agency}: last sequence {old} -> next after {new}")
    click.echo(f"{len(moved)} queue(s) fenced by {gap}")


__all__ = ["group", "load_config"]
