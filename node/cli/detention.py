"""``intelshare detention ...``: detentions, their deadlines and answers, reports to partners.

Customs officers ``create`` a detention from YAML (the node suggests the
recordations it may fall under and starts the notification deadline),
``move`` it with a reason, ``extend-deadline``, ``disclose-parties`` and
``report`` it to partners; a rights holder signed in with its own token
``list``s and ``show``s its detentions, ``move``s its answers and
``request-samples``. Every read shows the deadlines with their last day.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from intelshare.cli import emit, json_option, print_table
from intelshare.errors import FieldInvalid
from intelshare.v1 import detention_pb2
from node.cli.connect import officer_group
from node.cli.ipr import as_dict, choice, client, day, label, load_yaml, timestamp

D = detention_pb2


@officer_group("detention", "Detentions of goods suspected of infringing IP rights.")
def group() -> None:
    """The ``intelshare detention`` group."""


def _state(d: D.Detention) -> str:
    return label(D.DetentionState, "DETENTION_STATE_", d.state)


def _procedure(d: D.Detention) -> str:
    return label(D.DetentionProcedure, "DETENTION_PROCEDURE_", d.procedure).replace("_", " ")


def _deadline_lines(d: D.Detention) -> list[str]:
    out = []
    for x in d.deadlines:
        state = label(D.DeadlineState, "DEADLINE_STATE_", x.state)
        extended = f", extended by {x.extension_working_days}" if x.extended else ""
        out.append(
            f"  {label(D.DeadlineKind, 'DEADLINE_KIND_', x.kind):<20} due by the end of "
            f"{x.last_day} ({x.time_zone})  ({x.working_days} working days{extended})  {state}"
        )
    return out


def _next_due(d: D.Detention) -> str:
    running = [x for x in d.deadlines if x.state == D.DEADLINE_STATE_OPEN]
    return min((x.last_day for x in running), default="")


def _goods(d: D.Detention) -> str:
    if not d.goods:
        return ""
    g = d.goods[0]
    unit = label(D.QuantityUnit, "QUANTITY_UNIT_", g.unit) if g.unit else "items"
    more = f" (+{len(d.goods) - 1} lines)" if len(d.goods) > 1 else ""
    return f"{g.quantity} {unit}, {g.description}{more}"


def _show(d: D.Detention) -> None:
    click.echo(f"{d.name}  {_state(d)}  {_procedure(d)} procedure")
    click.echo(f"  detained    {day(d.detain_time)} at {d.customs_office or d.detaining_agency}")
    for g in d.goods:
        cat = label(D.GoodsCategory, "GOODS_CATEGORY_", g.category)
        click.echo(f"  goods       {g.quantity} x {g.description} (HS {g.hs_code}, {cat})")
    if d.origin_country or d.destination_country:
        click.echo(f"  route       {d.origin_country} -> {d.destination_country}")
    if d.transport.container_number:
        click.echo(f"  container   {d.transport.container_number}")
    if d.recordations:
        click.echo(f"  falls under {', '.join(d.recordations)}")
    if d.suggested_recordations:
        click.echo(f"  suggested   {', '.join(d.suggested_recordations)}")
    for role in ("consignor", "consignee", "declarant"):
        party = getattr(d.parties, role)
        if party.name:
            click.echo(f"  {role:<11} {party.name} ({party.country})")
    for line in _deadline_lines(d):
        click.echo(line)
    for m in d.history:
        who = f" by {m.officer}" if m.officer else f" ({m.role})" if m.role else ""
        click.echo(
            f"  {day(m.move_time)}  {label(D.DetentionState, 'DETENTION_STATE_', m.state)}"
            f"{who}: {m.reason}"
        )
    for s in d.sample_requests:
        click.echo(f"  samples     {day(s.request_time)}: {s.reason}")


@group.command("create")
@click.option("--file", "path", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--id", "detention_id", default="", help="Its id (default: generated).")
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def create_cmd(
    ctx: click.Context, path: Path, detention_id: str, request_id: str | None, as_json: bool
) -> None:
    """Record a detention written as YAML."""
    detention = load_yaml(path, D.Detention, "detention")
    with client(ctx) as c:
        d = c.create_detention(detention, detention_id, request_id)

    def table() -> None:
        click.echo(f"{d.name}  {_state(d)}  {_procedure(d)} procedure")
        if d.suggested_recordations:
            click.echo(f"suggested recordations: {', '.join(d.suggested_recordations)}")
        for x in d.deadlines:
            if x.kind == D.DEADLINE_KIND_NOTIFICATION:
                click.echo(
                    f"notify holder and declarant by the end of {x.last_day} ({x.time_zone})"
                )

    emit(as_dict(d), as_json=as_json, table=table)


@group.command("show")
@click.argument("detention_id")
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, detention_id: str, as_json: bool) -> None:
    """Show a detention with its deadlines and history."""
    with client(ctx) as c:
        d = c.get_detention(detention_id)
    emit(as_dict(d), as_json=as_json, table=lambda: _show(d))


@group.command("list")
@click.option("--state", help="detained, holder_notified, destruction_agreed, ...")
@click.option("--procedure", help="standard, ex_officio or small_consignment.")
@click.option("--recordation", default="", help="Only detentions naming this recordation.")
@click.option("--due-before", help="Only detentions with a deadline running out before this date.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def list_cmd(
    ctx: click.Context,
    state: str | None,
    procedure: str | None,
    recordation: str,
    due_before: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List detentions, newest first (a rights holder: its own)."""
    if limit < 1:
        raise FieldInvalid("--limit must be at least 1", violations={"--limit": ">= 1"})
    filters: dict[str, Any] = {
        "state": choice(D.DetentionState, "DETENTION_STATE_", state, "--state"),
        "procedure": choice(D.DetentionProcedure, "DETENTION_PROCEDURE_", procedure, "--procedure"),
    }
    if recordation:
        filters["recordation"] = (
            recordation
            if recordation.startswith("recordations/")
            else f"recordations/{recordation}"
        )
    if due_before:
        filters["due_before"] = timestamp(due_before, "--due-before")
    with client(ctx) as c:
        found = c.all_detentions(limit, **filters)
    emit(
        [as_dict(d) for d in found],
        as_json=as_json,
        table=lambda: print_table(
            ["ID", "STATE", "PROCEDURE", "GOODS", "NEXT DEADLINE"],
            [
                [
                    d.name.removeprefix("detentions/"),
                    _state(d),
                    _procedure(d),
                    _goods(d),
                    _next_due(d),
                ]
                for d in found
            ],
        ),
    )


