"""``intelshare related IDENTIFIER|NAME``: the records the node holds that share an identifier.

IDENTIFIER is an identifier key (``iso6346:MSCU1234566``, ``imo:9074729``,
``plate:NL:AB-123-C``, ``passport:DE:C01X00T47``,
``person:1980-02-29:Jan Jansen``, ``eori:...``, ``vat:...``,
``company:Acme Trading``; normalised by the node) or, with ``--record``, a
record's name (``alerts/...``, ``riskHits/...``, ``cases/C/entries/E``):
then every identifier of that record is looked up. Only what the officer
may read is listed; nothing leaves the node.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click
from google.protobuf.json_format import MessageToDict

from intelshare.cli import emit, json_option, print_table
from intelshare.v1 import risk_profile_pb2
from node.cli.connect import OfficerCommand, connect, connection_options
from node.cli.risk_client import RiskClient

P = risk_profile_pb2
_DIRECTIONS = {
    P.RISK_PROFILE_DIRECTION_ISSUED: "ours",
    P.RISK_PROFILE_DIRECTION_RECEIVED: "received",
}


@click.command("related", cls=OfficerCommand)
@click.argument("subject")
@click.option("--record", "is_record", is_flag=True, help="SUBJECT is a record's name.")
@click.option("--limit", type=int, default=None, help="Most records to list (default: all).")
@json_option
@connection_options
@click.pass_context
def command(
    ctx: click.Context, subject: str, is_record: bool, limit: int | None, as_json: bool
) -> None:
    """Records this node holds that share an identifier with SUBJECT."""
    with connect(ctx, RiskClient) as client:
        keys: list[str] = []

        def page(token: str, size: int) -> object:
            response = (
                client.find_related(record=subject, page_token=token, page_size=size)
                if is_record
                else client.find_related(identifier=subject, page_token=token, page_size=size)
            )
            keys[:] = list(response.keys)
            return response

        related = client.collect(page, "related", limit)

    def table() -> None:
        click.echo(f"identifiers: {', '.join(keys) or '(none)'}")
        if not related:
            click.echo("no other record on this node holds them")
            return
        print_table(
            ["record", "kind", "identifier", "as", "from", "since"],
            [
                [
                    r.name,
                    r.kind,
                    r.key,
                    r.role,
                    _DIRECTIONS.get(r.direction, "")
                    + (f" ({r.origin_agency})" if r.origin_agency else ""),
                    datetime.fromtimestamp(r.create_time.seconds, UTC).strftime("%Y-%m-%d %H:%M"),
                ]
                for r in related
            ],
        )

    emit(
        {
            "keys": keys,
            "related": [MessageToDict(r, preserving_proto_field_name=True) for r in related],
        },
        as_json=as_json,
        table=table,
    )
