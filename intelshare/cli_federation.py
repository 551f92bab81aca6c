"""``intelshare federation …`` and ``intelshare directory …`` commands.

``federation`` is for the operator, who holds the root key: create the
federation, enrol agencies, change their status, rotate their keys, issue
the gateway's certificate. Changes reach nodes only once the operator runs
``intelshare directory publish``, which signs the next directory version.
``federation request`` is the one command for an agency's IT team: it makes
the enrolment request the operator needs, without the private keys ever
leaving the agency.

``directory show`` verifies a directory file against an anchor exactly as a
node would and prints it; a bad directory exits 2 with the reason.

The operator directory is ``--dir``, else ``$INTELSHARE_FEDERATION_DIR``,
else ``./.intelshare/federation``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from intelshare import federation as fedmod
from intelshare.cli import cli, emit, json_option, print_table
from intelshare.directory import (
    ACTIVE,
    REVOKED,
    SUSPENDED,
    Agency,
    Anchor,
    TrustedDirectory,
    certificate_fingerprint,
    verify_directory,
)
from intelshare.errors import ConfigError, DirectoryInvalid, InvalidArgument
from intelshare.keys import SIGNING_KEY_FILE, AgencyKeys

DIR_ENV = "INTELSHARE_FEDERATION_DIR"
DEFAULT_DIR = Path(".intelshare") / "federation"
ISSUED_DIR = "issued"
PUBLISH_HINT = "run `intelshare directory publish` so that nodes see the change"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


if TYPE_CHECKING:
    _ParamBase = click.ParamType[timedelta]
else:  # click < 8.2 has no generic ParamType at run time
    _ParamBase = click.ParamType


class Duration(_ParamBase):
    """``30d``, ``12h``, ``90m``, ``2w`` or ``3600s``."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", str(value))
        if not m:
            self.fail(f"{value!r} is not a duration like 30d, 12h or 90m", param, ctx)
        return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


dir_option = click.option(
    "--dir",
    "fed_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=DIR_ENV,
    default=DEFAULT_DIR,
    show_default=True,
    help=f"Operator directory (root key, state). Env: {DIR_ENV}.",
)


def _open(fed_dir: Path) -> fedmod.Federation:
    return fedmod.open_federation(fed_dir)


def _short(key_id: str) -> str:
    return key_id[:16]