@group.command("move")
@click.argument("detention_id")
@click.argument("state")
@click.option("--reason", required=True, help="Why (the holder sees it).")
@json_option
@click.pass_context
def move_cmd(ctx: click.Context, detention_id: str, state: str, reason: str, as_json: bool) -> None:
    """Move a detention to STATE (holder_notified, destruction_agreed, destroyed, ...)."""
    target = choice(D.DetentionState, "DETENTION_STATE_", state, "STATE")
    with client(ctx) as c:
        d = c.move_detention(detention_id, target, reason)

    def table() -> None:
        click.echo(f"{d.name}  {_state(d)}")
        for line in _deadline_lines(d):
            click.echo(line)

    emit(as_dict(d), as_json=as_json, table=table)


@group.command("extend-deadline")
@click.argument("detention_id")
@click.option("--days", type=int, required=True, help="Working days to add, 1 to 10.")
@click.option("--kind", default="holder_answer", show_default=True, help="Which deadline.")
@click.option("--reason", required=True, help="The holder's duly justified request.")
@json_option
@click.pass_context
def extend_cmd(
    ctx: click.Context, detention_id: str, days: int, kind: str, reason: str, as_json: bool
) -> None:
    """Extend a deadline once (608/2013 art. 23(4); never for perishable goods)."""
    which = choice(D.DeadlineKind, "DEADLINE_KIND_", kind, "--kind")
    with client(ctx) as c:
        d = c.extend_deadline(detention_id, days, reason, kind=which)
    emit(as_dict(d), as_json=as_json, table=lambda: click.echo("\n".join(_deadline_lines(d))))


