"""The checks every submitted envelope passes before it is queued.

The gateway never sees a payload: it decides on the signed header alone.
Checks run in a fixed order, cheapest and most fundamental first, so the
same envelope is always refused for the same reason:

1. size and structure (``PAYLOAD_TOO_LARGE``, ``MALFORMED``);
2. the header's sender is the agency of the mTLS peer (``SENDER_MISMATCH``),
   which must be active (``AGENCY_NOT_ACTIVE``);
3. the clock (``CLOCK_SKEW``) and expiry (``EXPIRED``);
4. the sender's signature over header, key blocks and ciphertext against the
   directory (``SIGNATURE_INVALID``; the precise cause goes to the audit log);
5. every recipient known and active (``AGENCY_UNKNOWN``, ``AGENCY_NOT_ACTIVE``);
6. the treaty: in force and signed by every party, sender and recipients
   parties, kind, categories, handling code and TLP permitted.

Signature checks of treaties are cached per directory version, since they
only change when the treaty or the directory does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.message import DecodeError

from intelshare import envelope as env_mod
from intelshare import errors
from intelshare.directory import TrustedDirectory
from intelshare.treaty import Handling, SignedTreatyDoc, Tlp, decide, in_force, kind_name
from intelshare.v1 import envelope_pb2


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


def _unverified_header(
    data: bytes, limit: int
) -> tuple[envelope_pb2.Envelope, envelope_pb2.Header]:
    if len(data) > limit:
        raise errors.PayloadTooLarge(f"envelope is {len(data)} bytes; the limit is {limit}")
    try:
        env = envelope_pb2.Envelope.FromString(data)
        header = envelope_pb2.Header.FromString(env.header_bytes)
    except DecodeError:
        raise errors.Malformed("envelope or header could not be parsed") from None
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
    return env, header


def admit(
    data: bytes,
    *,
    peer_agency: str | None,
    directory: TrustedDirectory,
    treaties: TreatyBook,
    now: datetime,
    max_envelope_bytes: int,
    max_clock_skew: timedelta,
) -> Admitted:
    """Check ``data`` (a serialized Envelope) for submission by ``peer_agency``."""
    _env, header = _unverified_header(data, max_envelope_bytes)
    if peer_agency is None:
        raise errors.Unauthenticated("no verified client certificate")
    if header.sender != peer_agency:
        raise errors.SenderMismatch(
            f"envelope sender {header.sender!r} is not the authenticated agency {peer_agency!r}"
        )
    if not directory.is_active(header.sender, now):
        raise errors.AgencyNotActive(f"sender {header.sender!r} is not active")
    create = header.create_time.ToDatetime(tzinfo=now.tzinfo)
    if abs(create - now) > max_clock_skew:
        raise errors.ClockSkew(
            f"envelope created at {create.isoformat()}, gateway time is {now.isoformat()}; "
            f"the accepted skew is {int(max_clock_skew.total_seconds())} s"
        )
    if not header.HasField("expire_time"):
        raise errors.Malformed(
            "envelope has no expire_time", violations={"header.expire_time": "required"}
        )
    if header.expire_time.ToDatetime(tzinfo=now.tzinfo) <= now:
        raise errors.MessageExpired(f"message {header.message_id} has expired")
    try:
        verified = env_mod.verify(
            data,
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
        kind=kind_name(verified.kind),
        categories=list(verified.categories),
        handling=handling,
        tlp=tlp,
    )
    decision.raise_if_refused()
    return Admitted(verified, data, env_mod.envelope_sha256(data))


__all__ = ["Admitted", "TreatyBook", "admit", "in_force"]
