"""Options the node's admin commands share."""

from __future__ import annotations

from pathlib import Path

import click

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="INTELSHARE_CONFIG",
    required=True,
    help="YAML configuration file (section 'node').",
)
