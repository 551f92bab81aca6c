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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from intelshare import errors
from intelshare.errors import IntelshareError
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
from intelshare.treaty.signatures import (
    SIGNATURE_LABEL,
    SignedTreatyDoc,
    _as_doc,
    document_digest,
    in_force,
    sign,
    signing_message,
    verify_signatures,
)
from intelshare.treaty.timestamps import _aware
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
