"""A single officer command (``screen``, ``related``) with the officer groups' options.

:func:`node.cli.connect.officer_group` makes command *groups*; a command
that is one verb on its own takes the same connection options (stored in
``ctx.obj`` under the same names, so :func:`node.cli.connect.connect`
reads them alike) and reports project errors the same way: every field
violation, then exit 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from intelshare.cli import EXIT_BAD_INPUT
from intelshare.errors import IntelshareError


class OfficerCommand(click.Command):
    """Reports project errors with every field violation, then exits 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IntelshareError as exc:
            click.echo(f"error: {exc.message} [{exc.reason}]", err=True)
            for path, text in sorted(getattr(exc, "violations", {}).items()):
                click.echo(f"  {path}: {text}", err=True)
            ctx.exit(EXIT_BAD_INPUT)


def connection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The connection options of every officer command, gathered into ``ctx.obj``."""

    def store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if not isinstance(ctx.obj, dict):
            ctx.obj = {}
        ctx.obj[str(param.name)] = value
        return value

    options = [
        click.option(
            "--node",
            "node",
            envvar="INTELSHARE_NODE",
            help="host:port of your node.",
            callback=store,
            expose_value=False,
        ),
        click.option(
            "--ca",
            "ca",
            envvar="INTELSHARE_CA",
            type=click.Path(path_type=Path),
            callback=store,
            expose_value=False,
            help="The federation CA certificate.",
        ),
        click.option(
            "--server-name",
            "server_name",
            envvar="INTELSHARE_SERVER_NAME",
            callback=store,
            expose_value=False,
            help="Your agency id.",
        ),
        click.option(
            "--token",
            "token",
            envvar="INTELSHARE_TOKEN",
            callback=store,
            expose_value=False,
            help="Your officer token.",
        ),
        click.option(
            "--client-config",
            "client_config",
            envvar="INTELSHARE_CLIENT_CONFIG",
            type=click.Path(path_type=Path, dir_okay=False),
            callback=store,
            expose_value=False,
            help="YAML file with node, ca, server_name, token or token_file.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f
