"""The checks every submitted envelope passes before it is queued.

The gateway never sees a payload: it decides on the signed header alone.
Checks run in a fixed order, cheapest and most fundamental first, so the
same envelope is always refused for the same reason:

1. size and structure (``PAYLOAD_TOO_LARGE``, ``MALFORMED``);
2. the header's sender is the agency of the mTLS peer (``SENDER_MISMATCH``),
   which must be active (``AGENCY_NOT_ACTIVE``);
3. the clock (``CLOCK_SKEW``) and expiry (``EXPIRED``; an expiry further
   than ``max_expiry`` after the creation time is ``EXPIRY_TOO_FAR``);
4. the sender's signature over header, key blocks and ciphertext against the
   directory (``SIGNATURE_INVALID``; the precise cause goes to the audit log);
5. every recipient known and active (``AGENCY_UNKNOWN``, ``AGENCY_NOT_ACTIVE``);
6. the treaty: an exact version (version 0 names none: ``TREATY_NOT_IN_FORCE``,
   as at the receiving node), in force and signed by every party, sender and
   recipients parties, kind, the review rule (a kind or category the treaty
   reserves for review is ``REVIEW_REQUIRED`` unless the signed header
   carries a review attestation that holds as far as a header shows:
   author and a different approver, approved before sealing and not
   longer than :data:`intelshare.review.REVIEW_VALIDITY` before, a payload
   digest), categories, handling code and TLP permitted — the one order of
   :func:`intelshare.treaty.decide`;
7. a case's membership comes from the agency that made the case id
   (``CASE_OWNER_MISMATCH``; :func:`intelshare.ids.case_id_owned_by`, the
   same check as the receiving node's);
8. onward sharing: a header with a provenance (a record passed on by a
   recipient) is checked against the original treaty's rule and, where
   that needs the originator's consent, against the consent envelope the
   header carries (``ONWARD_SHARING_FORBIDDEN``, ``CONSENT_INVALID``;
   :func:`intelshare.onward.decide_provenance`, the same check as the
   third agency's node).

Signature checks of treaties are cached per directory version, since they
only change when the treaty or the directory does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from intelshare import envelope as env_mod
from intelshare import errors
from intelshare.directory import TrustedDirectory
from intelshare.ids import case_id_owned_by
from intelshare.onward import decide_provenance
from intelshare.treaty import Handling, SignedTreatyDoc, Tlp, decide, in_force, kind_name
from intelshare.v1 import envelope_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Admitted:
    header: envelope_pb2.Header
    envelope_bytes: bytes
    envelope_sha256: bytes


class TreatyBook:
    """Treaties the gateway holds, with their in-force state cached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, int], SignedTreatyDoc] = {}
        self._signers: dict[tuple[str, int, int], bool] = {}

    def put(self, doc: SignedTreatyDoc) -> None:
        key = (doc.treaty.id, doc.treaty.version)
        with self._lock:
            self._docs[key] = doc
            self._signers = {k: v for k, v in self._signers.items() if k[:2] != key}

    def get(self, treaty_id: str, version: int) -> SignedTreatyDoc | None:
        with self._lock:
            if version == 0:
                versions = [v for (t, v) in self._docs if t == treaty_id]
                if not versions:
                    return None
                version = max(versions)
            return self._docs.get((treaty_id, version))

    def get_exact(self, treaty_id: str, version: int) -> SignedTreatyDoc | None:
        """Exactly this version (none for version 0)."""
        with self._lock:
            return self._docs.get((treaty_id, version))

    def all(self) -> list[SignedTreatyDoc]:
        with self._lock:
            return [self._docs[k] for k in sorted(self._docs)]

    def fully_signed(self, doc: SignedTreatyDoc, directory: TrustedDirectory, at: datetime) -> bool:
        """Every party signed (window ignored), cached per directory version."""
        key = (doc.treaty.id, doc.treaty.version, directory.version)
        with self._lock:
            cached = self._signers.get(key)
        if cached is None:
            from intelshare.treaty import verify_signatures

            try:
                cached = verify_signatures(doc, directory, at) == set(doc.treaty.parties)
            except errors.IntelshareError:
                cached = False
            with self._lock:
                self._signers[key] = cached
        return cached

    def in_force(self, doc: SignedTreatyDoc, directory: TrustedDirectory, at: datetime) -> bool:
        return doc.treaty.valid_at(at) and self.fully_signed(doc, directory, at)


def _unverified(data: bytes, limit: int) -> env_mod.Unverified:
    """The envelope read once (:func:`intelshare.envelope.read`): admission's checks look
    at its unverified header, then the same reading is verified."""
    if len(data) > limit:
        raise errors.PayloadTooLarge(f"envelope is {len(data)} bytes; the limit is {limit}")
    try:
        read = env_mod.read(data, max_payload_bytes=limit, reencode=True)
    except errors.EnvelopeInvalid:
        raise errors.Malformed("envelope or header could not be parsed") from None
    header = read.header
    if not header.sender or not header.message_id or not header.recipients:
        raise errors.Malformed(
            "envelope header is incomplete",
            violations={
                k: "required"
                for k, v in (
                    ("header.sender", header.sender),
                    ("header.message_id", header.message_id),
                    ("header.recipients", list(header.recipients)),
                )
                if not v
            },
        )
    return read


