"""``intelshare recordation ...``: grant, change and look up recordations on your node.

``grant --file acme.yaml --id acme-2026`` grants a rights holder's
application written as YAML (see docs/ipr.md); ``extend``, ``suspend``,
``resume`` and ``withdraw`` move it (every copy at the partners follows);
``find --gtin/--hs-code/--right-name`` looks a product up among the
recordations in force, granted here or received; ``list`` and ``show``
read. Tables by default, ``--json`` for scripts; errors name the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from intelshare.cli import emit, json_option, print_table
from intelshare.errors import FieldInvalid
from intelshare.v1 import recordation_pb2
from node.cli.connect import officer_group
from node.cli.ipr import as_dict, choice, client, day, label, load_yaml, timestamp

R = recordation_pb2


@officer_group("recordation", "Grant, change and look up rights holders' recordations.")
def group() -> None:
    """The ``intelshare recordation`` group."""


def _state(r: R.Recordation) -> str:
    return label(R.RecordationState, "RECORDATION_STATE_", r.state)


def _rights(r: R.Recordation) -> str:
    out = []
    for right in r.rights:
        kind = label(R.RightType, "RIGHT_TYPE_", right.type).replace("_", " ")
        reg = " ".join(x for x in (right.office, right.registration_number) if x)
        out.append(f"{right.name} ({kind}{', ' + reg if reg else ''})")
    return "; ".join(out)


def _line(r: R.Recordation) -> str:
    return f"{r.name}  {_state(r)}  {_rights(r)}  valid until {day(r.expire_time)}"


def _row(r: R.Recordation) -> list[Any]:
    return [
        r.name.removeprefix("recordations/"),
        "issued" if r.direction == R.RECORDATION_DIRECTION_ISSUED else "received",
        r.origin_agency,
        _state(r),
        r.holder.name,
        ", ".join(x.name for x in r.rights),
        day(r.expire_time),
    ]


_HEADERS = ["ID", "DIRECTION", "FROM", "STATE", "HOLDER", "RIGHTS", "VALID UNTIL"]


def _show(r: R.Recordation) -> None:
    click.echo(_line(r))
    click.echo(f"  holder      {r.holder.name} ({r.holder.eori or r.holder.registration_number})")
    contact = r.holder.contact
    reach = (contact.name, contact.email, contact.telephone)
    click.echo(f"  contact     {', '.join(x for x in reach if x)}")
    click.echo(f"  granted by  {r.origin_agency} on {day(r.grant_time)}")
    for g in r.goods:
        click.echo(f"  goods       {g.description}")
        if g.hs_codes:
            click.echo(f"              HS {', '.join(g.hs_codes)}")
        if g.gtins:
            click.echo(f"              GTIN {', '.join(g.gtins)}")
    for f in r.authenticity_features:
        click.echo(f"  genuine     {f.description}")
    chain = r.supply_chain
    for who in ("manufacturers", "importers", "distributors"):
        parties = getattr(chain, who)
        if parties:
            click.echo(f"  {who:<11} {', '.join(f'{p.name} ({p.country})' for p in parties)}")
    for route in chain.usual_routes:
        click.echo(
            f"  route       {route.origin_country} -> {route.destination_country}"
            f"{'  ' + route.description if route.description else ''}"
        )
    if r.agencies:
        shared = ", ".join(f"{a.agency_id} ({a.treaty_id})" for a in r.agencies)
        click.echo(f"  valid for   {shared}")
    if r.internal_notes:
        click.echo(f"  notes       {r.internal_notes}")
    for m in r.history:
        who = f" by {m.officer}" if m.officer else ""
        click.echo(
            f"  {day(m.move_time)}  {label(R.RecordationState, 'RECORDATION_STATE_', m.state)}"
            f"{who}: {m.reason}"
        )


@group.command("grant")
@click.option("--file", "path", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--id", "recordation_id", default="", help="Its id (default: generated).")
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def grant_cmd(
    ctx: click.Context, path: Path, recordation_id: str, request_id: str | None, as_json: bool
) -> None:
    """Grant a recordation written as YAML and share it with the agencies it names."""
    recordation = load_yaml(path, R.Recordation, "recordation")
    with client(ctx) as c:
        granted = c.create_recordation(recordation, recordation_id, request_id)

    def table() -> None:
        click.echo(_line(granted))
        if granted.agencies:
            shared = ", ".join(f"{a.agency_id} ({a.treaty_id})" for a in granted.agencies)
            click.echo(f"shared with: {shared}")

    emit(as_dict(granted), as_json=as_json, table=table)


@group.command("show")
@click.argument("recordation_id")
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, recordation_id: str, as_json: bool) -> None:
    """Show a recordation: goods, authenticity features, genuine supply chain, history."""
    with client(ctx) as c:
        r = c.get_recordation(recordation_id)
    emit(as_dict(r), as_json=as_json, table=lambda: _show(r))


@group.command("list")
@click.option("--state", help="granted, extended, expired, withdrawn or suspended.")
@click.option("--direction", type=click.Choice(["issued", "received"]))
@click.option("--holder", default="", help="Only this holder's (EORI or holder key).")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def list_cmd(
    ctx: click.Context,
    state: str | None,
    direction: str | None,
    holder: str,
    limit: int,
    as_json: bool,
) -> None:
    """List recordations, newest first."""
    if limit < 1:
        raise FieldInvalid("--limit must be at least 1", violations={"--limit": ">= 1"})
    filters = {
        "state": choice(R.RecordationState, "RECORDATION_STATE_", state, "--state"),
        "direction": {"issued": 1, "received": 2}.get(direction or "", 0),
        "holder": holder,
    }
    with client(ctx) as c:
        found = c.all_recordations(limit, **filters)
    emit(
        [as_dict(r) for r in found],
        as_json=as_json,
        table=lambda: print_table(_HEADERS, [_row(r) for r in found]),
    )


@group.command("find")
@click.option("--gtin", default="", help="A GTIN read from the goods.")
@click.option("--hs-code", default="", help="An HS, CN or TARIC code (its first 6 digits count).")
@click.option("--right-name", default="", help="A brand or right name.")
@click.option("--all", "include_inactive", is_flag=True, help="Also recordations not in force.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def find_cmd(
    ctx: click.Context,
    gtin: str,
    hs_code: str,
    right_name: str,
    include_inactive: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Look a product up among the recordations in force, granted here or received."""
    if not (gtin or hs_code or right_name):
        raise FieldInvalid(
            "give --gtin, --hs-code or --right-name (several narrow the search)",
            violations={"--gtin": "or --hs-code or --right-name"},
        )
    with client(ctx) as c:
        matches = c.all_matches(
            limit,
            gtin=gtin,
            hs_code=hs_code,
            right_name=right_name,
            include_inactive=include_inactive,
        )

    def table() -> None:
        if not matches:
            click.echo("no recordation in force covers this product")
        for m in matches:
            r = m.recordation
            click.echo(
                f"{r.name}  from {r.origin_agency}  {', '.join(x.name for x in r.rights)}  "
                f"matched by: {', '.join(m.matched_by)}  valid until {day(r.expire_time)}"
            )

    emit([as_dict(m) for m in matches], as_json=as_json, table=table)


