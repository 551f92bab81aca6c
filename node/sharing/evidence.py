"""Forwarding a signed case entry to an agency that was not among its recipients.

A case entry travels in an envelope its author signed, end-to-end encrypted
for the members of the moment. When the owner later adds a member, that
member must receive the history *and* be able to show, then and years
later, that each entry is exactly what its author wrote — not merely what
the owner says the author wrote.

The envelope format already makes this possible without a new signature
scheme. The author's signature covers the header, the key blocks and the
ciphertext; the header carries a commitment to the content key. So the
owner, which received the entry (its node holds the author's envelope
verbatim and a key block addressed to it), forwards two things inside its
own envelope to the new member:

* the author's envelope, byte for byte, and
* that envelope's content key, unwrapped from the owner's key block.

The new member verifies the author's signature against the federation
directory, checks the disclosed key against the signed commitment, and
decrypts: the plaintext is then bound to the author's signature as firmly
as if it had been addressed to the new member in the first place. Both
pieces are stored with the entry, so the check can be repeated by anyone
holding them and the directory.

Disclosing a content key opens that one envelope and nothing else (every
envelope has a fresh key). What the key opens is what the author shared
with the case under the case's treaty; the owner forwards an entry this
way only while the current treaty version still allows every field in it
(see :mod:`node.kinds.cases`).

This module is the one place in the node below the safe envelope API: it
uses :mod:`intelshare.hazmat.envelope_primitives` for the key unwrap, the
commitment check and the AEAD, which are exactly the steps
:func:`intelshare.envelope.open_envelope` performs, split so the key can be
handed over between them. Every failure is one
:class:`~intelshare.errors.EnvelopeInvalid`, with the cause in
``audit_detail`` only, like the envelope module.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519
from google.protobuf.message import DecodeError

from intelshare.envelope import MAX_PAYLOAD_BYTES, Opened, envelope_sha256, verify
from intelshare.errors import EnvelopeInvalid
from intelshare.hazmat import envelope_primitives as prim
from intelshare.keylookup import PublicKeyLookup
from intelshare.v1 import envelope_pb2

_OPAQUE = "forwarded envelope could not be verified or opened"


def _invalid(detail: str) -> EnvelopeInvalid:
    return EnvelopeInvalid(_OPAQUE, audit_detail=detail)


def _parse(envelope_bytes: bytes) -> tuple[envelope_pb2.Envelope, envelope_pb2.Header]:
    try:
        env = envelope_pb2.Envelope.FromString(envelope_bytes)
        header = envelope_pb2.Header.FromString(env.header_bytes)
    except (DecodeError, ValueError, RecursionError):
        raise _invalid("envelope or header bytes do not parse") from None
    return env, header


def disclose_content_key(
    envelope_bytes: bytes,
    *,
    recipient: str,
    encryption_keys: Mapping[str, x25519.X25519PrivateKey],
) -> bytes:
    """The content key of an envelope addressed to ``recipient``, checked against its commitment.

    ``envelope_bytes`` is an envelope this node received and verified when it
    arrived (kept verbatim); ``encryption_keys`` maps key ids to this
    agency's X25519 keys, so envelopes sealed before a key rotation work.
    """
    env, header = _parse(envelope_bytes)
    block = next((b for b in env.key_blocks if b.agency_id == recipient), None)
    if block is None:
        raise _invalid(f"message {header.message_id}: no key block for {recipient}")
    private_key = encryption_keys.get(block.key_id)
    if private_key is None:
        raise _invalid(f"message {header.message_id}: key block is for key {block.key_id}")
    try:
        key = prim.hpke_unwrap(
            block.wrapped_key,
            private_key,
            header_digest_value=prim.header_digest(env.header_bytes),
            recipient=recipient,
        )
    except (InvalidTag, ValueError):
        raise _invalid(f"message {header.message_id}: key block does not unwrap") from None
    if not prim.commitment_matches(key, header.content_key_commitment):
        raise _invalid(f"message {header.message_id}: key does not match the commitment")
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

    The result is what :func:`intelshare.envelope.open_envelope` returns to
    a recipient: the signed header, the payload the sender encrypted, and
    the digest of the exact envelope bytes.
    """
    header = verify(envelope_bytes, keys, now=now, max_payload_bytes=max_payload_bytes)
    env, _ = _parse(envelope_bytes)
    where = f"message {header.message_id} from {header.sender!r}"
    if len(content_key) != prim.CONTENT_KEY_BYTES:
        raise _invalid(f"{where}: disclosed key has the wrong length")
    if not prim.commitment_matches(content_key, header.content_key_commitment):
        raise _invalid(f"{where}: disclosed key does not match the signed commitment")
    try:
        payload = prim.aead_decrypt(content_key, env.ciphertext, env.header_bytes)
    except (InvalidTag, ValueError):
        raise _invalid(f"{where}: ciphertext does not decrypt with the disclosed key") from None
    return Opened(header=header, payload=payload, envelope_sha256=envelope_sha256(envelope_bytes))
