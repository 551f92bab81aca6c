"""``intelshare treaty``: draft a treaty from YAML, collect party signatures, inspect it.

The life of a treaty on the command line follows the paper one: the
secretariat drafts it from the negotiated YAML (``draft`` validates it and
writes the canonical document into a ``.treaty`` file, a serialized
``SignedTreaty`` with no signatures yet); the file travels to each party,
which signs it with its agency key (``sign``); anyone can look at it
(``show``), and with the federation directory and anchor can see whether
each signature verifies and whether the treaty is in force now.

Every command prints the document's SHA-256, so people can compare over the
phone that they sign and inspect the same text. Files are written through a
temporary file and a rename: an interrupted command leaves the old file or
the new one, never half of one.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any

import click

from intelshare.cli import cli, emit, json_option, print_table
from intelshare.errors import InvalidArgument, NotAParty
from intelshare.ids import key_id
from intelshare.keylookup import PublicKeyLookup
from intelshare.keys import SIGNING_KEY_FILE, load_signing_key, raw_public
from intelshare.treaty import (
    SignedTreatyDoc,
    Treaty,
    document_digest,
    in_force,
    sign,
    treaties_from_yaml,
    verify_signatures,
)

TREATY_SUFFIX = ".treaty"

_existing_file = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@cli.group("treaty")
def treaty_group() -> None:
    """Draft, sign and inspect treaties (what may be shared with whom)."""


# --- helpers ----------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_signed(path: Path) -> SignedTreatyDoc:
    try:
        return SignedTreatyDoc.from_bytes(path.read_bytes())
    except InvalidArgument as exc:
        raise type(exc)(f"{path}: {exc.message}", violations=exc.violations) from None


def _report_violations(exc: InvalidArgument) -> None:
    # The root group prints one line; a treaty author wants every problem.
    for key, text in sorted(exc.violations.items()):
        click.echo(f"  {key or '(document)'}: {text}", err=True)


def _pick(treaties: list[Treaty], wanted: str | None, path: Path) -> Treaty:
    if wanted is None:
        if len(treaties) == 1:
            return treaties[0]
        ids = ", ".join(t.id for t in treaties)
        raise InvalidArgument(
            f"{path} holds {len(treaties)} treaties ({ids}); choose one with --id",
            violations={"id": "choose one with --id"},
        )
    for treaty in treaties:
        if treaty.id == wanted:
            return treaty
    raise InvalidArgument(
        f"{path} holds no treaty with id {wanted!r}", violations={"id": f"no treaty {wanted!r}"}
    )


def _time(at: datetime | None) -> str:
    return "" if at is None else at.isoformat(timespec="seconds")


def _summary(doc: SignedTreatyDoc) -> dict[str, Any]:
    treaty = doc.treaty
    return {
        "treaty": treaty.to_mapping(),
        "document_sha256": document_digest(doc.document),
        "signed_by": list(doc.claimed_signers),
        "unsigned_parties": sorted(set(treaty.parties) - set(doc.claimed_signers)),
    }


def _print_treaty(treaty: Treaty, digest: str) -> None:
    click.echo(f"Treaty {treaty.label}: {treaty.title}")
    rows: list[tuple[str, str]] = [
        ("parties", ", ".join(treaty.parties)),
        (
            "valid",
            f"{treaty.valid_from.isoformat()} .. {treaty.valid_until.isoformat()} (inclusive, UTC)",
        ),
        ("kinds", ", ".join(treaty.kinds)),
        ("categories", ", ".join(treaty.categories)),
        ("max handling", f"{treaty.max_handling.name}, TLP {treaty.max_tlp.name}"),
        ("retention", f"{treaty.retention_days} days"),
        ("onward sharing", treaty.onward_sharing.value),
        ("purpose", treaty.purpose or "-"),
        ("review for", ", ".join(treaty.review_required_for) or "-"),
        ("sha256", digest),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"  {key.ljust(width)}  {value}")
    click.echo("Fields")
    if not treaty.fields:
        click.echo("  (no fields permitted for any kind)")
    for kind in treaty.kinds:
        if kind == "alert_update":
            # An update carries the whole alert again, filtered as the alert was
            # (node: redact(record, treaty, "alert")); it has no list of its own.
            click.echo("  alert_update: the alert fields (an update carries the alert again)")
            continue
        paths = treaty.fields.get(kind, ())
        click.echo(f"  {kind}: {', '.join(paths) if paths else '(no fields permitted)'}")


# --- example ------------------------------------------------------------------------

EXAMPLE_TEMPLATE = Template("""\
# A treaty in the format `intelshare treaty draft` reads. Edit it to what the
# parties agreed; then draft it, have every party sign it, and publish it to
# the gateway. (deploy/demo-federation.yaml holds two more, in a list.)
id: $treaty_id
version: 1                  # raise it to amend: every party signs the new version
title: $title
parties: [$parties]
valid:                      # inclusive, UTC
  from: $valid_from
  until: $valid_until
