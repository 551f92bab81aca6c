"""``intelshare profile ...``: risk profiles from the officer's command line.

``create`` reads the criteria from a YAML or JSON file (the language of
``docs/screening.md``; a YAML file may also hold the whole profile: title,
rationale, action, days or until, criteria, share), shares the profile
with ``--share AGENCY:TREATY`` partners, and prints it. ``list``, ``show``,
``withdraw``, ``stats`` (how one of our profiles performs: hits,
inspections, confirmed findings per screening agency), ``hits`` (the hits
screened here or reported to us) and ``outcome`` (record the inspection of
a hit; a hit on a partner's profile reports it to the partner). Errors
print every field that is wrong (``risk_profile.criteria.all_of[1].hs_prefix``)
and exit 2; ``--json`` prints JSON for scripts.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import yaml
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.cli import emit, json_option, print_table
from intelshare.errors import FieldInvalid
from intelshare.v1 import envelope_pb2, risk_profile_pb2
from node.cli.connect import connect
from node.cli.connect import officer_group as _officer_group
from node.cli.risk_client import RiskClient

P = risk_profile_pb2

ACTIONS = {
    "documentary_check": P.RISK_ACTION_DOCUMENTARY_CHECK,
    "scan": P.RISK_ACTION_SCAN,
    "physical_inspection": P.RISK_ACTION_PHYSICAL_INSPECTION,
}
ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
STATES = {
    P.RISK_PROFILE_STATE_ACTIVE: "active",
    P.RISK_PROFILE_STATE_SCHEDULED: "scheduled",
    P.RISK_PROFILE_STATE_EXPIRED: "expired",
    P.RISK_PROFILE_STATE_WITHDRAWN: "withdrawn",
}
DIRECTIONS = {
    "issued": P.RISK_PROFILE_DIRECTION_ISSUED,
    "received": P.RISK_PROFILE_DIRECTION_RECEIVED,
}
DIRECTION_NAMES = {v: k for k, v in DIRECTIONS.items()}
INSPECTIONS = {
    P.INSPECTION_STATE_PENDING: "pending",
    P.INSPECTION_STATE_INSPECTED: "inspected",
    P.INSPECTION_STATE_NOT_INSPECTED: "not inspected",
}
FINDINGS = {P.FINDING_CONFIRMED: "confirmed", P.FINDING_NOTHING_FOUND: "nothing found"}


@_officer_group("profile", "Write risk profiles, share them with partners, see how they perform.")
def group() -> None:
    """The ``intelshare profile`` group (options and error handling in officer_group)."""


def _client(ctx: click.Context) -> AbstractContextManager[RiskClient]:
    return connect(ctx, RiskClient)


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _ts(ts: Timestamp) -> str:
    if ts.seconds == 0 and ts.nanos == 0:
        return ""
    return datetime.fromtimestamp(ts.seconds, UTC).strftime("%Y-%m-%d %H:%M")


def _timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(UTC))
    return ts


def read_profile_file(path: Path) -> dict[str, Any]:
    """The criteria (or whole profile) in a YAML or JSON file, as data."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FieldInvalid(
            f"cannot read {path}: {exc}", violations={"--criteria": str(exc)}
        ) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise FieldInvalid(
            f"{path} is not {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}",
            violations={"--criteria": "not parseable"},
        ) from None
    if not isinstance(data, dict):
        raise FieldInvalid(
            f"{path} must hold an object (all_of / any_of, or a profile with criteria)",
            violations={"--criteria": "not an object"},
        )
    return data


def _show(p: P.RiskProfile) -> None:
    click.echo(f"{p.name}  {p.title or '(title not shared)'}")
    rows = [
        ("state", STATES.get(p.state, "?")),
        (
            "from",
            p.origin_agency + (" (ours)" if p.direction == P.RISK_PROFILE_DIRECTION_ISSUED else ""),
        ),
        ("action", ACTION_NAMES.get(p.action, "(not shared)").replace("_", " ")),
        ("valid", f"{_ts(p.start_time)} to {_ts(p.end_time)}"),
        ("treaty", p.treaty_id or "(kept here only)"),
        ("revision", str(p.revision)),
    ]
    if p.withdraw_reason:
        rows.append(("withdrawn", p.withdraw_reason))
    for key, value in rows:
        click.echo(f"  {key:<9} {value}")
    for r in p.recipients:
        state = "delivered " + _ts(r.deliver_time) if r.HasField("deliver_time") else "sent"
        if r.failure:
            state = f"FAILED: {r.failure}"
        click.echo(f"  shared    {r.agency_id} under {r.treaty_id}: {state}")
    if p.rationale:
        click.echo(f"  why       {p.rationale}")
    if p.HasField("criteria"):
        click.echo("  criteria  " + json.dumps(MessageToDict(p.criteria), sort_keys=True))


