"""Reading an envelope once: parse the envelope and its header, check nothing else.

:func:`read` is the first step of verifying and opening, and a step of its
own for a caller that looks at the (still unverified) header before paying
for the signature check. Bytes that do not parse end in the one opaque
:class:`~intelshare.errors.EnvelopeInvalid` (see :mod:`intelshare.envelope`),
which :func:`_invalid` makes for the verify side too; oversize bytes in
:class:`~intelshare.errors.PayloadTooLarge`, before any parsing.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from intelshare.envelope.limits import MAX_PAYLOAD_BYTES, max_envelope_bytes
from intelshare.errors import EnvelopeInvalid, PayloadTooLarge
from intelshare.v1 import envelope_pb2

_OPAQUE = "envelope could not be verified or opened"


def _invalid(detail: str) -> EnvelopeInvalid:
    return EnvelopeInvalid(_OPAQUE, audit_detail=detail)


@dataclass(frozen=True)
class _Parts:
    """An envelope's fields, read out of protobuf once.

    Reading a field of a parsed protobuf message allocates a new Python
    object on every access; every check and the digest work on these plain
    values instead.
    """

    header_bytes: bytes
    #: (agency_id, key_id, wrapped_key) per block; plain tuples, as building
    #: a NamedTuple per block costs as much again as reading the fields
    blocks: list[tuple[str, str, bytes]]
    ciphertext: bytes
    signature: bytes
    signing_key_id: str


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
