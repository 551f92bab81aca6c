"""Party signatures over a treaty document, and whether a treaty is in force.

A treaty is in force only when every party has signed its canonical document
validly and the date is inside its validity window. Signatures are checked
for every envelope that names a treaty, so the verified (key, signature,
message) triples are remembered here, in this module only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf.message import DecodeError

from intelshare.errors import IntelshareError, InvalidArgument, Malformed, NotAParty
from intelshare.keylookup import PublicKeyLookup
from intelshare.treaty.model import Treaty
from intelshare.treaty.timestamps import _aware, _from_timestamp, _timestamp
from intelshare.v1 import treaty_pb2

#: Domain-separation label of treaty signatures (followed by one NUL byte).
SIGNATURE_LABEL: Final = b"intelshare/v1 treaty"


def signing_message(document: bytes) -> bytes:
    """What a party's Ed25519 key signs: the label, a NUL, SHA-256 of the document."""
    return SIGNATURE_LABEL + b"\x00" + hashlib.sha256(document).digest()


def document_digest(document: bytes) -> str:
    """Hex SHA-256 of a treaty document, for people to compare what they sign."""
    return hashlib.sha256(document).hexdigest()


def sign(
    treaty_doc_bytes: bytes,
    agency_id: str,
    signing_key: ed25519.Ed25519PrivateKey,
    key_id: str,
    *,
    sign_time: datetime | None = None,
) -> treaty_pb2.PartySignature:
    """One party's signature over a canonical treaty document.

    The document is parsed first (canonical form required), and a non-party
    is refused with :class:`~intelshare.errors.NotAParty`: a signature that
    could never count is a mistake worth reporting at signing time.
    ``sign_time`` is recorded (not signed); verification looks the key up at
    that time, so a treaty stays verifiable after the party rotates its key.
    """
    treaty = Treaty.from_canonical(treaty_doc_bytes)
    if not treaty.is_party(agency_id):
        raise NotAParty(
            f"{agency_id} is not a party of treaty {treaty.label}",
            metadata={"agency_id": agency_id, "treaty_id": treaty.id},
        )
    when = datetime.now(UTC) if sign_time is None else _aware(sign_time, "sign_time")
    return treaty_pb2.PartySignature(
        agency_id=agency_id,
        key_id=key_id,
        signature=signing_key.sign(signing_message(treaty_doc_bytes)),
        sign_time=_timestamp(when),
    )


class SignedTreatyDoc:
    """A canonical treaty document with the party signatures collected so far.

    Immutable: adding a signature returns a new object. The document is
    parsed (and its canonical form checked) on construction, so holding a
    ``SignedTreatyDoc`` means holding a well-formed treaty — not that it is in
    force; that needs :func:`in_force` and the directory's keys.
    """

    __slots__ = ("_document", "_signatures", "_treaty")

    def __init__(
        self, document: bytes, signatures: Iterable[treaty_pb2.PartySignature] = ()
    ) -> None:
        self._document = bytes(document)
        self._treaty = Treaty.from_canonical(self._document)
        sigs = []
        for sig in signatures:
            copy_ = treaty_pb2.PartySignature()
            copy_.CopyFrom(sig)
            sigs.append(copy_)
        self._signatures: tuple[treaty_pb2.PartySignature, ...] = tuple(sigs)

    @classmethod
    def unsigned(cls, treaty: Treaty) -> SignedTreatyDoc:
        """A fresh draft of ``treaty`` with no signatures."""
        return cls(treaty.canonical_bytes())

    @classmethod
    def from_proto(cls, message: treaty_pb2.SignedTreaty) -> SignedTreatyDoc:
        return cls(message.document, message.signatures)

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedTreatyDoc:
        """Parse a serialized ``SignedTreaty`` (the ``.treaty`` file format)."""
        message = treaty_pb2.SignedTreaty()
        try:
            message.ParseFromString(data)
        except DecodeError as exc:
            raise Malformed(f"not a SignedTreaty message: {exc}") from None
        if not message.document:
            raise Malformed("SignedTreaty has no document")
        return cls.from_proto(message)

    @property
    def document(self) -> bytes:
        return self._document

    @property
    def treaty(self) -> Treaty:
        return self._treaty

    @property
    def signatures(self) -> tuple[treaty_pb2.PartySignature, ...]:
        """Copies of the signatures, in the order they were added."""
        out = []
        for sig in self._signatures:
            c = treaty_pb2.PartySignature()
            c.CopyFrom(sig)
            out.append(c)
        return tuple(out)

    @property
    def claimed_signers(self) -> tuple[str, ...]:
        """Agency ids that carry a signature, verified or not (sorted, unique)."""
        return tuple(sorted({s.agency_id for s in self._signatures}))

    def with_signature(self, signature: treaty_pb2.PartySignature) -> SignedTreatyDoc:
        """A copy with ``signature`` added, replacing any earlier one by the same agency.

        Refuses a non-party (:class:`~intelshare.errors.NotAParty`) and
        anything that is not shaped like an Ed25519 signature with a key id,
        since neither could ever count. Whether it *verifies* is for
        :func:`verify_signatures`, which needs the directory's keys.
        """
        if not self._treaty.is_party(signature.agency_id):
            raise NotAParty(
                f"{signature.agency_id} is not a party of treaty {self._treaty.label}",
                metadata={"agency_id": signature.agency_id, "treaty_id": self._treaty.id},
            )
        if len(signature.signature) != 64 or not signature.key_id:
            raise InvalidArgument(
                "not an Ed25519 party signature",
                violations={"signature": "64-byte Ed25519 signature and key_id required"},
            )
        kept = [s for s in self._signatures if s.agency_id != signature.agency_id]
        return SignedTreatyDoc(self._document, [*kept, signature])

    def to_proto(self) -> treaty_pb2.SignedTreaty:
        return treaty_pb2.SignedTreaty(document=self._document, signatures=self._signatures)

    def to_bytes(self) -> bytes:
        return self.to_proto().SerializeToString(deterministic=True)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SignedTreatyDoc):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"SignedTreatyDoc({self._treaty.label}, signed by {list(self.claimed_signers)})"


