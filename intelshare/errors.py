"""The one exception hierarchy of intelshare.

Every error the project raises on purpose derives from :class:`IntelshareError`.
Each class carries a ``reason`` (the UPPER_SNAKE value sent in
``google.rpc.ErrorInfo.reason``, see ``protos/intelshare/v1/error_reason.proto``)
and a gRPC status code name, so that the server boundary can translate any of
them into a status with details without a table scattered over the services,
and a client can turn the status back into the same class.

Cryptographic verification is deliberately coarse: everything that goes wrong
while verifying or opening an envelope surfaces as :class:`EnvelopeInvalid`
with no detail in its message; the precise cause travels separately in
``audit_detail`` for the audit log only, so a caller cannot use error messages
as an oracle.

The tree (class, gRPC code, ErrorInfo reason where it differs from the code);
``tests/intelshare/test_error_reasons.py`` keeps it equal to the classes::

    IntelshareError (INTERNAL)
    ├─ AgencyNotActive (FAILED_PRECONDITION, AGENCY_NOT_ACTIVE)
    ├─ AgencyUnknown (FAILED_PRECONDITION, AGENCY_UNKNOWN)
    ├─ ClockSkew (FAILED_PRECONDITION, CLOCK_SKEW)
    ├─ ConfigError (FAILED_PRECONDITION, CONFIG_INVALID)
    ├─ CursorAhead (OUT_OF_RANGE, CURSOR_AHEAD)
    ├─ CursorExpired (OUT_OF_RANGE, CURSOR_EXPIRED)
    ├─ FailedPrecondition (FAILED_PRECONDITION)
    │  ├─ AlertNotActive (FAILED_PRECONDITION, ALERT_NOT_ACTIVE)
    │  │  ├─ AlertExpired (FAILED_PRECONDITION, ALERT_EXPIRED)
    │  │  └─ AlertRevoked (FAILED_PRECONDITION, ALERT_REVOKED)
    │  ├─ AlertPendingReview (FAILED_PRECONDITION, ALERT_PENDING_REVIEW)
    │  ├─ AlreadyMember (FAILED_PRECONDITION, ALREADY_MEMBER)
    │  ├─ CaseClosed (FAILED_PRECONDITION, CASE_CLOSED)
    │  ├─ ChangedMeanwhile (FAILED_PRECONDITION, CHANGED_MEANWHILE)
    │  ├─ ConsentRequestDecided (FAILED_PRECONDITION, CONSENT_REQUEST_DECIDED)
    │  ├─ CountryUnknown (FAILED_PRECONDITION, COUNTRY_UNKNOWN)
    │  ├─ DeadlinePassed (FAILED_PRECONDITION, DEADLINE_PASSED)
    │  ├─ DeliveryPending (FAILED_PRECONDITION, DELIVERY_PENDING)
    │  ├─ DetentionClosed (FAILED_PRECONDITION, DETENTION_CLOSED)
    │  ├─ DetentionMoveInvalid (FAILED_PRECONDITION, DETENTION_MOVE_INVALID)
    │  ├─ ExtensionRefused (FAILED_PRECONDITION, EXTENSION_REFUSED)
    │  ├─ FieldImmutable (FAILED_PRECONDITION, FIELD_IMMUTABLE)
    │  ├─ MemberRemoved (FAILED_PRECONDITION, MEMBER_REMOVED)
    │  ├─ NotAMember (FAILED_PRECONDITION, NOT_A_MEMBER)
    │  ├─ NotCaseOwner (FAILED_PRECONDITION, NOT_CASE_OWNER)
    │  ├─ NotIssuer (FAILED_PRECONDITION, NOT_ISSUER)
    │  ├─ NotRecipient (FAILED_PRECONDITION, NOT_RECIPIENT)
    │  ├─ OfficerDisabled (FAILED_PRECONDITION, OFFICER_DISABLED)
    │  ├─ RecordWithdrawn (FAILED_PRECONDITION, RECORD_WITHDRAWN)
    │  ├─ RecordationExpired (FAILED_PRECONDITION, RECORDATION_EXPIRED)
    │  ├─ RecordationMoveInvalid (FAILED_PRECONDITION, RECORDATION_MOVE_INVALID)
    │  ├─ ReviewNotPending (FAILED_PRECONDITION, REVIEW_NOT_PENDING)
    │  └─ WebhookSecretUnreadable (FAILED_PRECONDITION, WEBHOOK_SECRET_UNREADABLE)
    ├─ InvalidArgument (INVALID_ARGUMENT)
    │  ├─ BatchTooLarge (INVALID_ARGUMENT, BATCH_TOO_LARGE)
    │  ├─ ContainerNumberInvalid (INVALID_ARGUMENT, CONTAINER_NUMBER_INVALID)
    │  ├─ CriteriaInvalid (INVALID_ARGUMENT, CRITERIA_INVALID)
    │  ├─ EventCursorInvalid (INVALID_ARGUMENT, EVENT_CURSOR_INVALID)
    │  ├─ ExpiryTooFar (INVALID_ARGUMENT, EXPIRY_TOO_FAR)
    │  ├─ FieldInvalid (INVALID_ARGUMENT, FIELD_INVALID)
    │  ├─ GtinInvalid (INVALID_ARGUMENT, GTIN_INVALID)
    │  ├─ HsCodeInvalid (INVALID_ARGUMENT, HS_CODE_INVALID)
    │  ├─ IdInUse (INVALID_ARGUMENT, ID_IN_USE)
    │  ├─ IdInvalid (INVALID_ARGUMENT, ID_INVALID)
    │  ├─ Malformed (INVALID_ARGUMENT, MALFORMED)
    │  ├─ NameInvalid (INVALID_ARGUMENT, NAME_INVALID)
    │  ├─ PageSizeInvalid (INVALID_ARGUMENT, PAGE_SIZE_INVALID)
    │  ├─ PageTokenExpired (INVALID_ARGUMENT, PAGE_TOKEN_EXPIRED)
    │  ├─ PageTokenInvalid (INVALID_ARGUMENT, PAGE_TOKEN_INVALID)
    │  ├─ RequestIdInvalid (INVALID_ARGUMENT, REQUEST_ID_INVALID)
    │  ├─ SequenceOutOfRange (INVALID_ARGUMENT, SEQUENCE_OUT_OF_RANGE)
    │  └─ UpdateMaskInvalid (INVALID_ARGUMENT, UPDATE_MASK_INVALID)
    ├─ KeyExpired (FAILED_PRECONDITION, KEY_EXPIRED)
    ├─ KeyFileError (FAILED_PRECONDITION, KEY_FILE_INVALID)
    ├─ MessageExpired (FAILED_PRECONDITION, EXPIRED)
    ├─ MessageIdReused (ALREADY_EXISTS, MESSAGE_ID_REUSED)
    ├─ NotFound (NOT_FOUND)
    │  ├─ AlertNotFound (NOT_FOUND, ALERT_NOT_FOUND)
    │  ├─ AuditEntryNotFound (NOT_FOUND, AUDIT_ENTRY_NOT_FOUND)
    │  ├─ CaseNotFound (NOT_FOUND, CASE_NOT_FOUND)
    │  ├─ ConsentRequestNotFound (NOT_FOUND, CONSENT_REQUEST_NOT_FOUND)
    │  ├─ DeliveryNotFound (NOT_FOUND, DELIVERY_NOT_FOUND)
    │  ├─ OfficerNotFound (NOT_FOUND, OFFICER_NOT_FOUND)
    │  ├─ RecordNotFound (NOT_FOUND, RECORD_NOT_FOUND)
    │  ├─ TreatyNotFound (NOT_FOUND, TREATY_NOT_FOUND)
    │  └─ WebhookNotFound (NOT_FOUND, WEBHOOK_NOT_FOUND)
    ├─ PayloadTooLarge (RESOURCE_EXHAUSTED, PAYLOAD_TOO_LARGE)
    ├─ PermissionDenied (PERMISSION_DENIED)
    │  ├─ CaseOwnerMismatch (PERMISSION_DENIED, CASE_OWNER_MISMATCH)
    │  ├─ HolderMismatch (PERMISSION_DENIED, HOLDER_MISMATCH)
    │  ├─ NotOnCaseTeam (PERMISSION_DENIED, NOT_ON_CASE_TEAM)
    │  ├─ RoleNotPermitted (PERMISSION_DENIED, ROLE_NOT_PERMITTED)
    │  └─ SenderMismatch (PERMISSION_DENIED, SENDER_MISMATCH)
    ├─ PolicyRefused (FAILED_PRECONDITION, POLICY_REFUSED)
    │  ├─ ApproverIsAuthor (PERMISSION_DENIED, APPROVER_IS_AUTHOR)
    │  ├─ CategoryNotPermitted (FAILED_PRECONDITION, CATEGORY_NOT_PERMITTED)
    │  ├─ ConsentInvalid (FAILED_PRECONDITION, CONSENT_INVALID)
    │  ├─ FieldNotPermitted (FAILED_PRECONDITION, FIELD_NOT_PERMITTED)
    │  ├─ HandlingNotPermitted (FAILED_PRECONDITION, HANDLING_NOT_PERMITTED)
    │  ├─ KindNotPermitted (FAILED_PRECONDITION, KIND_NOT_PERMITTED)
    │  ├─ NotAParty (FAILED_PRECONDITION, NOT_A_PARTY)
    │  ├─ OnwardSharingForbidden (FAILED_PRECONDITION, ONWARD_SHARING_FORBIDDEN)
    │  ├─ ReviewRequired (FAILED_PRECONDITION, REVIEW_REQUIRED)
    │  └─ TreatyNotInForce (FAILED_PRECONDITION, TREATY_NOT_IN_FORCE)
    ├─ RequestIdReused (ALREADY_EXISTS, REQUEST_ID_REUSED)
    ├─ StreamReplaced (RESOURCE_EXHAUSTED, STREAM_REPLACED)
    ├─ TooManyStreams (RESOURCE_EXHAUSTED, TOO_MANY_STREAMS)
    ├─ Unauthenticated (UNAUTHENTICATED)
    │  ├─ CertificateInvalid (UNAUTHENTICATED, CERTIFICATE_INVALID)
    │  ├─ TokenInvalid (UNAUTHENTICATED, TOKEN_INVALID)
    │  └─ TokenMissing (UNAUTHENTICATED, TOKEN_MISSING)
    ├─ Unavailable (UNAVAILABLE)
    │  ├─ DirectoryMissing (UNAVAILABLE, DIRECTORY_MISSING)
    │  └─ GatewayUnreachable (UNAVAILABLE, GATEWAY_UNREACHABLE)
    └─ VerificationError (PERMISSION_DENIED, SIGNATURE_INVALID)
       ├─ AuditLogInvalid (DATA_LOSS, AUDIT_LOG_INVALID)
       ├─ DirectoryInvalid (FAILED_PRECONDITION, DIRECTORY_INVALID)
       ├─ EnvelopeInvalid (PERMISSION_DENIED, ENVELOPE_INVALID)
       └─ SignatureInvalid (PERMISSION_DENIED, SIGNATURE_INVALID)
"""

