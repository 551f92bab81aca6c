"""Treaties: what may be shared with whom, and the policy decisions they imply.

A treaty is the legal basis for every message that crosses agencies. It is a
document that every party signs; it is *in force* only when every party has
signed it validly and the date is inside its validity window. Three places
enforce it (sending node, gateway, receiving node) and they must agree to the
byte, so this module is the single implementation they all call:

* :class:`Treaty` — the parsed, validated model. Validation is strict and
  reports every problem at once (:class:`~intelshare.errors.InvalidArgument`
  with one violation per field path), because a treaty is drafted by people
  and a typo in a category name silently narrows or widens what flows.
* The **canonical form** (:meth:`Treaty.canonical_bytes`) is what parties
  sign. It uses the same vocabulary as the YAML people draft
  (``valid: {from, until}``, ``max_handling: {code, tlp}``) so that what is
  signed reads like what was negotiated. JSON with sorted keys, compact
  separators, UTF-8 (no ASCII escaping), every key present (defaults
  written out), sets (parties, kinds, categories, field paths,
  review_required_for) sorted, dates as ``YYYY-MM-DD``.
  :meth:`Treaty.from_canonical` re-serializes and compares, so two different
  byte strings can never carry the same signed meaning.
* **Signatures** are Ed25519 over ``b"intelshare/v1 treaty\\x00" +
  SHA-256(document)``: the label keeps a treaty signature from ever being
  valid as an envelope or tree-head signature made with the same key.
* :func:`decide` is the deny-by-default policy check on a message header;
  :func:`redact` removes every field the treaty does not allow before
  sealing; :func:`onward_sharing_allowed` and :func:`retention_until` serve
  the receiving node.

Control kinds
-------------
``receipt``, ``acknowledgement`` and ``alert_revocation`` are *control*
messages: they carry no intelligence of their own, only a reference to a
record that was already shared. They ride on the treaty of the record they
refer to, and a treaty must **not** list them in ``kinds`` (validation
refuses it, so nobody believes omitting them forbids them). :func:`decide`
lets them pass the kind check under any treaty in force, but every other
check still applies (treaty in force, sender and recipients parties,
handling and TLP within the maximum, and any category given must be
permitted; a control message may carry no category). Checking that the
referenced record really was shared under the same treaty needs storage and
is the caller's job (node / gateway: compare ``reference_id``'s treaty).
Control payloads are protocol messages, not records: :func:`redact` returns
an empty mapping for them, so do not run them through it.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf.message import DecodeError

from intelshare import errors
from intelshare.errors import IntelshareError, InvalidArgument, Malformed, NotAParty
from intelshare.keylookup import PublicKeyLookup
from intelshare.review import attestation_problem
from intelshare.treaty.kinds import (
    ALL_KINDS,
    CONTROL_KINDS,
    DATA_KINDS,
    RECORD_KINDS,
    alert_kind_name,
    kind_name,
    register_record_kind,
)
from intelshare.treaty.markings import Handling, OnwardSharing, Tlp, _parse_handling, _parse_tlp
from intelshare.treaty.model import Treaty, treaties_from_yaml
from intelshare.treaty.timestamps import _aware, _from_timestamp, _timestamp
from intelshare.v1 import envelope_pb2, treaty_pb2

__all__ = [
    "ALL_KINDS",
    "CONTROL_KINDS",
    "DATA_KINDS",
    "RECORD_KINDS",
    "SIGNATURE_LABEL",
    "Decision",
    "Handling",
    "OnwardSharing",
    "SignedTreatyDoc",
    "Tlp",
    "Treaty",
    "alert_kind_name",
    "check_fields",
    "decide",
    "decide_header",
    "decide_header_in_force",
    "decide_review",
    "document_digest",
    "in_force",
    "kind_name",
    "onward_sharing_allowed",
    "redact",
    "register_record_kind",
    "retention_until",
    "review_matches",
    "review_required",
    "sign",
    "signing_message",
    "treaties_from_yaml",
    "unpermitted_paths",
    "verify_signatures",
]

#: Domain-separation label of treaty signatures (followed by one NUL byte).
SIGNATURE_LABEL: Final = b"intelshare/v1 treaty"


# --- signatures -----------------------------------------------------------------


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


# --- decisions ------------------------------------------------------------------


_REFUSALS: Final[dict[str, type[errors.PolicyRefused]]] = {
    cls.reason: cls
    for cls in (
        errors.PolicyRefused,
        errors.TreatyNotInForce,
        errors.NotAParty,
        errors.KindNotPermitted,
        errors.CategoryNotPermitted,
        errors.HandlingNotPermitted,
        errors.FieldNotPermitted,
        errors.ReviewRequired,
        errors.OnwardSharingForbidden,
        errors.ConsentInvalid,
    )
}

ALLOWED: Final = "OK"


@dataclass(frozen=True)
class Decision:
    """The outcome of a policy check.

    ``reason`` is ``"OK"`` when allowed, else the ``reason`` of the matching
    :class:`~intelshare.errors.PolicyRefused` subclass (``CATEGORY_NOT_PERMITTED``
    ...), so a decision logged in the audit trail and an error sent over gRPC
    use the same words. ``detail`` names the rule for people.
    """

    allowed: bool
    reason: str
    detail: str
    #: sent as ``ErrorInfo.metadata`` by :meth:`raise_if_refused`
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def allow(cls, detail: str) -> Decision:
        return cls(True, ALLOWED, detail)

    @classmethod
    def refuse(
        cls,
        error: type[errors.PolicyRefused],
        detail: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Decision:
        return cls(False, error.reason, detail, dict(metadata or {}))

    def __bool__(self) -> bool:
        return self.allowed

    def raise_if_refused(self) -> None:
        """Raise the matching :class:`~intelshare.errors.PolicyRefused` subclass if refused."""
        if self.allowed:
            return
        cls = _REFUSALS.get(self.reason, errors.PolicyRefused)
        raise cls(self.detail, metadata=self.metadata)


def decide(
    treaty: Treaty,
    *,
    in_force: bool,
    sender: str,
    recipients: Sequence[str],
    kind: str,
    categories: Sequence[str],
    handling: Handling | str,
    tlp: Tlp | str,
    review: bool = False,
    alert_kind: str = "",
    attested: envelope_pb2.Header | None = None,
) -> Decision:
    """Whether ``treaty`` permits this message; deny by default.

    Checks run in a fixed order so the same message always gets the same
    reason everywhere: in force → sender is a party → each recipient is a
    party (and not the sender; at least one) → kind → [review] → each
    category (at least one for data kinds) → handling ≤ max → TLP ≤ max.
    ``in_force`` is passed in because establishing it needs keys and a clock
    (see :func:`in_force`, :func:`decide_header`).

    With ``review=True`` the treaty's ``review_required_for`` rule is checked
    too, after the kind (see :func:`decide_review`; ``alert_kind`` is the
    alert's own kind name where the caller sees the record). It comes before
    the categories on purpose: a name the treaty reserves for review is
    answered ``REVIEW_REQUIRED`` even when the treaty does not list it among
    its categories, which is how the demo task force reads
    (``review_required_for: [wanted_person]``, categories
    ``[counterfeit_goods, narcotics]``). ``review`` defaults to False only
    until every caller passes it (the node's side is being moved over).
    ``attested`` is the signed header (or, at the sending node, the header
    it is about to sign) whose review attestation may release such a
    message (:mod:`intelshare.review`).
    """
    name = treaty.label
    if not in_force:
        return Decision.refuse(errors.TreatyNotInForce, f"treaty {name} is not in force")
    if not treaty.is_party(sender):
        return Decision.refuse(errors.NotAParty, f"sender {sender} is not a party of treaty {name}")
    if not recipients:
        return Decision.refuse(errors.NotAParty, f"a message under treaty {name} needs a recipient")
    for recipient in recipients:
        if recipient == sender:
            return Decision.refuse(
                errors.NotAParty, f"recipient {recipient} is the sender (treaty {name})"
            )
        if not treaty.is_party(recipient):
            return Decision.refuse(
                errors.NotAParty, f"recipient {recipient} is not a party of treaty {name}"
            )
    if kind not in CONTROL_KINDS and kind not in treaty.kinds:
        return Decision.refuse(
            errors.KindNotPermitted, f"treaty {name} does not permit kind {kind or '(none)'}"
        )
    if review:
        reviewed = decide_review(
            treaty, kind=kind, categories=categories, alert_kind=alert_kind, attested=attested
        )
        if not reviewed:
            return reviewed
    if not categories and kind not in CONTROL_KINDS:
        return Decision.refuse(
            errors.CategoryNotPermitted, f"a {kind} under treaty {name} needs a data category"
        )
    for category in categories:
        if category not in treaty.categories:
            return Decision.refuse(
                errors.CategoryNotPermitted,
                f"treaty {name} does not permit category {category or '(empty)'}",
            )
    code = _parse_handling(handling)
    if code is None:
        return Decision.refuse(errors.HandlingNotPermitted, f"handling code {handling!r} unknown")
    if code > treaty.max_handling:
        return Decision.refuse(
            errors.HandlingNotPermitted,
            f"treaty {name} permits handling up to {treaty.max_handling.name}, not {code.name}",
        )
    marking = _parse_tlp(tlp)
    if marking is None:
        return Decision.refuse(errors.HandlingNotPermitted, f"TLP marking {tlp!r} unknown")
    if marking > treaty.max_tlp:
        return Decision.refuse(
            errors.HandlingNotPermitted,
            f"treaty {name} permits TLP up to {treaty.max_tlp.name}, not {marking.name}",
        )
    return Decision.allow(f"treaty {name} permits {kind} from {sender}")


def decide_header(
    signed_treaty: SignedTreatyDoc | treaty_pb2.SignedTreaty,
    header: envelope_pb2.Header,
    keys: PublicKeyLookup,
    at: datetime,
    *,
    review: bool = False,
    alert_kind: str = "",
) -> Decision:
    """:func:`decide` for an envelope header, as the gateway and receiving node see it.

    The header must name this treaty and version; a mismatch, a malformed
    treaty document, or a treaty not in force at ``at`` are all
    ``TREATY_NOT_IN_FORCE``. Unspecified enum values are refused by the
    kind / handling / TLP checks.
    """
    try:
        doc = _as_doc(signed_treaty)
    except IntelshareError:
        return Decision.refuse(errors.TreatyNotInForce, "treaty document is malformed")
    return decide_header_in_force(
        doc, header, in_force=in_force(doc, keys, at), review=review, alert_kind=alert_kind
    )


def decide_header_in_force(
    doc: SignedTreatyDoc,
    header: envelope_pb2.Header,
    *,
    in_force: bool,
    review: bool = False,
    alert_kind: str = "",
) -> Decision:
    """:func:`decide_header` for a caller that already knows whether ``doc`` is in force.

    The same checks in the same order (the header names this treaty and
    version, then :func:`decide`), for a receiving node that reuses an
    in-force check for a moment (``node.sharing.trust.Trust.in_force_at``).
    """
    treaty = doc.treaty
    if header.treaty_id != treaty.id or header.treaty_version != treaty.version:
        return Decision.refuse(
            errors.TreatyNotInForce,
            f"header names treaty {header.treaty_id or '(none)'} v{header.treaty_version}, "
            f"not {treaty.label}",
        )
    handling: Handling | str
    tlp: Tlp | str
    try:
        handling = Handling(header.handling)
    except ValueError:
        handling = f"HandlingCode {header.handling}"
    try:
        tlp = Tlp(header.tlp)
    except ValueError:
        tlp = f"Tlp {header.tlp}"
    return decide(
        treaty,
        in_force=in_force,
        sender=header.sender,
        recipients=list(header.recipients),
        kind=kind_name(header.kind, header.record_kind),
        categories=list(header.categories),
        handling=handling,
        tlp=tlp,
        review=review,
        alert_kind=alert_kind,
        attested=header,
    )


def review_required(treaty: Treaty, categories: Iterable[str]) -> bool:
    """True when any of ``categories`` needs an approver before release.

    Categories only; :func:`review_matches` / :func:`decide_review` also
    match the message kind and the alert's own kind.
    """
    return any(c in treaty.review_required_for for c in categories)


def review_matches(
    treaty: Treaty, *, kind: str, categories: Iterable[str], alert_kind: str = ""
) -> tuple[str, ...]:
    """The names of ``treaty.review_required_for`` that this message matches, sorted.

    A name matches the message kind (``case_entry``), any data category of
    the message, or the alert's own kind (``wanted_person`` for an alert of
    kind ``WANTED_PERSON``; also its implied category, so a header carrying
    the kind's category matches where the record cannot be seen). Control
    kinds (receipt, acknowledgement, revocation) carry no record and never
    match: a revocation must always get through.
    """
    if kind in CONTROL_KINDS or not treaty.review_required_for:
        return ()
    names = {kind, *categories}
    if alert_kind:
        names.add(alert_kind)
    return tuple(n for n in treaty.review_required_for if n in names)


def decide_review(
    treaty: Treaty,
    *,
    kind: str,
    categories: Iterable[str],
    alert_kind: str = "",
    attested: envelope_pb2.Header | None = None,
) -> Decision:
    """Refuse (``REVIEW_REQUIRED``) a message the treaty reserves for review, unless attested.

    The one decision of the rule for the sending node (which knows the
    alert's kind: pass ``alert_kind``), the gateway (the signed header's
    kind and categories) and the receiving node (header and record). A
    match passes only with a review attestation in ``attested`` (the
    signed header) that holds as far as a header can show
    (:func:`intelshare.review.attestation_problem`); the refusal names
    what is missing or wrong.
    """
    matched = review_matches(treaty, kind=kind, categories=categories, alert_kind=alert_kind)
    if not matched:
        return Decision.allow(f"treaty {treaty.label} reserves nothing here for review")
    problem = (
        attestation_problem(attested)
        if attested is not None
        else "the envelope carries no review attestation"
    )
    if not problem:
        return Decision.allow(
            f"treaty {treaty.label}: {', '.join(matched)} released after review "
            f"by {attested.review.approver if attested is not None else ''}"
        )
    return Decision.refuse(
        errors.ReviewRequired,
        f"treaty {treaty.label} requires an approver's review before "
        f"{', '.join(matched)} records are released: {problem}",
        metadata={
            "treaty_id": treaty.id,
            "treaty_version": str(treaty.version),
            "rule": "review_required_for",
            "matched": ",".join(matched),
        },
    )


def onward_sharing_allowed(
    treaty: Treaty, originator: str, new_recipient: str, originator_consent: bool
) -> Decision:
    """Whether a recipient may pass a record received under ``treaty`` to ``new_recipient``.

    ``forbidden`` refuses always; ``with_originator_consent`` allows any
    recipient once the originator consented (the consent is the originator's
    decision, not the treaty's); ``within_treaty`` allows parties only, and
    consent does not widen it. Handing a record back to its originator is
    not onward sharing and is allowed.
    """
    name = treaty.label
    if not treaty.is_party(originator):
        return Decision.refuse(
            errors.NotAParty, f"originator {originator} is not a party of treaty {name}"
        )
    if new_recipient == originator:
        return Decision.allow(f"{new_recipient} is the originator")
    policy = treaty.onward_sharing
    if policy is OnwardSharing.WITHIN_TREATY:
        if treaty.is_party(new_recipient):
            return Decision.allow(f"treaty {name} permits onward sharing within the treaty")
        return Decision.refuse(
            errors.NotAParty,
            f"treaty {name} permits onward sharing within the treaty only; "
            f"{new_recipient} is not a party",
        )
    if policy is OnwardSharing.WITH_ORIGINATOR_CONSENT:
        if originator_consent:
            return Decision.allow(f"treaty {name}: onward sharing with {originator}'s consent")
        return Decision.refuse(
            errors.PolicyRefused,
            f"treaty {name} permits onward sharing only with the consent of {originator}",
        )
    return Decision.refuse(errors.PolicyRefused, f"treaty {name} forbids onward sharing")


def retention_until(treaty: Treaty, received_at: datetime) -> datetime:
    """When a record received at ``received_at`` must be purged (UTC)."""
    return _aware(received_at, "received_at").astimezone(UTC) + timedelta(
        days=treaty.retention_days
    )


# --- redaction ------------------------------------------------------------------


class _Node:
    """A trie of permitted path segments; ``whole`` keeps the sub-tree entirely."""

    __slots__ = ("children", "whole")

    def __init__(self) -> None:
        self.whole = False
        self.children: dict[str, _Node] = {}


def _trie(paths: Iterable[str]) -> _Node:
    root = _Node()
    for path in paths:
        node = root
        for segment in path.split("."):
            node = node.children.setdefault(segment, _Node())
        node.whole = True
    return root


_DROP: Final = object()


def _prune(value: object, node: _Node) -> object:
    if node.whole:
        return copy.deepcopy(value)
    if isinstance(value, Mapping):
        kept: dict[str, object] = {}
        for key, sub in value.items():
            child = node.children.get(key) if isinstance(key, str) else None
            if child is None:
                continue
            pruned = _prune(sub, child)
            if pruned is not _DROP:
                kept[key] = pruned
        return kept if kept else _DROP
    if isinstance(value, list | tuple):
        items = [p for p in (_prune(item, node) for item in value) if p is not _DROP]
        return items if items else _DROP
    # a scalar where the allow-list only permits some of its sub-fields
    return _DROP


def redact(record: Mapping[str, Any], treaty: Treaty, kind: str) -> dict[str, Any]:
    """A copy of ``record`` with only the fields ``treaty`` permits for ``kind``.

    A path names a key at each level; lists are transparent, so
    ``subjects.persons.name`` keeps ``name`` in every element of the list
    ``subjects.persons``. A path that ends on a sub-tree keeps it whole.
    Everything else disappears, including containers left empty by the
    filtering (an empty element would still reveal that something was
    there). No permitted path for ``kind`` (or a control kind) gives ``{}``.
    The input is never mutated and the result shares nothing with it.
    """
    paths = treaty.fields.get(kind, ())
    if not paths:
        return {}
    pruned = _prune(record, _trie(paths))
    return pruned if isinstance(pruned, dict) else {}


def _leaf_paths(value: object, prefix: tuple[str, ...]) -> Iterable[tuple[str, ...]]:
    if isinstance(value, Mapping) and value:
        for key, sub in value.items():
            yield from _leaf_paths(sub, (*prefix, str(key)))
    elif isinstance(value, list | tuple) and value:
        for item in value:
            yield from _leaf_paths(item, prefix)
    else:
        yield prefix


def unpermitted_paths(record: Mapping[str, Any], treaty: Treaty, kind: str) -> list[str]:
    """Dotted paths present in ``record`` that ``treaty`` does not permit for ``kind``.

    Sorted and unique; list positions are folded away (``subjects.persons.dob``).
    """
    allowed = [tuple(p.split(".")) for p in treaty.fields.get(kind, ())]
    bad = {
        ".".join(leaf)
        for leaf in _leaf_paths(record, ())
        if leaf and not any(leaf[: len(p)] == p for p in allowed)
    }
    return sorted(bad)


def check_fields(record: Mapping[str, Any], treaty: Treaty, kind: str) -> Decision:
    """Refuse (``FIELD_NOT_PERMITTED``) a record carrying a field the treaty does not allow.

    For the receiving node, which checks again what the sender should have
    redacted: a record that needed redaction was sent by a node that broke
    the treaty, which is worth a refusal and an audit entry, not a silent fix.
    """
    bad = unpermitted_paths(record, treaty, kind)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        return Decision.refuse(
            errors.FieldNotPermitted,
            f"treaty {treaty.label} does not permit field {bad[0]} in a {kind}{more}",
        )
    return Decision.allow(f"every field is permitted by treaty {treaty.label}")
