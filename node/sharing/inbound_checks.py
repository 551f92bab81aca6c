"""Judging an inbox entry: verify and open it, check its treaty again.

The first two steps of every inbox entry (see :mod:`node.sharing.inbound`
for the whole path):

1. verify and open it with the directory (``open_envelope``); a sender
   enrolled or rotated after the directory was fetched looks like an unknown
   key, so the directory is refreshed once (rate-limited) and the envelope
   opened again;
2. check the treaty again (the checks of ``decide_header``: in force,
   parties, kind, category, handling, a review the treaty reserves; a
   record passed on, its original treaty's rule and the originator's
   consent), that this agency is a recipient and that a handler is
   registered for the message kind.

The verdict is either what to store with which handler (an
:class:`~node.sharing.incoming.Incoming` with its retention) or a
:class:`_Refusal` with the precise reason, audited and acknowledged by the
inbox. A problem on *this* node's side (no usable directory, a treaty the
gateway could not give) is :class:`_OurSide`: the entry is not judged, not
acknowledged, and comes again.

:class:`InboundChecks` is the part of :class:`~node.sharing.inbound.Inbound`
that judges; the inbox inherits it and holds the state it uses.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import x25519

from intelshare import errors
from intelshare.audit import FieldValue
from intelshare.directory import TrustedDirectory
from intelshare.envelope import Opened, Unverified, open_envelope, read
from intelshare.gateway_client import GatewayClient, InboxEntryBytes
from intelshare.keys import AgencyKeys
from intelshare.onward import decide_provenance
from intelshare.treaty import decide_header_in_force, kind_name, retention_until
from intelshare.v1 import envelope_pb2, gateway_service_pb2
from node.sharing.incoming import Handler, Incoming
from node.sharing.trust import Trust
from node.storage.store import now_ms

log = logging.getLogger(__name__)


class _OurSide(Exception):
    """A problem of this node (not of the envelope): do not acknowledge, retry later."""


class InboundChecks:
    """Judges inbox entries; the state it reads is the inbox's (set by ``Inbound``)."""

    agency_id: str
    keys: AgencyKeys
    trust: Trust
    max_payload_bytes: int
    handlers: dict[int, Handler]
    _last_directory_refresh: float
    _decryption: tuple[x25519.X25519PrivateKey, dict[str, x25519.X25519PrivateKey]] | None

    def _judge(
        self, entry: Entry, client: GatewayClient | None
    ) -> _Refusal | tuple[Incoming, Handler]:
        """Open and check one entry: what to refuse, or what to store with which handler.

        Raises :class:`_OurSide` when this node cannot judge it now.
        """
        directory = self._fresh_directory()
        data = _envelope_bytes(entry)
        now = datetime.now(UTC)
        try:
            # Read once (reencode: as when the entry was parsed whole), opened from that reading.
            unverified = read(data, max_payload_bytes=self.max_payload_bytes, reencode=True)
            opened, directory = self._open(unverified, now, client, directory)
        except (errors.EnvelopeInvalid, errors.PayloadTooLarge) as exc:
            detail = getattr(exc, "audit_detail", "") or exc.message
            return _Refusal(_peek_header(data), exc.reason, detail)
        header = opened.header
        doc = self.trust.treaty(header.treaty_id, header.treaty_version, client)
        if doc is None:
            if client is None:
                raise _OurSide(f"treaty {header.treaty_id} v{header.treaty_version} unknown")
            return _Refusal(
                header,
                "TREATY_NOT_IN_FORCE",
                f"treaty {header.treaty_id} v{header.treaty_version} is not known to the gateway",
            )
        # review=True: a record of a kind or category the treaty reserves for
        # review is refused here too (REVIEW_REQUIRED) unless the signed header
        # carries an attestation that holds, whatever the sender did.
        decision = decide_header_in_force(
            doc, header, in_force=self.trust.in_force_at(doc, directory, now), review=True
        )
        if not decision:
            return _Refusal(header, decision.reason, decision.detail)
        if header.HasField("provenance"):
            # A record passed on by a recipient: the original treaty's rule and
            # the originator's consent, as the gateway checked them.
            onward = decide_provenance(
                header, lambda tid, ver: self.trust.treaty(tid, ver, client), directory, now
            )
            if not onward:
                return _Refusal(header, onward.reason, onward.detail)
        if self.agency_id not in header.recipients:
            return _Refusal(header, "NOT_A_PARTY", "this agency is not a recipient")
        handler = self.handlers.get(header.kind)
        if handler is None:
            return _Refusal(
                header,
                "KIND_NOT_PERMITTED",
                f"this node does not handle "
                f"{kind_name(header.kind, header.record_kind) or header.kind}",
            )
        received = now_ms()
        incoming = Incoming(
            sequence=int(entry.sequence),
            header=header,
            payload=opened.payload,
            envelope=unverified.data,
            envelope_sha256=opened.envelope_sha256,
            gateway_receipt=_receipt_bytes(entry),
            treaty=doc.treaty,
            received_ms=received,
            retain_until_ms=int(
                retention_until(
                    doc.treaty, datetime.fromtimestamp(received / 1000, UTC)
                ).timestamp()
                * 1000
            ),
        )
        return incoming, handler

    def _fresh_directory(self) -> TrustedDirectory:
        try:
            return self.trust.directory
        except errors.DirectoryInvalid:
            raise _OurSide("no fresh directory to verify envelopes with") from None

    def _open(
        self,
        data: Unverified,
        now: datetime,
        client: GatewayClient | None,
        directory: TrustedDirectory,
    ) -> tuple[Opened, TrustedDirectory]:
        """The opened envelope, and the directory it was opened with."""
        try:
            return self._open_once(data, now, directory), directory
        except errors.EnvelopeInvalid as exc:
            detail = exc.audit_detail
            if "DirectoryInvalid" in detail:
                raise _OurSide("the directory expired while opening") from None
            # A sender enrolled or rotated after our directory was fetched
            # looks like an unknown key: refresh once (rate-limited) and retry.
            if client is not None and time.monotonic() - self._last_directory_refresh > 30:
                self._last_directory_refresh = time.monotonic()
                try:
                    self.trust.refresh_directory(client)
                except errors.IntelshareError as refresh_exc:
                    log.warning("directory refresh failed: %s", refresh_exc.message)
                    raise exc from None
                directory = self._fresh_directory()
                return self._open_once(data, now, directory), directory
            raise

    def _open_once(self, data: Unverified, now: datetime, directory: TrustedDirectory) -> Opened:
        return open_envelope(
            data,
            directory,
            recipient=self.agency_id,
            encryption_key=self._decryption_keys(),
            now=now,
            max_payload_bytes=self.max_payload_bytes,
        )

    def _decryption_keys(self) -> dict[str, x25519.X25519PrivateKey]:
        """Key id -> key of this agency (the id is derived once, not per envelope)."""
        key = self.keys.encryption
        cached = self._decryption
        if cached is None or cached[0] is not key:
            cached = (key, {self.keys.encryption_key_id: key})
            self._decryption = cached
        return cached[1]