from __future__ import annotations

from collections.abc import Mapping

ERROR_DOMAIN = "intelshare.v1"


class IntelshareError(Exception):
    """Base of every intelshare error."""

    reason: str = "INTERNAL"
    grpc_code: str = "INTERNAL"

    def __init__(self, message: str = "", *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.reason)
        self.message = message or (self.__class__.__doc__ or self.reason).strip()
        self.metadata: dict[str, str] = dict(metadata or {})


# --- input -----------------------------------------------------------------


class InvalidArgument(IntelshareError):
    """A request field is invalid."""

    reason = "INVALID_ARGUMENT"
    grpc_code = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str = "",
        *,
        violations: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        #: field path -> what is wrong with it (sent as google.rpc.BadRequest)
        self.violations: dict[str, str] = dict(violations or {})


class Malformed(InvalidArgument):
    """The message could not be parsed."""

    reason = "MALFORMED"


class PayloadTooLarge(IntelshareError):
    """The message is larger than the configured limit."""

    reason = "PAYLOAD_TOO_LARGE"
    grpc_code = "RESOURCE_EXHAUSTED"


class NotFound(IntelshareError):
    """The resource does not exist."""

    reason = "NOT_FOUND"
    grpc_code = "NOT_FOUND"


class MessageIdReused(IntelshareError):
    """The message id was already used for a different envelope."""

    reason = "MESSAGE_ID_REUSED"
    grpc_code = "ALREADY_EXISTS"


