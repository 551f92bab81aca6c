"""Officers' commands of the treaty workflows, in the ``intelshare alert`` group.

Review before release (approvers)::

    intelshare alert pending                      # alerts waiting, with each partner's preview
    intelshare alert approve ALERT [--treaty T]   # release (never your own alert)
    intelshare alert reject ALERT --reason TEXT [--treaty T]

Onward sharing (a recipient's liaison officer, then the originator)::

    intelshare alert forward ALERT --to AGENCY --treaty T [--field PATH] [--reason TEXT]
    intelshare alert forwards [ALERT]
    intelshare alert consents [--state pending|granted|refused]
    intelshare alert consent grant REQUEST
    intelshare alert consent refuse REQUEST --reason TEXT

The commands join the ``alert`` group through :func:`attach` (one line at
the end of :mod:`node.cli.alert`) and reach the node as every officer
command does (:mod:`node.cli.connect`).
"""

from __future__ import annotations

from typing import Any

import click
from google.protobuf.json_format import MessageToDict

from intelshare.cli import emit, json_option, print_table
from intelshare.v1 import alert_service_pb2
from node.cli.connect import connect
from node.cli.workflow_client import WorkflowClient

_FORWARD_STATES = {1: "awaiting consent", 2: "sent", 3: "REFUSED", 4: "recalled"}
_CONSENT_STATES = {1: "pending", 2: "granted", 3: "refused"}
_CONSENT_FILTER = {"pending": 1, "granted": 2, "refused": 3}


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _alert(alert_id: str) -> str:
    return alert_id if alert_id.startswith("alerts/") else f"alerts/{alert_id}"


def _consent(request: str) -> str:
    return request if request.startswith("consentRequests/") else f"consentRequests/{request}"


def _client(ctx: click.Context) -> Any:
    return connect(ctx, WorkflowClient)


def attach(group: click.Group) -> None:
    """Add the workflow commands to the ``alert`` group."""
    for cmd in (pending_cmd, approve_cmd, reject_cmd, forward_cmd, forwards_cmd, consents_cmd):
        group.add_command(cmd)
    group.add_command(consent_group)