def _ts_ns(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * 10**9 + ts.nanos


def _ns_of(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


def _show(ts: timestamp_pb2.Timestamp) -> str:
    try:
        return ts.ToDatetime(tzinfo=UTC).isoformat()
    except (ValueError, OverflowError):
        return f"{ts.seconds} s after the epoch"


def admit(
    data: bytes,
    *,
    peer_agency: str | None,
    directory: TrustedDirectory,
    treaties: TreatyBook,
    now: datetime,
    max_envelope_bytes: int,
    max_clock_skew: timedelta,
    max_expiry: timedelta,
) -> Admitted:
    """Check ``data`` (a serialized Envelope) for submission by ``peer_agency``."""
    read = _unverified(data, max_envelope_bytes)
    header = read.header
    if peer_agency is None:
        raise errors.CertificateInvalid("no verified client certificate")
    if header.sender != peer_agency:
        raise errors.SenderMismatch(
            f"envelope sender {header.sender!r} is not the authenticated agency {peer_agency!r}"
        )
    if not directory.is_active(header.sender, now):
        raise errors.AgencyNotActive(f"sender {header.sender!r} is not active")
    # In integer nanoseconds, not datetimes: a hand-made timestamp can lie
    # far outside what datetime holds (years beyond 9999).
    now_ns = _ns_of(now)
    create_ns = _ts_ns(header.create_time)
    if abs(create_ns - now_ns) > max_clock_skew // timedelta(microseconds=1) * 1000:
        raise errors.ClockSkew(
            f"envelope created at {_show(header.create_time)}, gateway time is "
            f"{now.isoformat()}; the accepted skew is {int(max_clock_skew.total_seconds())} s"
        )
    if not header.HasField("expire_time"):
        raise errors.Malformed(
            "envelope has no expire_time", violations={"header.expire_time": "required"}
        )
    expire_ns = _ts_ns(header.expire_time)
    if expire_ns <= now_ns:
        raise errors.MessageExpired(f"message {header.message_id} has expired")
    # Measured from the creation time (within the skew of this clock), so a
    # sender whose clock runs a little ahead is not refused at the cap.
    lifetime = (expire_ns - create_ns) // 10**9
    if lifetime > max_expiry.total_seconds():
        days = int(max_expiry.total_seconds() // 86400)
        raise errors.ExpiryTooFar(
            f"message {header.message_id} expires {lifetime // 86400} days after its creation; "
            f"the gateway accepts at most {days}",
            violations={"header.expire_time": f"at most {days} days after header.create_time"},
            metadata={"max_expiry_days": str(days)},
        )
    try:
        verified = env_mod.verify(
            read,
            directory,
            now=now,
            max_payload_bytes=max_envelope_bytes,
            max_clock_skew=max_clock_skew,
        )
    except errors.EnvelopeInvalid as exc:
        raise errors.SignatureInvalid(
            "envelope signature or structure is invalid", audit_detail=exc.audit_detail
        ) from None
    for recipient in verified.recipients:
        if recipient not in directory:
            raise errors.AgencyUnknown(f"recipient {recipient!r} is not in the directory")
        if not directory.is_active(recipient, now):
            raise errors.AgencyNotActive(f"recipient {recipient!r} is not active")
    if verified.treaty_version == 0:
        # TreatyBook.get reads 0 as "the newest" (for GetTreaty); an envelope
        # must name the version it was sealed under, as the receiving node
        # requires.
        raise errors.TreatyNotInForce(
            f"envelope names treaty {verified.treaty_id} without a version (0); "
            "an envelope must name the exact treaty version",
            metadata={"treaty_id": verified.treaty_id[:128], "treaty_version": "0"},
        )
    doc = treaties.get(verified.treaty_id, verified.treaty_version)
    if doc is None:
        raise errors.TreatyNotInForce(
            f"treaty {verified.treaty_id} v{verified.treaty_version} is not known to the gateway"
        )
    try:
        handling: Handling | str = Handling(verified.handling)
    except ValueError:
        handling = f"HandlingCode {verified.handling}"
    try:
        tlp: Tlp | str = Tlp(verified.tlp)
    except ValueError:
        tlp = f"Tlp {verified.tlp}"
    decision = decide(
        doc.treaty,
        in_force=treaties.in_force(doc, directory, now),
        sender=verified.sender,
        recipients=list(verified.recipients),
        kind=kind_name(verified.kind, verified.record_kind),
        categories=list(verified.categories),
        handling=handling,
        tlp=tlp,
        # The record's own alert kind is sealed: its implied category in the
        # signed header is what the gateway sees (the nodes check the record).
        review=True,
        attested=verified,
    )
    decision.raise_if_refused()
    if verified.kind == envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP and not case_id_owned_by(
        verified.case_id, verified.sender
    ):
        raise errors.CaseOwnerMismatch(
            f"case id {verified.case_id[:64]!r} was not made by {verified.sender}: "
            "only a case's owner sends its membership",
            metadata={"agency_id": verified.sender},
        )
    if verified.HasField("provenance"):
        decide_provenance(verified, treaties.get_exact, directory, now).raise_if_refused()
    return Admitted(verified, read.data, env_mod.envelope_sha256(read.data))


__all__ = ["Admitted", "TreatyBook", "admit", "in_force"]