class RequestIdReused(IntelshareError):
    """The request_id was already used for a different request."""

    reason = "REQUEST_ID_REUSED"
    grpc_code = "ALREADY_EXISTS"


class SequenceOutOfRange(InvalidArgument):
    """A sequence number or cursor is above what any queue can allocate (2^63 - 1)."""

    reason = "SEQUENCE_OUT_OF_RANGE"


class ExpiryTooFar(InvalidArgument):
    """The message's expire_time is further ahead than the service accepts."""

    reason = "EXPIRY_TOO_FAR"


class FailedPrecondition(IntelshareError):
    """The resource is not in a state that allows this (e.g. the alert was revoked)."""

    reason = "FAILED_PRECONDITION"
    grpc_code = "FAILED_PRECONDITION"


# --- keys and configuration -------------------------------------------------


class KeyFileError(IntelshareError):
    """A key file is missing, of the wrong type, or readable by others."""

    reason = "KEY_FILE_INVALID"
    grpc_code = "FAILED_PRECONDITION"


class KeyExpired(IntelshareError):
    """The key has expired or was replaced."""

    reason = "KEY_EXPIRED"
    grpc_code = "FAILED_PRECONDITION"


class ConfigError(IntelshareError):
    """The configuration is invalid."""

    reason = "CONFIG_INVALID"
    grpc_code = "FAILED_PRECONDITION"