def _day(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M")


def _hint(as_json: bool) -> None:
    if not as_json:
        click.echo(PUBLISH_HINT)


# --- federation -----------------------------------------------------------------


@cli.group("federation")
def federation_group() -> None:
    """Run the federation: root key, CA, agencies (operator); enrolment requests (agencies)."""


@federation_group.command("init")
@dir_option
@click.option("--federation-id", default="intelshare", show_default=True, help="Id nodes will pin.")
@json_option
def init_cmd(fed_dir: Path, federation_id: str, as_json: bool) -> None:
    """Create the root key, the federation CA and the anchor file."""
    fed = fedmod.init(fed_dir, federation_id)
    data = {
        "federation_id": fed.federation_id,
        "directory": str(fed.path),
        "anchor": str(fed.anchor_file),
        "root_key_id": fed.anchor.root_key_id,
        "ca_sha256": certificate_fingerprint(fed.ca_pem).hex(),
    }

    def table() -> None:
        click.echo(f"federation {fed.federation_id} created in {fed.path}")
        click.echo(f"root key id   {fed.anchor.root_key_id}")
        click.echo(f"CA sha256     {data['ca_sha256']}")
        click.echo(f"anchor        {fed.anchor_file}")
        click.echo(
            "Hand the anchor file to every node and to the gateway out of band, and read the "
            "root key id to them so they can check it. Keep root.key offline and backed up."
        )

    emit(data, as_json=as_json, table=table)


def _issued_json(issued: fedmod.IssuedAgency, where: Path) -> dict[str, Any]:
    return {
        "agency_id": issued.agency_id,
        "signing_key_id": issued.signing_key_id,
        "encryption_key_id": issued.encryption_key_id,
        "tls_cert_sha256": issued.tls_cert_sha256.hex(),
        "files": str(where),
    }


def _read_request(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read enrolment request {path}: {exc.strerror}") from exc


def _show_issued(issued: fedmod.IssuedAgency, where: Path, what: str, as_json: bool) -> None:
    def table() -> None:
        click.echo(f"{what} {issued.agency_id}")
        print_table(
            ["ITEM", "VALUE"],
            [
                ["signing key", issued.signing_key_id],
                ["encryption key", issued.encryption_key_id],
                ["TLS cert sha256", issued.tls_cert_sha256.hex()],
                ["files for the agency", where],
            ],
        )
        click.echo(PUBLISH_HINT)

    emit(_issued_json(issued, where), as_json=as_json, table=table)


def _source_options(f: Any) -> Any:
    f = click.option(
        "--fingerprint",
        help="The request's fingerprint as the agency read it to you "
        "(`intelshare federation request` prints it); refused if it differs. "
        "Without it you are shown the fingerprint and asked to confirm it.",
    )(f)
    f = click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Generate the agency's keys here (demo/ops convenience).",
    )(f)
    return click.option(
        "--request",
        "request_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Enrolment request made by the agency (`intelshare federation request`).",
    )(f)


def _normal_fingerprint(text: str) -> str:
    return re.sub(r"[\s:-]", "", text).lower()


def _check_fingerprint(agency: str, request: bytes, given: str | None) -> str:
    """The request's fingerprint, once the operator has confirmed it is the agency's.

    A request travels by mail or a file share, where it can be swapped for
    one carrying someone else's keys; the fingerprint the agency reads out
    over another channel is what tells the two apart. So nothing is enrolled
    until it matches: ``given`` (``--fingerprint``), or the operator's answer
    to the question.
    """
    req = fedmod.parse_enrolment_request(request)
    if req.agency_id != agency:
        raise InvalidArgument(f"the request is for {req.agency_id!r}, not for {agency!r}")
    fingerprint = fedmod.request_fingerprint(request)
    if given is not None:
        if _normal_fingerprint(given) != _normal_fingerprint(fingerprint):
            raise InvalidArgument(
                f"the request's fingerprint is {fingerprint}, not {given.strip()!r}: it is not "
                f"the request {agency} made, so {agency} was not enrolled; ask the agency to send "
                "its request again and to read you its fingerprint",
                violations={"--fingerprint": "does not match the request"},
            )
        return fingerprint
    click.echo(f"enrolment request for {agency}", err=True)
    click.echo(f"fingerprint  {fingerprint}", err=True)
    try:
        confirmed = click.confirm(
            "Is this the fingerprint the agency read to you?", default=False, err=True
        )
    except click.Abort:  # no answer (end of input)
        confirmed = False
    if not confirmed:
        raise click.ClickException(
            f"{agency} was not enrolled: the fingerprint was not confirmed "
            "(answer y, or pass the fingerprint the agency read to you with --fingerprint)"
        )
    return fingerprint


def _apply(
    fed: fedmod.Federation,
    agency: str,
    request_file: Path | None,
    out_dir: Path | None,
    fingerprint: str | None,
    **kw: Any,
) -> tuple[fedmod.IssuedAgency, Path]:
    request = _read_request(request_file) if request_file is not None else None
    if fingerprint is not None and request is None:
        raise InvalidArgument(
            "--fingerprint is for an enrolment request (--request)",
            violations={"--fingerprint": "only with --request"},
        )
    if request is not None:
        _check_fingerprint(agency, request, fingerprint)
    if "display_name" in kw:
        issued = fed.enrol(agency, request=request, out_dir=out_dir, **kw)
    else:
        issued = fed.rotate(agency, request=request, out_dir=out_dir, **kw)
    if out_dir is not None:
        return issued, out_dir
    # For a request, the certificate, CA and anchor go back to the agency.
    where = fed.path / ISSUED_DIR / agency
    assert issued.certificate_pem is not None
    fed.write_bundle(where, issued.certificate_pem)
    return issued, where


@federation_group.command("enrol")
@click.argument("agency")
@click.option("--name", required=True, help="Display name, e.g. 'Netherlands Customs'.")
@click.option("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. NL.")
@click.option(
    "--kind",
    type=click.Choice(fedmod.ENTRY_KINDS),
    required=True,
    help="'gateway' is for the federation's own gateway identity, not for agencies.",
)
@_source_options
@click.option(
    "--days",
    default=fedmod.DEFAULT_CERT_DAYS,
    show_default=True,
    type=int,
    help="Validity of the TLS certificate and of the directory entry.",
)
@dir_option
@json_option
def enrol_cmd(
    agency: str,
    name: str,
    country: str,
    kind: str,
    request_file: Path | None,
    out_dir: Path | None,
    fingerprint: str | None,
    days: int,
    fed_dir: Path,
    as_json: bool,
) -> None:
    """Admit AGENCY: record its public keys and issue its TLS certificate.

    With --request, the request's fingerprint is shown and must be confirmed
    (or given with --fingerprint) as the one the agency read to you.
    """
    fed = _open(fed_dir)
    issued, where = _apply(
        fed,
        agency,
        request_file,
        out_dir,
        fingerprint,
        display_name=name,
        country=country,
        kind=kind,
        cert_days=days,
    )
    _show_issued(issued, where, "enrolled", as_json)


@federation_group.command("rotate")
@click.argument("agency")
@_source_options
@click.option("--days", default=fedmod.DEFAULT_CERT_DAYS, show_default=True, type=int)
@dir_option
@json_option
def rotate_cmd(
    agency: str,
    request_file: Path | None,
    out_dir: Path | None,
    fingerprint: str | None,
    days: int,
    fed_dir: Path,
    as_json: bool,
) -> None:
    """Give AGENCY new keys; old ones keep verifying what they signed before now."""
    fed = _open(fed_dir)
    issued, where = _apply(fed, agency, request_file, out_dir, fingerprint, cert_days=days)
    _show_issued(issued, where, "rotated", as_json)


def _status_command(name: str, status: str, doc: str, confirm: bool = False) -> None:
    @click.argument("agency")
    @dir_option
    @json_option
    def command(agency: str, fed_dir: Path, as_json: bool, **kw: Any) -> None:
        fed = _open(fed_dir)
        if confirm and not kw.get("yes"):
            click.confirm(
                f"Revoke {agency}? Revocation is final and its old signatures stop verifying.",
                abort=True,
            )
        old = fed.set_status(agency, status)

        def table() -> None:
            click.echo(f"{agency}: {old} -> {status}")
            _hint(as_json)

        emit(
            {"agency_id": agency, "status": status, "previous_status": old},
            as_json=as_json,
            table=table,
        )

    command.__doc__ = doc
    if confirm:
        command = click.option("--yes", is_flag=True, help="Do not ask for confirmation.")(command)
    federation_group.command(name)(command)


_status_command(
    "suspend",
    SUSPENDED,
    "Suspend AGENCY: nothing it signs from now on verifies; nobody seals for it.",
)
_status_command(
    "revoke",
    REVOKED,
    "Revoke AGENCY for good (compromise): none of its signatures verify any more.",
    confirm=True,
)
_status_command(
    "reactivate", ACTIVE, "Lift the suspension of AGENCY (a revoked one stays revoked)."
)


@federation_group.command("list")
@dir_option
@json_option
def list_cmd(fed_dir: Path, as_json: bool) -> None:
    """The operator's current record (may hold changes not yet published)."""
    state = _open(fed_dir).state()
    rows = [
        [
            aid,
            e["display_name"],
            e["country"],
            e["kind"],
            e["status"],
            _short(e["signing_key"]["key_id"]),
            _short(e["encryption_key"]["key_id"]),
            (e.get("valid_until") or "-")[:16].replace("T", " "),
        ]
        for aid, e in sorted(state["agencies"].items())
    ]

    def table() -> None:
        click.echo(
            f"federation {state['federation_id']}, last published version "
            f"{state['directory_version']}"
        )
        print_table(
            ["ID", "NAME", "COUNTRY", "KIND", "STATUS", "SIGNING KEY", "ENCRYPTION KEY", "UNTIL"],
            rows,
        )

    data = {
        "federation_id": state["federation_id"],
        "directory_version": state["directory_version"],
        "agencies": state["agencies"],
        "servers": state["servers"],
    }
    emit(data, as_json=as_json, table=table)


@federation_group.command("server-cert")
@click.argument("name", default=fedmod.DEFAULT_SERVER_NAME)
@click.option("--host", "hosts", multiple=True, help="DNS name or IP clients dial (repeat).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--days", default=fedmod.DEFAULT_CERT_DAYS, show_default=True, type=int)
@dir_option
@json_option
def server_cert_cmd(
    name: str, hosts: tuple[str, ...], out_dir: Path, days: int, fed_dir: Path, as_json: bool
) -> None:
    """Issue the gateway's TLS certificate and key into OUT (default hosts: localhost)."""
    issued = _open(fed_dir).issue_server_certificate(
        name, hosts or ("localhost", "127.0.0.1"), days=days, out_dir=out_dir
    )
    data = {
        "name": issued.name,
        "hosts": list(issued.hosts),
        "files": str(out_dir),
        "tls_cert_sha256": certificate_fingerprint(issued.certificate_pem).hex(),
    }
    emit(
        data,
        as_json=as_json,
        table=lambda: click.echo(
            f"server certificate for {name} ({', '.join(issued.hosts)}) written to {out_dir}"
        ),
    )


@federation_group.command("request")
@click.argument("agency")
@click.option(
    "--keys",
    "keys_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The agency's key directory; keys are generated there if it has none.",
)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def request_cmd(agency: str, keys_dir: Path, out_file: Path | None, as_json: bool) -> None:
    """(Agency side) Make the enrolment request to send to the operator."""
    generated = not (keys_dir / SIGNING_KEY_FILE).exists()
    if generated:
        fedmod.validate_agency_id(agency)
        AgencyKeys.generate().save(keys_dir)
    keys = AgencyKeys.load(keys_dir)
    request = fedmod.make_enrolment_request(keys, agency)
    target = out_file or keys_dir / f"{agency}.request.json"
    target.write_bytes(request)
    fingerprint = fedmod.request_fingerprint(request)
    data = {
        "agency_id": agency,
        "request": str(target),
        "fingerprint": fingerprint,
        "keys_generated": generated,
        "signing_key_id": keys.signing_key_id,
        "encryption_key_id": keys.encryption_key_id,
    }

    def table() -> None:
        click.echo(f"enrolment request for {agency} written to {target}")
        click.echo(f"fingerprint  {fingerprint}")
        click.echo("Send the file to the operator and read them the fingerprint by phone.")

    emit(data, as_json=as_json, table=table)


# --- directory --------------------------------------------------------------------


@cli.group("directory")
def directory_group() -> None:
    """Publish (operator) and inspect (anyone) the signed directory of agencies."""


@directory_group.command("publish")
@click.option("--expires-in", type=Duration(), default="30d", show_default=True)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a copy here.",
)
@dir_option
@json_option
def publish_cmd(expires_in: timedelta, out_file: Path | None, fed_dir: Path, as_json: bool) -> None:
    """Sign the current record as the next directory version."""
    fed = _open(fed_dir)
    signed = fed.publish_directory(expires_in)
    trusted = verify_directory(signed, fed.anchor, now=datetime.now(UTC))
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_bytes(signed.SerializeToString())
    data = {
        "version": trusted.version,
        "issue_time": trusted.issue_time.isoformat(),
        "expire_time": trusted.expire_time.isoformat(),
        "agencies": len(trusted.agencies()),
        "file": str(fed.directory_file),
    }
    emit(
        data,
        as_json=as_json,
        table=lambda: click.echo(
            f"directory version {trusted.version} ({data['agencies']} agencies) written to "
            f"{fed.directory_file}; expires {_day(trusted.expire_time)} UTC"
        ),
    )


