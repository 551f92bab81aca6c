"""The verifying side of federation trust: anchor, signed directory, lookups.

Every node and the gateway pin one thing out of band: the *anchor*, i.e. the
federation id and the federation root's Ed25519 public key (plus, for
convenience, the federation CA certificate, which is self-signed by that same
key). Everything else they believe about other agencies comes from a
:class:`~intelshare.v1.directory_pb2.SignedDirectory` that they verify
against the anchor with :func:`verify_directory`. The gateway relays the
directory but cannot substitute a key: it does not hold the root.

Verification fails closed. A directory that is unsigned, signed by anyone but
the pinned root, altered by a single bit, for another federation, expired,
issued in the future, older than one the caller has already seen (downgrade),
or internally inconsistent (duplicate agencies, malformed keys) raises
:class:`~intelshare.errors.DirectoryInvalid` and yields nothing usable. The
messages are precise, in operator terms: a directory is public, signed data,
so the reason it was refused is no secret and the operator needs it.

Anchor file format (``anchor.json``, UTF-8 JSON, safe to publish)::

    {
      "format": "intelshare-anchor/1",
      "federation_id": "demo-federation",
      "root_public_key": "<base64 of the raw 32-byte Ed25519 public key>",
      "root_key_id": "<key_id() of that key, to read out over the phone>",
      "ca_certificate": "-----BEGIN CERTIFICATE-----\\n..."   (optional)
    }

The CA certificate, when present, must be self-signed by the root key;
loading refuses an anchor whose pieces disagree.

Signature over a directory: Ed25519 by the root over
``b"intelshare/v1 directory\\x00" + SHA-256(directory_bytes)``. The label
keeps a directory signature from ever being valid as anything else the root
signs (X.509 certificates sign DER ``TBSCertificate`` structures, which start
with a SEQUENCE tag and can never begin with this label).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.errors import (
    AgencyNotActive,
    AgencyUnknown,
    ConfigError,
    DirectoryInvalid,
    InvalidArgument,
    SignatureInvalid,
)
from intelshare.ids import key_id
from intelshare.v1 import directory_pb2

ANCHOR_FORMAT = "intelshare-anchor/1"
DIRECTORY_SIGNATURE_LABEL = b"intelshare/v1 directory\x00"

#: Clock difference tolerated between the operator and a verifier, for
#: ``issue_time`` and for keys that became valid "just now".
DEFAULT_SKEW = timedelta(minutes=5)

ACTIVE = "active"
SUSPENDED = "suspended"
REVOKED = "revoked"

_STATUS_NAMES: dict[int, str] = {
    directory_pb2.AGENCY_STATUS_ACTIVE: ACTIVE,
    directory_pb2.AGENCY_STATUS_SUSPENDED: SUSPENDED,
    directory_pb2.AGENCY_STATUS_REVOKED: REVOKED,
}
_USAGE_NAMES: dict[int, str] = {
    directory_pb2.KEY_USAGE_SIGNING: "signing",
    directory_pb2.KEY_USAGE_ENCRYPTION: "encryption",
}

Clock = Callable[[], datetime]


def _system_clock() -> datetime:
    return datetime.now(UTC)


def directory_signing_payload(directory_bytes: bytes) -> bytes:
    """What the root signs for ``directory_bytes``: label + SHA-256 digest.

    Shared with :mod:`intelshare.federation` so signer and verifier cannot
    drift apart.
    """
    return DIRECTORY_SIGNATURE_LABEL + hashlib.sha256(directory_bytes).digest()


def certificate_fingerprint(cert: bytes | x509.Certificate) -> bytes:
    """SHA-256 over the DER of a certificate given as DER, PEM or object.

    This is the value the directory publishes as ``tls_cert_sha256``.
    """
    if isinstance(cert, x509.Certificate):
        der = cert.public_bytes(serialization.Encoding.DER)
    elif cert.lstrip().startswith(b"-----BEGIN"):
        try:
            der = x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
        except ValueError as exc:
            raise InvalidArgument("not a PEM certificate") from exc
    else:
        der = cert
    return hashlib.sha256(der).digest()


def to_datetime(ts: Timestamp) -> datetime:
    """A protobuf Timestamp as an aware UTC datetime."""
    return ts.ToDatetime(tzinfo=UTC)


def _aware(at: datetime, what: str) -> datetime:
    # A naive datetime is a programming error, not a verification outcome:
    # silently assuming local time would shift every validity window.
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidArgument(f"{what} must be a timezone-aware datetime")
    return at


# --- anchor -------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """What a node pins out of band: the federation id and the root key."""

    federation_id: str
    root_public_key: ed25519.Ed25519PublicKey
    ca_certificate_pem: bytes | None = None

    @property
    def root_public_bytes(self) -> bytes:
        return self.root_public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def root_key_id(self) -> str:
        return key_id(self.root_public_bytes)

    def to_bytes(self) -> bytes:
        """The anchor file's content (JSON, see the module docstring)."""
        doc: dict[str, str] = {
            "format": ANCHOR_FORMAT,
            "federation_id": self.federation_id,
            "root_public_key": base64.b64encode(self.root_public_bytes).decode("ascii"),
            "root_key_id": self.root_key_id,
        }
        if self.ca_certificate_pem is not None:
            doc["ca_certificate"] = self.ca_certificate_pem.decode("ascii")
        return (json.dumps(doc, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "anchor") -> Anchor:
        """Parse and cross-check an anchor; :class:`ConfigError` if anything is off."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{source} is not a JSON anchor file") from exc
        if not isinstance(doc, dict) or doc.get("format") != ANCHOR_FORMAT:
            raise ConfigError(f"{source} is not an anchor file (format {ANCHOR_FORMAT!r} expected)")
        fed = doc.get("federation_id")
        if not isinstance(fed, str) or not fed:
            raise ConfigError(f"{source} has no federation_id")
        try:
            raw = base64.b64decode(str(doc.get("root_public_key", "")), validate=True)
            root = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{source} has no valid Ed25519 root_public_key") from exc
        stated = doc.get("root_key_id")
        if stated is not None and stated != key_id(raw):
            raise ConfigError(f"{source}: root_key_id does not match root_public_key")
        ca_pem: bytes | None = None
        if doc.get("ca_certificate") is not None:
            ca_pem = str(doc["ca_certificate"]).encode("ascii")
            _check_ca_matches_root(ca_pem, root, source)
        return cls(federation_id=fed, root_public_key=root, ca_certificate_pem=ca_pem)

    @classmethod
    def load(cls, path: Path) -> Anchor:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read anchor file {path}: {exc.strerror}") from exc
        return cls.from_bytes(data, source=f"anchor file {path}")

    def verify_payload(self, signature: bytes, payload: bytes) -> bool:
        """True when ``signature`` is the root's over ``payload``."""
        try:
            self.root_public_key.verify(signature, payload)
        except InvalidSignature:
            return False
        return True


def _check_ca_matches_root(ca_pem: bytes, root: ed25519.Ed25519PublicKey, source: str) -> None:
    try:
        cert = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        raise ConfigError(f"{source}: ca_certificate is not a PEM certificate") from exc
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey) or key != root:
        raise ConfigError(f"{source}: ca_certificate is not the federation root's certificate")
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigError(f"{source}: ca_certificate is not self-signed by the root") from exc