@click.command("pending")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@json_option
@click.pass_context
def pending_cmd(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Alerts waiting for an approver, with what each partner would receive."""
    with _client(ctx) as c:
        reviews = c.pending_reviews(limit)

    def table() -> None:
        if not reviews:
            click.echo("nothing waits for review")
            return
        for r in reviews:
            click.echo(
                f"{r.alert.name}  treaty {r.treaty_id} (review for {', '.join(r.matched)}), "
                f"written by {r.author}: {r.alert.description[:60]}"
            )
            rows = []
            for p in r.previews:
                if p.permitted:
                    removed = ", ".join(p.removed_fields) or "-"
                    rows.append([p.agency_id, "receives", f"without {removed}"])
                else:
                    rows.append(
                        [p.agency_id, "REFUSED", f"{p.refusal_reason}: {p.refusal_message}"]
                    )
            print_table(["partner", "", "what"], rows)

    emit([_dict(r) for r in reviews], as_json=as_json, table=table)


@click.command("approve")
@click.argument("alert_id")
@click.option("--treaty", default="", help="Only the review under this treaty (default: all).")
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def approve_cmd(
    ctx: click.Context, alert_id: str, treaty: str, request_id: str | None, as_json: bool
) -> None:
    """Release an alert held for review (four eyes: not your own)."""
    with _client(ctx) as c:
        alert = c.approve_alert(_alert(alert_id), treaty, request_id)
    emit(
        _dict(alert),
        as_json=as_json,
        table=lambda: click.echo(
            f"{alert.name} released to {', '.join(d.agency_id for d in alert.deliveries)}"
        ),
    )


@click.command("reject")
@click.argument("alert_id")
@click.option("--reason", required=True, help="Why (kept on your node).")
@click.option("--treaty", default="", help="Only the review under this treaty (default: all).")
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def reject_cmd(
    ctx: click.Context,
    alert_id: str,
    reason: str,
    treaty: str,
    request_id: str | None,
    as_json: bool,
) -> None:
    """Refuse the release of an alert held for review."""
    with _client(ctx) as c:
        alert = c.reject_alert(_alert(alert_id), reason, treaty, request_id)
    emit(_dict(alert), as_json=as_json, table=lambda: click.echo(f"{alert.name} rejected"))


def _forward_rows(forwards: list[alert_service_pb2.Forward]) -> None:
    print_table(
        ["forward", "to", "treaty", "state", "copy", "consent"],
        [
            [
                f.name,
                ", ".join(f.agency_ids),
                f.treaty_id,
                _FORWARD_STATES.get(f.state, "?")
                + (f" ({f.refusal_reason})" if f.refusal_reason else ""),
                f.message_id,
                f.consent_id,
            ]
            for f in forwards
        ],
    )


@click.command("forward")
@click.argument("alert_id")
@click.option("--to", "agencies", multiple=True, required=True, help="A third agency.")
@click.option("--treaty", required=True, help="The treaty they receive it under.")
@click.option("--field", "fields", multiple=True, help="Only this field (default: all allowed).")
@click.option("--reason", default="", help="Why, for the originator.")
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def forward_cmd(
    ctx: click.Context,
    alert_id: str,
    agencies: tuple[str, ...],
    treaty: str,
    fields: tuple[str, ...],
    reason: str,
    request_id: str | None,
    as_json: bool,
) -> None:
    """Pass a received alert on, as its treaty's onward-sharing rule allows."""
    with _client(ctx) as c:
        fwd = c.forward_alert(
            _alert(alert_id),
            list(agencies),
            treaty,
            fields=list(fields),
            reason=reason,
            request_id=request_id,
        )
    emit(_dict(fwd), as_json=as_json, table=lambda: _forward_rows([fwd]))


@click.command("forwards")
@click.argument("alert_id", required=False, default="")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@json_option
@click.pass_context
def forwards_cmd(ctx: click.Context, alert_id: str, limit: int, as_json: bool) -> None:
    """The forwards this agency asked for (of one received alert, or all)."""
    with _client(ctx) as c:
        found = c.forwards(_alert(alert_id) if alert_id else "", limit)
    emit([_dict(f) for f in found], as_json=as_json, table=lambda: _forward_rows(found))


@click.command("consents")
@click.option("--state", type=click.Choice(sorted(_CONSENT_FILTER)), help="Only this state.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@json_option
@click.pass_context
def consents_cmd(ctx: click.Context, state: str | None, limit: int, as_json: bool) -> None:
    """Partners' requests to pass on alerts this agency issued."""
    with _client(ctx) as c:
        found = c.consent_requests(_CONSENT_FILTER.get(state or "", 0), limit)

    def table() -> None:
        print_table(
            ["request", "alert", "from", "to", "treaty", "state", "reason"],
            [
                [
                    r.name,
                    r.alert,
                    r.requester,
                    ", ".join(r.onward_recipients),
                    r.onward_treaty_id,
                    _CONSENT_STATES.get(r.state, "?"),
                    r.refusal_reason or r.reason,
                ]
                for r in found
            ],
        )

    emit([_dict(r) for r in found], as_json=as_json, table=table)


@click.group("consent")
def consent_group() -> None:
    """Answer a partner's request to pass on an alert this agency issued."""


@consent_group.command("grant")
@click.argument("request")
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def grant_cmd(ctx: click.Context, request: str, request_id: str | None, as_json: bool) -> None:
    """Consent: a signed consent goes to the partner, which then passes the alert on."""
    with _client(ctx) as c:
        answer = c.grant_consent(_consent(request), request_id)
    emit(
        _dict(answer),
        as_json=as_json,
        table=lambda: click.echo(f"{answer.name} granted (consent {answer.consent_id})"),
    )


@consent_group.command("refuse")
@click.argument("request")
@click.option("--reason", required=True, help="Why (sent to the partner).")
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def refuse_cmd(
    ctx: click.Context, request: str, reason: str, request_id: str | None, as_json: bool
) -> None:
    """Refuse, with a reason the partner sees."""
    with _client(ctx) as c:
        answer = c.refuse_consent(_consent(request), reason, request_id)
    emit(_dict(answer), as_json=as_json, table=lambda: click.echo(f"{answer.name} refused"))


__all__ = ["attach"]
