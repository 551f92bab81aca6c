"""``intelshare receipt``: prove to a third party that the gateway accepted a message.

When the gateway accepts an envelope it answers with a
:class:`~intelshare.v1.receipt_pb2.Receipt`: the message id, the envelope's
SHA-256, the index of the ``accepted`` entry in the gateway's audit log, that
entry's leaf bytes, a signed tree head and the inclusion proof of the leaf in
that head. Together with the federation's signed directory (which publishes
the gateway's key) and the anchor (the root key everyone pins), that is
enough to check acceptance offline, with no access to the gateway: a
liaison officer can show a court or a partner that the alert was handed over,
and when.

**Receipt file format**: the bytes of ``Receipt.SerializeToString()``, as
returned by :meth:`intelshare.gateway_client.GatewayClient.submit` (in
``response.receipt``) and as stored next to each inbox entry; write it with
:func:`write_receipt` or ``path.write_bytes(receipt.SerializeToString())``.
The envelope file given to ``--envelope`` holds ``Envelope.SerializeToString()``
bytes, the envelope as submitted, whose plain SHA-256 the receipt commits to.

What ``verify`` checks, in this order; the first failure is reported with
exit status 2 and a message naming what did not hold (reason
``DIRECTORY_INVALID`` for the directory, ``AUDIT_LOG_INVALID`` for the
receipt itself, ``ENVELOPE_INVALID`` for an envelope that is not the one
receipted, ``MALFORMED`` for a file that is not a receipt):

1. the directory verifies against the anchor and is current (fail closed,
   as everywhere else: a stale directory could still list a key that was
   since revoked; rotated keys stay listed with their end of validity);
2. the tree head is signed by the gateway's key as that directory lists it,
   valid at the time the head was signed, and names the gateway's log;
3. the inclusion proof puts the receipt's leaf at ``log_index`` under the
   head's root (RFC 9162);
4. the leaf is a canonical ``accepted`` entry naming the receipt's message id
   and envelope digest, so the receipt cannot pair a genuine proof with
   another message;
5. with ``--envelope``: the file's SHA-256 is the receipt's digest and its
   header names the same message id.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from google.protobuf.message import DecodeError

from intelshare.audit.heads import verify_inclusion, verify_tree_head
from intelshare.cli import EXIT_BAD_INPUT, cli, emit, json_option
from intelshare.directory import Anchor, TrustedDirectory, verify_directory
from intelshare.envelope import envelope_sha256
from intelshare.errors import (
    AuditLogInvalid,
    EnvelopeInvalid,
    IntelshareError,
    InvalidArgument,
    Malformed,
    SignatureInvalid,
)
from intelshare.v1 import envelope_pb2, receipt_pb2

DEFAULT_GATEWAY_ID = "gateway"

_existing_file = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@dataclass(frozen=True)
class ReceiptReport:
    """What a verified receipt proves, in a form to print or serialize."""

    message_id: str
    envelope_sha256: str
    log_id: str
    log_index: int
    tree_size: int
    root_hash: str
    head_time: str
    key_id: str
    accept_time: str
    sender: str
    recipients: list[str]
    treaty: str
    kind: str
    directory_version: int
    envelope_checked: bool


def write_receipt(path: Path, receipt: receipt_pb2.Receipt) -> None:
    """Save ``receipt`` in the receipt file format (its protobuf serialization)."""
    path.write_bytes(receipt.SerializeToString())


def read_receipt(data: bytes) -> receipt_pb2.Receipt:
    """Parse receipt file bytes; anything that is not a complete receipt is ``Malformed``."""
    try:
        receipt = receipt_pb2.Receipt.FromString(data)
    except DecodeError:
        raise Malformed("not a receipt (cannot be parsed)") from None
    missing = [
        name
        for name, present in (
            ("message_id", bool(receipt.message_id)),
            ("envelope_sha256", len(receipt.envelope_sha256) == 32),
            ("tree_head", receipt.HasField("tree_head")),
            ("leaf", bool(receipt.leaf)),
        )
        if not present
    ]
    if missing:
        raise Malformed(
            f"not a complete receipt: missing or malformed {', '.join(missing)}",
            violations={name: "missing or malformed" for name in missing},
        )
    return receipt


def _iso(seconds: int, nanos: int = 0) -> str:
    at = datetime.fromtimestamp(seconds + nanos / 1e9, tz=UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _accepted_entry(receipt: receipt_pb2.Receipt) -> dict[str, Any]:
    """The leaf as an ``accepted`` audit entry for this receipt's message, or raise."""
    try:
        doc = json.loads(receipt.leaf.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AuditLogInvalid("the receipt's audit leaf is not a JSON audit entry") from None
    if not isinstance(doc, dict):
        raise AuditLogInvalid("the receipt's audit leaf is not a JSON audit entry")
    event = doc.get("event")
    if event != "accepted":
        raise AuditLogInvalid(f"the receipt's audit leaf is a {event!r} entry, not 'accepted'")
    if doc.get("message_id") != receipt.message_id:
        raise AuditLogInvalid(
            f"the audit leaf names message {doc.get('message_id')!r}, "
            f"the receipt {receipt.message_id!r}"
        )
    if doc.get("envelope_sha256") != receipt.envelope_sha256.hex():
        raise AuditLogInvalid("the audit leaf names another envelope digest than the receipt")
    return doc


def verify_receipt(
    receipt: receipt_pb2.Receipt,
    directory: TrustedDirectory,
    *,
    gateway_id: str = DEFAULT_GATEWAY_ID,
    envelope: bytes | None = None,
) -> ReceiptReport:
    """Check that ``receipt`` proves acceptance by ``gateway_id``; raise if it does not.

    ``directory`` must already be verified (see :func:`verify_directory`).
    Order matters for the messages: who signed comes first, then whether
    the leaf is in the signed tree, then what the leaf says, so the first
    reason reported is the most fundamental one.
    """
    sth = receipt.tree_head
    signed_at = sth.timestamp.ToDatetime(tzinfo=UTC)
    if sth.log_id != gateway_id:
        raise AuditLogInvalid(
            f"the tree head is of log {sth.log_id!r}, not of the gateway {gateway_id!r}"
        )
    try:
        key = directory.signing_key(gateway_id, sth.key_id, signed_at)
    except SignatureInvalid as exc:
        # The directory hides the cause from remote callers; here the person
        # running the check is the one who needs it.
        raise AuditLogInvalid(
            f"the gateway key {sth.key_id!r} is not valid for {gateway_id!r} "
            f"in directory v{directory.version}: {exc.audit_detail or exc.message}"
        ) from None
    try:
        verify_tree_head(sth, key)
    except AuditLogInvalid as exc:
        raise AuditLogInvalid(exc.message) from None
    if receipt.log_index >= sth.tree_size:
        raise AuditLogInvalid(
            f"log index {receipt.log_index} is outside the signed tree of size {sth.tree_size}"
        )
    try:
        verify_inclusion(receipt.leaf, receipt.log_index, sth, list(receipt.inclusion_proof))
    except AuditLogInvalid as exc:
        raise AuditLogInvalid(f"inclusion proof does not verify: {exc.message}") from None
    entry = _accepted_entry(receipt)
    checked = False
    if envelope is not None:
        digest = envelope_sha256(envelope)
        if digest != receipt.envelope_sha256:
            raise EnvelopeInvalid(
                f"the envelope's SHA-256 is {digest.hex()}, "
                f"the receipt's {receipt.envelope_sha256.hex()}"
            )
        try:
            header = envelope_pb2.Header.FromString(
                envelope_pb2.Envelope.FromString(envelope).header_bytes
            )
        except DecodeError:
            raise EnvelopeInvalid("the envelope file is not an envelope") from None
        if header.message_id != receipt.message_id:
            raise EnvelopeInvalid(
                f"the envelope is message {header.message_id!r}, the receipt {receipt.message_id!r}"
            )
        checked = True
    recipients = entry.get("recipients")
    return ReceiptReport(
        message_id=receipt.message_id,
        envelope_sha256=receipt.envelope_sha256.hex(),
        log_id=sth.log_id,
        log_index=int(receipt.log_index),
        tree_size=int(sth.tree_size),
        root_hash=sth.root_hash.hex(),
        head_time=_iso(sth.timestamp.seconds, sth.timestamp.nanos),
        key_id=sth.key_id,
        accept_time=_iso(receipt.accept_time.seconds, receipt.accept_time.nanos)
        if receipt.HasField("accept_time")
        else "",
        sender=str(entry.get("sender", "")),
        recipients=[str(r) for r in recipients] if isinstance(recipients, list) else [],
        treaty=str(entry.get("treaty", "")),
        kind=str(entry.get("kind", "")),
        directory_version=directory.version,
        envelope_checked=checked,
    )


@cli.group("receipt")
def receipt_group() -> None:
    """Check gateway receipts offline (proof that a message was accepted)."""


@receipt_group.command("verify")
@click.argument("receipt_file", type=_existing_file)
@click.option(
    "--directory",
    "directory_file",
    type=_existing_file,
    required=True,
    help="The federation's signed directory file (it publishes the gateway's key).",
)
@click.option(
    "--anchor",
    "anchor_file",
    type=_existing_file,
    required=True,
    help="The federation anchor file (root public key).",
)
@click.option(
    "--envelope",
    "envelope_file",
    type=_existing_file,
    help="The envelope as submitted (Envelope.SerializeToString()), to check its digest.",
)
@click.option(
    "--gateway-id",
    default=DEFAULT_GATEWAY_ID,
    show_default=True,
    help="The gateway's id in the directory.",
)
@json_option
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    receipt_file: Path,
    directory_file: Path,
    anchor_file: Path,
    envelope_file: Path | None,
    gateway_id: str,
    as_json: bool,
) -> None:
    """Verify RECEIPT_FILE (Receipt.SerializeToString() bytes) without contacting the gateway.

    Exit status 0 when the receipt proves that the gateway accepted the
    message (and, with --envelope, that it is this envelope); 2 otherwise,
    with the reason.
    """
    try:
        report = _verify_files(receipt_file, directory_file, anchor_file, envelope_file, gateway_id)
    except IntelshareError as exc:
        if not as_json:
            raise  # the root group prints it on one line and exits 2
        emit(
            {"verified": False, "reason": exc.reason, "error": exc.message},
            as_json=True,
        )
        ctx.exit(EXIT_BAD_INPUT)
    data = {"verified": True, **asdict(report)}

    def table() -> None:
        r = report
        click.echo(f"receipt OK: gateway {gateway_id!r} accepted message {r.message_id}")
        rows = [
            ("envelope sha256", r.envelope_sha256),
            (
                "envelope file",
                "matches the receipt" if r.envelope_checked else "not checked (see --envelope)",
            ),
            ("sender", r.sender or "-"),
            ("recipients", ", ".join(r.recipients) or "-"),
            ("treaty", r.treaty or "-"),
            ("kind", r.kind or "-"),
            ("accepted at", r.accept_time or "-"),
            ("audit entry", f"index {r.log_index} in log {r.log_id!r}"),
            ("tree head", f"size {r.tree_size}, signed {r.head_time} by key {r.key_id}"),
            ("root hash", r.root_hash),
            ("directory", f"version {r.directory_version}, verified against the anchor"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            click.echo(f"  {key.ljust(width)}  {value}")

    emit(data, as_json=as_json, table=table)


def _verify_files(
    receipt_file: Path,
    directory_file: Path,
    anchor_file: Path,
    envelope_file: Path | None,
    gateway_id: str,
) -> ReceiptReport:
    try:
        receipt = read_receipt(receipt_file.read_bytes())
    except InvalidArgument as exc:
        raise type(exc)(f"{receipt_file}: {exc.message}", violations=exc.violations) from None
    directory = verify_directory(
        directory_file.read_bytes(), Anchor.load(anchor_file), now=datetime.now(UTC)
    )
    envelope = envelope_file.read_bytes() if envelope_file is not None else None
    return verify_receipt(receipt, directory, gateway_id=gateway_id, envelope=envelope)


__all__ = [
    "ReceiptReport",
    "read_receipt",
    "verify_receipt",
    "write_receipt",
]
