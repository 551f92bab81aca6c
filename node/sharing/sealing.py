"""Sealing: envelopes signed and encrypted as this agency.

An operation that shares something seals its envelopes when the officer
acts (:class:`Sealer.seal`), in the transaction that makes the change, and
queues them (:mod:`node.sharing.outbox`); a :class:`Sealed` envelope keeps
what it carries (payload, recipients, treaty, reference) beside its bytes,
so the queue row and the kinds' own tables are written without parsing the
header back.

:meth:`Sealer.reseal` seals the *same* message again with a fresh time:
the sender (:mod:`node.sharing.outbound`) uses it for an envelope that
waited past the gateway's accepted clock skew, which the gateway's refusal
proves it never accepted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from intelshare.envelope import (
    HeaderFields,
    envelope_sha256,
    lookup_recipient_keys,
    seal,
)
from intelshare.ids import new_message_id
from intelshare.keys import AgencyKeys
from intelshare.v1 import envelope_pb2
from node.sharing.trust import Trust


@dataclass(frozen=True)
class Sealed:
    """An envelope sealed by this node, with what it carries."""

    message_id: str
    kind: int
    treaty_id: str
    treaty_version: int
    recipients: tuple[str, ...]
    reference_id: str
    case_id: str
    payload: bytes
    envelope: bytes
    created_ms: int
    expire_ms: int
    #: the record kind of a record or record update ("" for other kinds)
    record_kind: str = ""

    @property
    def envelope_sha256(self) -> bytes:
        return envelope_sha256(self.envelope)

    @property
    def payload_sha256(self) -> bytes:
        return hashlib.sha256(self.payload).digest()


class Sealer:
    """Seals envelopes as this agency."""

    def __init__(self, agency_id: str, keys: AgencyKeys, trust: Trust, max_payload: int) -> None:
        self.agency_id = agency_id
        self.keys = keys
        self.trust = trust
        self.max_payload = max_payload
        self._key_id: tuple[object, str] | None = None

    def _signing_key_id(self) -> str:
        """The id of the signing key (derived once per key, not per envelope)."""
        key = self.keys.signing
        cached = self._key_id
        if cached is None or cached[0] is not key:
            cached = (key, self.keys.signing_key_id)
            self._key_id = cached
        return cached[1]

    def seal(
        self,
        *,
        kind: envelope_pb2.MessageKind.ValueType,
        recipients: Sequence[str],
        treaty_id: str,
        treaty_version: int,
        handling: envelope_pb2.HandlingCode.ValueType,
        tlp: envelope_pb2.Tlp.ValueType,
        categories: Sequence[str],
        expire_ms: int,
        payload: bytes,
        reference_id: str = "",
        case_id: str = "",
        message_id: str | None = None,
        record_kind: str = "",
        review: envelope_pb2.ReviewAttestation | None = None,
        provenance: envelope_pb2.Provenance | None = None,
        consent: envelope_pb2.OnwardConsent | None = None,
    ) -> Sealed:
        directory = self.trust.directory
        now = datetime.now(UTC)
        if message_id is None:
            # What seal() would choose; chosen here, the header need not be parsed back.
            message_id = new_message_id(int(now.timestamp() * 1000))
        fields = HeaderFields(
            sender=self.agency_id,
            recipients=tuple(recipients),
            treaty_id=treaty_id,
            treaty_version=treaty_version,
            kind=kind,
            handling=handling,
            tlp=tlp,
            categories=tuple(categories),
            expire_time=datetime.fromtimestamp(expire_ms / 1000, UTC),
            reference_id=reference_id,
            case_id=case_id,
            message_id=message_id,
            create_time=now,
            record_kind=record_kind,
            review=review,
            provenance=provenance,
            consent=consent,
        )
        envelope = seal(
            fields,
            payload,
            signing_key=self.keys.signing,
            signing_key_id=self._signing_key_id(),
            recipient_keys=lookup_recipient_keys(directory, fields.recipients),
            max_payload_bytes=self.max_payload,
        )
        return Sealed(
            message_id=message_id,
            kind=int(kind),
            treaty_id=treaty_id,
            treaty_version=treaty_version,
            recipients=fields.recipients,
            reference_id=reference_id,
            case_id=case_id,
            payload=payload,
            envelope=envelope.SerializeToString(),
            created_ms=int(now.timestamp() * 1000),
            expire_ms=expire_ms,
            record_kind=record_kind,
        )

    def reseal(self, envelope_bytes: bytes, payload: bytes) -> bytes:
        """The same message (id, header fields, payload) sealed again now."""
        old = envelope_pb2.Envelope.FromString(envelope_bytes)
        header = envelope_pb2.Header.FromString(old.header_bytes)
        fields = HeaderFields.from_header(header)
        fields = HeaderFields(
            sender=fields.sender,
            recipients=fields.recipients,
            treaty_id=fields.treaty_id,
            treaty_version=fields.treaty_version,
            kind=fields.kind,
            handling=fields.handling,
            tlp=fields.tlp,
            categories=fields.categories,
            expire_time=fields.expire_time,
            reference_id=fields.reference_id,
            case_id=fields.case_id,
            message_id=fields.message_id,
            create_time=datetime.now(UTC),
            record_kind=fields.record_kind,
            review=fields.review,
            provenance=fields.provenance,
            consent=fields.consent,
        )
        envelope = seal(
            fields,
            payload,
            signing_key=self.keys.signing,
            signing_key_id=self._signing_key_id(),
            recipient_keys=lookup_recipient_keys(self.trust.directory, fields.recipients),
            max_payload_bytes=self.max_payload,
        )
        return envelope.SerializeToString()
