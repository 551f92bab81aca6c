"""``intelshare alert ...``: the officer's command line, talking to their node.

Connection options and settings are :mod:`node.cli.connect`'s, shared by
every officer command group. Output is a readable table or summary by
default and JSON with ``--json``. Errors print what is wrong, field by
field for invalid input, and exit 2.
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.cli import emit, json_option, print_table
from intelshare.errors import FieldInvalid
from intelshare.v1 import alert_pb2
from node.cli.client import NodeClient
from node.cli.connect import connect, officer_group, settings
from node.cli.subjects import subject_options
from node.schema import alert as rec


@officer_group("alert", "Issue, read and answer cross-border alerts on your agency's node.")
def group() -> None:
    """The ``intelshare alert`` group (options and error handling in officer_group)."""


def _client(ctx: click.Context) -> AbstractContextManager[NodeClient]:
    return connect(ctx, NodeClient)


_settings = settings

# --- parsing helpers ------------------------------------------------------------------


def _parse_expiry(text: str) -> Timestamp:
    m = re.fullmatch(r"(\d+)([mhdw])", text.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        delta = {
            "m": timedelta(minutes=n),
            "h": timedelta(hours=n),
            "d": timedelta(days=n),
            "w": timedelta(weeks=n),
        }[unit]
        return rec.ms_to_ts(int((datetime.now(UTC) + delta).timestamp() * 1000))
    try:
        return rec.ms_to_ts(rec.rfc3339_to_ms(text.strip()))
    except ValueError:
        raise FieldInvalid(
            f"--expires {text!r}: give a duration (30m, 12h, 7d, 2w) or an RFC 3339 time",
            violations={"--expires": "e.g. 7d or 2026-07-01T12:00:00Z"},
        ) from None


def _parse_time(text: str | None, option: str) -> Timestamp:
    if not text:
        return rec.ms_to_ts(int(datetime.now(UTC).timestamp() * 1000))
    try:
        return rec.ms_to_ts(rec.rfc3339_to_ms(text))
    except ValueError:
        raise FieldInvalid(
            f"{option} {text!r} is not an RFC 3339 time",
            violations={option: "e.g. 2026-07-01T14:30:00Z"},
        ) from None


def _choice(names: dict[str, int], value: str | None, option: str) -> int:
    if value is None:
        return 0
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    lowered = {k.lower(): v for k, v in names.items()}
    if key not in lowered:
        raise FieldInvalid(
            f"{option} {value!r} is not one of {', '.join(names)}",
            violations={option: "one of " + ", ".join(names)},
        )
    return lowered[key]


_KIND_CHOICES = {v: k for k, v in rec.KINDS.items()}
_URGENCY_CHOICES = {v: k for k, v in rec.URGENCIES.items()}
_STATE_CHOICES = {"active": 1, "revoked": 2, "expired": 3, "pending_review": 4}
_DIRECTION_CHOICES = {"issued": 1, "received": 2}


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _ts(ts: Timestamp, present: bool = True) -> str:
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return ""
    return datetime.fromtimestamp(ts.seconds, UTC).strftime("%Y-%m-%d %H:%M")


_STATE_NAMES = {1: "active", 2: "revoked", 3: "expired", 4: "pending review"}
_DELIVERY_NAMES = {
    1: "queued",
    2: "sent",
    3: "delivered",
    4: "acknowledged",
    5: "hit",
    6: "FAILED",
}


def _short(alert: alert_pb2.Alert) -> list[Any]:
    direction = "issued" if alert.direction == alert_pb2.ALERT_DIRECTION_ISSUED else "received"
    partner = (
        ", ".join(r.agency_id for r in alert.recipients)
        if direction == "issued"
        else alert.origin_agency
    )
    return [
        alert.name.removeprefix("alerts/"),
        direction,
        rec.KINDS.get(alert.kind, "?"),
        rec.URGENCIES.get(alert.urgency, ""),
        _STATE_NAMES.get(alert.state, "?"),
        partner,
        _ts(alert.expire_time),
        (alert.description[:40] + "…") if len(alert.description) > 40 else alert.description,
    ]


def _show(alert: alert_pb2.Alert) -> None:
    how = "issued by" if alert.direction == alert_pb2.ALERT_DIRECTION_ISSUED else "received from"
    click.echo(f"{alert.name}  ({how} {alert.origin_agency}, revision {alert.revision})")
    rows = [
        ("kind", rec.KINDS.get(alert.kind, "(not shared)")),
        ("urgency", rec.URGENCIES.get(alert.urgency, "(not shared)")),
        ("state", _STATE_NAMES.get(alert.state, "?")),
        (
            "handling",
            f"{rec.HANDLINGS.get(alert.handling, '?')} / TLP:{rec.TLPS.get(alert.tlp, '?')}",
        ),
        ("categories", ", ".join(alert.categories)),
        # An issued alert may go out under several treaties, one per recipient group.
        ("treaty", ", ".join(sorted({d.treaty_id for d in alert.deliveries})) or alert.treaty_id),
        ("expires", _ts(alert.expire_time)),
    ]
    if alert.evaluation.source_reliability or alert.evaluation.information_credibility:
        rows.append(
            (
                "evaluation",
                f"{rec.RELIABILITIES.get(alert.evaluation.source_reliability, '-')}"
                f"{rec.CREDIBILITIES.get(alert.evaluation.information_credibility, '-')}",
            )
        )
    if alert.HasField("revoke_time"):
        rows.append(("revoked", f"{_ts(alert.revoke_time)} {alert.revoke_reason}".strip()))
    for key, value in rows:
        click.echo(f"  {key:<11} {value}")
    if alert.description:
        click.echo(f"  {'description':<11} {alert.description}")
    subjects = rec.subjects_to_record(alert.subjects)
    for kind, items in subjects.items():
        for item in items:
            text = ", ".join(
                f"{k}={';'.join(v) if isinstance(v, list) else v}" for k, v in item.items()
            )
            click.echo(f"  {_singular(kind):<11} {text}")
    if alert.deliveries:
        click.echo("")
        print_table(
            ["RECIPIENT", "TREATY", "STATE", "SENT", "DELIVERED", "ACKNOWLEDGED", "HITS"],
            [
                [
                    d.agency_id,
                    f"{d.treaty_id} v{d.treaty_version}",
                    _DELIVERY_NAMES.get(d.state, "?"),
                    _ts(d.accept_time),
                    _ts(d.deliver_time),
                    _ts(d.acknowledge_time),
                    d.hit_count or "",
                ]
                for d in alert.deliveries
            ],
        )
        for d in alert.deliveries:
            if d.failure:
                click.echo(f"  {d.agency_id}: {d.failure}")
    if alert.HasField("received"):
        r = alert.received
        click.echo(
            f"  {'received':<11} {_ts(r.receive_time)} "
            f"under {alert.treaty_id} v{r.treaty_version}; "
            f"kept until {_ts(r.retain_until)}"
        )
        click.echo(f"  {'fields':<11} {', '.join(r.fields)}")
        if r.HasField("acknowledge_time"):
            click.echo(f"  {'acknowledged':<11} {_ts(r.acknowledge_time)}")
    if alert.hits:
        click.echo("")
        print_table(
            ["HIT BY", "WHEN FOUND", "WHERE", "WHAT WAS FOUND"],
            [[h.agency_id, _ts(h.found_time), h.place, h.found] for h in alert.hits],
        )


# --- commands ---------------------------------------------------------------------------


@group.command("issue")
@click.option("--kind", required=True, help="One of " + ", ".join(rec.KINDS.values()) + ".")
@click.option(
    "--to",
    "recipients",
    multiple=True,
    required=True,
    help="Recipient agency, optionally AGENCY@TREATY (repeat for several).",
)
@click.option("--treaty", default="", help="Treaty for recipients given without @TREATY.")
@click.option("--description", "-d", required=True, help="What partners should know and do.")
@click.option("--urgency", default="normal", show_default=True, help="low, normal, high, critical.")
@click.option("--handling", default="H0", show_default=True, help="H0, H1, H2 or H3.")
@click.option(
    "--tlp", default="AMBER", show_default=True, help="CLEAR, GREEN, AMBER, AMBER_STRICT, RED."
)
@click.option("--reliability", help="Source reliability A, B, C or X.")
@click.option("--credibility", type=int, help="Information credibility 1-4.")
@click.option("--expires", default="7d", show_default=True, help="Duration (12h, 7d) or RFC 3339.")
@click.option("--category", "categories", multiple=True, help="Data category (default: the kind).")
@subject_options
@click.option("--request-id", help="Idempotency key (default: a new UUID).")
@json_option
@click.pass_context
def issue_cmd(
    ctx: click.Context,
    kind: str,
    recipients: tuple[str, ...],
    treaty: str,
    description: str,
    urgency: str,
    handling: str,
    tlp: str,
    reliability: str | None,
    credibility: int | None,
    expires: str,
    categories: tuple[str, ...],
    subjects: alert_pb2.Subjects | None,
    request_id: str | None,
    as_json: bool,
) -> None:
    """Issue an alert to partner agencies under their treaties."""
    alert = alert_pb2.Alert(
        kind=_choice(_KIND_CHOICES, kind, "--kind"),  # type: ignore[arg-type]
        urgency=_choice(_URGENCY_CHOICES, urgency, "--urgency"),  # type: ignore[arg-type]
        description=description,
        handling=_choice(rec.HANDLING_BY_NAME, handling.upper(), "--handling"),  # type: ignore[arg-type]
        tlp=_choice(rec.TLP_BY_NAME, tlp.upper().replace("+", "_"), "--tlp"),  # type: ignore[arg-type]
        treaty_id=treaty,
        categories=list(categories),
        expire_time=_parse_expiry(expires),
    )
    if reliability:
        alert.evaluation.source_reliability = _choice(  # type: ignore[assignment]
            rec.RELIABILITY_BY_NAME, reliability.upper(), "--reliability"
        )
    if credibility is not None:
        if credibility not in rec.CREDIBILITY_BY_NUMBER:
            raise FieldInvalid(
                "--credibility must be 1, 2, 3 or 4", violations={"--credibility": "1-4"}
            )
        alert.evaluation.information_credibility = rec.CREDIBILITY_BY_NUMBER[credibility]  # type: ignore[assignment]
    if subjects is not None:
        alert.subjects.CopyFrom(subjects)
    for r in recipients:
        agency, _sep, treaty_id = r.partition("@")
        if not agency or not (treaty_id or treaty):
            raise FieldInvalid(
                f"--to {r} names no treaty: write --to AGENCY@TREATY, or give --treaty TREATY "
                "for every recipient written without one",
                violations={"--to": "AGENCY@TREATY (or --treaty)"},
            )
        alert.recipients.append(alert_pb2.AlertRecipient(agency_id=agency, treaty_id=treaty_id))
    with _client(ctx) as client:
        created = client.create_alert(alert, request_id=request_id)

    def table() -> None:
        click.echo(f"issued {created.name}")
        _show(created)

    emit(_dict(created), as_json=as_json, table=table)


@group.command("list")
@click.option("--kind", help="Only this kind.")
@click.option(
    "--state", help="active, revoked, expired or pending_review (waiting for an approver)."
)
@click.option("--direction", help="issued or received.")
@click.option("--treaty", default="", help="Only alerts shared under this treaty.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@json_option
@click.pass_context
def list_cmd(
    ctx: click.Context,
    kind: str | None,
    state: str | None,
    direction: str | None,
    treaty: str,
    limit: int,
    as_json: bool,
) -> None:
    """List alerts, newest first."""
    filters = {
        "kind": _choice(_KIND_CHOICES, kind, "--kind"),
        "state": _choice(_STATE_CHOICES, state, "--state"),
        "direction": _choice(_DIRECTION_CHOICES, direction, "--direction"),
        "treaty_id": treaty,
    }
    if limit < 1:
        raise FieldInvalid("--limit must be at least 1", violations={"--limit": ">= 1"})
    with _client(ctx) as client:
        out = client.list_all(limit, **filters)
    emit(
        [_dict(a) for a in out],
        as_json=as_json,
        table=lambda: print_table(
            ["ID", "DIRECTION", "KIND", "URGENCY", "STATE", "PARTNERS", "EXPIRES", "DESCRIPTION"],
            [_short(a) for a in out],
        ),
    )


@group.command("show")
@click.argument("alert_id")
@click.option("--delivery", "agency", help="Show exactly what this recipient received.")
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, alert_id: str, agency: str | None, as_json: bool) -> None:
    """Show one alert (or, with --delivery, one recipient's copy)."""
    with _client(ctx) as client:
        if agency:
            delivery = client.get_delivery(alert_id, agency)

            def table() -> None:
                click.echo(f"what {agency} received of alerts/{alert_id}:")
                _show(delivery.alert)
                click.echo(f"  {'removed':<11} {', '.join(delivery.removed_fields) or '(nothing)'}")

            emit(_dict(delivery), as_json=as_json, table=table)
            return
        alert = client.get_alert(alert_id)
    emit(_dict(alert), as_json=as_json, table=lambda: _show(alert))


@group.command("receipt")
@click.argument("alert_id")
@click.option(
    "--to",
    "agency",
    help="The recipient whose copy to prove (needed when the alert went out in several "
    "envelopes, one per treaty).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the receipt (for intelshare receipt verify).",
)
@click.option(
    "--envelope-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the envelope it names (for receipt verify --envelope).",
)
@json_option
@click.pass_context
def receipt_cmd(
    ctx: click.Context,
    alert_id: str,
    agency: str | None,
    out: Path,
    envelope_out: Path | None,
    as_json: bool,
) -> None:
    """Fetch the gateway's signed receipt for an alert you issued."""
    with _client(ctx) as client:
        if agency is None:
            alert = client.get_alert(alert_id)
            envelopes = {d.message_id: d.agency_id for d in alert.deliveries}
            if len(envelopes) != 1:
                raise FieldInvalid(
                    f"{alert.name} went out in {len(envelopes)} envelopes (one per treaty): "
                    "say whose copy with --to AGENCY",
                    violations={"--to": "one of " + ", ".join(sorted(envelopes.values()))},
                )
            agency = next(iter(envelopes.values()))
        got = client.get_receipt(alert_id, agency)
    out.write_bytes(got.receipt.SerializeToString())
    if envelope_out is not None:
        envelope_out.write_bytes(got.envelope)
    summary = {
        "name": got.name,
        "message_id": got.message_id,
        "log_index": got.receipt.log_index,
        "receipt_file": str(out),
        "envelope_file": str(envelope_out) if envelope_out else None,
    }

    def table() -> None:
        click.echo(f"receipt for message {got.message_id} written to {out}")
        click.echo(f"  gateway log index {got.receipt.log_index}; check it offline with:")
        click.echo(f"  intelshare receipt verify {out} --directory DIRECTORY --anchor ANCHOR")

    emit(summary, as_json=as_json, table=table)


@group.command("ack")
@click.argument("alert_id")
@json_option
@click.pass_context
def ack_cmd(ctx: click.Context, alert_id: str, as_json: bool) -> None:
    """Acknowledge a received alert to its issuer."""
    with _client(ctx) as client:
        alert = client.acknowledge_alert(alert_id)
    emit(_dict(alert), as_json=as_json, table=lambda: click.echo(f"acknowledged {alert.name}"))


@group.command("hit")
@click.argument("alert_id")
@click.option("--place", required=True, help="Where the subject was found.")
@click.option("--found", required=True, help="What was found.")
@click.option("--when", help="When (RFC 3339; default now).")
@json_option
@click.pass_context
def hit_cmd(
    ctx: click.Context, alert_id: str, place: str, found: str, when: str | None, as_json: bool
) -> None:
    """Report a hit on a received alert to its issuer."""
    with _client(ctx) as client:
        alert = client.report_hit(
            alert_id, found_time=_parse_time(when, "--when"), place=place, found=found
        )
    emit(_dict(alert), as_json=as_json, table=lambda: click.echo(f"hit reported on {alert.name}"))


@group.command("update")
@click.argument("alert_id")
@click.option("--description", "-d", help="New description.")
@click.option("--urgency", help="New urgency.")
@click.option("--expires", help="New expiry (duration or RFC 3339).")
@click.option("--handling", help="New handling code.")
@click.option("--tlp", help="New TLP marking.")
@json_option
@click.pass_context
def update_cmd(
    ctx: click.Context,
    alert_id: str,
    description: str | None,
    urgency: str | None,
    expires: str | None,
    handling: str | None,
    tlp: str | None,
    as_json: bool,
) -> None:
    """Change an issued alert; every recipient receives the new version."""
    alert = alert_pb2.Alert(
        name=alert_id if alert_id.startswith("alerts/") else f"alerts/{alert_id}"
    )
    paths: list[str] = []
    if description is not None:
        alert.description = description
        paths.append("description")
    if urgency is not None:
        alert.urgency = _choice(_URGENCY_CHOICES, urgency, "--urgency")  # type: ignore[assignment]
        paths.append("urgency")
    if expires is not None:
        alert.expire_time.CopyFrom(_parse_expiry(expires))
        paths.append("expire_time")
    if handling is not None:
        alert.handling = _choice(rec.HANDLING_BY_NAME, handling.upper(), "--handling")  # type: ignore[assignment]
        paths.append("handling")
    if tlp is not None:
        alert.tlp = _choice(rec.TLP_BY_NAME, tlp.upper().replace("+", "_"), "--tlp")  # type: ignore[assignment]
        paths.append("tlp")
    if not paths:
        raise FieldInvalid(
            "nothing to change: give --description, --urgency, --expires, --handling or --tlp",
            violations={"options": "at least one change"},
        )
    with _client(ctx) as client:
        updated = client.update_alert(alert, paths)
    emit(_dict(updated), as_json=as_json, table=lambda: _show(updated))


@group.command("revoke")
@click.argument("alert_id")
@click.option("--reason", default="", help="Why (kept on your node).")
@json_option
@click.pass_context
def revoke_cmd(ctx: click.Context, alert_id: str, reason: str, as_json: bool) -> None:
    """Revoke an issued alert at every recipient."""
    with _client(ctx) as client:
        alert = client.revoke_alert(alert_id, reason=reason)
    emit(_dict(alert), as_json=as_json, table=lambda: click.echo(f"revoked {alert.name}"))


@group.command("follow")
@click.option("--after", "after_cursor", type=int, default=0, help="Resume after this cursor.")
@click.option("--kind", help="Only alerts of this kind.")
@click.option("--treaty", default="", help="Only alerts under this treaty.")
@json_option
@click.pass_context
def follow_cmd(
    ctx: click.Context, after_cursor: int, kind: str | None, treaty: str, as_json: bool
) -> None:
    """Print alert events as they happen (Ctrl-C to stop; resume with --after)."""
    with _client(ctx) as client:
        try:
            for item in client.watch(
                after_cursor, kind=_choice(_KIND_CHOICES, kind, "--kind"), treaty_id=treaty
            ):
                if item.WhichOneof("item") != "event":
                    continue
                e = item.event
                if as_json:
                    click.echo(json.dumps(_dict(e), sort_keys=True))
                else:
                    click.echo(
                        f"{e.cursor:>8}  {_ts(e.create_time)}  {e.type:<22} "
                        f"{e.alert}  {e.agency_id}"
                    )
                sys.stdout.flush()
        except KeyboardInterrupt:
            return


def _singular(kind: str) -> str:
    """``companies`` -> ``company``: subject list names as one item's label."""
    return kind[:-3] + "y" if kind.endswith("ies") else kind.removesuffix("s")


# STIX/MISP export and import (node/cli/interop.py), attached last: it uses the helpers above.
from node.cli.interop import attach as _attach_interop  # noqa: E402

_attach_interop(group)

# Review before release and onward sharing (node/cli/workflow.py).
from node.cli.workflow import attach as _attach_workflow  # noqa: E402

_attach_workflow(group)