@dataclass(frozen=True)
class _Refusal:
    """Why an entry is refused, with its (possibly unverified) header for context."""

    header: envelope_pb2.Header | None
    reason: str
    detail: str

    def fields(self, seq: int) -> dict[str, FieldValue]:
        fields: dict[str, FieldValue] = {
            "reason": self.reason,
            "detail": self.detail[:1000],
            "gateway_sequence": seq,
        }
        header = self.header
        if header is not None:
            fields.update(
                message_id=header.message_id[:64],
                sender=header.sender[:128],
                kind=kind_name(header.kind, header.record_kind) or str(int(header.kind)),
                treaty=f"{header.treaty_id[:128]}@{header.treaty_version}",
                reference_id=header.reference_id[:64] or None,
            )
        return fields


#: an inbox entry: as the node's stream reads it (bytes), or a message (tests, tools)
Entry = InboxEntryBytes | gateway_service_pb2.InboxEntry


def _envelope_bytes(entry: Entry) -> bytes:
    env = entry.envelope
    return env if isinstance(env, bytes) else env.SerializeToString()


def _receipt_bytes(entry: Entry) -> bytes:
    receipt = entry.receipt
    return receipt if isinstance(receipt, bytes) else receipt.SerializeToString()


def _peek_header(data: bytes) -> envelope_pb2.Header | None:
    """The unverified header, for duplicate checks and audit context only."""
    try:
        return envelope_pb2.Header.FromString(envelope_pb2.Envelope.FromString(data).header_bytes)
    except Exception:
        return None
