"""``intelshare ipr stats``, and what the IPR command groups share.

``intelshare ipr stats [--by month,country,category,procedure,partner,right]
[--from DATE] [--to DATE] [--source own|reported|all] [--csv] [--json]``
prints the enforcement statistics the node computes (detentions, articles,
estimated value per currency): a table, CSV for spreadsheets, or JSON.

The helpers below turn an officer's YAML file into a recordation or a
detention (short enum names such as ``trade_mark`` or ``shoes``, dates as
YAML writes them) and name states and deadlines the way the docs do; the
``recordation`` and ``detention`` groups use them.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.cli import emit, json_option, print_table
from intelshare.errors import FieldInvalid
from intelshare.v1 import ipr_service_pb2
from node.cli.connect import connect, officer_group
from node.cli.ipr_client import IprClient

M = TypeVar("M", bound=Message)
S = ipr_service_pb2

#: YAML keys holding an enum, and the prefix of its values (``trade_mark`` -> RIGHT_TYPE_...).
_ENUMS: Mapping[str, str] = {
    "type": "RIGHT_TYPE_",
    "handling": "HANDLING_CODE_",
    "tlp": "TLP_",
    "unit": "QUANTITY_UNIT_",
    "category": "GOODS_CATEGORY_",
    "mode": "TRANSPORT_MODE_",
    "procedure": "DETENTION_PROCEDURE_",
}


@officer_group("ipr", "IPR enforcement statistics of your agency's node.")
def group() -> None:
    """The ``intelshare ipr`` group."""


def client(ctx: click.Context) -> AbstractContextManager[IprClient]:
    return connect(ctx, IprClient)


# --- shared helpers --------------------------------------------------------------------------


def _normalise(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v, key) for v in value]
    if isinstance(value, datetime):
        at = value if value.tzinfo else value.replace(tzinfo=UTC)
        return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    if key in _ENUMS and isinstance(value, str):
        prefix = _ENUMS[key]
        upper = value.strip().upper().replace("-", "_").replace(" ", "_")
        return upper if upper.startswith(prefix) else prefix + upper
    if key in ("units",) and isinstance(value, int | float):
        return str(int(value))
    return value


def load_yaml(path: Path, message_type: type[M], what: str, option: str = "--file") -> M:
    """An officer's YAML file as ``message_type``; errors name the file and the problem."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise FieldInvalid(
            f"cannot read {path}: {exc.strerror}", violations={option: "a readable YAML file"}
        ) from None
    except yaml.YAMLError as exc:
        raise FieldInvalid(
            f"{path} is not YAML: {str(exc)[:300]}", violations={option: "YAML"}
        ) from None
    if not isinstance(data, dict):
        raise FieldInvalid(
            f"{path} must hold one {what} (a mapping)", violations={option: "a mapping"}
        )
    out = message_type()
    try:
        ParseDict(_normalise(data), out)
    except ParseError as exc:
        raise FieldInvalid(
            f"{path} is not a {what}: {str(exc)[:300]}", violations={option: str(exc)[:200]}
        ) from None
    return out


def as_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def label(enum_type: Any, prefix: str, value: int) -> str:
    try:
        return str(enum_type.Name(value)).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


def choice(enum_type: Any, prefix: str, value: str | None, option: str) -> int:
    """A short enum name typed by an officer (``holder_notified``) as its number."""
    if not value:
        return 0
    name = prefix + value.strip().upper().replace("-", "_").replace(" ", "_")
    try:
        return int(enum_type.Value(name))
    except ValueError:
        known = [
            n.removeprefix(prefix).lower()
            for n in enum_type.keys()  # noqa: SIM118 (a protobuf enum wrapper, not a dict)
            if not n.endswith("UNSPECIFIED")
        ]
        raise FieldInvalid(
            f"{option} {value!r} is not one of {', '.join(known)}",
            violations={option: "one of " + ", ".join(known)},
        ) from None


def day(ts: Timestamp) -> str:
    if not ts.seconds:
        return ""
    return datetime.fromtimestamp(ts.seconds, UTC).strftime("%Y-%m-%d")


def timestamp(text: str, option: str) -> Timestamp:
    """A date (``2027-03-01``, midnight UTC) or an RFC 3339 time typed as an option."""
    value = text.strip()
    try:
        if len(value) == 10:
            at = datetime.fromisoformat(value).replace(tzinfo=UTC)
        else:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
    except ValueError:
        raise FieldInvalid(
            f"{option} {text!r} is not a date or an RFC 3339 time",
            violations={option: "e.g. 2027-03-01 or 2027-03-01T12:00:00Z"},
        ) from None
    out = Timestamp()
    out.FromDatetime(at.astimezone(UTC))
    return out


def money(values: Any) -> str:
    parts = []
    for v in values:
        amount = v.units + v.nanos / 1e9
        parts.append(f"{v.currency_code} {amount:,.0f}".replace(",", " "))
    return ", ".join(parts)


# --- ipr stats ----------------------------------------------------------------------------------