# --- authentication ----------------------------------------------------------


class Unauthenticated(IntelshareError):
    """The caller's credentials are missing or wrong."""

    reason = "UNAUTHENTICATED"
    grpc_code = "UNAUTHENTICATED"


class PermissionDenied(IntelshareError):
    """The caller's role does not allow this."""

    reason = "PERMISSION_DENIED"
    grpc_code = "PERMISSION_DENIED"


class SenderMismatch(PermissionDenied):
    """The envelope's sender is not the agency of the authenticated peer."""

    reason = "SENDER_MISMATCH"


class CaseOwnerMismatch(PermissionDenied):
    """A case membership whose case id was made by another agency than its sender."""

    reason = "CASE_OWNER_MISMATCH"


# --- verification (opaque) ---------------------------------------------------


class VerificationError(IntelshareError):
    """A signature or document failed verification."""

    reason = "SIGNATURE_INVALID"
    grpc_code = "PERMISSION_DENIED"

    def __init__(
        self,
        message: str = "",
        *,
        audit_detail: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        #: precise cause, for the audit log only; never sent to the caller
        self.audit_detail = audit_detail


class SignatureInvalid(VerificationError):
    """The signature does not verify."""

    reason = "SIGNATURE_INVALID"


class EnvelopeInvalid(VerificationError):
    """The envelope could not be verified or opened."""

    reason = "ENVELOPE_INVALID"


class DirectoryInvalid(VerificationError):
    """The directory is unsigned, wrongly signed, expired or older than known."""

    reason = "DIRECTORY_INVALID"
    grpc_code = "FAILED_PRECONDITION"


class AuditLogInvalid(VerificationError):
    """The audit log failed verification."""

    reason = "AUDIT_LOG_INVALID"
    grpc_code = "DATA_LOSS"


# --- federation and policy ---------------------------------------------------


class AgencyUnknown(IntelshareError):
    """No such agency in the directory."""

    reason = "AGENCY_UNKNOWN"
    grpc_code = "FAILED_PRECONDITION"


class AgencyNotActive(IntelshareError):
    """The agency is suspended, revoked or outside its validity."""

    reason = "AGENCY_NOT_ACTIVE"
    grpc_code = "FAILED_PRECONDITION"


class PolicyRefused(IntelshareError):
    """The treaty does not permit this."""

    reason = "POLICY_REFUSED"
    grpc_code = "FAILED_PRECONDITION"


class TreatyNotInForce(PolicyRefused):
    """The treaty is unknown, not signed by every party, or outside its validity."""

    reason = "TREATY_NOT_IN_FORCE"


class NotAParty(PolicyRefused):
    """An agency is not a party of the treaty."""

    reason = "NOT_A_PARTY"


class KindNotPermitted(PolicyRefused):
    """The treaty does not permit this record kind."""

    reason = "KIND_NOT_PERMITTED"


class CategoryNotPermitted(PolicyRefused):
    """The treaty does not permit this data category."""

    reason = "CATEGORY_NOT_PERMITTED"


class HandlingNotPermitted(PolicyRefused):
    """The handling code or TLP marking is above the treaty's maximum."""

    reason = "HANDLING_NOT_PERMITTED"


class FieldNotPermitted(PolicyRefused):
    """A field is not permitted by the treaty."""

    reason = "FIELD_NOT_PERMITTED"


class ReviewRequired(PolicyRefused):
    """The treaty reserves this record kind or category for review before release.

    There is no review attestation yet, so every such record is refused
    (see :func:`intelshare.treaty.decide_review`).
    """

    reason = "REVIEW_REQUIRED"


class OnwardSharingForbidden(PolicyRefused):
    """The treaty a record was received under forbids passing it on."""

    reason = "ONWARD_SHARING_FORBIDDEN"


class ConsentInvalid(PolicyRefused):
    """A forwarded record's consent is missing or does not cover this forward."""

    reason = "CONSENT_INVALID"


class ApproverIsAuthor(PolicyRefused):
    """Four eyes: the officer who wrote a record cannot approve its release."""

    reason = "APPROVER_IS_AUTHOR"
    grpc_code = "PERMISSION_DENIED"


# --- delivery ----------------------------------------------------------------


class MessageExpired(IntelshareError):
    """The message has expired."""

    reason = "EXPIRED"
    grpc_code = "FAILED_PRECONDITION"


class ClockSkew(IntelshareError):
    """The message's creation time is outside the accepted clock skew."""

    reason = "CLOCK_SKEW"
    grpc_code = "FAILED_PRECONDITION"


class CursorExpired(IntelshareError):
    """The cursor is older than what is kept."""

    reason = "CURSOR_EXPIRED"
    grpc_code = "OUT_OF_RANGE"


class CursorAhead(IntelshareError):
    """The cursor is beyond what the gateway allocated: its queue went back.

    Only a restored or replaced gateway database does that. The recipient
    cannot tell which of its sequence numbers now name other messages, so
    it reads again from the gateway's acknowledged position and recognizes
    what it already stored by message id.
    """

    reason = "CURSOR_AHEAD"
    grpc_code = "OUT_OF_RANGE"


class TooManyStreams(IntelshareError):
    """As many streams are open as the service allows (in total or for the caller)."""

    reason = "TOO_MANY_STREAMS"
    grpc_code = "RESOURCE_EXHAUSTED"


class StreamReplaced(IntelshareError):
    """A newer stream of the same caller replaced this one."""

    reason = "STREAM_REPLACED"
    grpc_code = "RESOURCE_EXHAUSTED"


class Unavailable(IntelshareError):
    """A service the operation needs cannot be reached; retry later."""

    reason = "UNAVAILABLE"
    grpc_code = "UNAVAILABLE"


# --- IPR enforcement (recordations, detentions) ---------------------------------


class GtinInvalid(InvalidArgument):
    """A GTIN is malformed or its check digit is wrong."""

    reason = "GTIN_INVALID"


class HsCodeInvalid(InvalidArgument):
    """A Harmonized System code does not have the required digits."""

    reason = "HS_CODE_INVALID"


class ContainerNumberInvalid(InvalidArgument):
    """A container number is not a valid ISO 6346 number."""

    reason = "CONTAINER_NUMBER_INVALID"


class DetentionMoveInvalid(FailedPrecondition):
    """The detention cannot make this move from its state, or not by this role."""

    reason = "DETENTION_MOVE_INVALID"


class RecordationMoveInvalid(FailedPrecondition):
    """The recordation cannot make this move from its state."""

    reason = "RECORDATION_MOVE_INVALID"


class DeadlinePassed(FailedPrecondition):
    """The deadline this action belongs to has passed."""

    reason = "DEADLINE_PASSED"


class RecordationExpired(FailedPrecondition):
    """The recordation is not in force (expired, withdrawn or suspended)."""

    reason = "RECORDATION_EXPIRED"


class ExtensionRefused(FailedPrecondition):
    """The extension is not allowed (already extended, perishable goods, or too long)."""

    reason = "EXTENSION_REFUSED"


class HolderMismatch(PermissionDenied):
    """A rights holder asked for another holder's record."""

    reason = "HOLDER_MISMATCH"


class CriteriaInvalid(InvalidArgument):
    """A risk profile's criteria are not in the criteria language (docs/screening.md)."""

    reason = "CRITERIA_INVALID"


class PageTokenInvalid(InvalidArgument):
    """A page token not issued by this node, for this caller and listing, or changed."""

    reason = "PAGE_TOKEN_INVALID"


class PageTokenExpired(InvalidArgument):
    """A page token older than its lifetime."""

    reason = "PAGE_TOKEN_EXPIRED"


class TreatyNotFound(NotFound):
    """No treaty of that id whose parties include this agency is held here."""

    reason = "TREATY_NOT_FOUND"


class NameInvalid(InvalidArgument):
    """A resource name is not of the form the method takes."""

    reason = "NAME_INVALID"


def all_error_classes() -> list[type[IntelshareError]]:
    """Every class of the hierarchy, for translation tables at the boundaries."""
    seen: list[type[IntelshareError]] = []
    stack: list[type[IntelshareError]] = [IntelshareError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


# The causes, each with its own reason (see intelshare/error_causes.py), imported
# last because they derive from the classes above; their __all__ names them.
from intelshare.error_causes import *  # noqa: E402, F403