@group.command("disclose-parties")
@click.argument("detention_id")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@json_option
@click.pass_context
def disclose_cmd(ctx: click.Context, detention_id: str, reason: str, as_json: bool) -> None:
    """Let the rights holder see the consignor, consignee and declarant (art. 17(4))."""
    with client(ctx) as c:
        d = c.disclose_parties(detention_id, reason)
    emit(
        as_dict(d),
        as_json=as_json,
        table=lambda: click.echo(f"{d.name}: parties disclosed to the rights holder"),
    )


@group.command("request-samples")
@click.argument("detention_id")
@click.option("--reason", required=True, help="What for and how many.")
@json_option
@click.pass_context
def samples_cmd(ctx: click.Context, detention_id: str, reason: str, as_json: bool) -> None:
    """Ask for samples of the detained goods (art. 19)."""
    with client(ctx) as c:
        d = c.request_samples(detention_id, reason)
    emit(
        as_dict(d),
        as_json=as_json,
        table=lambda: click.echo(f"{d.name}: samples requested ({len(d.sample_requests)} so far)"),
    )


@group.command("report")
@click.argument("detention_id")
@click.option("--to", "agencies", multiple=True, required=True, help="Agency (or AGENCY@TREATY).")
@click.option("--treaty", default="", help="Treaty for agencies given without @TREATY.")
@click.option("--summary", default="", help="Free text for partners (e.g. the modus operandi).")
@json_option
@click.pass_context
def report_cmd(
    ctx: click.Context,
    detention_id: str,
    agencies: tuple[str, ...],
    treaty: str,
    summary: str,
    as_json: bool,
) -> None:
    """Share a report of a detention with partner agencies under treaties."""
    recipients = []
    for a in agencies:
        agency, _, under = a.partition("@")
        if not (under or treaty):
            raise FieldInvalid(
                f"--to {a}: name the treaty (--treaty T or {a}@T)",
                violations={"--to": "AGENCY@TREATY or --treaty"},
            )
        recipients.append((agency, under or treaty))
    with client(ctx) as c:
        report = c.share_report(detention_id, recipients, summary)
    to = ", ".join(f"{a} ({t})" for a, t in recipients)
    emit(
        as_dict(report),
        as_json=as_json,
        table=lambda: click.echo(f"{report.name}  shared with {to}"),
    )


@group.command("reports")
@click.option("--recordation", default="", help="Only reports concerning this recordation.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def reports_cmd(ctx: click.Context, recordation: str, limit: int, as_json: bool) -> None:
    """List detention reports made here or received from partners."""
    filters = {}
    if recordation:
        filters["recordation"] = (
            recordation
            if recordation.startswith("recordations/")
            else f"recordations/{recordation}"
        )
    with client(ctx) as c:
        found = c.all_reports(limit, **filters)
    emit(
        [as_dict(r) for r in found],
        as_json=as_json,
        table=lambda: print_table(
            ["REPORT", "FROM", "DETAINED", "GOODS", "RECORDATIONS HERE"],
            [
                [
                    r.name.removeprefix("detentionReports/"),
                    r.reporting_agency,
                    day(r.detain_time),
                    sum(g.quantity for g in r.goods),
                    ", ".join(r.linked_recordations),
                ]
                for r in found
            ],
        ),
    )


# STIX export (node/cli/interop.py), attached last.
from node.cli.interop import attach_export as _attach_export  # noqa: E402

_attach_export(group, "detention")