def _agency_row(a: Agency) -> list[Any]:
    return [
        a.agency_id,
        a.display_name,
        a.country,
        a.kind,
        a.status,
        _short(a.signing_key.key_id),
        _short(a.encryption_key.key_id),
        len(a.previous_keys),
        _day(a.valid_until),
    ]


def _show(trusted: TrustedDirectory, anchor: Anchor, as_json: bool) -> None:
    data = {
        "federation_id": trusted.federation_id,
        "root_key_id": anchor.root_key_id,
        "version": trusted.version,
        "issue_time": trusted.issue_time.isoformat(),
        "expire_time": trusted.expire_time.isoformat(),
        "agencies": [a.to_json() for a in trusted.agencies()],
    }

    def table() -> None:
        click.echo(
            f"federation {trusted.federation_id}  version {trusted.version}  "
            f"issued {_day(trusted.issue_time)}  expires {_day(trusted.expire_time)} UTC  "
            f"(signature OK, root key {anchor.root_key_id})"
        )
        print_table(
            [
                "ID",
                "NAME",
                "COUNTRY",
                "KIND",
                "STATUS",
                "SIGNING KEY",
                "ENCRYPTION KEY",
                "PREV",
                "VALID UNTIL",
            ],
            [_agency_row(a) for a in trusted.agencies()],
        )

    emit(data, as_json=as_json, table=table)


@directory_group.command("show")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Directory file (default: DIR/directory.pb).",
)
@click.option(
    "--anchor",
    "anchor_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Anchor to verify against (default: DIR/anchor.json).",
)
@click.option("--min-version", default=0, type=int, help="Refuse versions older than this.")
@dir_option
@json_option
def show_cmd(
    file: Path | None, anchor_file: Path | None, min_version: int, fed_dir: Path, as_json: bool
) -> None:
    """Verify a directory as a node would, then list its agencies."""
    path = file or fed_dir / fedmod.DIRECTORY_FILE
    anchor = Anchor.load(anchor_file or fed_dir / fedmod.ANCHOR_FILE)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read directory file {path} ({exc.strerror}); "
            "the operator creates it with `intelshare directory publish`"
        ) from exc
    try:
        trusted = verify_directory(raw, anchor, now=datetime.now(UTC), min_version=min_version)
    except DirectoryInvalid as exc:
        raise DirectoryInvalid(
            f"directory file {path} must not be used: {exc.message}",
            audit_detail=exc.audit_detail,
        ) from exc
    _show(trusted, anchor, as_json)
