"""``intelshare KIND export`` and ``intelshare alert import``: STIX 2.1 out, STIX or MISP in.

``export`` (``alert``, ``recordation``, ``detention``, ``profile``: one
command shape, :func:`export_command`) reads records from the officer's
node (as that officer may read them) and writes one STIX 2.1 bundle
(:mod:`intelshare.interop.kinds`). Received records carry the treaty's
onward-sharing rule as a marking; give the treaty's ``.treaty`` file with
``--treaty-file`` so the marking can state the rule itself (without it,
the marking says to treat the record as not to be shared until the treaty
has been read).

``import`` reads a STIX 2.1 bundle or a MISP event and prints a *draft*:
what mapped to which alert field, what was skipped and why, what is still
missing, and an ``intelshare alert issue`` command line with the draft's
values for the officer to complete (recipients, treaty, expiry) and run.
Nothing is sent and the node is not contacted.

The commands join their groups through :func:`attach` and
:func:`attach_export` (a line at the end of each group's module) and
reach the node the way every officer command does (:mod:`node.cli.connect`).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from google.protobuf.message import Message

from intelshare.cli import emit, json_option
from intelshare.errors import ConfigError, IntelshareError, Malformed
from intelshare.v1 import alert_pb2
from node.cli.client import NodeClient
from node.cli.connect import connect, settings

if TYPE_CHECKING:
    from intelshare.interop import Draft

# intelshare.interop (and the stix2 library under it) is imported by the two
# commands when they run, not here: every ``intelshare alert`` command loads
# this module, and the other commands should not pay for it.


#: Placeholders in the suggested issue command, for what a foreign document never gives.
TO_PLACEHOLDER = "AGENCY@TREATY"
KIND_PLACEHOLDER = "KIND"

#: Subject list -> the ``alert issue`` option that takes it.
_SUBJECT_OPTIONS = {
    "persons": "--person",
    "vehicles": "--vehicle",
    "containers": "--container",
    "vessels": "--vessel",
    "companies": "--company",
    "documents": "--document",
}


def attach(group: click.Group) -> None:
    """Add ``export`` and ``import`` to the ``alert`` group."""
    group.add_command(export_command("alert"))
    group.add_command(import_cmd)


def attach_export(group: click.Group, kind: str) -> None:
    """Add ``export`` to the group of ``kind`` (``recordation``, ``detention``, ``profile``)."""
    group.add_command(export_command(kind))


def _onward_rules(paths: tuple[Path, ...]) -> dict[str, str]:
    from intelshare.treaty import SignedTreatyDoc

    rules: dict[str, str] = {}
    for path in paths:
        try:
            treaty = SignedTreatyDoc.from_bytes(path.read_bytes()).treaty
        except OSError as exc:
            raise ConfigError(f"cannot read treaty file {path}: {exc.strerror}") from None
        except IntelshareError as exc:
            raise Malformed(f"{path} is not a treaty file: {exc.message}") from None
        rules[treaty.id] = treaty.onward_sharing.value
    return rules


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


def _fetch_alerts(ctx: click.Context, names: tuple[str, ...]) -> list[Message]:
    with connect(ctx, NodeClient) as client:
        return [client.get_alert(n) for n in names]


def _fetch_recordations(ctx: click.Context, names: tuple[str, ...]) -> list[Message]:
    from node.cli.ipr_client import IprClient

    with connect(ctx, IprClient) as client:
        return [client.get_recordation(n) for n in names]


def _fetch_detentions(ctx: click.Context, names: tuple[str, ...]) -> list[Message]:
    from node.cli.ipr_client import IprClient

    # Detentions by id or name; their reports by "detentionReports/ID".
    with connect(ctx, IprClient) as client:
        return [
            client.get_report(n) if n.startswith("detentionReports/") else client.get_detention(n)
            for n in names
        ]


def _fetch_profiles(ctx: click.Context, names: tuple[str, ...]) -> list[Message]:
    from node.cli.risk_client import RiskClient

    with connect(ctx, RiskClient) as client:
        return [client.get_profile(n) for n in names]


@dataclass(frozen=True)
class _Exportable:
    fetch: Callable[[click.Context, tuple[str, ...]], list[Message]]
    noun: str
    ids: str
    help: str


#: Command group -> how its ``export`` reads records.
EXPORTABLE: dict[str, _Exportable] = {
    "alert": _Exportable(_fetch_alerts, "alert(s)", "ALERT_IDS", "Export alerts (by id)"),
    "recordation": _Exportable(
        _fetch_recordations, "recordation(s)", "RECORDATION_IDS", "Export recordations (by id)"
    ),
    "detention": _Exportable(
        _fetch_detentions,
        "detention(s) or report(s)",
        "NAMES",
        "Export detentions (by id) and detention reports (detentionReports/ID)",
    ),
    "profile": _Exportable(
        _fetch_profiles, "risk profile(s)", "PROFILE_IDS", "Export risk profiles (by id)"
    ),
}


def export_command(kind: str) -> click.Command:
    """``intelshare KIND export NAMES... --format stix``: one shape for every record kind."""
    spec = EXPORTABLE[kind]

    @click.command("export", help=f"{spec.help} as a STIX 2.1 bundle.")
    @click.argument("names", nargs=-1, required=True, metavar=f"{spec.ids}...")
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["stix"]),
        default="stix",
        show_default=True,
        help="Output format: a STIX 2.1 bundle.",
    )
    @click.option(
        "--out",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Write the bundle to this file (default: standard output).",
    )
    @click.option(
        "--treaty-file",
        "treaty_files",
        multiple=True,
        type=click.Path(path_type=Path, dir_okay=False),
        help="A .treaty file; received records then state its onward-sharing rule (repeat).",
    )
    @click.pass_context
    def export_cmd(
        ctx: click.Context,
        names: tuple[str, ...],
        fmt: str,
        out: Path | None,
        treaty_files: tuple[Path, ...],
    ) -> None:
        from intelshare.interop import ExportContext, export_records

        rules = _onward_rules(treaty_files)
        holder = str(settings(ctx)["server_name"])
        records = spec.fetch(ctx, names)
        bundle = export_records(records, ExportContext(holder_agency=holder, onward_rules=rules))
        text = str(bundle.serialize(pretty=True)) + "\n"
        if out is None:
            click.echo(text, nl=False)
            return
        _write_atomic(out, text)
        click.echo(
            f"exported {len(records)} {spec.noun} as {len(bundle.objects)} STIX objects to {out}",
            err=True,
        )

    return export_cmd


def _detect(doc: Any) -> str:
    if isinstance(doc, dict) and doc.get("type") == "bundle":
        return "stix"
    if isinstance(doc, dict) and ("Event" in doc or "info" in doc or "Attribute" in doc):
        return "misp"
    raise Malformed(
        "neither a STIX 2.1 bundle nor a MISP event (give --format stix or --format misp "
        "to see what is wrong with it)"
    )


def _subject_text(msg: Message) -> tuple[str | None, list[str]]:
    """``key=value,...`` for an ``alert issue`` option, or None with what cannot be written."""
    parts: list[str] = []
    problems: list[str] = []
    for fd in msg.DESCRIPTOR.fields:
        value = getattr(msg, fd.name)
        text = ";".join(value) if fd.is_repeated else str(value)
        if not text:
            continue
        if any(c in text for c in ",=") or (fd.is_repeated and any(";" in v for v in value)):
            problems.append(fd.name)
            continue
        parts.append(f"{fd.name}={text}")
    return (",".join(parts) if parts else None), problems


def issue_command(alert: alert_pb2.Alert) -> tuple[list[str], list[str]]:
    """The ``intelshare alert issue`` arguments for a draft, and what they leave out."""
    from intelshare.interop import vocab

    args = ["intelshare", "alert", "issue"]
    args += ["--kind", vocab.KINDS.get(alert.kind, KIND_PLACEHOLDER)]
    args += ["--to", TO_PLACEHOLDER]
    args += ["--description", alert.description or "DESCRIPTION"]
    if alert.urgency in vocab.URGENCIES:
        args += ["--urgency", vocab.URGENCIES[alert.urgency]]
    if alert.handling in vocab.HANDLINGS:
        args += ["--handling", vocab.HANDLINGS[alert.handling]]
    if alert.tlp in vocab.TLPS:
        args += ["--tlp", vocab.TLPS[alert.tlp]]
    if alert.evaluation.source_reliability in vocab.RELIABILITIES:
        args += ["--reliability", vocab.RELIABILITIES[alert.evaluation.source_reliability]]
    if alert.evaluation.information_credibility in vocab.CREDIBILITIES:
        args += [
            "--credibility",
            str(vocab.CREDIBILITIES[alert.evaluation.information_credibility]),
        ]
    for c in alert.categories:
        args += ["--category", c]
    left_out: list[str] = []
    for subject_list, option in _SUBJECT_OPTIONS.items():
        for n, msg in enumerate(getattr(alert.subjects, subject_list)):
            text, problems = _subject_text(msg)
            left_out += [f"subjects.{subject_list}[{n}].{p}" for p in problems]
            if text:
                args += [option, text]
    return args, left_out


def _print_draft(draft: Draft, command: list[str], left_out: list[str]) -> None:
    click.echo(f"draft alert from a {draft.source_format} document (nothing was sent)")
    click.echo("")
    click.echo(f"mapped ({len(draft.mapped)}):")
    for m in draft.mapped:
        click.echo(f"  {m.target:<36} <- {m.source}")
    click.echo(f"skipped ({len(draft.skipped)}):")
    for s in draft.skipped:
        click.echo(f"  {s.source}: {s.reason}")
    click.echo(f"still to give: {', '.join(draft.missing) or 'nothing'}")
    if left_out:
        click.echo(
            "not expressible as issue options (commas or '=' in the value; add by hand): "
            + ", ".join(left_out)
        )
    click.echo("")
    click.echo("complete and run:")
    click.echo("  " + shlex.join(command))


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "stix", "misp"]),
    default="auto",
    show_default=True,
    help="The document's format (auto: by its content).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the draft and its summary (JSON) to this file.",
)
@json_option
def import_cmd(file: Path, fmt: str, out: Path | None, as_json: bool) -> None:
    """Make a draft alert from a STIX 2.1 bundle or a MISP event (nothing is sent)."""
    from intelshare.interop import draft_from_misp, draft_from_stix

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
    if fmt == "auto":
        try:
            fmt = _detect(json.loads(data))
        except ValueError as exc:
            raise Malformed(f"{file} is not JSON: {exc}") from None
    draft = draft_from_stix(data) if fmt == "stix" else draft_from_misp(data)
    command, left_out = issue_command(draft.alert)
    result = draft.to_dict()
    result["issue_command"] = shlex.join(command)
    result["not_expressible"] = left_out
    if out is not None:
        _write_atomic(out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    emit(result, as_json=as_json, table=lambda: _print_draft(draft, command, left_out))
