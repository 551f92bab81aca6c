"""Policy decisions under a treaty: deny by default, the same reasons everywhere.

:func:`decide` is the check the sending node, the gateway and the receiving
node all call on a message header; the review rule, onward sharing and
retention serve the nodes. Every refusal is a :class:`Decision` whose
``reason`` is that of an :class:`~intelshare.errors.PolicyRefused` subclass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from intelshare import errors
from intelshare.errors import IntelshareError
from intelshare.keylookup import PublicKeyLookup
from intelshare.review import attestation_problem
from intelshare.treaty.kinds import CONTROL_KINDS, kind_name
from intelshare.treaty.markings import Handling, OnwardSharing, Tlp, _parse_handling, _parse_tlp
from intelshare.treaty.model import Treaty
from intelshare.treaty.signatures import SignedTreatyDoc, _as_doc, in_force
from intelshare.treaty.timestamps import _aware
from intelshare.v1 import envelope_pb2, treaty_pb2

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