# --- directory entries (read-only views) -------------------------------------


@dataclass(frozen=True)
class PublishedKey:
    """One public key of an agency as the directory publishes it."""

    key_id: str
    usage: str  # "signing" | "encryption"
    public_key: bytes
    valid_from: datetime | None
    valid_until: datetime | None

    def valid_at(self, at: datetime, skew: timedelta = DEFAULT_SKEW) -> bool:
        """Inside [valid_from - skew, valid_until): the end is exact, never stretched."""
        if self.valid_from is not None and at < self.valid_from - skew:
            return False
        return self.valid_until is None or at < self.valid_until


@dataclass(frozen=True)
class Agency:
    """One agency's directory entry, immutable so no caller can alter trust."""

    agency_id: str
    display_name: str
    country: str
    kind: str
    status: str  # "active" | "suspended" | "revoked"
    signing_key: PublishedKey
    encryption_key: PublishedKey
    previous_keys: tuple[PublishedKey, ...]
    tls_cert_sha256: bytes
    valid_from: datetime | None
    valid_until: datetime | None

    def within_validity(self, at: datetime, skew: timedelta = DEFAULT_SKEW) -> bool:
        if self.valid_from is not None and at < self.valid_from - skew:
            return False
        return self.valid_until is None or at < self.valid_until

    def to_json(self) -> dict[str, Any]:
        def k(key: PublishedKey) -> dict[str, Any]:
            return {
                "key_id": key.key_id,
                "usage": key.usage,
                "public_key": base64.b64encode(key.public_key).decode("ascii"),
                "valid_from": key.valid_from.isoformat() if key.valid_from else None,
                "valid_until": key.valid_until.isoformat() if key.valid_until else None,
            }

        return {
            "agency_id": self.agency_id,
            "display_name": self.display_name,
            "country": self.country,
            "kind": self.kind,
            "status": self.status,
            "signing_key": k(self.signing_key),
            "encryption_key": k(self.encryption_key),
            "previous_keys": [k(p) for p in self.previous_keys],
            "tls_cert_sha256": self.tls_cert_sha256.hex(),
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }


def _opt_time(msg: Any, field: str) -> datetime | None:
    return to_datetime(getattr(msg, field)) if msg.HasField(field) else None


def _key_from_pb(
    pb: directory_pb2.AgencyKey, expected_usage: int | None, where: str
) -> PublishedKey:
    usage = _USAGE_NAMES.get(pb.usage)
    if usage is None or (expected_usage is not None and pb.usage != expected_usage):
        raise DirectoryInvalid(f"{where} has the wrong key usage")
    if len(pb.public_key) != 32:
        raise DirectoryInvalid(f"{where} is not a 32-byte public key")
    if pb.key_id != key_id(pb.public_key):
        raise DirectoryInvalid(f"{where} has key id {pb.key_id!r}, which does not match its key")
    return PublishedKey(
        key_id=pb.key_id,
        usage=usage,
        public_key=bytes(pb.public_key),
        valid_from=_opt_time(pb, "valid_from"),
        valid_until=_opt_time(pb, "valid_until"),
    )


def _agency_from_pb(rec: directory_pb2.AgencyRecord) -> Agency:
    aid = rec.agency_id
    if not aid:
        raise DirectoryInvalid("an agency entry has no agency id")
    status = _STATUS_NAMES.get(rec.status)
    if status is None:
        raise DirectoryInvalid(f"agency {aid!r} has no valid status")
    if not rec.HasField("signing_key") or not rec.HasField("encryption_key"):
        raise DirectoryInvalid(f"agency {aid!r} lacks a signing or encryption key")
    signing = _key_from_pb(rec.signing_key, directory_pb2.KEY_USAGE_SIGNING, f"{aid} signing key")
    encryption = _key_from_pb(
        rec.encryption_key, directory_pb2.KEY_USAGE_ENCRYPTION, f"{aid} encryption key"
    )
    previous = tuple(
        _key_from_pb(p, None, f"{aid} previous key {p.key_id!r}") for p in rec.previous_keys
    )
    for p in previous:
        # A replaced key without an end would verify forever: refuse it.
        if p.valid_until is None:
            raise DirectoryInvalid(f"agency {aid!r} previous key {p.key_id} has no end of validity")
    seen: set[tuple[str, str]] = set()
    for key in (signing, encryption, *previous):
        if (key.usage, key.key_id) in seen:
            raise DirectoryInvalid(f"agency {aid!r} lists {key.usage} key {key.key_id} twice")
        seen.add((key.usage, key.key_id))
    if len(rec.tls_cert_sha256) not in (0, 32):
        raise DirectoryInvalid(f"agency {aid!r} has a malformed TLS certificate fingerprint")
    return Agency(
        agency_id=aid,
        display_name=rec.display_name,
        country=rec.country,
        kind=rec.agency_kind,
        status=status,
        signing_key=signing,
        encryption_key=encryption,
        previous_keys=previous,
        tls_cert_sha256=bytes(rec.tls_cert_sha256),
        valid_from=_opt_time(rec, "valid_from"),
        valid_until=_opt_time(rec, "valid_until"),
    )


# --- the verified directory ----------------------------------------------------


def _opaque(detail: str) -> SignatureInvalid:
    # Same coarse message whatever the cause; the cause goes to the audit log.
    return SignatureInvalid("signature does not verify", audit_detail=detail)


