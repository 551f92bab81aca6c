"""Onward sharing: a recipient passing a record on to a third agency.

A record received under one treaty (the *original* treaty) may be passed
on under another (the *onward* treaty) only as the original treaty's
``onward_sharing`` rule says:

* ``forbidden``: never (``ONWARD_SHARING_FORBIDDEN``);
* ``within_treaty``: to parties of the original treaty only;
* ``with_originator_consent``: to the agencies the originator consented
  to, under the treaty it named, for that record.

The forwarded envelope says so in its signed header
(:class:`~intelshare.v1.envelope_pb2.Provenance`): the originator, the
message that carried the record to the forwarder, the original treaty and,
where consent is needed, the originator's consent envelope itself (a
``MESSAGE_KIND_CONSENT_GRANT`` sealed and signed by the originator for the
forwarder, whose header's :class:`~intelshare.v1.envelope_pb2.OnwardConsent`
names the record, the third agencies and the onward treaty). Anyone
holding the directory can verify that signature and read those terms
without being able to open the consent, so :func:`decide_provenance` is
the same check at the gateway and at the third agency's node.

What only the nodes can check: the forwarder's node that it received the
record and that the copy holds only what both treaties allow (the
intersection of their allow-lists, :func:`redact_onward`); the third
agency's node that the copy it opened carries nothing the original treaty
would not have let through; the originator's node that the record it is
asked about is one it sent to the requester.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from intelshare import errors
from intelshare.envelope import verify
from intelshare.keylookup import PublicKeyLookup
from intelshare.treaty import Decision, OnwardSharing, SignedTreatyDoc, Treaty, redact
from intelshare.v1 import envelope_pb2

#: Finds a treaty document by id and version (None when unknown).
TreatyLookup = Callable[[str, int], "SignedTreatyDoc | None"]


def _refuse(
    error: type[errors.PolicyRefused], detail: str, treaty: Treaty | None, rule: str
) -> Decision:
    metadata = {"rule": rule}
    if treaty is not None:
        metadata.update(treaty_id=treaty.id, treaty_version=str(treaty.version))
    return Decision.refuse(error, detail, metadata)


def decide_onward(
    original: Treaty, *, originator: str, forwarder: str, recipients: Iterable[str]
) -> Decision:
    """The original treaty's ``onward_sharing`` rule for passing a record on, before consent.

    Allowed for ``within_treaty`` (parties only) and, pending the
    originator's consent, for ``with_originator_consent``; refused for
    ``forbidden``. The forwarder and the originator must be parties of the
    original treaty (the record cannot have come any other way).
    """
    name = original.label
    for agency, role in ((originator, "originator"), (forwarder, "forwarder")):
        if not original.is_party(agency):
            return _refuse(
                errors.NotAParty,
                f"{role} {agency} is not a party of treaty {name}",
                original,
                "parties",
            )
    if original.onward_sharing is OnwardSharing.FORBIDDEN:
        return _refuse(
            errors.OnwardSharingForbidden,
            f"treaty {name} forbids passing on what was received under it",
            original,
            "onward_sharing",
        )
    targets = sorted(set(recipients))
    if originator in targets or forwarder in targets:
        return _refuse(
            errors.NotAParty,
            "a record is not passed on to its originator or to the forwarder itself",
            original,
            "onward_sharing",
        )
    if original.onward_sharing is OnwardSharing.WITHIN_TREATY:
        outside = [a for a in targets if not original.is_party(a)]
        if outside:
            return _refuse(
                errors.OnwardSharingForbidden,
                f"treaty {name} permits passing on within the treaty only; "
                f"{outside[0]} is not a party",
                original,
                "onward_sharing",
            )
        return Decision.allow(f"treaty {name} permits passing on within the treaty")
    return Decision.allow(f"treaty {name} permits passing on with {originator}'s consent")


def needs_consent(original: Treaty) -> bool:
    return original.onward_sharing is OnwardSharing.WITH_ORIGINATOR_CONSENT


def consent_problem(
    header: envelope_pb2.Header, keys: PublicKeyLookup, now: datetime
) -> tuple[str, str]:
    """Why a forwarded header's consent does not cover it: (rule, detail), or ("", "")."""
    p = header.provenance
    if not p.consent_envelope:
        return "consent_missing", f"there is no consent of {p.originator} to pass the record on"
    try:
        granted = verify(p.consent_envelope, keys, now=now)
    except (errors.EnvelopeInvalid, errors.PayloadTooLarge):
        return "consent_signature", "the consent envelope does not verify"
    terms = granted.consent
    if granted.kind != envelope_pb2.MESSAGE_KIND_CONSENT_GRANT:
        return "consent_kind", "the envelope given as consent is not a consent grant"
    if granted.sender != p.originator:
        return (
            "consent_originator",
            f"the consent is from {granted.sender}, not from the originator {p.originator}",
        )
    if granted.message_id != p.consent_id:
        return "consent_id", "the consent envelope is not the consent the provenance names"
    if header.sender not in granted.recipients:
        return (
            "consent_forwarder",
            f"the consent was given to {', '.join(granted.recipients)}, not to {header.sender}",
        )
    if (
        granted.treaty_id != p.original_treaty_id
        or terms.original_message_id != p.original_message_id
    ):
        return "consent_record", "the consent is about another record"
    allowed = set(terms.onward_recipients)
    outside = [a for a in header.recipients if a not in allowed]
    if outside:
        return (
            "consent_recipients",
            f"the consent covers {', '.join(sorted(allowed)) or 'nobody'}, not {outside[0]}",
        )
    if terms.onward_treaty_id != header.treaty_id:
        return (
            "consent_treaty",
            f"the consent is for treaty {terms.onward_treaty_id}, not {header.treaty_id}",
        )
    expire = granted.expire_time
    if expire.seconds * 10**9 + expire.nanos <= int(now.timestamp() * 10**9):
        return "consent_expired", "the consent has expired"
    return "", ""


