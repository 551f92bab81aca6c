"""Signed tree heads and the proofs against them, checked without a database.

A *signed tree head* commits its log to a tree: the log id, the tree size,
the RFC 9162 root and a timestamp, signed with the log owner's Ed25519 key
over :func:`head_signing_input` (fixed-width fields behind a domain
separator, :data:`HEAD_SIGNATURE_CONTEXT`, so that a head signature is never
valid as any other signature of the same agency key).

Everything here needs only the head, the proof and the signer's public key:
:func:`verify_tree_head` (signature and shape), :func:`verify_inclusion`
(an entry's leaf at its index: what a gateway receipt carries) and
:func:`verify_consistency` (a later head extends an earlier one). A receipt
holder or an auditor checks a log with these, never trusting its database;
:class:`~intelshare.audit.log.AuditLog` signs the heads and serves the proofs.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.audit import merkle
from intelshare.errors import AuditLogInvalid, InvalidArgument
from intelshare.ids import key_id as compute_key_id
from intelshare.keys import raw_public
from intelshare.v1.receipt_pb2 import SignedTreeHead

__all__ = [
    "HEAD_SIGNATURE_CONTEXT",
    "head_signing_input",
    "verify_consistency",
    "verify_inclusion",
    "verify_tree_head",
]

HEAD_SIGNATURE_CONTEXT = b"intelshare.v1.audit.SignedTreeHead\x00"
"""Domain separator prefixed to every signed tree head, so that a head
signature can never be replayed as an envelope or treaty signature of the
same agency key, nor the other way round."""


def head_signing_input(log_id: str, tree_size: int, root_hash: bytes, ts: Timestamp) -> bytes:
    """The exact bytes an audit tree head signature covers.

    ``HEAD_SIGNATURE_CONTEXT || u16 len(log_id) || log_id (UTF-8) ||
    u64 tree_size || root_hash (32) || i64 seconds || u32 nanos``, all
    big-endian: fixed widths and a length prefix so no two heads share an
    encoding, independent of protobuf serialization (which is not canonical).
    """
    lid = log_id.encode("utf-8")
    if not lid or len(lid) > 255:
        raise InvalidArgument("log id must be 1..255 bytes of UTF-8")
    if len(root_hash) != merkle.HASH_SIZE:
        raise InvalidArgument("root hash must be 32 bytes")
    if not 0 <= tree_size < 1 << 64 or not 0 <= ts.nanos < 10**9:
        raise InvalidArgument("tree size or timestamp out of range")
    return b"".join(
        (
            HEAD_SIGNATURE_CONTEXT,
            struct.pack(">H", len(lid)),
            lid,
            struct.pack(">Q", tree_size),
            root_hash,
            struct.pack(">qI", ts.seconds, ts.nanos),
        )
    )


def verify_tree_head(sth: SignedTreeHead, public_key: Ed25519PublicKey) -> None:
    """Check a tree head's signature and shape; raise :class:`AuditLogInvalid` if bad.

    The head must name the key that signed it (``key_id`` as the directory
    computes it), and a head of size 0 must carry the empty-tree root.
    """
    expected_kid = compute_key_id(raw_public(public_key))
    if sth.key_id != expected_kid:
        raise AuditLogInvalid(f"tree head names key {sth.key_id!r}, not {expected_kid!r}")
    try:
        message = head_signing_input(sth.log_id, sth.tree_size, sth.root_hash, sth.timestamp)
    except InvalidArgument as exc:
        raise AuditLogInvalid(f"malformed tree head: {exc.message}") from None
    if sth.tree_size == 0 and sth.root_hash != merkle.EMPTY_ROOT:
        raise AuditLogInvalid("tree head of size 0 with a non-empty root")
    try:
        public_key.verify(sth.signature, message)
    except InvalidSignature:
        raise AuditLogInvalid(
            f"tree head signature of {sth.log_id!r} at size {sth.tree_size} does not verify"
        ) from None


def verify_inclusion(
    leaf_bytes: bytes,
    index: int,
    sth: SignedTreeHead,
    proof: Sequence[bytes],
    *,
    public_key: Ed25519PublicKey | None = None,
) -> None:
    """Check that ``leaf_bytes`` is entry ``index`` of the tree ``sth`` commits to.

    This checks the proof against the head's root only; pass ``public_key``
    (or call :func:`verify_tree_head` yourself) to also check who signed it.
    Raises :class:`AuditLogInvalid` on any mismatch.
    """
    if public_key is not None:
        verify_tree_head(sth, public_key)
    ok = merkle.verify_inclusion_proof(
        merkle.leaf_hash(leaf_bytes), index, sth.tree_size, list(proof), sth.root_hash
    )
    if not ok:
        raise AuditLogInvalid(
            f"entry {index} is not proven to be in {sth.log_id!r} at size {sth.tree_size}"
        )


def verify_consistency(
    old_sth: SignedTreeHead,
    new_sth: SignedTreeHead,
    proof: Sequence[bytes],
    *,
    public_key: Ed25519PublicKey | None = None,
) -> None:
    """Check that ``new_sth``'s tree extends ``old_sth``'s (the log only ever grew).

    Raises :class:`AuditLogInvalid` when the heads are of different logs,
    the new one is smaller, or the proof does not connect the two roots.
    """
    if public_key is not None:
        verify_tree_head(old_sth, public_key)
        verify_tree_head(new_sth, public_key)
    if old_sth.log_id != new_sth.log_id:
        raise AuditLogInvalid(f"tree heads of two logs: {old_sth.log_id!r}, {new_sth.log_id!r}")
    ok = merkle.verify_consistency_proof(
        old_sth.tree_size, new_sth.tree_size, old_sth.root_hash, new_sth.root_hash, list(proof)
    )
    if not ok:
        raise AuditLogInvalid(
            f"{old_sth.log_id!r} at size {new_sth.tree_size} is not proven to extend "
            f"size {old_sth.tree_size}"
        )