class TrustedDirectory:
    """A directory that verified against the anchor; implements PublicKeyLookup.

    Only :func:`verify_directory` builds one. Every key lookup first checks
    that the directory has not expired (by ``clock``): a node that cannot
    refresh its directory stops trusting it rather than acting on stale
    statuses (fail closed).

    Status semantics:

    * ``active``: current keys verify from their ``valid_from``; previous
      keys verify for times before their ``valid_until``.
    * ``suspended``: nothing new verifies. The operator ends the current
      keys' validity at the moment of suspension, so messages made before it
      still verify (as the design asks) and nothing made after does; a
      suspended agency whose current key has no end verifies nothing at all.
      It has no encryption key: nobody seals for it.
    * ``revoked``: nothing verifies, whatever the time, and it has no
      encryption key. Revocation is for compromise; old signatures by a
      compromised key prove nothing.
    """

    def __init__(
        self,
        *,
        directory: directory_pb2.Directory,
        signed_bytes: bytes,
        agencies: dict[str, Agency],
        clock: Clock,
        skew: timedelta,
    ) -> None:
        self._dir = directory
        self.signed_bytes = signed_bytes
        self._agencies = agencies
        self._by_fingerprint = {
            a.tls_cert_sha256: a for a in agencies.values() if a.tls_cert_sha256
        }
        self._clock = clock
        self._skew = skew
        # Read on every key lookup (freshness) and built once: the document
        # never changes, and decoding a Timestamp or a raw public key costs
        # more than the check it serves.
        self._expire = to_datetime(directory.expire_time)
        self._verifiers: dict[bytes, ed25519.Ed25519PublicKey] = {}
        self._wrapping: dict[bytes, x25519.X25519PublicKey] = {}

    # -- facts about the document

    @property
    def federation_id(self) -> str:
        return self._dir.federation_id

    @property
    def version(self) -> int:
        return self._dir.version

    @property
    def issue_time(self) -> datetime:
        return to_datetime(self._dir.issue_time)

    @property
    def expire_time(self) -> datetime:
        return self._expire

    def signed(self) -> directory_pb2.SignedDirectory:
        """The verified SignedDirectory, to relay verbatim to others."""
        return directory_pb2.SignedDirectory.FromString(self.signed_bytes)

    def is_fresh(self, now: datetime | None = None) -> bool:
        at = self._clock() if now is None else _aware(now, "now")
        return at < self.expire_time

    def _require_fresh(self) -> None:
        now = self._clock()
        if not now < self.expire_time:
            raise DirectoryInvalid(
                f"directory version {self.version} expired at {self.expire_time.isoformat()}; "
                "fetch a newer one from the federation operator"
            )

    # -- agencies

    def agency(self, agency_id: str) -> Agency:
        try:
            return self._agencies[agency_id]
        except KeyError:
            raise AgencyUnknown(f"agency {agency_id!r} is not in the directory") from None

    def agencies(self) -> list[Agency]:
        return [self._agencies[k] for k in sorted(self._agencies)]

    def __iter__(self) -> Iterator[Agency]:
        return iter(self.agencies())

    def __contains__(self, agency_id: object) -> bool:
        return agency_id in self._agencies

    def is_active(self, agency_id: str, at: datetime) -> bool:
        """True if the agency is active and within its validity at ``at``.

        False as well when the directory itself has expired (fail closed).
        """
        at = _aware(at, "at")
        agency = self._agencies.get(agency_id)
        if agency is None or not self.is_fresh():
            return False
        return agency.status == ACTIVE and agency.within_validity(at, self._skew)

    def agency_for_certificate(
        self, cert: bytes | x509.Certificate, *, require_active: bool = True
    ) -> Agency:
        """The agency whose published TLS fingerprint is ``cert`` (DER or PEM).

        The gateway calls this with the mTLS peer's certificate (see
        :func:`intelshare.tls.peer_certificate_pem`). Matching the exact
        fingerprint, not just the name the CA put in it, means a certificate
        that was replaced by rotation or belongs to a revoked agency maps to
        nothing, although its CA signature is still good.
        """
        self._require_fresh()
        agency = self._by_fingerprint.get(certificate_fingerprint(cert))
        if agency is None:
            raise AgencyUnknown("the peer certificate is not any agency's current certificate")
        if require_active and not (
            agency.status == ACTIVE and agency.within_validity(self._clock(), self._skew)
        ):
            raise AgencyNotActive(f"agency {agency.agency_id!r} is {agency.status}")
        return agency

    # -- PublicKeyLookup

    def signing_key(self, agency_id: str, key_id: str, at: datetime) -> ed25519.Ed25519PublicKey:
        """The Ed25519 key ``key_id`` of ``agency_id`` if it was valid at ``at``.

        Raises :class:`SignatureInvalid` with a generic message and the precise
        reason in ``audit_detail``; :class:`DirectoryInvalid` if the directory
        has expired.
        """
        at = _aware(at, "at")
        self._require_fresh()
        agency = self._agencies.get(agency_id)
        if agency is None:
            raise _opaque(f"agency {agency_id!r} is not in directory v{self.version}")
        if agency.status == REVOKED:
            raise _opaque(f"agency {agency_id!r} is revoked")
        if not agency.within_validity(at, self._skew):
            raise _opaque(f"agency {agency_id!r} was not within its validity at {at.isoformat()}")
        candidates = [agency.signing_key] + [
            p for p in agency.previous_keys if p.usage == "signing"
        ]
        key = next((k for k in candidates if k.key_id == key_id), None)
        if key is None:
            raise _opaque(f"agency {agency_id!r} has no signing key {key_id}")
        if agency.status != ACTIVE and key.valid_until is None:
            raise _opaque(f"agency {agency_id!r} is {agency.status}; its key {key_id} is barred")
        if not key.valid_at(at, self._skew):
            raise _opaque(
                f"signing key {key_id} of {agency_id!r} was not valid at {at.isoformat()} "
                f"(valid {key.valid_from} .. {key.valid_until})"
            )
        verifier = self._verifiers.get(key.public_key)
        if verifier is None:
            verifier = ed25519.Ed25519PublicKey.from_public_bytes(key.public_key)
            self._verifiers[key.public_key] = verifier
        return verifier

    def encryption_key(self, agency_id: str) -> tuple[str, x25519.X25519PublicKey]:
        """The current X25519 key (id, key) to seal for an active agency."""
        self._require_fresh()
        agency = self.agency(agency_id)
        if agency.status != ACTIVE:
            raise AgencyNotActive(f"agency {agency_id!r} is {agency.status}")
        if not agency.within_validity(self._clock(), self._skew):
            raise AgencyNotActive(f"agency {agency_id!r} is outside its validity")
        key = agency.encryption_key
        wrapping = self._wrapping.get(key.public_key)
        if wrapping is None:
            wrapping = x25519.X25519PublicKey.from_public_bytes(key.public_key)
            self._wrapping[key.public_key] = wrapping
        return key.key_id, wrapping


