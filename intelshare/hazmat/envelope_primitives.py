"""Hazardous materials: the cryptographic steps of an intelshare envelope.

Use :mod:`intelshare.envelope`. The functions here neither parse nor
validate envelopes, consult the directory, or turn failures into the one
opaque error the rest of the system expects; they raise the library's own
exceptions (``InvalidTag``, ``InvalidSignature``, ``ValueError``) and leave
the policy to the caller.

Every hash and every HPKE ``info`` starts with its own domain-separation
label, so that a digest computed for one purpose can never be replayed as
the digest of another (a header digest is not an envelope digest, and a key
wrapped for one recipient of one header cannot be unwrapped under another).
Variable-length inputs are framed with a 64-bit big-endian length prefix:
without framing, ``("ab", "c")`` and ``("a", "bc")`` would hash alike, and an
attacker could move bytes between adjacent fields without changing the
signature.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from typing import NamedTuple

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: AES-256: the content key is fresh per envelope, so its size is about
#: margin (multi-target and long-term confidentiality), not about rate.
CONTENT_KEY_BYTES = 32
#: 96-bit random nonce. A key encrypts exactly one payload, so the nonce never
#: repeats under a key; it is random anyway so that a bug that reused a key
#: would not also reuse the nonce.
NONCE_BYTES = 12
TAG_BYTES = 16
DIGEST_BYTES = 32
SIGNATURE_BYTES = 64
#: X25519 encapsulated key of HPKE (``Nenc`` in RFC 9180).
HPKE_ENC_BYTES = 32
#: What :func:`hpke_wrap` returns: ``enc || AEAD(content key)``.
WRAPPED_KEY_BYTES = HPKE_ENC_BYTES + CONTENT_KEY_BYTES + TAG_BYTES
#: Smallest ciphertext :func:`aead_encrypt` can produce (empty payload).
CIPHERTEXT_OVERHEAD = NONCE_BYTES + TAG_BYTES

LABEL_CONTENT_KEY_COMMITMENT = b"intelshare/v1 content-key commitment"
LABEL_HEADER_DIGEST = b"intelshare/v1 header digest"
LABEL_KEY_WRAP = b"intelshare/v1 key wrap"
LABEL_ENVELOPE_DIGEST = b"intelshare/v1 envelope"

#: RFC 9180 suite of the design: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
#: AES-256-GCM, base mode, single shot with empty AAD (the binding lives in
#: ``info``).
HPKE_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

_U64 = struct.Struct(">Q")


def _framed(*parts: bytes) -> bytes:
    return b"".join(_U64.pack(len(p)) + p for p in parts)


# --- content encryption ------------------------------------------------------


def new_content_key() -> bytes:
    """A fresh random content key; one per envelope, never reused."""
    return os.urandom(CONTENT_KEY_BYTES)


def aead_encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a random nonce, returned as ``nonce || ciphertext || tag``."""
    if len(key) != CONTENT_KEY_BYTES:
        raise ValueError("content key must be 32 bytes")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_decrypt(key: bytes, data: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`aead_encrypt`; raises ``InvalidTag`` on any change."""
    if len(key) != CONTENT_KEY_BYTES:
        raise ValueError("content key must be 32 bytes")
    if len(data) < CIPHERTEXT_OVERHEAD:
        raise ValueError("ciphertext shorter than nonce and tag")
    view = memoryview(data)  # slicing bytes would copy a payload of up to a MiB
    return AESGCM(key).decrypt(view[:NONCE_BYTES], view[NONCE_BYTES:], aad)


def key_commitment(key: bytes) -> bytes:
    """SHA-256 commitment to a content key.

    AES-GCM is not key-committing: a malicious sender can craft one
    ciphertext that decrypts to different plaintexts under different keys
    and wrap a different key for each recipient. The header carries this
    commitment and every recipient checks its unwrapped key against it, so
    all recipients provably read the same payload.
    """
    return hashlib.sha256(_framed(LABEL_CONTENT_KEY_COMMITMENT, key)).digest()


def commitment_matches(key: bytes, commitment: bytes) -> bool:
    """Constant-time check of :func:`key_commitment`."""
    return hmac.compare_digest(key_commitment(key), commitment)


# --- key wrapping ------------------------------------------------------------


def header_digest(header_bytes: bytes) -> bytes:
    """Domain-separated SHA-256 of the serialized header, bound into each key wrap."""
    return hashlib.sha256(_framed(LABEL_HEADER_DIGEST, header_bytes)).digest()


def wrap_info(header_digest_value: bytes, recipient: str) -> bytes:
    """HPKE ``info`` for one recipient of one header.

    Binding the header digest means a key block lifted into another envelope
    does not unwrap there; binding the recipient id means a block addressed
    to agency A cannot be relabelled as agency B's (for a shared key, e.g.
    after a directory mistake) and still open.
    """
    return _framed(LABEL_KEY_WRAP, header_digest_value, recipient.encode("utf-8"))


def hpke_wrap(
    content_key: bytes,
    recipient_public: x25519.X25519PublicKey,
    *,
    header_digest_value: bytes,
    recipient: str,
) -> bytes:
    """Wrap ``content_key`` for one recipient: ``enc || AEAD ciphertext``."""
    return HPKE_SUITE.encrypt(
        content_key, recipient_public, wrap_info(header_digest_value, recipient)
    )


def hpke_unwrap(
    wrapped: bytes,
    recipient_private: x25519.X25519PrivateKey,
    *,
    header_digest_value: bytes,
    recipient: str,
) -> bytes:
    """Inverse of :func:`hpke_wrap`; raises ``InvalidTag`` if anything differs."""
    if len(wrapped) != WRAPPED_KEY_BYTES:
        raise ValueError("wrapped key has the wrong length")
    return HPKE_SUITE.decrypt(wrapped, recipient_private, wrap_info(header_digest_value, recipient))


# --- signature ---------------------------------------------------------------


class KeyBlockParts(NamedTuple):
    """The three signed fields of a key block, in signing order.

    :func:`envelope_digest` takes plain ``(agency_id, key_id, wrapped_key)``
    tuples as well; this is the readable way to build one.
    """

    agency_id: str
    key_id: str
    wrapped_key: bytes


def envelope_digest(
    header_bytes: bytes, key_blocks: Sequence[tuple[str, str, bytes]], ciphertext: bytes
) -> bytes:
    """The digest the sender signs: header, every key block in order, ciphertext.

    Signing key blocks too (not only header and ciphertext) is what lets the
    gateway, which can open none of them, refuse a block that was swapped,
    dropped or added in transit, and lets a recipient keep the envelope as
    evidence of exactly what the sender sent to whom.
    """
    # Everything but the ciphertext is small: frame it into one buffer and
    # hash it in one call (per-field update() calls dominate at 20 blocks);
    # the ciphertext, up to a MiB, is hashed in place, not copied.
    pieces = [_U64.pack(len(LABEL_ENVELOPE_DIGEST)), LABEL_ENVELOPE_DIGEST]
    pieces += [_U64.pack(len(header_bytes)), header_bytes, _U64.pack(len(key_blocks))]
    for agency, key, wrapped in key_blocks:
        agency_id = agency.encode("utf-8")
        key_id = key.encode("utf-8")
        pieces += [_U64.pack(len(agency_id)), agency_id, _U64.pack(len(key_id)), key_id]
        pieces += [_U64.pack(len(wrapped)), wrapped]
    pieces.append(_U64.pack(len(ciphertext)))
    h = hashlib.sha256(b"".join(pieces))
    h.update(ciphertext)
    return h.digest()


def sign_digest(signing_key: ed25519.Ed25519PrivateKey, digest: bytes) -> bytes:
    """Ed25519 over an envelope digest (deterministic: same key and digest, same bytes)."""
    if len(digest) != DIGEST_BYTES:
        raise ValueError("digest must be 32 bytes")
    return signing_key.sign(digest)


def verify_digest(public_key: ed25519.Ed25519PublicKey, signature: bytes, digest: bytes) -> None:
    """Raise ``InvalidSignature`` unless ``signature`` is the key's over ``digest``."""
    public_key.verify(signature, digest)
