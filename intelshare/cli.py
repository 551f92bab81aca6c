"""The ``intelshare`` command.

The core defines the root group and the commands that belong to the core
(federation, directory, treaty, receipt). The node and gateway packages add
their own groups through the ``intelshare.commands`` entry-point group, the
way pytest and flask take plugins, so the core never imports either service.

Conventions every command follows: a readable table by default, ``--json``
for scripts, and any :class:`~intelshare.errors.IntelshareError` reported as
one line on stderr with exit status 2 (bad input) rather than a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

import click

from intelshare.errors import IntelshareError

EXIT_BAD_INPUT = 2


class _Root(click.Group):
    """Root group that turns project errors into a one-line message and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IntelshareError as exc:
            click.echo(f"error: {exc.message} [{exc.reason}]", err=True)
            ctx.exit(EXIT_BAD_INPUT)


@click.group(cls=_Root)
@click.version_option(package_name="intelshare")
def cli() -> None:
    """Federated sharing of signed, encrypted alerts and case records under treaties."""


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def emit(data: Any, *, as_json: bool, table: Callable[[], None] | None = None) -> None:
    """Print ``data`` as JSON when asked, else through ``table``."""
    if as_json or table is None:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        table()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table a person can read in a terminal."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


def _load_plugins() -> None:
    # Core command modules register themselves on import.
    import importlib

    for module in (
        "intelshare.cli_federation",
        "intelshare.cli_treaty",
        "intelshare.cli_receipt",
        "intelshare.cli_health",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    for ep in entry_points(group="intelshare.commands"):
        # One broken plugin must not take every other command down with it
        # (an operator still needs `gateway serve` when `node` fails to import),
        # nor write a plain-text line into the JSON log of every service: it
        # says what is wrong where it is used, and in the list of commands.
        try:
            command = ep.load()
        except Exception as exc:
            cli.add_command(_unavailable(ep.name, f"{type(exc).__name__}: {exc}"), name=ep.name)
            continue
        if isinstance(command, click.Command):
            cli.add_command(command, name=ep.name)


def _unavailable(name: str, problem: str) -> click.Command:
    """A stand-in for a command group that failed to import: using it says why, exit 1."""

    def run(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"command group {name!r} is unavailable: {problem}")

    return click.Command(
        name,
        callback=run,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        help=f"(unavailable: {problem})",
        short_help=f"(unavailable: {problem})",
        add_help_option=False,
    )


def main(argv: Sequence[str] | None = None) -> None:
    # gRPC's C core writes its own plain-text lines to stderr (at INFO, e.g. when
    # a server process forks the bundled Redis); the logs are JSON lines, so it
    # only speaks up for errors unless the operator sets GRPC_VERBOSITY.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    _load_plugins()
    cli.main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="intelshare")


if __name__ == "__main__":
    # ``python -m intelshare.cli`` runs this file as ``__main__``, a second copy
    # of the module; the core command modules register on ``intelshare.cli.cli``,
    # so hand over to the importable module rather than this copy's group.
    from intelshare.cli import main as _main

    _main()
