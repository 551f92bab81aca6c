"""``intelshare taxii serve --config FILE``: the read-only TAXII 2.1 server (see :mod:`taxii`)."""

from __future__ import annotations

from pathlib import Path

import click

from taxii.config import load_config


@click.group("taxii")
def group() -> None:
    """A read-only TAXII 2.1 server for your agency's own tools."""


@group.command("serve")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML file with a 'taxii' section (see docs/interop.md).",
)
def serve_cmd(config_path: Path) -> None:
    """Serve the collections of your node over TAXII 2.1 until interrupted."""
    from taxii.server import serve

    config = load_config(config_path)
    scheme = "https" if config.tls_cert else "http"
    click.echo(
        f"TAXII 2.1 on {scheme}://{config.host}:{config.port}/taxii2/ "
        f"({len(config.treaties) + 1} collections, node {config.node})",
        err=True,
    )
    serve(config)