# What may flow under it: alerts, their updates (an update carries the alert's
# fields again) and hit reports back to the issuer. For joint cases add
# case_entry and case_membership, each with its fields below.
kinds: [alert, alert_update, hit_report]
categories: [narcotics, counterfeit_goods, excise_fraud, suspect_shipment]
max_handling: {code: H2, tlp: AMBER}   # the most restrictive marking allowed
# Only these fields reach a recipient; the sender removes every other one
# before sealing, and the recipient refuses a record that carries more.
# A path that ends on a group (subjects.containers) keeps all of it.
fields:
  alert: [kind, urgency, description, subjects.persons.name, subjects.persons.nationality,
          subjects.companies, subjects.containers, subjects.vessels, subjects.vehicles,
          handling, tlp, evaluation, expires_at]
  hit_report: [found_at, place, found]
retention_days: 365         # how long a recipient keeps what it received
onward_sharing: forbidden   # or with_originator_consent, within_treaty
purpose: $purpose
""")


@treaty_group.command("example")
@click.option("--id", "treaty_id", default="customs-demo", show_default=True, help="Treaty id.")
@click.option(
    "--party",
    "parties",
    multiple=True,
    help="A party's agency id (repeat; default: nl-customs and de-customs).",
)
@click.option(
    "--days", type=click.IntRange(min=1), default=365, show_default=True, help="Valid this long."
)
def example_command(treaty_id: str, parties: tuple[str, ...], days: int) -> None:
    """Print an example treaty (YAML, commented) to edit and draft; valid from today.

    intelshare treaty example --party nl-customs --party de-customs > treaty.yaml
    """
    chosen = list(parties) or ["nl-customs", "de-customs"]
    today = datetime.now(UTC).date()
    text = EXAMPLE_TEMPLATE.substitute(
        treaty_id=treaty_id,
        title=f"Exchange of alerts between {' and '.join(chosen)} (an example)",
        parties=", ".join(chosen),
        valid_from=today.isoformat(),
        valid_until=(today + timedelta(days=days - 1)).isoformat(),
        purpose="Prevention and detection of smuggling across the parties' borders",
    )
    try:
        treaties_from_yaml(text)  # what it prints, draft accepts
    except InvalidArgument as exc:
        _report_violations(exc)
        raise
    click.echo(text, nl=False)


# --- draft --------------------------------------------------------------------------


@treaty_group.command("draft")
@click.argument("file", type=_existing_file)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the draft (default: FILE with the suffix .treaty, or ID.treaty).",
)
@click.option("--id", "treaty_id", help="Which treaty, when FILE holds several.")
@click.option("--force", is_flag=True, help="Replace an existing file (and its signatures).")
@json_option
def draft_command(
    file: Path, out: Path | None, treaty_id: str | None, force: bool, as_json: bool
) -> None:
    """Validate the treaty in FILE.yaml and write it, unsigned, for the parties to sign.

    FILE holds one treaty mapping, or several (a list, or a federation file
    with a 'treaties:' list; then pick one with --id).
    """
    try:
        treaties = treaties_from_yaml(file.read_bytes())
    except InvalidArgument as exc:
        _report_violations(exc)
        raise
    treaty = _pick(treaties, treaty_id, file)
    if out is None:
        if treaty_id:
            out = file.with_name(f"{treaty.id}{TREATY_SUFFIX}")
        else:
            out = file.with_suffix(TREATY_SUFFIX)
    if out.exists() and not force:
        # A draft over a file that may carry signatures would silently discard them.
        raise InvalidArgument(
            f"{out} exists; choose another --out or pass --force to replace it",
            violations={"out": "exists"},
        )
    doc = SignedTreatyDoc.unsigned(treaty)
    _write_atomic(out, doc.to_bytes())
    data = {**_summary(doc), "file": str(out)}

    def table() -> None:
        _print_treaty(treaty, data["document_sha256"])
        click.echo(f"Wrote unsigned draft to {out}; every party must sign it:")
        click.echo(f"  intelshare treaty sign {out} --agency AGENCY --key-dir DIR")

    emit(data, as_json=as_json, table=table)


# --- sign ---------------------------------------------------------------------------


@treaty_group.command("sign")
@click.argument("file", type=_existing_file)
@click.option("--agency", "agency_id", required=True, help="The signing agency's id.")
@click.option(
    "--key-dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help=f"Directory holding the agency's {SIGNING_KEY_FILE}.",
)
@json_option
def sign_command(file: Path, agency_id: str, key_dir: Path, as_json: bool) -> None:
    """Add (or replace) AGENCY's signature on the treaty in FILE."""
    doc = _read_signed(file)
    treaty = doc.treaty
    if not treaty.is_party(agency_id):
        raise NotAParty(
            f"{agency_id} is not a party of treaty {treaty.label} "
            f"(parties: {', '.join(treaty.parties)})"
        )
    private = load_signing_key(key_dir / SIGNING_KEY_FILE)
    kid = key_id(raw_public(private.public_key()))
    signature = sign(doc.document, agency_id, private, kid)
    signed = doc.with_signature(signature)
    _write_atomic(file, signed.to_bytes())
    data = {
        **_summary(signed),
        "file": str(file),
        "agency_id": agency_id,
        "key_id": kid,
        "sign_time": _time(signature.sign_time.ToDatetime(tzinfo=UTC)),
    }

    def table() -> None:
        click.echo(
            f"{agency_id} signed treaty {treaty.label} with key {kid}\n"
            f"  document sha256 {data['document_sha256']}"
        )
        missing = data["unsigned_parties"]
        click.echo(
            f"  signed by {len(data['signed_by'])} of {len(treaty.parties)} parties"
            + (f"; still to sign: {', '.join(missing)}" if missing else "; every party has signed")
        )

    emit(data, as_json=as_json, table=table)