def _as_doc(signed: SignedTreatyDoc | treaty_pb2.SignedTreaty) -> SignedTreatyDoc:
    return signed if isinstance(signed, SignedTreatyDoc) else SignedTreatyDoc.from_proto(signed)


def verify_signatures(
    signed: SignedTreatyDoc | treaty_pb2.SignedTreaty,
    keys: PublicKeyLookup,
    at: datetime | None = None,
) -> set[str]:
    """The parties whose signature verifies.

    Refused (not counted): a signature by a non-party; one that does not
    verify, or whose key the directory does not vouch for at its
    ``sign_time``; one without a ``sign_time``; one dated after ``at`` when
    ``at`` is given; and *every* signature of a party that signed more than
    once, since two signatures by one party in one document means someone
    assembled it by hand and neither can be taken as the party's word.
    Raises :class:`~intelshare.errors.Malformed` when the document is not a
    canonical treaty.
    """
    doc = _as_doc(signed)
    treaty = doc.treaty
    message = signing_message(doc.document)
    counts: dict[str, int] = {}
    for sig in doc._signatures:
        counts[sig.agency_id] = counts.get(sig.agency_id, 0) + 1
    ok: set[str] = set()
    limit = None if at is None else _aware(at, "at")
    for sig in doc._signatures:
        agency = sig.agency_id
        if counts[agency] != 1 or not treaty.is_party(agency):
            continue
        if not sig.HasField("sign_time"):
            continue
        try:
            when = _from_timestamp(sig.sign_time)
        except (ValueError, OverflowError):
            continue
        if limit is not None and when > limit:
            continue
        try:
            public = keys.signing_key(agency, sig.key_id, when)
            if not isinstance(public, ed25519.Ed25519PublicKey):
                continue
            _verify_once(public, sig.signature, message)
        except (IntelshareError, InvalidSignature, ValueError):
            continue
        ok.add(agency)
    return ok


_VERIFIED: dict[tuple[bytes, bytes, bytes], None] = {}
_VERIFIED_MAX = 1024


def _verify_once(public: ed25519.Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    """``public.verify``, remembering the triples that verified.

    A treaty's party signatures are checked for every envelope that names it
    (by the gateway, the sending and the receiving node), always the same few
    signatures over the same document. Whether a signature verifies is a pure
    function of key, signature and message, so a triple that verified once
    verifies again; only that is remembered. Which key the directory vouches
    for, at which time, is still looked up on every call, so a revoked or
    expired key stops counting at once.
    """
    triple = (public.public_bytes_raw(), bytes(signature), message)
    if triple in _VERIFIED:
        return
    public.verify(signature, message)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[triple] = None


def in_force(
    signed: SignedTreatyDoc | treaty_pb2.SignedTreaty, keys: PublicKeyLookup, at: datetime
) -> bool:
    """True only when every party signed validly (by ``at``) and ``at`` is in the window.

    Fails closed: a malformed document or any lookup problem means False.
    """
    _aware(at, "at")
    try:
        doc = _as_doc(signed)
        if not doc.treaty.valid_at(at):
            return False
        return verify_signatures(doc, keys, at) == set(doc.treaty.parties)
    except IntelshareError:
        return False
