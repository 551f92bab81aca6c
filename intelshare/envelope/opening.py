"""Verify and open: structure checks, the sender's signature, then decryption.

:func:`verify` is what the gateway runs before routing (no private key);
:func:`open_envelope` is what a recipient runs, :func:`verify`'s checks and
then its own key block. Both start from :func:`~intelshare.envelope.reading.read`.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519

from intelshare.envelope.header import _MESSAGE_ID, ENVELOPE_VERSION, _datetime
from intelshare.envelope.limits import DEFAULT_CLOCK_SKEW, MAX_PAYLOAD_BYTES, max_envelope_bytes
from intelshare.envelope.reading import Unverified, _invalid, _Parts, read
from intelshare.errors import (
    AgencyNotActive,
    AgencyUnknown,
    KeyExpired,
    NotFound,
    PayloadTooLarge,
    VerificationError,
)
from intelshare.hazmat import envelope_primitives as prim
from intelshare.ids import key_id
from intelshare.keylookup import PublicKeyLookup
from intelshare.keys import raw_public
from intelshare.v1 import envelope_pb2

#: Errors a PublicKeyLookup raises for "this key cannot vouch for this
#: message". Anything else (notably ``Unavailable``: the directory could not
#: be read) propagates, because it says nothing about the envelope and the
#: caller should retry rather than reject.
_LOOKUP_REFUSALS = (VerificationError, AgencyUnknown, AgencyNotActive, KeyExpired, NotFound)


def envelope_sha256(envelope_bytes: bytes) -> bytes:
    """SHA-256 of the envelope exactly as transmitted (receipts and evidence use it).

    Plain SHA-256, not domain-separated, so that anyone holding the stored
    bytes can check a receipt with standard tools.
    """
    return hashlib.sha256(envelope_bytes).digest()


@dataclass(frozen=True)
class Opened:
    """A verified and decrypted envelope.

    ``header`` is a fresh parse of the signed header bytes; ``envelope_sha256``
    identifies the exact bytes received, to store beside them as evidence and
    to match the gateway's receipt.
    """

    header: envelope_pb2.Header
    payload: bytes = field(repr=False)
    envelope_sha256: bytes


@dataclass(frozen=True)
class _Verified:
    parts: _Parts
    header: envelope_pb2.Header
    data: bytes


def _check_structure(
    parts: _Parts, header: envelope_pb2.Header, max_payload_bytes: int
) -> datetime:
    if header.version != ENVELOPE_VERSION:
        raise _invalid(f"unsupported envelope version {header.version}")
    if not _MESSAGE_ID.fullmatch(header.message_id):
        raise _invalid("message id is not a canonical UUIDv7")
    if not header.sender:
        raise _invalid("header has no sender")
    recipients = list(header.recipients)
    if not recipients:
        raise _invalid("header has no recipients")
    if "" in recipients or any(a >= b for a, b in itertools.pairwise(recipients)):
        raise _invalid("header recipients are not sorted, unique and non-empty")
    if len(header.content_key_commitment) != prim.DIGEST_BYTES:
        raise _invalid("content key commitment has the wrong length")
    if not header.HasField("create_time"):
        raise _invalid("header has no create_time")
    try:
        create_time = _datetime(header.create_time)
        if header.HasField("expire_time"):
            _datetime(header.expire_time)
    except (ValueError, OverflowError):
        raise _invalid("header timestamp out of range") from None
    if [agency for agency, _, _ in parts.blocks] != recipients:
        raise _invalid(
            "key blocks do not match the header recipients "
            "(exactly one per recipient, in header order)"
        )
    for agency, key, wrapped in parts.blocks:
        if not key:
            raise _invalid(f"key block for {agency} has no key id")
        if len(wrapped) != prim.WRAPPED_KEY_BYTES:
            raise _invalid(f"key block for {agency} has the wrong length")
    if len(parts.ciphertext) < prim.CIPHERTEXT_OVERHEAD:
        raise _invalid("ciphertext shorter than nonce and tag")
    if len(parts.ciphertext) - prim.CIPHERTEXT_OVERHEAD > max_payload_bytes:
        raise PayloadTooLarge(f"payload is over the limit of {max_payload_bytes} bytes")
    if len(parts.signature) != prim.SIGNATURE_BYTES:
        raise _invalid("signature has the wrong length")
    if not parts.signing_key_id:
        raise _invalid("envelope has no signing key id")
    return create_time


#: what verify and open take: an envelope's bytes, its message, or it read once
EnvelopeLike = envelope_pb2.Envelope | bytes | bytearray | memoryview | Unverified


def _verify(
    envelope: EnvelopeLike,
    keys: PublicKeyLookup,
    now: datetime,
    max_payload_bytes: int,
    max_clock_skew: timedelta,
) -> _Verified:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(envelope, Unverified):
        limit = max_envelope_bytes(max_payload_bytes)
        if len(envelope.data) > limit:
            raise PayloadTooLarge(f"envelope is over the limit of {limit} bytes")
        unverified = envelope
    else:
        unverified = read(envelope, max_payload_bytes=max_payload_bytes)
    if unverified.problem is not None:
        raise _invalid(unverified.problem)
    if unverified.header_problem is not None:
        raise _invalid(unverified.header_problem)
    parts, header, data = unverified.parts, unverified.header, unverified.data
    create_time = _check_structure(parts, header, max_payload_bytes)
    where = f"message {header.message_id} from {header.sender!r}"
    if create_time > now + max_clock_skew:
        raise _invalid(f"{where}: created {create_time.isoformat()}, in the future")
    try:
        public_key = keys.signing_key(header.sender, parts.signing_key_id, create_time)
    except _LOOKUP_REFUSALS as exc:
        detail = getattr(exc, "audit_detail", "") or exc.message
        raise _invalid(
            f"{where}: signing key {parts.signing_key_id} not trusted at "
            f"{create_time.isoformat()}: {type(exc).__name__}: {detail}"
        ) from None
    digest = prim.envelope_digest(parts.header_bytes, parts.blocks, parts.ciphertext)
    try:
        prim.verify_digest(public_key, parts.signature, digest)
    except InvalidSignature:
        raise _invalid(f"{where}: signature does not verify") from None
    return _Verified(parts, header, data)


def verify(
    envelope: EnvelopeLike,
    keys: PublicKeyLookup,
    *,
    now: datetime,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    max_clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> envelope_pb2.Header:
    """Check structure and the sender's signature; return the signed header.

    No private key is needed and nothing is decrypted: this is what the
    gateway runs before routing. A successful verify says the sender (as
    trusted by ``keys`` at the header's create_time) sent exactly this
    header, these key blocks and this ciphertext; it says nothing about
    whether each key block opens, which only its recipient can check.

    Raises :class:`EnvelopeInvalid` (reason in ``audit_detail`` only) or
    :class:`PayloadTooLarge`.
    """
    return _verify(envelope, keys, now, max_payload_bytes, max_clock_skew).header


def open_envelope(
    envelope: EnvelopeLike,
    keys: PublicKeyLookup,
    *,
    recipient: str,
    encryption_key: x25519.X25519PrivateKey | Mapping[str, x25519.X25519PrivateKey],
    now: datetime,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    max_clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> Opened:
    """Verify, then decrypt as ``recipient``.

    ``encryption_key`` is the recipient's X25519 key, or a mapping from key
    id to key so that envelopes sealed just before a rotation still open
    with the previous key.

    Raises :class:`EnvelopeInvalid` (reason in ``audit_detail`` only) or
    :class:`PayloadTooLarge`.
    """
    checked = _verify(envelope, keys, now, max_payload_bytes, max_clock_skew)
    parts, header = checked.parts, checked.header
    where = f"message {header.message_id} from {header.sender!r}"
    recipients = list(header.recipients)
    if recipient not in recipients:
        raise _invalid(f"{where}: {recipient!r} is not among the recipients")
    # Structure checks guarantee block i is recipient i, exactly once.
    _, block_key_id, wrapped_key = parts.blocks[recipients.index(recipient)]
    if isinstance(encryption_key, x25519.X25519PrivateKey):
        private_key = encryption_key
    else:
        found = encryption_key.get(block_key_id)
        if found is None:
            raise _invalid(f"{where}: key block is for key {block_key_id}, which we do not hold")
        private_key = found
    try:
        content_key = prim.hpke_unwrap(
            wrapped_key,
            private_key,
            header_digest_value=prim.header_digest(parts.header_bytes),
            recipient=recipient,
        )
    except (InvalidTag, ValueError):
        # Only now name the key we hold: deriving its id costs a scalar
        # multiplication, which the successful path has no use for.
        own_id = key_id(raw_public(private_key.public_key()))
        if block_key_id != own_id:
            raise _invalid(
                f"{where}: key block is for key {block_key_id}, we hold {own_id}"
            ) from None
        raise _invalid(f"{where}: key block for {recipient!r} does not unwrap") from None
    if not prim.commitment_matches(content_key, header.content_key_commitment):
        raise _invalid(f"{where}: unwrapped key does not match the header's key commitment")
    try:
        payload = prim.aead_decrypt(content_key, parts.ciphertext, parts.header_bytes)
    except (InvalidTag, ValueError):
        raise _invalid(f"{where}: ciphertext does not decrypt") from None
    return Opened(header=header, payload=payload, envelope_sha256=envelope_sha256(checked.data))
