"""How the officers' commands reach their node: options, settings, one client.

Every officer command group (``intelshare alert``, ``case``, ...) is made
by :func:`officer_group`, so they all take the same connection options,
read the same client config file and report errors the same way.
Connection settings come from options, environment variables or a small
client config file (YAML), in that order of precedence::

    node: nl-node.example:7443      # --node / INTELSHARE_NODE
    ca: /etc/intelshare/ca.pem      # --ca / INTELSHARE_CA (the federation CA)
    server_name: nl-customs         # --server-name / INTELSHARE_SERVER_NAME (agency id)
    token_file: ~/.intelshare-token # or token: ... / --token / INTELSHARE_TOKEN

:func:`connect` opens a :class:`~node.cli.client.NodeClient` (or a
subclass with more services) with those settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from intelshare.cli import EXIT_BAD_INPUT
from intelshare.errors import ConfigError, IntelshareError
from node.cli.client import NodeClient

_C = TypeVar("_C", bound=NodeClient)


#: (option, key in ctx.obj, environment variable, type, help)
_CONNECTION = (
    ("--node", "node", "INTELSHARE_NODE", None, "host:port of your node."),
    ("--ca", "ca", "INTELSHARE_CA", click.Path(path_type=Path), "The federation CA (PEM)."),
    ("--server-name", "server_name", "INTELSHARE_SERVER_NAME", None, "Your agency id."),
    ("--token", "token", "INTELSHARE_TOKEN", None, "Your officer token."),
    (
        "--client-config",
        "client_config",
        "INTELSHARE_CLIENT_CONFIG",
        click.Path(path_type=Path, dir_okay=False),
        "YAML file with node, ca, server_name, token or token_file.",
    ),
)


def _keep(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """Store a connection option given after the subcommand over the group's value."""

    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.ensure_object(dict)[key] = value

    return store


def report(ctx: click.Context, exc: IntelshareError) -> None:
    """Print a project error for an officer (message, reason, violations, metadata), exit 2."""
    click.echo(f"error: {exc.message} [{exc.reason}]", err=True)
    for path, text in sorted(getattr(exc, "violations", {}).items()):
        if f"{path}: {text}" not in exc.message:  # said once, not twice
            click.echo(f"  {path}: {text}", err=True)
    for key, value in sorted(exc.metadata.items()):
        click.echo(f"  ({key}: {value})", err=True)
    ctx.exit(EXIT_BAD_INPUT)


class OfficerCommand(click.Command):
    """A single officer command (``screen``, ``related``): errors reported as by the groups."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IntelshareError as exc:
            report(ctx, exc)


def connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The connection options on a single command, gathered into ``ctx.obj`` for :func:`connect`."""
    for option, key, env, type_, text in reversed(_CONNECTION):
        command = click.option(
            option, key, envvar=env, type=type_, help=text, callback=_keep(key), expose_value=False
        )(command)
    return command


class OfficerGroup(click.Group):
    """Connection options before or after the subcommand; errors with every violation.

    Shared by every officer command group (``intelshare alert``, ``case``,
    ...): they all talk to the officer's own node with the same options,
    which every subcommand accepts too (``intelshare alert list --node ...``
    as well as ``intelshare alert --node ... list``). Project errors are
    printed with every field violation, then the command exits 2.
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        for option, key, _env, type_, help_text in _CONNECTION:
            # No environment variable here: the group reads it, and an option
            # after the subcommand must win over it, not be overwritten by it.
            cmd.params.append(
                click.Option(
                    [option],
                    type=type_,
                    expose_value=False,
                    callback=_keep(key),
                    help=help_text,
                )
            )
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IntelshareError as exc:
            report(ctx, exc)


def officer_group(name: str, help_text: str) -> Callable[[Callable[..., None]], click.Group]:
    """A command group with the node connection options, stored in ``ctx.obj``."""

    def decorate(_f: Callable[..., None]) -> click.Group:
        @click.pass_context
        def group(ctx: click.Context, /, **values: Any) -> None:
            ctx.obj = dict(values)

        for option, key, env, type_, text in reversed(_CONNECTION):
            group = click.option(option, key, envvar=env, type=type_, help=text)(group)
        return click.group(name, cls=OfficerGroup, help=help_text)(group)

    return decorate


def settings(ctx: click.Context) -> dict[str, Any]:
    opts: dict[str, Any] = dict(ctx.obj or {})
    file_values: dict[str, Any] = {}
    path = opts.get("client_config")
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read client config {path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"client config {path} must be a mapping")
        unknown = set(loaded) - {"node", "ca", "server_name", "token", "token_file"}
        if unknown:
            raise ConfigError(f"client config {path}: unknown keys {', '.join(sorted(unknown))}")
        file_values = loaded
        base = Path(path).parent
        for key in ("ca", "token_file"):
            if file_values.get(key):
                p = Path(str(file_values[key])).expanduser()
                file_values[key] = p if p.is_absolute() else base / p
    out: dict[str, Any] = {}
    for key in ("node", "ca", "server_name", "token"):
        out[key] = opts.get(key) or file_values.get(key)
    if not out["token"] and file_values.get("token_file"):
        try:
            out["token"] = Path(file_values["token_file"]).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read token file: {exc.strerror}") from None
    missing = [
        hint
        for key, hint in (
            ("node", "--node HOST:PORT (or INTELSHARE_NODE)"),
            ("ca", "--ca FILE with the federation CA (or INTELSHARE_CA)"),
            ("server_name", "--server-name AGENCY_ID (or INTELSHARE_SERVER_NAME)"),
            ("token", "--token TOKEN (or INTELSHARE_TOKEN)"),
        )
        if not out[key]
    ]
    if missing:
        raise ConfigError(
            "missing connection settings: "
            + "; ".join(missing)
            + ". They can all come from a client config file: --client-config FILE "
            "(or INTELSHARE_CLIENT_CONFIG)"
        )
    return out


@contextmanager
def connect(ctx: click.Context, cls: type[_C]) -> Iterator[_C]:
    """A client of class ``cls`` on the officer's node, closed when the block ends."""
    s = settings(ctx)
    try:
        ca_pem = Path(s["ca"]).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read CA file {s['ca']}: {exc.strerror}") from None
    client = cls(
        str(s["node"]), ca_pem=ca_pem, server_name=str(s["server_name"]), token=str(s["token"])
    )
    try:
        yield client
    finally:
        client.close()
