"""``intelshare screen FILE.csv|FILE.jsonl``: screen a file of declarations on the officer's node.

The file is read here, line by line, with the readers and the column
mapping of :mod:`node.targeting.declarations` (``docs/screening.md``): a
bad line is reported on stderr with its line number and column and left
out, the rest of the file is still screened. Good declarations stream to
the node in batches (``ScreenDeclarations``) and their answers come back
in order, so a file of any length takes constant memory. Long files get a
progress bar on stderr.

Output: a summary table (declarations read, screened, targeted, by
profile and by watched identifier, lines not screened) followed by the
targeted declarations and their reasons; ``--json`` prints one object with
the summary, every targeted result and every problem. Exit status 0 when
every line was screened, 1 when some lines were not (bad input), 2 when the
file or the node could not be used at all.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
from google.protobuf.json_format import MessageToDict

from intelshare.cli import emit, json_option, print_table
from intelshare.errors import FieldInvalid
from intelshare.v1 import risk_profile_pb2, risk_service_pb2
from node.cli.connect import OfficerCommand, connect, connection_options
from node.cli.risk_client import RiskClient
from node.targeting.declarations import Declaration, Parsed, file_format, read_declarations

P = risk_profile_pb2
S = risk_service_pb2

#: Files at least this long get a progress bar.
PROGRESS_BYTES = 256 * 1024
ACTIONS = {
    P.RISK_ACTION_DOCUMENTARY_CHECK: "documentary check",
    P.RISK_ACTION_SCAN: "scan",
    P.RISK_ACTION_PHYSICAL_INSPECTION: "physical inspection",
}


def to_message(d: Declaration, line: int) -> S.Declaration:
    """A parsed declaration as the message the node screens (canonical values)."""
    m = S.Declaration(
        line=line,
        reference=d.reference,
        hs_code=d.hs_code,
        origin_country=d.origin_country,
        dispatch_country=d.dispatch_country,
        loading_port=d.loading_port,
        discharge_port=d.discharge_port,
        transport_mode=d.transport_mode,
        containers=list(d.containers),
        gtins=list(d.gtins),
        vessel_imo=d.vessel_imo,
        identifiers=list(d.identifiers),
    )
    for role in ("consignor", "consignee"):
        for key in getattr(d, role):
            scheme, _, value = key.partition(":")
            column = {"eori": "eori", "vat": "vat", "company": "name"}.get(scheme)
            if column:
                setattr(m, f"{role}_{column}", value)
    if d.vehicle:
        _scheme, country, plate = d.vehicle.split(":", 2)
        m.vehicle_plate, m.vehicle_country = plate, country
    for name in ("value", "net_mass_kg", "quantity"):
        number = getattr(d, name)
        if number is not None:
            setattr(m, name, number)
    return m


class _Run:
    """What one run has seen: problems, counts, targeted results."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.read = 0
        self.problems: list[dict[str, Any]] = []
        self.bad_lines: set[int] = set()
        self.targeted: list[S.DeclarationScreening] = []
        self.screened = 0
        self.by_profile: Counter[str] = Counter()
        self.titles: dict[str, str] = {}
        self.by_subject: Counter[str] = Counter()
        self.hits = 0

    def problem(self, line: int, column: str, message: str) -> None:
        self.problems.append({"line": line, "column": column, "message": message})
        self.bad_lines.add(line)
        if not self.quiet:
            where = f"line {line}" + (f", column {column}" if column else "")
            click.echo(f"{where}: {message}", err=True)

    def declarations(self, stream: IO[bytes], fmt: Any, bar: Any) -> Iterator[S.Declaration]:
        last = 0
        for item in read_declarations(stream, fmt):
            if bar is not None:
                position = stream.tell()
                bar.update(position - last)
                last = position
            if isinstance(item, Parsed):
                self.read += 1
                yield to_message(item.declaration, item.line)
            else:
                self.problem(item.line, item.column, item.message)

    def answer(self, r: S.DeclarationScreening) -> None:
        if r.errors:
            for column, message in sorted(r.errors.items()):
                self.problem(int(r.line), column, f"refused by the node: {message}")
            return
        self.screened += 1
        if not r.targeted:
            return
        self.targeted.append(r)
        self.hits += len(r.hits)
        for p in r.profiles:
            self.by_profile[p.profile] += 1
            self.titles[p.profile] = p.title
        for s in r.subjects:
            self.by_subject[s.role] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "declarations_read": self.read,
            "screened": self.screened,
            "targeted": len(self.targeted),
            "hits_stored": self.hits,
            "lines_not_screened": len(self.bad_lines),
            "by_profile": dict(self.by_profile),
            "by_watched_identifier": dict(self.by_subject),
        }


def _reasons(r: S.DeclarationScreening) -> list[str]:
    out = []
    for p in r.profiles:
        why = "; ".join(f"{x.field} {','.join(x.matched)}" for x in p.reasons)
        action = ACTIONS.get(p.action, "")
        out.append(f"{p.title or p.profile} ({p.origin_agency}; {action}): {why}")
    for s in r.subjects:
        out.append(f"watched {s.role} {s.key}: {', '.join(s.records)}")
    return out


@click.command("screen", cls=OfficerCommand)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--batch", default=500, show_default=True, help="Declarations per request.")
@click.option("--quiet", is_flag=True, help="Do not list bad lines on stderr (--json has them).")
@json_option
@connection_options
@click.pass_context
def command(ctx: click.Context, file: Path, batch: int, quiet: bool, as_json: bool) -> None:
    """Screen FILE (.csv or .jsonl; columns in docs/screening.md) against the node's profiles."""
    fmt = file_format(file)
    if not 1 <= batch <= 1000:
        raise FieldInvalid("--batch must be 1 to 1000", violations={"--batch": "1 to 1000"})
    try:
        stream = file.open("rb")
    except OSError as exc:
        raise FieldInvalid(
            f"cannot read {file}: {exc.strerror}", violations={"file": str(exc.strerror)}
        ) from None
    run = _Run(quiet or as_json)
    size = file.stat().st_size
    with stream, connect(ctx, RiskClient) as client:
        if size >= PROGRESS_BYTES:
            with click.progressbar(
                length=size, label=f"screening {file.name}", file=sys.stderr
            ) as bar:
                for r in client.screen(run.declarations(stream, fmt, bar), batch=batch):
                    run.answer(r)
        else:
            for r in client.screen(run.declarations(stream, fmt, None), batch=batch):
                run.answer(r)
    summary = run.summary()

    def table() -> None:
        print_table(
            ["declarations read", "screened", "targeted", "hits stored", "lines not screened"],
            [
                [
                    summary["declarations_read"],
                    summary["screened"],
                    summary["targeted"],
                    summary["hits_stored"],
                    summary["lines_not_screened"],
                ]
            ],
        )
        if run.by_profile or run.by_subject:
            click.echo("")
            rows = [[run.titles[p] or p, p, n] for p, n in sorted(run.by_profile.items())]
            rows += [[f"watched {role}", "", n] for role, n in sorted(run.by_subject.items())]
            print_table(["matched", "profile", "declarations"], rows)
        if run.targeted:
            click.echo("")
            for r in run.targeted:
                click.echo(f"line {r.line}  {r.reference}")
                for reason in _reasons(r):
                    click.echo(f"    {reason}")

    emit(
        {
            "summary": summary,
            "targeted": [MessageToDict(r, preserving_proto_field_name=True) for r in run.targeted],
            "problems": run.problems,
        },
        as_json=as_json,
        table=table,
    )
    if run.bad_lines:
        ctx.exit(1)