@group.command("create")
@click.option(
    "--criteria",
    "criteria_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML or JSON file: the criteria, or a profile with a criteria key.",
)
@click.option("--title", help="Short title (or 'title' in the file).")
@click.option("--rationale", help="Why matching consignments deserve attention.")
@click.option(
    "--action",
    type=click.Choice(sorted(ACTIONS)),
    help="What officers should do (or 'action' in the file).",
)
@click.option("--days", type=int, help="Valid for this many days from now (default 90).")
@click.option("--share", "shares", multiple=True, help="AGENCY:TREATY to share with (repeat).")
@click.option("--category", "categories", multiple=True, help="Data category (repeat).")
@click.option("--handling", default="H1", show_default=True, help="H0, H1, H2 or H3.")
@click.option("--tlp", default="AMBER", show_default=True, help="CLEAR, GREEN, AMBER, ...")
@json_option
@click.pass_context
def create(
    ctx: click.Context,
    criteria_file: Path,
    title: str | None,
    rationale: str | None,
    action: str | None,
    days: int | None,
    shares: tuple[str, ...],
    categories: tuple[str, ...],
    handling: str,
    tlp: str,
    as_json: bool,
) -> None:
    """Write a risk profile and share it with partners."""
    data = read_profile_file(criteria_file)
    whole = "criteria" in data
    criteria = data.get("criteria") if whole else data
    title = title or (data.get("title") if whole else None)
    rationale = rationale or (data.get("rationale", "") if whole else "")
    action = action or (data.get("action") if whole else None)
    days = days or (data.get("days") if whole else None) or 90
    shares = shares or tuple(data.get("share", []) if whole else ())
    v: dict[str, str] = {}
    if action not in ACTIONS:
        v["--action"] = "one of " + ", ".join(sorted(ACTIONS))
    recipients = []
    for share in shares:
        agency, sep, treaty = str(share).partition(":")
        if not sep or not agency or not treaty:
            v["--share"] = f"{share!r}: expected AGENCY:TREATY"
        recipients.append(P.RiskProfileRecipient(agency_id=agency, treaty_id=treaty))
    handling_code = getattr(envelope_pb2, f"HANDLING_CODE_{handling.upper()}", None)
    tlp_code = getattr(envelope_pb2, f"TLP_{tlp.upper().replace('+', '_')}", None)
    if handling_code is None:
        v["--handling"] = "one of H0, H1, H2, H3"
    if tlp_code is None:
        v["--tlp"] = "one of CLEAR, GREEN, AMBER, AMBER_STRICT, RED"
    if v:
        raise FieldInvalid(next(iter(v.values())), violations=v)
    criteria_struct = Struct()
    if isinstance(criteria, dict):
        criteria_struct.update(criteria)
    profile = P.RiskProfile(
        title=str(title or ""),
        rationale=str(rationale or ""),
        action=ACTIONS[str(action)],
        end_time=_timestamp(datetime.now(UTC) + timedelta(days=int(days))),
        criteria=criteria_struct,
        recipients=recipients,
        categories=list(categories),
        handling=handling_code,  # type: ignore[arg-type]  # checked above
        tlp=tlp_code,  # type: ignore[arg-type]  # checked above
    )
    with _client(ctx) as client:
        created = client.create_profile(profile)
    emit(_dict(created), as_json=as_json, table=lambda: _show(created))


@group.command("list")
@click.option("--direction", type=click.Choice(sorted(DIRECTIONS)), help="Ours or received.")
@click.option("--limit", type=int, default=None, help="Most profiles to list (default: all).")
@json_option
@click.pass_context
def list_(ctx: click.Context, direction: str | None, limit: int | None, as_json: bool) -> None:
    """List risk profiles, newest first."""
    with _client(ctx) as client:
        items = client.all_profiles(limit, DIRECTIONS.get(direction or "", 0))
    emit(
        [_dict(p) for p in items],
        as_json=as_json,
        table=lambda: print_table(
            ["id", "state", "from", "action", "until", "title"],
            [
                [
                    p.name.split("/", 1)[1],
                    STATES.get(p.state, "?"),
                    p.origin_agency,
                    ACTION_NAMES.get(p.action, "").replace("_", " "),
                    _ts(p.end_time),
                    p.title[:50],
                ]
                for p in items
            ],
        ),
    )