def decide_provenance(
    header: envelope_pb2.Header, treaties: TreatyLookup, keys: PublicKeyLookup, now: datetime
) -> Decision:
    """Whether a forwarded envelope's provenance permits it (gateway and third node alike).

    ``treaties`` finds the original treaty the provenance names. Only what
    the header shows is checked (see the module docstring).
    """
    p = header.provenance
    if not p.originator or not p.original_message_id or not p.original_treaty_id:
        return _refuse(
            errors.ConsentInvalid,
            "the provenance names no originator, original message or original treaty",
            None,
            "provenance",
        )
    doc = treaties(p.original_treaty_id, p.original_treaty_version)
    if doc is None:
        return Decision.refuse(
            errors.TreatyNotInForce,
            f"the original treaty {p.original_treaty_id} v{p.original_treaty_version} is unknown",
            {"treaty_id": p.original_treaty_id, "treaty_version": str(p.original_treaty_version)},
        )
    original = doc.treaty
    decision = decide_onward(
        original, originator=p.originator, forwarder=header.sender, recipients=header.recipients
    )
    if not decision or not needs_consent(original):
        return decision
    rule, detail = consent_problem(header, keys, now)
    if rule:
        return _refuse(errors.ConsentInvalid, detail, original, rule)
    return Decision.allow(f"passed on with {p.originator}'s consent {p.consent_id}")


def redact_onward(
    record: Mapping[str, Any],
    original: Treaty,
    onward: Treaty,
    kind: str,
    fields: Iterable[str] = (),
) -> dict[str, Any]:
    """``record`` with only what both treaties (and, if given, ``fields``) allow.

    Redacting by one allow-list and then by the other keeps exactly the
    paths both permit; a field the onward treaty allows but the original
    does not never survives the first step.
    """
    out = redact(redact(record, original, kind), onward, kind)
    chosen = [f for f in fields if f]
    if chosen:
        out = redact(out, _only(chosen, onward, kind), kind)
    return out


def _only(paths: list[str], like: Treaty, kind: str) -> Treaty:
    """A stand-in treaty whose allow-list for ``kind`` is ``paths`` (for :func:`redact`)."""
    return replace(like, fields={**like.fields, kind: tuple(sorted(paths))})


__all__ = [
    "consent_problem",
    "decide_onward",
    "decide_provenance",
    "needs_consent",
    "redact_onward",
]
