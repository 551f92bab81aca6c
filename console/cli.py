"""``intelshare console ...`` (registered through the ``intelshare.commands`` entry points)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("console")
def group() -> None:
    """The officers' web console: a client of your agency's node."""


@group.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="INTELSHARE_CONFIG",
    required=True,
    help="YAML configuration file (section 'console').",
)
@click.option("--ready-file", type=click.Path(path_type=Path), help="Write the bound port here.")
@click.option("--log-level", default="INFO", show_default=True)
def serve_cmd(config_path: Path, ready_file: Path | None, log_level: str) -> None:
    """Serve the console until SIGTERM / Ctrl-C."""
    from console.config import load_config
    from console.server import serve
    from intelshare.logs import configure_logging

    configure_logging(log_level)
    serve(load_config(config_path), ready_file=ready_file)
