"""Seal and open envelopes: the only way anything crosses an agency boundary.

The API is deliberately small. :func:`seal` makes a signed, end-to-end
encrypted envelope for a set of recipient agencies; :func:`verify` checks an
envelope's structure and its sender's signature without any private key
(the gateway routes on that); :func:`open` does everything :func:`verify`
does, then unwraps the recipient's key block and decrypts.

Every way an envelope can be wrong, from garbage bytes to a signature by a
revoked agency to a key block that unwraps a different key than the header
commits to, ends in the same :class:`~intelshare.errors.EnvelopeInvalid`
with the same message. Only ``audit_detail`` says what happened, and it goes
to the audit log, never back to whoever sent the bytes: distinguishable
failures are an oracle (which check failed tells an attacker how far a
forgery got). The one exception is size: an oversize envelope raises
:class:`~intelshare.errors.PayloadTooLarge`, because refusing it before
parsing is a resource limit, not a verification result, and the caller
should learn it cannot retry as is.

Nothing here logs: payloads, keys and even which check failed are for the
caller to put in the audit log with its own context.

Expiry is not checked here: whether an expired alert may still be stored,
shown or only acknowledged is policy, and the policy layer has the header.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from intelshare.errors import (
    AgencyNotActive,
    AgencyUnknown,
    EnvelopeInvalid,
    InvalidArgument,
    KeyExpired,
    NotFound,
    PayloadTooLarge,
    VerificationError,
)
from intelshare.hazmat import envelope_primitives as prim
from intelshare.ids import key_id, new_message_id
from intelshare.keylookup import PublicKeyLookup
from intelshare.keys import raw_public
from intelshare.v1 import envelope_pb2

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "ENVELOPE_OVERHEAD_BYTES",
    "ENVELOPE_VERSION",
    "MAX_PAYLOAD_BYTES",
    "HeaderFields",
    "Opened",
    "RecipientKey",
    "Unverified",
    "disclose_content_key",
    "envelope_sha256",
    "lookup_recipient_keys",
    "max_envelope_bytes",
    "open",
    "open_disclosed",
    "open_envelope",
    "read",
    "seal",
    "verify",
]

ENVELOPE_VERSION = 1

#: Default payload limit. Alerts and case entries are structured records, not
#: file transfers; 1 MiB leaves room for a few photos while keeping a burst of
#: envelopes in a gateway queue within memory.
MAX_PAYLOAD_BYTES = 1024 * 1024

#: Room for everything an envelope carries besides the payload: header
#: (recipient list, categories, ids), key blocks (about 200 bytes per
#: recipient), signature and protobuf framing. 64 KiB is some 300 recipients,
#: far beyond any treaty, and bounds what an unauthenticated peer can make a
#: verifier parse.
ENVELOPE_OVERHEAD_BYTES = 64 * 1024

#: How far in the future an envelope's create_time may be. The sender's key
#: is looked up as of create_time, so a far-future time would ask the
#: directory about a moment it cannot vouch for yet.
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)

_OPAQUE = "envelope could not be verified or opened"
_UINT32_MAX = 2**32 - 1

#: The canonical UUIDv7 text form, the same set of strings as
#: ``intelshare.ids.is_message_id`` accepts (a test holds them equal); a
#: regular expression because parsing a UUID costs more than the rest of the
#: structure checks together, and verify runs on every envelope the gateway
#: routes.
_MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# google.protobuf.Timestamp's valid range: 0001-01-01 to 9999-12-31
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    delta = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def _datetime(value: timestamp_pb2.Timestamp) -> datetime:
    """Aware UTC datetime of a Timestamp; ValueError outside its valid range."""
    seconds, nanos = value.seconds, value.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos <= 999_999_999):
        raise ValueError("timestamp out of range")
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


#: (key id, public key) as returned by ``PublicKeyLookup.encryption_key``.
RecipientKey = tuple[str, x25519.X25519PublicKey]

#: Errors a PublicKeyLookup raises for "this key cannot vouch for this
#: message". Anything else (notably ``Unavailable``: the directory could not
#: be read) propagates, because it says nothing about the envelope and the
#: caller should retry rather than reject.
_LOOKUP_REFUSALS = (VerificationError, AgencyUnknown, AgencyNotActive, KeyExpired, NotFound)


def max_envelope_bytes(max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> int:
    """Largest serialized envelope accepted for a given payload limit."""
    return max_payload_bytes + prim.CIPHERTEXT_OVERHEAD + ENVELOPE_OVERHEAD_BYTES


def envelope_sha256(envelope_bytes: bytes) -> bytes:
    """SHA-256 of the envelope exactly as transmitted (receipts and evidence use it).

    Plain SHA-256, not domain-separated, so that anyone holding the stored
    bytes can check a receipt with standard tools.
    """
    return hashlib.sha256(envelope_bytes).digest()


def _sorted_unique(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        # a bare string is an iterable of characters: a classic mistake
        raise InvalidArgument("expected a collection of ids, got a single string")
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class HeaderFields:
    """What the caller decides about an envelope's header.

    Recipients and categories are sorted and de-duplicated on construction:
    the header is signed as bytes, so one set of recipients must have one
    encoding, and the gateway and recipients rely on the sorted order to
    match key blocks to recipients. ``message_id`` and ``create_time`` are
    generated by :func:`seal` when left out; give them only for test vectors
    or when re-sealing a message whose id is already known.
    """

    sender: str
    recipients: tuple[str, ...]
    treaty_id: str
    treaty_version: int
    kind: envelope_pb2.MessageKind.ValueType
    handling: envelope_pb2.HandlingCode.ValueType
    tlp: envelope_pb2.Tlp.ValueType
    categories: tuple[str, ...] = ()
    expire_time: datetime | None = None
    reference_id: str = ""
    case_id: str = ""
    message_id: str | None = None
    create_time: datetime | None = None
    #: the record kind of a MESSAGE_KIND_RECORD / RECORD_UPDATE (a treaty kind name)
    record_kind: str = ""
    #: a record released after review: who approved it (intelshare.review)
    review: envelope_pb2.ReviewAttestation | None = None
    #: a record passed on by a recipient: where it came from (intelshare.onward)
    provenance: envelope_pb2.Provenance | None = None
    #: a consent request, grant or refusal: what it is about
    consent: envelope_pb2.OnwardConsent | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipients", _sorted_unique(self.recipients))
        object.__setattr__(self, "categories", _sorted_unique(self.categories))

    @classmethod
    def from_header(cls, header: envelope_pb2.Header) -> HeaderFields:
        """The fields of a verified header, e.g. to reply or to re-check a vector."""
        return cls(
            sender=header.sender,
            recipients=tuple(header.recipients),
            treaty_id=header.treaty_id,
            treaty_version=header.treaty_version,
            kind=header.kind,
            handling=header.handling,
            tlp=header.tlp,
            categories=tuple(header.categories),
            expire_time=(_datetime(header.expire_time) if header.HasField("expire_time") else None),
            reference_id=header.reference_id,
            case_id=header.case_id,
            record_kind=header.record_kind,
            message_id=header.message_id,
            create_time=_datetime(header.create_time),
            review=header.review if header.HasField("review") else None,
            provenance=header.provenance if header.HasField("provenance") else None,
            consent=header.consent if header.HasField("consent") else None,
        )


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


def lookup_recipient_keys(
    keys: PublicKeyLookup, recipients: Iterable[str]
) -> dict[str, RecipientKey]:
    """Current encryption keys of ``recipients``, as :func:`seal` wants them.

    Whatever the lookup raises (unknown or inactive agency) propagates: a
    sender must not silently drop a recipient.
    """
    return {agency: keys.encryption_key(agency) for agency in _sorted_unique(recipients)}


# --- seal --------------------------------------------------------------------


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


# --- verify / open -------------------------------------------------------------


def _invalid(detail: str) -> EnvelopeInvalid:
    return EnvelopeInvalid(_OPAQUE, audit_detail=detail)


@dataclass(frozen=True)
class _Parts:
    """An envelope's fields, read out of protobuf once.

    Reading a field of a parsed protobuf message allocates a new Python
    object on every access (about 0.5 µs per key block); every check and the
    digest work on these plain values instead.
    """

    header_bytes: bytes
    #: (agency_id, key_id, wrapped_key) per block; plain tuples, as building
    #: a NamedTuple per block costs as much again as reading the fields
    blocks: list[tuple[str, str, bytes]]
    ciphertext: bytes
    signature: bytes
    signing_key_id: str


@dataclass(frozen=True)
class _Verified:
    parts: _Parts
    header: envelope_pb2.Header
    data: bytes


@dataclass(frozen=True)
class Unverified:
    """An envelope read once, nothing checked but that it parses: what :func:`read` returns.

    For a caller that looks at the header before the signature is checked
    (the gateway's admission refuses a wrong sender or an expired message
    before any signature work; a recipient skips a message it stored
    already) and then verifies or opens without parsing again:
    :func:`verify` and :func:`open_envelope` take it in place of the bytes.
    ``header`` is **unverified** until then.
    """

    #: the envelope's bytes: the ones verified, hashed and stored
    data: bytes
    parts: _Parts
    header: envelope_pb2.Header
    #: why the encoding is refused (not canonical), raised by verify in its turn
    problem: str | None
    header_problem: str | None


def read(
    envelope: envelope_pb2.Envelope | bytes | bytearray | memoryview,
    *,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    reencode: bool = False,
) -> Unverified:
    """Parse an envelope and its header once; :class:`EnvelopeInvalid` when either does not parse.

    ``reencode=True`` reads the envelope as a protobuf field that the
    receiver of a gRPC message would have parsed and serialized again (the
    gateway's ``SubmitEnvelope``, a recipient's ``StreamInbox``): bytes the
    generated code would write differently (fields in another order,
    repeated) are taken in that code's encoding, as they were when those
    messages were parsed whole. Canonical bytes, the usual case, are kept as
    they are and not encoded a second time.
    """
    parts, data, problem = _parse_envelope(
        envelope, max_envelope_bytes(max_payload_bytes), reencode=reencode
    )
    try:
        header = envelope_pb2.Header.FromString(parts.header_bytes)
    except (DecodeError, ValueError, RecursionError):
        raise _invalid(problem or "header bytes do not parse") from None
    header.DiscardUnknownFields()
    header_problem = None
    if header.SerializeToString(deterministic=True) != parts.header_bytes:
        header_problem = "header encoding is not canonical (unknown, repeated or reordered fields)"
    return Unverified(data, parts, header, problem, header_problem)


def _parse_envelope(
    envelope: envelope_pb2.Envelope | bytes | bytearray | memoryview,
    limit: int,
    *,
    reencode: bool = False,
) -> tuple[_Parts, bytes, str | None]:
    if type(envelope) is bytes:  # the common case, without ABC checks
        data = envelope
        if len(data) > limit:
            raise PayloadTooLarge(f"envelope is over the limit of {limit} bytes")
    elif isinstance(envelope, envelope_pb2.Envelope):
        if envelope.ByteSize() > limit:
            raise PayloadTooLarge(f"envelope is over the limit of {limit} bytes")
        # Work on bytes from here on, so that what is hashed, checked and
        # decrypted is one immutable value, not a message the caller may share.
        data = envelope.SerializeToString()
    elif isinstance(envelope, bytes | bytearray | memoryview):
        data = bytes(envelope)
        if len(data) > limit:
            raise PayloadTooLarge(f"envelope is over the limit of {limit} bytes")
    else:
        raise TypeError(f"expected Envelope or bytes, got {type(envelope).__name__}")
    try:
        parsed = envelope_pb2.Envelope.FromString(data)
    except (DecodeError, ValueError, RecursionError):
        raise _invalid("envelope bytes do not parse") from None
    # One envelope, one encoding: unknown fields, duplicates or reordering
    # would let anyone make new envelope bytes (new envelope_sha256, new
    # gateway digest) from a signed envelope without touching the signature.
    parsed.DiscardUnknownFields()
    canonical = parsed.SerializeToString()
    if canonical != data and reencode:
        # What parsing the enclosing message and serializing this field gave:
        # the generated code's encoding, unknown fields kept (refused below).
        data = envelope_pb2.Envelope.FromString(data).SerializeToString()
    problem = None
    if canonical != data:
        problem = "envelope encoding is not canonical (unknown, repeated or reordered fields)"
    parts = _Parts(
        header_bytes=parsed.header_bytes,
        blocks=[(b.agency_id, b.key_id, b.wrapped_key) for b in parsed.key_blocks],
        ciphertext=parsed.ciphertext,
        signature=parsed.signature,
        signing_key_id=parsed.signing_key_id,
    )
    return parts, data, problem


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


# --- forwarding with the author's signature (disclosed content keys) ----------------
#
# An envelope's content key, unwrapped by a recipient and handed to an agency
# that was not among the recipients, opens that one envelope and nothing
# else; checked against the signed commitment, the plaintext stays bound to
# the author's signature (see node.sharing.evidence for the node's use).

_FORWARDED = "forwarded envelope could not be verified or opened"


def _forwarded(detail: str) -> EnvelopeInvalid:
    return EnvelopeInvalid(_FORWARDED, audit_detail=detail)


def disclose_content_key(
    envelope_bytes: bytes,
    *,
    recipient: str,
    encryption_keys: Mapping[str, x25519.X25519PrivateKey],
) -> bytes:
    """The content key of an envelope addressed to ``recipient``, checked against its commitment.

    ``envelope_bytes`` is an envelope the caller received and verified when
    it arrived (kept verbatim); ``encryption_keys`` maps key ids to the
    recipient's X25519 keys, so envelopes sealed before a key rotation work.
    """
    try:
        env = envelope_pb2.Envelope.FromString(envelope_bytes)
        header = envelope_pb2.Header.FromString(env.header_bytes)
    except (DecodeError, ValueError, RecursionError):
        raise _forwarded("envelope or header bytes do not parse") from None
    block = next((b for b in env.key_blocks if b.agency_id == recipient), None)
    if block is None:
        raise _forwarded(f"message {header.message_id}: no key block for {recipient}")
    private_key = encryption_keys.get(block.key_id)
    if private_key is None:
        raise _forwarded(f"message {header.message_id}: key block is for key {block.key_id}")
    try:
        key = prim.hpke_unwrap(
            block.wrapped_key,
            private_key,
            header_digest_value=prim.header_digest(env.header_bytes),
            recipient=recipient,
        )
    except (InvalidTag, ValueError):
        raise _forwarded(f"message {header.message_id}: key block does not unwrap") from None
    if not prim.commitment_matches(key, header.content_key_commitment):
        raise _forwarded(f"message {header.message_id}: key does not match the commitment")
    return key


def open_disclosed(
    envelope_bytes: bytes,
    content_key: bytes,
    keys: PublicKeyLookup,
    *,
    now: datetime,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> Opened:
    """Verify the sender's signature, check ``content_key`` against the signed commitment, decrypt.

    What :func:`open_envelope` returns to a recipient: the signed header, the
    payload the sender encrypted, the digest of the exact envelope bytes.
    """
    checked = _verify(envelope_bytes, keys, now, max_payload_bytes, DEFAULT_CLOCK_SKEW)
    header, parts = checked.header, checked.parts
    where = f"message {header.message_id} from {header.sender!r}"
    if len(content_key) != prim.CONTENT_KEY_BYTES:
        raise _forwarded(f"{where}: disclosed key has the wrong length")
    if not prim.commitment_matches(content_key, header.content_key_commitment):
        raise _forwarded(f"{where}: disclosed key does not match the signed commitment")
    try:
        payload = prim.aead_decrypt(content_key, parts.ciphertext, parts.header_bytes)
    except (InvalidTag, ValueError):
        raise _forwarded(f"{where}: ciphertext does not decrypt with the disclosed key") from None
    return Opened(header=header, payload=payload, envelope_sha256=envelope_sha256(checked.data))


#: ``open`` reads naturally at call sites (``envelope.open(...)``); the long
#: name is there for code that imports names directly next to the builtin.
open = open_envelope
