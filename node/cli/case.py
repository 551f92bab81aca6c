"""``intelshare case ...``: joint cases from the officer's command line.

Connection settings are those of ``intelshare alert`` (options, environment
variables or a client config file; see :mod:`node.cli.alert`), so one
client config serves both. Output is a readable table by default and JSON
with ``--json``; errors print what is wrong, field by field, and exit 2.

``case follow`` prints events as they arrive. When the connection to the
node drops (node restarted, network), it reconnects with backoff and
resumes after the last cursor it saw — from an event or a heartbeat — so
nothing is printed twice and nothing is missed. ``--after`` resumes a
previous run; ``--count`` stops after that many events (for scripts).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.cli import emit, json_option, print_table
from intelshare.errors import FieldInvalid, Unavailable
from intelshare.v1 import alert_pb2, case_pb2
from node.cli.case_client import CaseClient
from node.cli.connect import connect
from node.cli.connect import officer_group as _officer_group
from node.cli.subjects import subject_options
from node.schema import alert as rec


@_officer_group(
    "case", "Open joint cases with partner agencies, write entries, follow the case feed."
)
def group() -> None:
    """The ``intelshare case`` group (options and error handling in officer_group)."""


def _client(ctx: click.Context) -> AbstractContextManager[CaseClient]:
    return connect(ctx, CaseClient)


# --- presentation -----------------------------------------------------------------------

_STATES = {case_pb2.CASE_STATE_OPEN: "open", case_pb2.CASE_STATE_CLOSED: "closed"}
_STANDINGS = {
    case_pb2.CASE_STANDING_OWNER: "owner",
    case_pb2.CASE_STANDING_MEMBER: "member",
    case_pb2.CASE_STANDING_REMOVED: "removed",
}
_SIGNATURES = {
    case_pb2.ENTRY_SIGNATURE_SEALED_HERE: "sealed here",
    case_pb2.ENTRY_SIGNATURE_AUTHOR_ENVELOPE: "author's envelope",
    case_pb2.ENTRY_SIGNATURE_FORWARDED_AUTHOR_ENVELOPE: "author's envelope, forwarded",
    case_pb2.ENTRY_SIGNATURE_OWNER_ATTESTED: "owner only",
}
_DELIVERY = {
    case_pb2.ENTRY_DELIVERY_STATE_QUEUED: "queued",
    case_pb2.ENTRY_DELIVERY_STATE_SENT: "sent",
    case_pb2.ENTRY_DELIVERY_STATE_FAILED: "FAILED",
    case_pb2.ENTRY_DELIVERY_STATE_NOT_SHARED: "not shared",
}


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _ts(ts: Timestamp) -> str:
    if ts.seconds == 0 and ts.nanos == 0:
        return ""
    return datetime.fromtimestamp(ts.seconds, UTC).strftime("%Y-%m-%d %H:%M")


def _id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _members(case: case_pb2.Case) -> str:
    return ", ".join(
        m.agency_id + ("" if m.state == case_pb2.CASE_MEMBER_STATE_ACTIVE else " (removed)")
        for m in case.members
    )


def _short(case: case_pb2.Case) -> list[Any]:
    return [
        _id(case.name),
        _STATES.get(case.state, "?"),
        _STANDINGS.get(case.standing, "?"),
        case.owner_agency,
        case.treaty_id,
        case.entry_count,
        _ts(case.update_time),
        (case.title[:40] + "…") if len(case.title) > 40 else (case.title or "(title not shared)"),
    ]


def _show_case(case: case_pb2.Case) -> None:
    click.echo(f"{case.name}  {case.title or '(title not shared)'}")
    rows = [
        ("state", _STATES.get(case.state, "?")),
        ("owner", case.owner_agency),
        ("this agency", _STANDINGS.get(case.standing, "?")),
        ("treaty", f"{case.treaty_id} v{case.treaty_version}"),
        ("categories", ", ".join(case.categories)),
        (
            "handling",
            f"{rec.HANDLINGS.get(case.handling, '?')} / TLP:{rec.TLPS.get(case.tlp, '?')}",
        ),
        ("members", _members(case)),
        ("team", ", ".join(case.officers) or "(liaison officers and admins only)"),
        ("entries", str(case.entry_count)),
        ("opened", _ts(case.create_time)),
    ]
    if case.HasField("close_time"):
        rows.append(("closed", _ts(case.close_time)))
    if case.HasField("retain_until"):
        rows.append(("kept until", _ts(case.retain_until)))
    for key, value in rows:
        click.echo(f"  {key:<11} {value}")


def _show_entries(entries: list[case_pb2.CaseEntry]) -> None:
    if not entries:
        click.echo("  (no entries)")
        return
    for e in entries:
        who = e.author_agency + (f" ({e.written_by})" if e.written_by else "")
        proof = _SIGNATURES.get(e.evidence.signature, "?")
        extra = f"; {_DELIVERY[e.delivery_state]}" if e.delivery_state in _DELIVERY else ""
        click.echo(f"\n  {_ts(e.create_time)}  {who}  [{_id(e.name)}]")
        click.echo(
            f"    signed: {proof}, envelope sha256 {e.evidence.envelope_sha256.hex()[:16]}…{extra}"
        )
        for line in e.text.splitlines() or [""]:
            click.echo(f"    {line}")
        for kind, items in rec.subjects_to_record(e.subjects).items():
            for item in items:
                text = ", ".join(
                    f"{k}={';'.join(v) if isinstance(v, list) else v}" for k, v in item.items()
                )
                click.echo(f"    {_singular(kind)}: {text}")
        if e.attachments_digest:
            click.echo(f"    attachments: {e.attachments_digest}")
        if e.removed_fields:
            click.echo(f"    not shared: {', '.join(e.removed_fields)}")


def _choice(names: dict[str, int], value: str | None, option: str) -> int:
    if value is None:
        return 0
    key = value.strip().upper().replace("+", "_")
    if key not in names:
        raise FieldInvalid(
            f"{option} {value!r} is not one of {', '.join(names)}",
            violations={option: "one of " + ", ".join(names)},
        )
    return names[key]


def attachments_digest(paths: list[Path]) -> str:
    """``sha256:`` of a ``sha256sum``-style manifest of the files, sorted by file name.

    The attachments themselves stay with the author (they are exchanged by
    other means); the digest lets every member check later that what they
    were given is what the entry referred to.
    """
    lines = []
    for path in sorted(paths, key=lambda p: p.name):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FieldInvalid(
                f"cannot read attachment {path}: {exc.strerror}",
                violations={"--attach": f"{path}: {exc.strerror}"},
            ) from None
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
    return "sha256:" + hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


# --- commands ---------------------------------------------------------------------------


@group.command("create")
@click.option("--title", required=True, help="Short title (at most 200 characters).")
@click.option("--treaty", required=True, help="Treaty the case is shared under.")
@click.option("--member", "members", multiple=True, required=True, help="Partner agency (repeat).")
@click.option(
    "--category", "categories", multiple=True, required=True, help="Data category (repeat)."
)
@click.option("--handling", default="H0", show_default=True, help="H0, H1, H2 or H3.")
@click.option(
    "--tlp", default="AMBER", show_default=True, help="CLEAR, GREEN, AMBER, AMBER_STRICT, RED."
)
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def create_cmd(
    ctx: click.Context,
    title: str,
    treaty: str,
    members: tuple[str, ...],
    categories: tuple[str, ...],
    handling: str,
    tlp: str,
    request_id: str | None,
    as_json: bool,
) -> None:
    """Open a case with partner agencies; they receive it at once."""
    case = case_pb2.Case(
        title=title,
        treaty_id=treaty,
        categories=list(categories),
        handling=_choice(rec.HANDLING_BY_NAME, handling, "--handling"),  # type: ignore[arg-type]
        tlp=_choice(rec.TLP_BY_NAME, tlp, "--tlp"),  # type: ignore[arg-type]
        members=[case_pb2.CaseMember(agency_id=m) for m in members],
    )
    with _client(ctx) as client:
        created = client.create_case(case, request_id=request_id)

    def table() -> None:
        click.echo(f"opened {created.name}")
        _show_case(created)

    emit(_dict(created), as_json=as_json, table=table)


@group.command("list")
@click.option("--state", type=click.Choice(["open", "closed"]), help="Only open or closed cases.")
@click.option("--treaty", default="", help="Only cases under this treaty.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, state: str | None, treaty: str, limit: int, as_json: bool) -> None:
    """List the cases you may see, newest first."""
    if limit < 1:
        raise FieldInvalid("--limit must be at least 1", violations={"--limit": ">= 1"})
    wanted = {None: 0, "open": case_pb2.CASE_STATE_OPEN, "closed": case_pb2.CASE_STATE_CLOSED}
    with _client(ctx) as client:
        out = client.all_cases(limit, state=wanted[state], treaty_id=treaty)
    emit(
        [_dict(c) for c in out],
        as_json=as_json,
        table=lambda: print_table(
            ["ID", "STATE", "STANDING", "OWNER", "TREATY", "ENTRIES", "UPDATED", "TITLE"],
            [_short(c) for c in out],
        ),
    )


@group.command("show")
@click.argument("case_id")
@click.option("--entries/--no-entries", default=True, show_default=True, help="List entries.")
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, case_id: str, entries: bool, as_json: bool) -> None:
    """Show a case, its members and its entries (oldest first)."""
    with _client(ctx) as client:
        case = client.get_case(case_id)
        items = client.all_entries(case_id) if entries else []

    def table() -> None:
        _show_case(case)
        if entries:
            _show_entries(items)

    data = _dict(case)
    if entries:
        data["entries"] = [_dict(e) for e in items]
    emit(data, as_json=as_json, table=table)


@group.command("add-entry")
@click.argument("case_id")
@click.option("--text", "-t", required=True, help="What the entry says (at most 10000 characters).")
@subject_options
@click.option(
    "--attach",
    "attach",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="File whose digest the entry carries (repeat; the file itself is not sent).",
)
@click.option(
    "--attachments-digest", "digest", help="A digest computed elsewhere: sha256:<64 hex>."
)
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def add_entry_cmd(
    ctx: click.Context,
    case_id: str,
    text: str,
    subjects: alert_pb2.Subjects | None,
    attach: tuple[Path, ...],
    digest: str | None,
    request_id: str | None,
    as_json: bool,
) -> None:
    """Write an entry; every other member receives it, signed by your agency."""
    if attach and digest:
        raise FieldInvalid(
            "give --attach or --attachments-digest, not both",
            violations={"--attachments-digest": "not with --attach"},
        )
    entry = case_pb2.CaseEntry(text=text)
    if attach:
        entry.attachments_digest = attachments_digest(list(attach))
    elif digest:
        entry.attachments_digest = digest
    if subjects is not None:
        entry.subjects.CopyFrom(subjects)
    with _client(ctx) as client:
        added = client.add_entry(case_id, entry, request_id=request_id)

    def table() -> None:
        click.echo(f"added {added.name}")
        _show_entries([added])

    emit(_dict(added), as_json=as_json, table=table)


@group.group("member")
def member_group() -> None:
    """Add or remove member agencies (the owner's liaison officers)."""


@member_group.command("add")
@click.argument("case_id")
@click.argument("agency_id")
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def member_add_cmd(
    ctx: click.Context, case_id: str, agency_id: str, request_id: str | None, as_json: bool
) -> None:
    """Add a member agency; it receives the case's history."""
    with _client(ctx) as client:
        case = client.add_member(case_id, agency_id, request_id=request_id)
    emit(
        _dict(case),
        as_json=as_json,
        table=lambda: click.echo(f"{agency_id} added to {case.name}: {_members(case)}"),
    )


@member_group.command("remove")
@click.argument("case_id")
@click.argument("agency_id")
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def member_remove_cmd(
    ctx: click.Context, case_id: str, agency_id: str, request_id: str | None, as_json: bool
) -> None:
    """Remove a member agency; it receives nothing after."""
    with _client(ctx) as client:
        case = client.remove_member(case_id, agency_id, request_id=request_id)
    emit(
        _dict(case),
        as_json=as_json,
        table=lambda: click.echo(f"{agency_id} removed from {case.name}: {_members(case)}"),
    )


@group.group("officer")
def officer_group() -> None:
    """Assign officers of your agency to a case's team (analysts see only their cases)."""


@officer_group.command("add")
@click.argument("case_id")
@click.argument("officer")
@json_option
@click.pass_context
def officer_add_cmd(ctx: click.Context, case_id: str, officer: str, as_json: bool) -> None:
    """Put an officer (by name) on the case's team."""
    with _client(ctx) as client:
        case = client.add_officer(case_id, officer)
    emit(
        _dict(case),
        as_json=as_json,
        table=lambda: click.echo(f"team of {case.name}: {', '.join(case.officers)}"),
    )


@officer_group.command("remove")
@click.argument("case_id")
@click.argument("officer")
@json_option
@click.pass_context
def officer_remove_cmd(ctx: click.Context, case_id: str, officer: str, as_json: bool) -> None:
    """Take an officer off the case's team."""
    with _client(ctx) as client:
        case = client.remove_officer(case_id, officer)
    emit(
        _dict(case),
        as_json=as_json,
        table=lambda: click.echo(f"team of {case.name}: {', '.join(case.officers) or '-'}"),
    )


@group.command("close")
@click.argument("case_id")
@json_option
@click.pass_context
def close_cmd(ctx: click.Context, case_id: str, as_json: bool) -> None:
    """Close a case you own: no new entries or members."""
    with _client(ctx) as client:
        case = client.close_case(case_id)
    emit(_dict(case), as_json=as_json, table=lambda: click.echo(f"closed {case.name}"))


@group.command("follow")
@click.argument("case_id", required=False, default="")
@click.option("--after", "after_cursor", type=int, default=0, help="Resume after this cursor.")
@click.option("--count", type=int, default=0, help="Stop after this many events (0: never).")
@json_option
@click.pass_context
def follow_cmd(
    ctx: click.Context, case_id: str, after_cursor: int, count: int, as_json: bool
) -> None:
    """Print events of one case (or of every case you may see) as they happen.

    Reconnects by itself and resumes after the last cursor; Ctrl-C stops.
    """
    if count < 0 or after_cursor < 0:
        raise FieldInvalid(
            "--count and --after must not be negative", violations={"--count": ">= 0"}
        )
    cursor = after_cursor
    printed = 0
    backoff = 0.25
    try:
        while True:
            try:
                with _client(ctx) as client:
                    for item in client.watch_case(case_id, after_cursor=cursor):
                        backoff = 0.25
                        if item.WhichOneof("item") == "heartbeat":
                            cursor = max(cursor, item.heartbeat.head_cursor)
                            continue
                        e = item.event
                        cursor = e.cursor
                        if as_json:
                            click.echo(json.dumps(_dict(e), sort_keys=True))
                        else:
                            click.echo(
                                f"{e.cursor:>8}  {_ts(e.create_time)}  {e.type:<20} "
                                f"{e.entry or e.case}  {e.agency_id}".rstrip()
                            )
                        sys.stdout.flush()
                        printed += 1
                        if count and printed >= count:
                            return
                why = "the node ended the stream"
            except Unavailable as exc:
                why = exc.message[:100]
            click.echo(f"connection lost ({why}); resuming after cursor {cursor}", err=True)
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
    except KeyboardInterrupt:
        return


def _singular(kind: str) -> str:
    """``companies`` -> ``company``: subject list names as one item's label."""
    return kind[:-3] + "y" if kind.endswith("ies") else kind.removesuffix("s")