# --- verification ---------------------------------------------------------------


def _parse_signed(
    signed: directory_pb2.SignedDirectory | bytes,
) -> tuple[bytes, directory_pb2.SignedDirectory]:
    if isinstance(signed, directory_pb2.SignedDirectory):
        return signed.SerializeToString(), signed
    if not isinstance(signed, bytes | bytearray):
        raise DirectoryInvalid("not a signed directory")
    raw = bytes(signed)
    try:
        return raw, directory_pb2.SignedDirectory.FromString(raw)
    except DecodeError as exc:
        raise DirectoryInvalid("the file is not a signed directory (cannot be parsed)") from exc


def _verify(
    signed: directory_pb2.SignedDirectory | bytes,
    anchor: Anchor,
    *,
    now: datetime | None,
    min_version: int,
    skew: timedelta,
    clock: Clock,
) -> TrustedDirectory:
    raw, msg = _parse_signed(signed)
    directory_bytes = bytes(msg.directory_bytes)
    if not directory_bytes:
        raise DirectoryInvalid("the file holds no signed directory (empty or another kind of file)")
    if not msg.signature:
        raise DirectoryInvalid("the directory is not signed")
    if len(msg.signature) != 64 or not anchor.verify_payload(
        bytes(msg.signature), directory_signing_payload(directory_bytes)
    ):
        raise DirectoryInvalid(
            "the directory's signature does not match the federation root in the anchor "
            f"(key {anchor.root_key_id}); it was altered or signed by another federation"
        )
    # Only bytes signed by the root are parsed from here on.
    try:
        directory = directory_pb2.Directory.FromString(directory_bytes)
    except DecodeError as exc:
        raise DirectoryInvalid("the signed directory content cannot be parsed") from exc
    if directory.federation_id != anchor.federation_id:
        raise DirectoryInvalid(
            f"the directory is for federation {directory.federation_id!r}, "
            f"the anchor pins {anchor.federation_id!r}"
        )
    if directory.version < 1:
        raise DirectoryInvalid("the directory has no version")
    if directory.version < min_version:
        raise DirectoryInvalid(
            f"the directory is version {directory.version}, older than version {min_version} "
            "already seen; refusing to go back (downgrade)"
        )
    if not directory.HasField("issue_time") or not directory.HasField("expire_time"):
        raise DirectoryInvalid("the directory has no issue or expiry time")
    issued, expires = to_datetime(directory.issue_time), to_datetime(directory.expire_time)
    if expires <= issued:
        raise DirectoryInvalid("the directory expires before it was issued")
    if now is not None:
        if issued > now + skew:
            raise DirectoryInvalid(
                f"the directory was issued in the future ({issued.isoformat()}); check the clocks"
            )
        if not now < expires:
            raise DirectoryInvalid(
                f"the directory (version {directory.version}) expired at {expires.isoformat()}; "
                "the operator must publish a new one"
            )
    agencies: dict[str, Agency] = {}
    fingerprints: dict[bytes, str] = {}
    for rec in directory.agencies:
        agency = _agency_from_pb(rec)
        if agency.agency_id in agencies:
            raise DirectoryInvalid(f"agency {agency.agency_id!r} is listed twice")
        if agency.tls_cert_sha256:
            other = fingerprints.setdefault(agency.tls_cert_sha256, agency.agency_id)
            if other != agency.agency_id:
                raise DirectoryInvalid(
                    f"agencies {other!r} and {agency.agency_id!r} share a TLS certificate"
                )
        agencies[agency.agency_id] = agency
    return TrustedDirectory(
        directory=directory, signed_bytes=raw, agencies=agencies, clock=clock, skew=skew
    )


