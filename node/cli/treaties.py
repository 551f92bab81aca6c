"""``intelshare treaties ...``: the treaties an officer's agency may share under.

``list`` shows every treaty the agency is a party of, in force or not
(``--in-force`` for the usable ones only), with the partners, kinds and
highest marking of each; ``show ID`` shows one in full: standing, parties,
kinds, categories, handling and TLP, retention, onward sharing, the review
rule, and per record kind the fields a partner receives, as field paths of
the protos (``expire_time`` of ``intelshare.v1.Alert``). ``--json`` prints
the API's own form for scripts. (``intelshare treaty`` is the drafting and
signing tool for people who negotiate treaties; this group is for officers.)
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import click
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.cli import emit, json_option, print_table
from intelshare.v1 import envelope_pb2, treaty_service_pb2
from node.cli.connect import connect
from node.cli.connect import officer_group as _officer_group
from node.cli.treaty_client import TreatyClient

S = treaty_service_pb2

STANDINGS = {
    S.TREATY_STANDING_IN_FORCE: "in force",
    S.TREATY_STANDING_NOT_YET_VALID: "not yet valid",
    S.TREATY_STANDING_ENDED: "ended",
    S.TREATY_STANDING_NOT_SIGNED: "not signed by every party",
    S.TREATY_STANDING_UNVERIFIED: "cannot be checked",
}
ONWARD = {
    S.ONWARD_SHARING_FORBIDDEN: "forbidden",
    S.ONWARD_SHARING_WITH_ORIGINATOR_CONSENT: "with the originator's consent",
    S.ONWARD_SHARING_WITHIN_TREATY: "within the treaty's parties",
}


@_officer_group("treaties", "See the treaties your agency may share under, and what they allow.")
def group() -> None:
    """The ``intelshare treaties`` group (options and error handling in officer_group)."""


def _client(ctx: click.Context) -> AbstractContextManager[TreatyClient]:
    return connect(ctx, TreatyClient)


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _day(ts: Timestamp, *, exclusive_end: bool = False) -> str:
    seconds = ts.seconds - (1 if exclusive_end else 0)
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def _marking(t: S.AgencyTreaty) -> str:
    handling = envelope_pb2.HandlingCode.Name(t.max_handling).removeprefix("HANDLING_CODE_")
    tlp = envelope_pb2.Tlp.Name(t.max_tlp).removeprefix("TLP_")
    return f"{handling} / TLP:{tlp}"


def _standing(t: S.AgencyTreaty) -> str:
    label = STANDINGS.get(t.standing, "?")
    detail = t.standing_detail
    return detail if detail.startswith(label) else f"{label}: {detail}"


@group.command("list")
@click.option("--in-force", "in_force_only", is_flag=True, help="Only treaties in force now.")
@json_option
@click.pass_context
def list_command(ctx: click.Context, in_force_only: bool, as_json: bool) -> None:
    """Every treaty your agency is a party of, in force or not."""
    with _client(ctx) as client:
        treaties = client.list_all_treaties(in_force_only=in_force_only)

    def table() -> None:
        if not treaties:
            click.echo("no treaties" + (" in force" if in_force_only else ""))
            return
        print_table(
            ["TREATY", "VERSION", "STANDING", "PARTNERS", "KINDS", "HIGHEST MARKING", "REVIEW"],
            [
                (
                    t.treaty_id,
                    t.version,
                    STANDINGS.get(t.standing, "?"),
                    ", ".join(t.partners),
                    ", ".join(t.kinds),
                    _marking(t),
                    ", ".join(t.review_required_for) or "-",
                )
                for t in treaties
            ],
        )

    emit([_dict(t) for t in treaties], as_json=as_json, table=table)


@group.command("show")
@click.argument("treaty")
@click.option(
    "--version", type=click.IntRange(min=1), default=None, help="A version the node holds."
)
@json_option
@click.pass_context
def show_command(ctx: click.Context, treaty: str, version: int | None, as_json: bool) -> None:
    """One treaty in full: TREATY is its id (or treaties/ID)."""
    with _client(ctx) as client:
        t = client.get_treaty(treaty, version or 0)

    def table() -> None:
        click.echo(f"{t.name}  v{t.version}  {t.title}")
        rows = [
            ("standing", _standing(t)),
            ("valid", f"{_day(t.start_time)} to {_day(t.end_time, exclusive_end=True)}"),
            ("parties", ", ".join(t.parties)),
            ("partners", ", ".join(t.partners)),
            ("kinds", ", ".join(t.kinds)),
            ("categories", ", ".join(t.categories)),
            ("highest marking", _marking(t)),
            ("retention", f"{t.retention_days} days"),
            ("onward sharing", ONWARD.get(t.onward_sharing, "?")),
            ("review before release", ", ".join(t.review_required_for) or "none"),
            ("versions held", ", ".join(str(v) for v in t.versions)),
        ]
        if t.unsigned_parties:
            rows.append(("not signed by", ", ".join(t.unsigned_parties)))
        if t.purpose:
            rows.append(("purpose", t.purpose))
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            click.echo(f"  {key.ljust(width)}  {value}")
        click.echo("\nFields a partner receives (field paths of each kind's message):")
        for kf in t.fields:
            where = f" ({kf.message})" if kf.message else ""
            click.echo(f"  {kf.kind}{where}:")
            if not kf.paths:
                click.echo("    (no content passes)")
            for path in kf.paths:
                click.echo(f"    {path}")

    emit(_dict(t), as_json=as_json, table=table)
