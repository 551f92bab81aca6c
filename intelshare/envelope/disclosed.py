"""Forwarding with the author's signature: disclosed content keys.

An envelope's content key, unwrapped by a recipient and handed to an agency
that was not among the recipients, opens that one envelope and nothing
else; checked against the signed commitment, the plaintext stays bound to
the author's signature (see node.sharing.evidence for the node's use).

A key that does not check out raises
:class:`~intelshare.errors.EnvelopeInvalid` with a message of its own
(``_FORWARDED``); the signature and structure checks shared with
:func:`~intelshare.envelope.opening.open_envelope` raise theirs. Either way
what failed is in ``audit_detail`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519
from google.protobuf.message import DecodeError

from intelshare.envelope.limits import DEFAULT_CLOCK_SKEW, MAX_PAYLOAD_BYTES
from intelshare.envelope.opening import Opened, _verify, envelope_sha256
from intelshare.errors import EnvelopeInvalid
from intelshare.hazmat import envelope_primitives as prim
from intelshare.keylookup import PublicKeyLookup
from intelshare.v1 import envelope_pb2

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
