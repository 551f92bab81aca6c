"""Tamper-evident audit log: an RFC 9162 Merkle tree with signed tree heads.

What is logged
    Every node and the gateway record what happened to a message, never what
    it said: submitted, delivered, opened, read by an officer, shared,
    refused by policy, purged — each entry an event name plus header
    metadata (message id, agencies, treaty, kind, digests, the precise reason
    of a refusal). Payloads and decrypted fields never enter the log: it is
    append-only and cannot forget, while treaties impose retention limits on
    content.

Why a Merkle tree
    A plain table can be rewritten by whoever runs the database. Hashing the
    entries into an RFC 9162 tree and signing its root (a *signed tree head*)
    with the agency's Ed25519 key turns the log into a commitment others can
    hold the operator to: an *inclusion proof* (O(log n) hashes) shows that
    an entry is in the tree a head commits to — this is what a gateway
    receipt carries, so a sender can prove to a third party that the gateway
    accepted its message — and a *consistency proof* shows that a later head
    extends an earlier one, i.e. that nothing was removed or rewritten in
    between. Both are the certificate-transparency algorithms, so they are
    well studied and checked here against the published test vectors.

How to verify
    * :meth:`AuditLog.verify` recomputes every leaf hash and the whole tree
      from scratch and checks the stored subtree hashes, the stored frontier
      and every signed head (signature and root) against it; it raises
      :class:`~intelshare.errors.AuditLogInvalid` naming the first bad entry,
      node or head.
    * Offline, with nothing but the signer's public key:
      :func:`verify_tree_head`, :func:`verify_inclusion` (a receipt's leaf,
      index, head and proof) and :func:`verify_consistency` (two heads).

:mod:`intelshare.audit.merkle` holds the pure tree functions,
:mod:`intelshare.audit.leaves` the canonical leaf format,
:mod:`intelshare.audit.heads` the tree heads' signing input and the
verifiers above, :mod:`intelshare.audit.tables` the SQL tables,
:mod:`intelshare.audit.append` the statements an append writes with, and
:mod:`intelshare.audit.log` the :class:`AuditLog` that puts them together.
Imports run one way, in that order: each module imports only modules named
before it (and ``append_v1``, the database's append function, which imports
none).
"""

from intelshare.audit.heads import verify_consistency, verify_inclusion, verify_tree_head
from intelshare.audit.leaves import FieldValue
from intelshare.audit.log import Appended, AuditLog, VerifyReport
from intelshare.audit.tables import audit_metadata, create_tables

__all__ = [
    "Appended",
    "AuditLog",
    "FieldValue",
    "VerifyReport",
    "audit_metadata",
    "create_tables",
    "verify_consistency",
    "verify_inclusion",
    "verify_tree_head",
]