_DIMENSIONS = {
    "month": S.STATISTICS_DIMENSION_MONTH,
    "country": S.STATISTICS_DIMENSION_COUNTRY,
    "category": S.STATISTICS_DIMENSION_CATEGORY,
    "procedure": S.STATISTICS_DIMENSION_PROCEDURE,
    "partner": S.STATISTICS_DIMENSION_PARTNER,
    "right": S.STATISTICS_DIMENSION_RIGHT,
}
_SOURCES = {
    "own": S.STATISTICS_SOURCE_OWN,
    "reported": S.STATISTICS_SOURCE_REPORTED,
    "all": S.STATISTICS_SOURCE_ALL,
}


@group.command("stats")
@click.option("--by", "by", default="", help="Comma-separated: " + ",".join(_DIMENSIONS) + ".")
@click.option("--from", "start", help="Detentions from this date (inclusive), e.g. 2026-01-01.")
@click.option("--to", "end", help="Detentions before this date (exclusive).")
@click.option(
    "--source",
    type=click.Choice(sorted(_SOURCES)),
    default="all",
    show_default=True,
    help="Own detentions, partners' reports, or both.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one row per group, a total row).")
@json_option
@click.pass_context
def stats_cmd(
    ctx: click.Context,
    by: str,
    start: str | None,
    end: str | None,
    source: str,
    as_csv: bool,
    as_json: bool,
) -> None:
    """Detentions, articles and estimated value by period and dimension."""
    dims: list[str] = [d.strip().lower() for d in by.split(",") if d.strip()]
    unknown = [d for d in dims if d not in _DIMENSIONS]
    if unknown:
        raise FieldInvalid(
            f"--by {', '.join(unknown)}: dimensions are {', '.join(_DIMENSIONS)}",
            violations={"--by": "one or more of " + ",".join(_DIMENSIONS)},
        )
    request: dict[str, Any] = {
        "group_by": [_DIMENSIONS[d] for d in dims],
        "source": _SOURCES[source],
    }
    if start:
        request["start_time"] = timestamp(start, "--from")
    if end:
        request["end_time"] = timestamp(end, "--to")
    with client(ctx) as c:
        result = c.statistics(**request)
    headers = [*dims, "detentions", "articles", "estimated value"]
    rows = [[*r.keys, r.detentions, r.articles, money(r.estimated_value)] for r in result.rows]
    total = ["total", *[""] * (len(dims) - 1)] if dims else []
    total_row = [
        *total,
        result.total.detentions,
        result.total.articles,
        money(result.total.estimated_value),
    ]
    if as_csv:
        out = csv.writer(sys.stdout)
        out.writerow(headers)
        for row in rows:
            out.writerow(row)
        out.writerow(total_row)
        return
    emit(
        as_dict(result),
        as_json=as_json,
        table=lambda: print_table(headers, [*rows, total_row] if dims else [total_row]),
    )


# --- webhooks --------------------------------------------------------------------------------


@group.group("webhook")
def webhook_group() -> None:
    """Your own webhooks for IPR events (a rights holder: its own detentions only)."""


@webhook_group.command("add")
@click.argument("url")
@click.option(
    "--events",
    "events",
    multiple=True,
    required=True,
    help="Comma separated or repeated: detention.*, recordation.*, detention.deadline_due, "
    "detention_report.* (officers) ...",
)
@json_option
@click.pass_context
def webhook_add(ctx: click.Context, url: str, events: tuple[str, ...], as_json: bool) -> None:
    """Register a webhook and print its signing secret (shown only now)."""
    patterns = [p.strip() for chunk in events for p in chunk.split(",") if p.strip()]
    with client(ctx) as c:
        made = c.create_webhook(url, patterns)
    data = {**as_dict(made.webhook), "secret": made.secret}

    def table() -> None:
        hook = made.webhook
        click.echo(f"{hook.name} added for {', '.join(hook.events)} -> {hook.url}")
        click.echo(f"signing secret (shown only now; give it to the receiver): {made.secret}")

    emit(data, as_json=as_json, table=table)


@webhook_group.command("list")
@json_option
@click.pass_context
def webhook_list(ctx: click.Context, as_json: bool) -> None:
    """List your webhooks (their secrets are never shown again)."""
    with client(ctx) as c:
        hooks = list(
            c.collect(
                lambda token, size: c.list_webhooks(page_token=token, page_size=size),
                "webhooks",
                None,
            )
        )
    emit(
        [as_dict(h) for h in hooks],
        as_json=as_json,
        table=lambda: print_table(
            ["name", "events", "url", "since"],
            [[h.name, ",".join(h.events), h.url, day(h.create_time)] for h in hooks],
        ),
    )


@webhook_group.command("remove")
@click.argument("name")
@click.pass_context
def webhook_remove(ctx: click.Context, name: str) -> None:
    """Remove one of your webhooks (iprWebhooks/ID or ID)."""
    with client(ctx) as c:
        c.delete_webhook(name)
    click.echo(f"{name} removed")
