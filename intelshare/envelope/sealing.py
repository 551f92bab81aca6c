"""The seal side: check a caller's header fields, encrypt for the recipients, sign.

Everything a header could carry that no verifier would accept is refused
here as :class:`~intelshare.errors.InvalidArgument`, naming the field, so
that a sender learns its mistake rather than sending an envelope every
recipient drops.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ed25519

from intelshare.envelope.header import (
    _MESSAGE_ID,
    ENVELOPE_VERSION,
    HeaderFields,
    RecipientKey,
    _timestamp,
)
from intelshare.envelope.limits import MAX_PAYLOAD_BYTES, max_envelope_bytes
from intelshare.errors import InvalidArgument, PayloadTooLarge
from intelshare.hazmat import envelope_primitives as prim
from intelshare.ids import new_message_id
from intelshare.v1 import envelope_pb2

_UINT32_MAX = 2**32 - 1


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{name} must be timezone-aware", violations={name: "naive datetime"})
    return value


#: Message kinds whose header names a record kind.
_RECORD_MESSAGE_KINDS = frozenset(
    {envelope_pb2.MESSAGE_KIND_RECORD, envelope_pb2.MESSAGE_KIND_RECORD_UPDATE}
)


def _check_fields(fields: HeaderFields) -> None:
    problems: dict[str, str] = {}
    if not fields.sender:
        problems["sender"] = "required"
    if not fields.recipients:
        problems["recipients"] = "at least one recipient is required"
    elif "" in fields.recipients:
        problems["recipients"] = "empty agency id"
    if not fields.treaty_id:
        problems["treaty_id"] = "required"
    if not 0 <= fields.treaty_version <= _UINT32_MAX:
        problems["treaty_version"] = "out of range"
    if fields.kind == envelope_pb2.MESSAGE_KIND_UNSPECIFIED:
        problems["kind"] = "required"
    if (fields.kind in _RECORD_MESSAGE_KINDS) != bool(fields.record_kind):
        problems["record_kind"] = "required for a record or record update, and only for those"
    if "" in fields.categories:
        problems["categories"] = "empty category"
    if fields.message_id is not None and not _MESSAGE_ID.fullmatch(fields.message_id):
        problems["message_id"] = "not a canonical UUIDv7"
    if problems:
        raise InvalidArgument("invalid envelope header", violations=problems)


def _encode_header(
    fields: HeaderFields, *, message_id: str, create_time: datetime, commitment: bytes
) -> bytes:
    header = envelope_pb2.Header(
        version=ENVELOPE_VERSION,
        message_id=message_id,
        sender=fields.sender,
        recipients=fields.recipients,
        treaty_id=fields.treaty_id,
        treaty_version=fields.treaty_version,
        kind=fields.kind,
        handling=fields.handling,
        tlp=fields.tlp,
        categories=fields.categories,
        content_key_commitment=commitment,
        reference_id=fields.reference_id,
        case_id=fields.case_id,
        record_kind=fields.record_kind,
        create_time=_timestamp(create_time),
        expire_time=None if fields.expire_time is None else _timestamp(fields.expire_time),
        review=fields.review,
        provenance=fields.provenance,
        consent=fields.consent,
    )
    return header.SerializeToString(deterministic=True)


def seal(
    fields: HeaderFields,
    payload: bytes,
    *,
    signing_key: ed25519.Ed25519PrivateKey,
    signing_key_id: str,
    recipient_keys: Mapping[str, RecipientKey],
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> envelope_pb2.Envelope:
    """Encrypt ``payload`` for ``fields.recipients`` and sign it as ``fields.sender``.

    ``recipient_keys`` maps each recipient to its (key id, X25519 key), usually
    from :func:`lookup_recipient_keys`; extra entries are ignored, a missing
    one is an error. ``signing_key_id`` is the directory id of
    ``signing_key`` (``AgencyKeys.signing_key_id``).

    Raises :class:`PayloadTooLarge` past ``max_payload_bytes`` (or when the
    header and key blocks would push the envelope past what :func:`open`
    accepts) and :class:`InvalidArgument` for a header that could never
    verify.
    """
    payload = bytes(payload)
    if len(payload) > max_payload_bytes:
        raise PayloadTooLarge(
            f"payload of {len(payload)} bytes is over the limit of {max_payload_bytes} bytes"
        )
    _check_fields(fields)
    if not signing_key_id:
        raise InvalidArgument(
            "signing key id is required", violations={"signing_key_id": "required"}
        )
    missing = [r for r in fields.recipients if r not in recipient_keys]
    blank = [r for r in fields.recipients if r in recipient_keys and not recipient_keys[r][0]]
    if missing:
        raise InvalidArgument(
            "no encryption key for some recipients",
            violations={f"recipients[{r}]": "no encryption key" for r in missing},
        )
    if blank:
        raise InvalidArgument(
            "empty key id for some recipients",
            violations={f"recipients[{r}]": "empty key id" for r in blank},
        )
    create_time = (
        _aware(fields.create_time, "create_time") if fields.create_time is not None else None
    )
    if create_time is None:
        create_time = datetime.now(UTC)
    if fields.expire_time is not None and _aware(fields.expire_time, "expire_time") <= create_time:
        raise InvalidArgument(
            "envelope would expire before it is created",
            violations={"expire_time": "not after create_time"},
        )
    message_id = fields.message_id or new_message_id(int(create_time.timestamp() * 1000))

    content_key = prim.new_content_key()
    header_bytes = _encode_header(
        fields,
        message_id=message_id,
        create_time=create_time,
        commitment=prim.key_commitment(content_key),
    )
    digest_of_header = prim.header_digest(header_bytes)
    blocks = []
    for recipient in fields.recipients:
        recipient_key_id, recipient_public = recipient_keys[recipient]
        wrapped = prim.hpke_wrap(
            content_key, recipient_public, header_digest_value=digest_of_header, recipient=recipient
        )
        blocks.append(prim.KeyBlockParts(recipient, recipient_key_id, wrapped))
    ciphertext = prim.aead_encrypt(content_key, payload, header_bytes)
    signature = prim.sign_digest(
        signing_key, prim.envelope_digest(header_bytes, blocks, ciphertext)
    )
    envelope = envelope_pb2.Envelope(
        header_bytes=header_bytes,
        key_blocks=[
            envelope_pb2.KeyBlock(agency_id=b.agency_id, key_id=b.key_id, wrapped_key=b.wrapped_key)
            for b in blocks
        ],
        ciphertext=ciphertext,
        signature=signature,
        signing_key_id=signing_key_id,
    )
    if envelope.ByteSize() > max_envelope_bytes(max_payload_bytes):
        raise PayloadTooLarge(
            "header and key blocks make the envelope larger than recipients accept"
        )
    return envelope