@group.command("show")
@click.argument("name")
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one risk profile."""
    with _client(ctx) as client:
        p = client.get_profile(name)
    emit(_dict(p), as_json=as_json, table=lambda: _show(p))


@group.command("withdraw")
@click.argument("name")
@click.option("--reason", required=True, help="Why (sent to every partner).")
@json_option
@click.pass_context
def withdraw(ctx: click.Context, name: str, reason: str, as_json: bool) -> None:
    """Withdraw one of our profiles at every partner: it stops matching everywhere."""
    with _client(ctx) as client:
        p = client.withdraw_profile(name, reason)
    emit(_dict(p), as_json=as_json, table=lambda: _show(p))


@group.command("stats")
@click.argument("name")
@json_option
@click.pass_context
def stats(ctx: click.Context, name: str, as_json: bool) -> None:
    """How one of our profiles performs: hits, inspections, confirmed findings."""
    with _client(ctx) as client:
        s = client.statistics(name)

    def table() -> None:
        click.echo(
            f"{s.profile}: {s.hits} hits, {s.inspections} inspected, "
            f"{s.confirmed_findings} confirmed, {s.nothing_found} nothing found"
        )
        if s.hits:
            click.echo(f"first {_ts(s.first_hit_time)}, latest {_ts(s.last_hit_time)}")
            print_table(
                ["screened by", "hits", "inspected", "confirmed"],
                [[a.agency_id, a.hits, a.inspections, a.confirmed_findings] for a in s.agencies],
            )

    emit(_dict(s), as_json=as_json, table=table)


@group.command("hits")
@click.option("--profile", "profile_name", default="", help="Only this profile's hits.")
@click.option("--limit", type=int, default=None, help="Most hits to list (default: all).")
@json_option
@click.pass_context
def hits(ctx: click.Context, profile_name: str, limit: int | None, as_json: bool) -> None:
    """List risk hits (screened here or reported by partners), newest first."""
    with _client(ctx) as client:
        items = client.all_hits(limit, profile=profile_name)
    emit(
        [_dict(h) for h in items],
        as_json=as_json,
        table=lambda: print_table(
            ["hit", "reference", "profile", "screened by", "inspection", "finding"],
            [
                [
                    h.name.split("/", 1)[1],
                    h.reference,
                    h.profile_title or h.profile or "(watched identifiers)",
                    h.screening_agency,
                    INSPECTIONS.get(h.inspection, ""),
                    FINDINGS.get(h.finding, ""),
                ]
                for h in items
            ],
        ),
    )


@group.command("outcome")
@click.argument("hit")
@click.option(
    "--inspection",
    type=click.Choice(["pending", "inspected", "not_inspected"]),
    required=True,
    help="Whether the consignment was inspected.",
)
@click.option("--finding", type=click.Choice(["confirmed", "nothing_found"]), help="What it found.")
@click.option("--note", default="", help="A note for this node (treaties may keep it home).")
@json_option
@click.pass_context
def outcome(
    ctx: click.Context,
    hit: str,
    inspection: str,
    finding: str | None,
    note: str,
    as_json: bool,
) -> None:
    """Record the outcome of a hit (reported to the profile's author if it is a partner)."""
    h = P.RiskHit(name=hit if hit.startswith("riskHits/") else f"riskHits/{hit}", note=note)
    h.inspection = {
        "pending": P.INSPECTION_STATE_PENDING,
        "inspected": P.INSPECTION_STATE_INSPECTED,
        "not_inspected": P.INSPECTION_STATE_NOT_INSPECTED,
    }[inspection]
    if finding:
        h.finding = P.FINDING_CONFIRMED if finding == "confirmed" else P.FINDING_NOTHING_FOUND
    with _client(ctx) as client:
        updated = client.update_hit(h, ["inspection", "finding", "note"])
    emit(
        _dict(updated),
        as_json=as_json,
        table=lambda: click.echo(
            f"{updated.name}: {INSPECTIONS.get(updated.inspection, '')}"
            + (f", {FINDINGS[updated.finding]}" if updated.finding in FINDINGS else "")
        ),
    )


# STIX export (node/cli/interop.py), attached last.
from node.cli.interop import attach_export as _attach_export  # noqa: E402

_attach_export(group, "profile")
