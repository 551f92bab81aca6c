"""Review attestations: what makes a record a treaty reserves for review releasable.

A treaty's ``review_required_for`` names record kinds, data categories or
alert kinds that a second officer of the issuing agency must approve
before release (four eyes). The issuing node holds such a record until an
approver other than its author approves it; the envelopes it then seals
carry a :class:`~intelshare.v1.envelope_pb2.ReviewAttestation` in the
signed header: author, approver, approval time and the SHA-256 of the
payload approved.

Officers are not federation identities, so the attestation is the
*agency's* statement, made by its signature over the header. What each
party can check therefore differs:

* the **gateway** sees the header only: that an attestation is there, that
  it names an author and a different approver, that the approval is not
  later than the sealing (``create_time``), not older than
  :data:`REVIEW_VALIDITY` before it, and before the envelope expires, and
  that it names a payload digest of the right length;
* the **receiving node** checks the same, and also that the digest is the
  payload it opened, so an approval cannot be lifted onto another record;
* only the **issuing node** knows that the officers exist, hold the
  ``approver`` role, and that the approver saw this record: it refuses an
  approval by the author (``APPROVER_IS_AUTHOR``) and keeps the decision
  in its audit log.

A node that skips review sends no attestation and is refused by the
gateway and by every recipient. A node that lies about its officers is
lying with its agency's signature, which is evidence against the agency;
no check made elsewhere can see into another agency's staff.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.v1 import envelope_pb2

#: How long an approval stays good for sealing. An approved record is sealed
#: at once; a re-seal after a long gateway outage keeps the approval time,
#: and past this an approval is too old to vouch for what is sent now.
REVIEW_VALIDITY: Final = timedelta(days=7)

_VALIDITY_NS: Final = REVIEW_VALIDITY // timedelta(microseconds=1) * 1000


def _ns(ts: Timestamp) -> int:
    return ts.seconds * 10**9 + ts.nanos


def attestation_problem(header: envelope_pb2.Header) -> str:
    """Why the header's review attestation does not hold ("" when it does).

    Only what the header shows is checked (see the module docstring); the
    payload digest is compared by the recipient (:func:`payload_problem`).
    """
    if not header.HasField("review"):
        return "the envelope carries no review attestation"
    review = header.review
    if not review.author or not review.approver:
        return "the review attestation names no author or no approver"
    if review.author == review.approver:
        return "the review attestation names the author as approver (four eyes need two officers)"
    if not review.HasField("approve_time"):
        return "the review attestation has no approval time"
    if len(review.payload_sha256) != 32:
        return "the review attestation names no payload digest"
    approved = _ns(review.approve_time)
    created = _ns(header.create_time)
    if approved > created:
        return "the review attestation is dated after the envelope was sealed"
    if created - approved > _VALIDITY_NS:
        days = REVIEW_VALIDITY.days
        return f"the review attestation is stale: approved more than {days} days before sealing"
    if header.HasField("expire_time") and approved >= _ns(header.expire_time):
        return "the review attestation is dated after the envelope expires"
    return ""


def payload_problem(header: envelope_pb2.Header, payload_sha256: bytes) -> str:
    """Why the attestation does not cover the payload opened ("" when it does)."""
    if header.review.payload_sha256 != payload_sha256:
        return "the review attestation was given for another payload"
    return ""


__all__ = ["REVIEW_VALIDITY", "attestation_problem", "payload_problem"]
