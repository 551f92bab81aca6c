"""The causes of refusals, each with its own ErrorInfo reason.

A client branches on ``ErrorInfo.reason``; a reason that only repeats the
status code (``NOT_FOUND``, ``FAILED_PRECONDITION`` ...) tells it nothing the
code did not. So every refusal the services raise is one of these classes,
each a subclass of the generic class for its code (``except NotFound``
still catches an :class:`AlertNotFound`) with a reason of its own, listed in
``protos/intelshare/v1/error_reason.proto`` with its metadata keys.

They live apart from :mod:`intelshare.errors` only to keep that module
short; :mod:`intelshare.errors` imports them all at its end, so
``errors.AlertNotFound`` is how code names them and the one hierarchy is
complete whenever :mod:`intelshare.errors` is imported. Import them through
:mod:`intelshare.errors`, never from here (this module needs the base
classes defined first).
"""

from __future__ import annotations

from collections.abc import Mapping

from intelshare.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AlertExpired",
    "AlertNotActive",
    "AlertNotFound",
    "AlertPendingReview",
    "AlertRevoked",
    "AlreadyMember",
    "AuditEntryNotFound",
    "BatchTooLarge",
    "CaseClosed",
    "CaseNotFound",
    "CertificateInvalid",
    "ChangedMeanwhile",
    "ConsentRequestDecided",
    "ConsentRequestNotFound",
    "CountryUnknown",
    "DeliveryNotFound",
    "DeliveryPending",
    "DetentionClosed",
    "DirectoryMissing",
    "EventCursorInvalid",
    "FieldImmutable",
    "FieldInvalid",
    "GatewayUnreachable",
    "IdInUse",
    "IdInvalid",
    "MemberRemoved",
    "NotAMember",
    "NotCaseOwner",
    "NotIssuer",
    "NotOnCaseTeam",
    "NotRecipient",
    "OfficerDisabled",
    "OfficerNotFound",
    "PageSizeInvalid",
    "RecordNotFound",
    "RecordWithdrawn",
    "RequestIdInvalid",
    "ReviewNotPending",
    "RoleNotPermitted",
    "TokenInvalid",
    "TokenMissing",
    "UpdateMaskInvalid",
    "WebhookNotFound",
    "WebhookSecretUnreadable",
    "invalid_fields",
]

# --- invalid arguments (each with a google.rpc.BadRequest naming the fields) ---


class FieldInvalid(InvalidArgument):
    """A request field is missing or its value is not accepted; the BadRequest says why."""

    reason = "FIELD_INVALID"


class IdInvalid(InvalidArgument):
    """A client-chosen id is not of the form the service accepts."""

    reason = "ID_INVALID"


class IdInUse(InvalidArgument):
    """A client-chosen id or name is in use already on this node."""

    reason = "ID_IN_USE"


class RequestIdInvalid(InvalidArgument):
    """A request_id is not 1-64 characters of letters, digits, '-' and '_'."""

    reason = "REQUEST_ID_INVALID"


class PageSizeInvalid(InvalidArgument):
    """A page_size is negative."""

    reason = "PAGE_SIZE_INVALID"


class UpdateMaskInvalid(InvalidArgument):
    """An update_mask is empty or names a field the method does not change."""

    reason = "UPDATE_MASK_INVALID"


class EventCursorInvalid(InvalidArgument):
    """An after_cursor of a feed is negative or beyond the newest event."""

    reason = "EVENT_CURSOR_INVALID"


class BatchTooLarge(InvalidArgument):
    """A request carries more items than the method takes at once."""

    reason = "BATCH_TOO_LARGE"


# --- not found -------------------------------------------------------------------


class AlertNotFound(NotFound):
    """No alert of that name on this node."""

    reason = "ALERT_NOT_FOUND"


class CaseNotFound(NotFound):
    """No case of that name on this node."""

    reason = "CASE_NOT_FOUND"


class RecordNotFound(NotFound):
    """No record of that name (recordation, detention, risk profile ...) on this node."""

    reason = "RECORD_NOT_FOUND"


class DeliveryNotFound(NotFound):
    """The agency is not a recipient of the alert."""

    reason = "DELIVERY_NOT_FOUND"


class OfficerNotFound(NotFound):
    """No officer of that name on this node."""

    reason = "OFFICER_NOT_FOUND"


class ConsentRequestNotFound(NotFound):
    """No consent request of that name on this node."""

    reason = "CONSENT_REQUEST_NOT_FOUND"


class WebhookNotFound(NotFound):
    """No webhook of that id on this node."""

    reason = "WEBHOOK_NOT_FOUND"


class AuditEntryNotFound(NotFound):
    """The audit log has no entry at that index."""

    reason = "AUDIT_ENTRY_NOT_FOUND"


# --- failed preconditions -----------------------------------------------------------