def verify_directory(
    signed: directory_pb2.SignedDirectory | bytes,
    anchor: Anchor,
    *,
    now: datetime,
    min_version: int = 0,
    skew: timedelta = DEFAULT_SKEW,
    clock: Clock | None = None,
) -> TrustedDirectory:
    """Verify a signed directory against the anchor, or raise DirectoryInvalid.

    ``min_version`` is the highest version the caller has already accepted:
    an older one is refused so a relay cannot replay a directory in which a
    since-revoked agency was still active. The same version is accepted (a
    re-fetch). ``clock`` is what later lookups use to notice expiry; it
    defaults to the system clock.
    """
    return _verify(
        signed,
        anchor,
        now=_aware(now, "now"),
        min_version=min_version,
        skew=skew,
        clock=clock or _system_clock,
    )


# --- a small persistent cache ---------------------------------------------------


class DirectoryCache:
    """The newest verified directory, kept in one file, never replaced by an older one.

    Nodes and the gateway keep their directory here between restarts. The
    file holds the SignedDirectory bytes exactly as received, so it can be
    re-verified on every load and relayed verbatim. Replacing it requires a
    version at least as new, and the same version only with identical bytes
    (two different documents under one version mean something is wrong).
    """

    def __init__(self, path: Path, anchor: Anchor, *, clock: Clock | None = None) -> None:
        self.path = path
        self.anchor = anchor
        self._clock = clock or _system_clock

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def known_version(self) -> int:
        """Version of the cached directory (0 if none), expired or not.

        The signature is still checked, so a planted file cannot raise the
        floor and lock the node out of real updates.
        """
        raw = self._read()
        if raw is None:
            return 0
        try:
            return _verify(
                raw, self.anchor, now=None, min_version=0, skew=DEFAULT_SKEW, clock=self._clock
            ).version
        except DirectoryInvalid as exc:
            # Refuse to guess a floor: an operator must look at the file.
            raise DirectoryInvalid(
                f"the cached directory {self.path} is invalid ({exc.message}); "
                "remove it to accept a fresh directory"
            ) from exc

    def load(self, now: datetime | None = None) -> TrustedDirectory | None:
        """The cached directory, verified now; None if there is none yet."""
        raw = self._read()
        if raw is None:
            return None
        at = self._clock() if now is None else now
        return verify_directory(raw, self.anchor, now=at, clock=self._clock)

    def store(
        self, signed: directory_pb2.SignedDirectory | bytes, now: datetime | None = None
    ) -> TrustedDirectory:
        """Verify ``signed`` and keep it if it is not older than the cached one."""
        at = self._clock() if now is None else now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # check-then-replace by one writer at a time
            old = self._read()
            floor = self.known_version()
            trusted = verify_directory(
                signed, self.anchor, now=at, min_version=floor, clock=self._clock
            )
            if trusted.version == floor and old is not None and old != trusted.signed_bytes:
                raise DirectoryInvalid(
                    f"a different directory with the same version {floor} is already cached"
                )
            if old != trusted.signed_bytes:
                _atomic_write(self.path, trusted.signed_bytes)
        finally:
            os.close(lock)
        return trusted


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