# --- show ---------------------------------------------------------------------------


def _load_directory(directory: Path, anchor: Path, now: datetime) -> PublicKeyLookup:
    # Imported here: the directory module brings X.509 handling that drafting
    # and signing never need.
    from intelshare.directory import Anchor, verify_directory

    return verify_directory(directory.read_bytes(), Anchor.load(anchor), now=now)


@treaty_group.command("show")
@click.argument("file", type=_existing_file)
@click.option(
    "--directory",
    "directory_file",
    type=_existing_file,
    help="Signed directory file, to verify the signatures (needs --anchor).",
)
@click.option("--anchor", "anchor_file", type=_existing_file, help="The federation anchor file.")
@json_option
def show_command(
    file: Path, directory_file: Path | None, anchor_file: Path | None, as_json: bool
) -> None:
    """Print the treaty in FILE and who signed it.

    With --directory and --anchor, also whether each signature verifies
    against the federation's keys and whether the treaty is in force now.
    """
    if (directory_file is None) != (anchor_file is None):
        raise click.UsageError("--directory and --anchor go together")
    doc = _read_signed(file)
    treaty = doc.treaty
    now = datetime.now(UTC)
    verified: set[str] | None = None
    force: bool | None = None
    if directory_file is not None and anchor_file is not None:
        keys = _load_directory(directory_file, anchor_file, now)
        verified = verify_signatures(doc, keys, now)
        force = in_force(doc, keys, now)
    signatures = [
        {
            "agency_id": s.agency_id,
            "key_id": s.key_id,
            "sign_time": _time(s.sign_time.ToDatetime(tzinfo=UTC))
            if s.HasField("sign_time")
            else "",
            "party": treaty.is_party(s.agency_id),
            "verified": None if verified is None else s.agency_id in verified,
        }
        for s in doc.signatures
    ]
    data: dict[str, Any] = {
        **_summary(doc),
        "signatures": signatures,
        "verified_by": None if verified is None else sorted(verified),
        "in_force": force,
        "valid_now": treaty.valid_at(now),
        "checked_at": now.isoformat(timespec="seconds"),
    }

    def table() -> None:
        _print_treaty(treaty, data["document_sha256"])
        click.echo("Signatures")
        headers = ["party", "signed", "key id", "sign time"]
        if verified is not None:
            headers.append("verifies")
        rows: list[list[str]] = []
        for sig in doc.signatures:
            agency = sig.agency_id
            name = agency if treaty.is_party(agency) else f"{agency} (not a party)"
            when = sig.sign_time.ToDatetime(tzinfo=UTC) if sig.HasField("sign_time") else None
            row = [name, "yes", sig.key_id, _time(when)]
            if verified is not None:
                row.append("yes" if agency in verified else "NO")
            rows.append(row)
        for agency in data["unsigned_parties"]:
            rows.append([agency, "no", "", ""] + ([""] if verified is not None else []))
        print_table(headers, rows)
        window = "inside" if data["valid_now"] else "outside"
        click.echo(f"Now ({data['checked_at']}) is {window} the validity window.")
        if force is None:
            click.echo("In force: unknown (pass --directory and --anchor to verify signatures)")
        else:
            click.echo(f"In force now: {'yes' if force else 'no'}")

    emit(data, as_json=as_json, table=table)


@treaty_group.command("publish")
@click.argument("file", type=_existing_file)
@click.option("--gateway", "target", required=True, help="Gateway address, host:port.")
@click.option(
    "--identity",
    "identity",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    required=True,
    help="A party's identity folder (tls.crt, tls.key, ca.pem).",
)
@json_option
def publish_command(file: Path, target: str, identity: Path, as_json: bool) -> None:
    """Hand a treaty signed by every party to the gateway, which then enforces it."""
    from intelshare.gateway_client import GatewayClient

    doc = _read_signed(file)
    client = GatewayClient(
        target,
        ca_pem=(identity / "ca.pem").read_bytes(),
        cert_pem=(identity / "tls.crt").read_bytes(),
        key_pem=(identity / "tls.key").read_bytes(),
    )
    with client:
        resp = client.publish_treaty(doc.to_proto())
    data = {"treaty": doc.treaty.label, "in_force": resp.in_force, "gateway": target}
    emit(
        data,
        as_json=as_json,
        table=lambda: click.echo(
            f"published {doc.treaty.label} to {target}; "
            f"{'in force' if resp.in_force else 'NOT in force (outside its validity window)'}"
        ),
    )