@group.command("extend")
@click.argument("recordation_id")
@click.option("--until", required=True, help="New end of validity (at most a year later).")
@click.option("--reason", required=True)
@json_option
@click.pass_context
def extend_cmd(
    ctx: click.Context, recordation_id: str, until: str, reason: str, as_json: bool
) -> None:
    """Extend a recordation's validity (608/2013 art. 12)."""
    with client(ctx) as c:
        r = c.extend_recordation(recordation_id, timestamp(until, "--until"), reason)
    emit(as_dict(r), as_json=as_json, table=lambda: click.echo(_line(r)))


def _mover(verb: str, doc: str) -> None:
    @group.command(verb, help=doc)
    @click.argument("recordation_id")
    @click.option("--reason", required=True, help="Why (sent to every copy).")
    @json_option
    @click.pass_context
    def cmd(ctx: click.Context, recordation_id: str, reason: str, as_json: bool) -> None:
        with client(ctx) as c:
            r = c.move_recordation(verb, recordation_id, reason)
        emit(as_dict(r), as_json=as_json, table=lambda: click.echo(_line(r)))


_mover("suspend", "Suspend customs action on a recordation (every copy follows).")
_mover("resume", "Resume a suspended recordation.")
_mover("withdraw", "Withdraw a recordation at every copy.")


# STIX export (node/cli/interop.py), attached last.
from node.cli.interop import attach_export as _attach_export  # noqa: E402

_attach_export(group, "recordation")