class AlertNotActive(FailedPrecondition):
    """The alert is no longer active (revoked or expired)."""

    reason = "ALERT_NOT_ACTIVE"


class AlertRevoked(AlertNotActive):
    """The alert was revoked."""

    reason = "ALERT_REVOKED"


class AlertExpired(AlertNotActive):
    """The alert has expired."""

    reason = "ALERT_EXPIRED"


class AlertPendingReview(FailedPrecondition):
    """The alert waits for an approver; it cannot change before it is released or rejected."""

    reason = "ALERT_PENDING_REVIEW"


class ReviewNotPending(FailedPrecondition):
    """The alert is not waiting for review (under that treaty)."""

    reason = "REVIEW_NOT_PENDING"


class ChangedMeanwhile(FailedPrecondition):
    """The resource changed while the request was prepared; read it again and retry."""

    reason = "CHANGED_MEANWHILE"


class NotIssuer(FailedPrecondition):
    """Only the agency that issued the resource may do this; this node received it."""

    reason = "NOT_ISSUER"


class NotRecipient(FailedPrecondition):
    """Only a recipient may do this; this node issued the resource."""

    reason = "NOT_RECIPIENT"


class RecordWithdrawn(FailedPrecondition):
    """The record was withdrawn by its issuer."""

    reason = "RECORD_WITHDRAWN"


class DeliveryPending(FailedPrecondition):
    """The gateway has not accepted the envelope for that recipient yet."""

    reason = "DELIVERY_PENDING"


class CaseClosed(FailedPrecondition):
    """The case is closed."""

    reason = "CASE_CLOSED"


class NotCaseOwner(FailedPrecondition):
    """Only the agency owning the case may do this."""

    reason = "NOT_CASE_OWNER"


class MemberRemoved(FailedPrecondition):
    """This agency was removed from the case."""

    reason = "MEMBER_REMOVED"


class AlreadyMember(FailedPrecondition):
    """The agency is a member of the case already."""

    reason = "ALREADY_MEMBER"


class NotAMember(FailedPrecondition):
    """The agency is not a member of the case."""

    reason = "NOT_A_MEMBER"


class OfficerDisabled(FailedPrecondition):
    """The officer is disabled."""

    reason = "OFFICER_DISABLED"


class ConsentRequestDecided(FailedPrecondition):
    """The consent request was decided already."""

    reason = "CONSENT_REQUEST_DECIDED"


class FieldImmutable(FailedPrecondition):
    """The fields are fixed once the record exists."""

    reason = "FIELD_IMMUTABLE"


class DetentionClosed(FailedPrecondition):
    """The detention is in a final state (goods released or destroyed, closed)."""

    reason = "DETENTION_CLOSED"


class CountryUnknown(FailedPrecondition):
    """The directory does not name this agency's country yet."""

    reason = "COUNTRY_UNKNOWN"


class WebhookSecretUnreadable(FailedPrecondition):
    """A webhook's secret cannot be opened with this agency's key."""

    reason = "WEBHOOK_SECRET_UNREADABLE"


# --- permissions and authentication ---------------------------------------------------


class RoleNotPermitted(PermissionDenied):
    """The caller's role does not allow the method."""

    reason = "ROLE_NOT_PERMITTED"


class NotOnCaseTeam(PermissionDenied):
    """The officer is not on the team of the case."""

    reason = "NOT_ON_CASE_TEAM"


class TokenMissing(Unauthenticated):
    """The call carries no bearer token."""

    reason = "TOKEN_MISSING"


class TokenInvalid(Unauthenticated):
    """The bearer token opens nothing (unknown, revoked, or its officer disabled)."""

    reason = "TOKEN_INVALID"


class CertificateInvalid(Unauthenticated):
    """The client certificate is missing or is not an agency's current certificate."""

    reason = "CERTIFICATE_INVALID"


class DirectoryMissing(Unavailable):
    """The gateway has no directory yet."""

    reason = "DIRECTORY_MISSING"


class GatewayUnreachable(Unavailable):
    """The gateway could not be reached or did not take the submission; retried later."""

    reason = "GATEWAY_UNREACHABLE"


#: the cause a violation of only this one field has its own reason for
_ONE_FIELD: dict[str, type[InvalidArgument]] = {
    "page_size": PageSizeInvalid,
    "request_id": RequestIdInvalid,
    "update_mask": UpdateMaskInvalid,
    "after_cursor": EventCursorInvalid,
}


def invalid_fields(message: str, *, violations: Mapping[str, str]) -> InvalidArgument:
    """The refusal for ``violations`` found together.

    When one field that has a reason of its own (``page_size`` ...) is all
    that is wrong, that reason; FIELD_INVALID otherwise.
    """
    cls = _ONE_FIELD.get(next(iter(violations))) if len(violations) == 1 else None
    return (cls or FieldInvalid)(message, violations=violations)
