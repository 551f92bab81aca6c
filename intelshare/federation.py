"""The federation operator's side: root key, CA, enrolment, statuses, publishing.

The operator (e.g. a treaty secretariat) keeps one directory on disk::

    root.key      Ed25519 root private key, PKCS#8 PEM, mode 0600
    ca.pem        the federation CA certificate, self-signed by the root key
    anchor.json   federation id + root public key + CA certificate: hand this
                  to every node and to the gateway out of band
    state.json    the operator's record of agencies and server certificates
    directory.pb  the last published SignedDirectory (protobuf bytes)
    .lock         serialises concurrent operator commands

One key is both the directory signer and the CA. That gives nodes a single
thing to pin, and it is safe: a directory signature is made over a labelled
digest (``intelshare/v1 directory``) while certificate signatures are made
over DER ``TBSCertificate`` structures, so neither can pass for the other.
The certificates themselves (an Ed25519 CA over ECDSA P-256 leaves) are made
in :mod:`intelshare.certificates`; the requests agencies send to join, and
their parsing, are :mod:`intelshare.enrolment`'s. This module decides what
is issued to whom and keeps the record.

Nothing here is a security boundary of its own: anything that holds
``root.key`` is the federation. What this module guarantees is that every
change is validated before anything is written, that state is replaced
atomically under a lock, and that a published version number is never reused.

State file format (``state.json``, JSON, mode 0600 because it is the
operator's working record, though it holds only public keys)::

    {"format": "intelshare-federation-state/1",
     "federation_id": "...",
     "directory_version": <last published version, 0 before the first>,
     "agencies": {"<id>": {
         "display_name", "country", "kind",
         "status": "active"|"suspended"|"revoked", "status_changed_at",
         "valid_from", "valid_until",                       (ISO 8601 UTC)
         "signing_key":    {"key_id", "usage", "public_key" (base64 raw),
                            "valid_from", "valid_until" (null = open)},
         "encryption_key": {...},
         "previous_keys":  [{...}, ...],
         "tls_certificate": "<PEM>", "tls_cert_sha256": "<hex>"}},
     "servers": {"<name>": {"hosts": [...], "tls_cert_sha256", "not_after"}}}
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID
from google.protobuf.timestamp_pb2 import Timestamp

# The names after "as" are re-exported: callers have always imported the
# agency-side request functions and the certificate constants from here.
from intelshare.certificates import AGENCY_URI_PREFIX as AGENCY_URI_PREFIX
from intelshare.certificates import SERVER_URI_PREFIX as SERVER_URI_PREFIX
from intelshare.certificates import (
    certificate_pem,
    issue_leaf,
    parse_host,
)
from intelshare.certificates import make_ca_certificate as make_ca_certificate
from intelshare.directory import (
    ACTIVE,
    REVOKED,
    SUSPENDED,
    Anchor,
    certificate_fingerprint,
    directory_signing_payload,
)
from intelshare.enrolment import DNS_LABEL_RE
from intelshare.enrolment import REQUEST_FORMAT as REQUEST_FORMAT
from intelshare.enrolment import REQUEST_PROOF_LABEL as REQUEST_PROOF_LABEL
from intelshare.enrolment import EnrolmentRequest as EnrolmentRequest
from intelshare.enrolment import make_enrolment_request as make_enrolment_request
from intelshare.enrolment import make_tls_csr as make_tls_csr
from intelshare.enrolment import parse_enrolment_request as parse_enrolment_request
from intelshare.enrolment import request_fingerprint as request_fingerprint
from intelshare.enrolment import validate_agency_id as validate_agency_id
from intelshare.errors import ConfigError, InvalidArgument
from intelshare.ids import key_id
from intelshare.keys import (
    AgencyKeys,
    load_signing_key,
    write_private_key,
    write_secret_file,
)
from intelshare.v1 import directory_pb2

ROOT_KEY_FILE = "root.key"
CA_CERT_FILE = "ca.pem"
ANCHOR_FILE = "anchor.json"
STATE_FILE = "state.json"
DIRECTORY_FILE = "directory.pb"
LOCK_FILE = ".lock"

#: Name of the leaf certificate file in an agency's or server's bundle
#: (next to ``tls.key`` from :mod:`intelshare.keys`, ``ca.pem`` and ``anchor.json``).
TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"

STATE_FORMAT = "intelshare-federation-state/1"

AGENCY_KINDS = ("customs", "police", "border_guard", "tax", "other")
#: Directory entries for the federation's own services (the gateway signs
#: receipts and audit tree heads; with an entry, those verify through the
#: same directory as everything else). Such an entry may share its name
#: with the service's server certificate; an agency may not.
SERVICE_KIND = "gateway"
ENTRY_KINDS = (*AGENCY_KINDS, SERVICE_KIND)
STATUSES = (ACTIVE, SUSPENDED, REVOKED)

DEFAULT_CA_DAYS = 3650
DEFAULT_CERT_DAYS = 365
DEFAULT_SERVER_NAME = "gateway"
MAX_DIRECTORY_LIFETIME = timedelta(days=366)

_FEDERATION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise InvalidArgument("now must be a timezone-aware datetime")
    return now.astimezone(UTC)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat()


def _ts(t: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t)
    return ts


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --- results ---------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedAgency:
    """What enrol/rotate produced; the certificate goes back to the agency."""

    agency_id: str
    certificate_pem: bytes | None
    signing_key_id: str
    encryption_key_id: str
    tls_cert_sha256: bytes
    out_dir: Path | None = None


@dataclass(frozen=True)
class ServerCertificate:
    """A server (gateway) certificate and its freshly generated P-256 key."""

    name: str
    certificate_pem: bytes
    key_pem: bytes
    hosts: tuple[str, ...]
    out_dir: Path | None = None


# --- the operator's federation ---------------------------------------------------------


def _key_entry(raw: bytes, usage: str, valid_from: datetime) -> dict[str, Any]:
    return {
        "key_id": key_id(raw),
        "usage": usage,
        "public_key": _b64(raw),
        "valid_from": _iso(valid_from),
        "valid_until": None,
    }


def _key_pb(entry: dict[str, Any]) -> directory_pb2.AgencyKey:
    pb = directory_pb2.AgencyKey(
        key_id=entry["key_id"],
        usage=(
            directory_pb2.KEY_USAGE_SIGNING
            if entry["usage"] == "signing"
            else directory_pb2.KEY_USAGE_ENCRYPTION
        ),
        public_key=base64.b64decode(entry["public_key"]),
    )
    if entry.get("valid_from"):
        pb.valid_from.CopyFrom(_ts(datetime.fromisoformat(entry["valid_from"])))
    if entry.get("valid_until"):
        pb.valid_until.CopyFrom(_ts(datetime.fromisoformat(entry["valid_until"])))
    return pb


_STATUS_PB = {
    ACTIVE: directory_pb2.AGENCY_STATUS_ACTIVE,
    SUSPENDED: directory_pb2.AGENCY_STATUS_SUSPENDED,
    REVOKED: directory_pb2.AGENCY_STATUS_REVOKED,
}


class Federation:
    """An initialised federation directory on the operator's disk.

    Every mutating method takes the lock, re-reads ``state.json``, validates,
    then writes the new state atomically; so two operator commands at once
    cannot lose each other's changes, and a refused change writes nothing.
    Changes reach nodes only when :meth:`publish_directory` is called.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        for name in (ROOT_KEY_FILE, CA_CERT_FILE, ANCHOR_FILE, STATE_FILE):
            if not (path / name).exists():
                raise ConfigError(
                    f"{path} is not an initialised federation directory ({name} is missing); "
                    "run: intelshare federation init"
                )
        self.anchor = Anchor.load(path / ANCHOR_FILE)
        self.federation_id = self.anchor.federation_id

    # -- files

    @property
    def directory_file(self) -> Path:
        return self.path / DIRECTORY_FILE

    @property
    def anchor_file(self) -> Path:
        return self.path / ANCHOR_FILE

    @property
    def ca_pem(self) -> bytes:
        return (self.path / CA_CERT_FILE).read_bytes()

    def _root(self) -> ed25519.Ed25519PrivateKey:
        root = load_signing_key(self.path / ROOT_KEY_FILE)
        # Signing with a key the anchor does not pin would publish
        # directories and certificates no node accepts.
        if root.public_key() != self.anchor.root_public_key:
            raise ConfigError(f"{self.path / ROOT_KEY_FILE} is not the key {ANCHOR_FILE} pins")
        return root

    def _ca(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.ca_pem)

    def _read_state(self) -> dict[str, Any]:
        try:
            state = json.loads((self.path / STATE_FILE).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {self.path / STATE_FILE}: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ConfigError(f"{self.path / STATE_FILE} is not a federation state file")
        if state.get("federation_id") != self.federation_id:
            raise ConfigError("state.json and anchor.json name different federations")
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        data = (json.dumps(state, indent=2, sort_keys=True) + "\n").encode("utf-8")
        write_secret_file(self.path / STATE_FILE, data)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Yield the state under an exclusive lock; saved only if no exception."""
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = self._read_state()
            yield state
            self._write_state(state)
        finally:
            os.close(fd)  # closing releases the lock

    def state(self) -> dict[str, Any]:
        """A snapshot of the operator state (for listing)."""
        return self._read_state()

    def agency_state(self, agency_id: str) -> dict[str, Any]:
        state = self._read_state()
        try:
            entry: dict[str, Any] = state["agencies"][agency_id]
        except KeyError:
            raise InvalidArgument(f"agency {agency_id!r} is not enrolled") from None
        return entry

    # -- enrolment

    def _check_new_name(self, state: dict[str, Any], name: str, kind: str) -> None:
        if name in state["agencies"]:
            raise InvalidArgument(
                f"agency {name!r} is already enrolled; use rotate to give it new keys"
            )
        if kind == SERVICE_KIND:
            return  # the operator's own service may be both a server and an entry
        # An agency named like a server or host could pass as that server
        # (its certificate carries the agency id as a DNS name).
        for server, info in state["servers"].items():
            if name == server or name in info["hosts"]:
                raise InvalidArgument(f"{name!r} is already a server name or host")

    def _agency_cert(
        self,
        root: ed25519.Ed25519PrivateKey,
        agency_id: str,
        key: ec.EllipticCurvePublicKey,
        now: datetime,
        days: int,
    ) -> x509.Certificate:
        return issue_leaf(
            root=root,
            ca=self._ca(),
            public_key=key,
            common_name=agency_id,
            sans=[
                x509.UniformResourceIdentifier(AGENCY_URI_PREFIX + agency_id),
                x509.DNSName(agency_id),
            ],
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
            now=now,
            days=days,
        )

    def write_bundle(self, out_dir: Path, cert_pem: bytes) -> None:
        """Write what a node needs besides its keys: its certificate, the CA, the anchor."""
        _atomic_write(out_dir / TLS_CERT_FILE, cert_pem)
        _atomic_write(out_dir / CA_CERT_FILE, self.ca_pem)
        _atomic_write(out_dir / ANCHOR_FILE, self.anchor.to_bytes())

    @staticmethod
    def _check_out_dir(out_dir: Path) -> None:
        # Never overwrite someone's private keys.
        for name in ("signing.key", "encryption.key", TLS_KEY_FILE):
            if (out_dir / name).exists():
                raise InvalidArgument(f"{out_dir / name} already exists; refusing to overwrite it")

    def enrol(
        self,
        agency_id: str,
        *,
        display_name: str,
        country: str,
        kind: str,
        request: bytes | None = None,
        out_dir: Path | None = None,
        cert_days: int = DEFAULT_CERT_DAYS,
        now: datetime | None = None,
    ) -> IssuedAgency:
        """Admit an agency: record its keys and issue its TLS certificate.

        Exactly one of ``request`` (an agency-made enrolment request; its keys
        never leave the agency) or ``out_dir`` (generate the agency's keys
        here and write them with its certificate, CA and anchor into
        ``out_dir``, a convenience for demos and single-operator setups).
        """
        now = _now(now)
        validate_agency_id(agency_id)
        display_name = display_name.strip()
        if not display_name or len(display_name) > 200:
            raise InvalidArgument("the agency name must be 1 to 200 characters")
        country = country.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise InvalidArgument(f"country {country!r} must be an ISO 3166-1 alpha-2 code")
        if kind not in ENTRY_KINDS:
            raise InvalidArgument(f"kind {kind!r} must be one of {', '.join(ENTRY_KINDS)}")
        keys, req = self._keys_from(agency_id, request, out_dir)
        root = self._root()
        with self._locked() as state:
            self._check_new_name(state, agency_id, kind)
            cert = self._agency_cert(root, agency_id, _tls_public(req), now, cert_days)
            cert_pem = certificate_pem(cert)
            fingerprint = certificate_fingerprint(cert)
            state["agencies"][agency_id] = {
                "display_name": display_name,
                "country": country,
                "kind": kind,
                "status": ACTIVE,
                "status_changed_at": _iso(now),
                "valid_from": _iso(now),
                "valid_until": _iso(cert.not_valid_after_utc),
                "signing_key": _key_entry(req.signing_public_key, "signing", now),
                "encryption_key": _key_entry(req.encryption_public_key, "encryption", now),
                "previous_keys": [],
                "tls_certificate": cert_pem.decode("ascii"),
                "tls_cert_sha256": fingerprint.hex(),
            }
            if keys is not None and out_dir is not None:
                keys.save(out_dir)
                self.write_bundle(out_dir, cert_pem)
        return IssuedAgency(
            agency_id=agency_id,
            certificate_pem=cert_pem,
            signing_key_id=req.signing_key_id,
            encryption_key_id=req.encryption_key_id,
            tls_cert_sha256=fingerprint,
            out_dir=out_dir,
        )

    def _keys_from(
        self, agency_id: str, request: bytes | None, out_dir: Path | None
    ) -> tuple[AgencyKeys | None, EnrolmentRequest]:
        if (request is None) == (out_dir is None):
            raise InvalidArgument("give exactly one of an enrolment request or an output directory")
        if request is not None:
            req = parse_enrolment_request(request)
            if req.agency_id != agency_id:
                raise InvalidArgument(
                    f"the request is for {req.agency_id!r}, not for {agency_id!r}"
                )
            return None, req
        assert out_dir is not None
        self._check_out_dir(out_dir)
        keys = AgencyKeys.generate()
        return keys, parse_enrolment_request(make_enrolment_request(keys, agency_id))

    # -- status

    def set_status(self, agency_id: str, status: str, *, now: datetime | None = None) -> str:
        """Move an agency to ``active``, ``suspended`` or ``revoked``; returns the old status.

        Suspending ends the current keys' validity now, so messages made
        before still verify and nothing newer does; reactivating reopens
        them. Revocation is final: a revoked agency id cannot come back.
        """
        now = _now(now)
        if status not in STATUSES:
            raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}")
        with self._locked() as state:
            try:
                entry = state["agencies"][agency_id]
            except KeyError:
                raise InvalidArgument(f"agency {agency_id!r} is not enrolled") from None
            old: str = entry["status"]
            if old == status:
                return old
            if old == REVOKED:
                raise InvalidArgument(f"agency {agency_id!r} is revoked; revocation is final")
            current = (entry["signing_key"], entry["encryption_key"])
            if status == SUSPENDED:
                for key in current:
                    key["valid_until"] = _iso(now)
            elif status == ACTIVE:
                for key in current:
                    key["valid_until"] = None
            entry["status"] = status
            entry["status_changed_at"] = _iso(now)
        return old

    def suspend(self, agency_id: str, *, now: datetime | None = None) -> str:
        return self.set_status(agency_id, SUSPENDED, now=now)

    def revoke(self, agency_id: str, *, now: datetime | None = None) -> str:
        return self.set_status(agency_id, REVOKED, now=now)

    def reactivate(self, agency_id: str, *, now: datetime | None = None) -> str:
        return self.set_status(agency_id, ACTIVE, now=now)

    # -- rotation

    def rotate(
        self,
        agency_id: str,
        *,
        request: bytes | None = None,
        out_dir: Path | None = None,
        cert_days: int = DEFAULT_CERT_DAYS,
        now: datetime | None = None,
    ) -> IssuedAgency:
        """Replace an agency's keys and TLS certificate.

        A replaced signing or encryption key moves to ``previous_keys`` with
        ``valid_until = now`` (or its earlier end, if it was suspended):
        messages made before still verify, later ones do not. A key that is
        unchanged stays current. The old TLS certificate stops mapping to the
        agency as soon as the new directory is published.
        """
        now = _now(now)
        keys, req = self._keys_from(agency_id, request, out_dir)
        root = self._root()
        with self._locked() as state:
            try:
                entry = state["agencies"][agency_id]
            except KeyError:
                raise InvalidArgument(f"agency {agency_id!r} is not enrolled") from None
            if entry["status"] == REVOKED:
                raise InvalidArgument(f"agency {agency_id!r} is revoked; enrol it anew instead")
            used = {k["key_id"] for k in entry["previous_keys"]}
            for new_raw in (req.signing_public_key, req.encryption_public_key):
                if key_id(new_raw) in used:
                    raise InvalidArgument("a key in the request was used before; make new keys")
            for slot, usage, raw in (
                ("signing_key", "signing", req.signing_public_key),
                ("encryption_key", "encryption", req.encryption_public_key),
            ):
                old_key = entry[slot]
                if old_key["key_id"] == key_id(raw):
                    continue
                if (
                    old_key["valid_until"] is None
                    or datetime.fromisoformat(old_key["valid_until"]) > now
                ):
                    old_key["valid_until"] = _iso(now)
                entry["previous_keys"].append(old_key)
                new_key = _key_entry(raw, usage, now)
                if entry["status"] == SUSPENDED:
                    new_key["valid_until"] = _iso(now)  # still barred until reactivated
                entry[slot] = new_key
            cert = self._agency_cert(root, agency_id, _tls_public(req), now, cert_days)
            cert_pem = certificate_pem(cert)
            fingerprint = certificate_fingerprint(cert)
            entry["tls_certificate"] = cert_pem.decode("ascii")
            entry["tls_cert_sha256"] = fingerprint.hex()
            entry["valid_until"] = _iso(cert.not_valid_after_utc)
            if keys is not None and out_dir is not None:
                keys.save(out_dir)
                self.write_bundle(out_dir, cert_pem)
        return IssuedAgency(
            agency_id=agency_id,
            certificate_pem=cert_pem,
            signing_key_id=req.signing_key_id,
            encryption_key_id=req.encryption_key_id,
            tls_cert_sha256=fingerprint,
            out_dir=out_dir,
        )

    # -- servers

    def issue_server_certificate(
        self,
        name: str = DEFAULT_SERVER_NAME,
        hosts: Iterable[str] = ("localhost", "127.0.0.1"),
        *,
        days: int = DEFAULT_CERT_DAYS,
        out_dir: Path | None = None,
        now: datetime | None = None,
    ) -> ServerCertificate:
        """A serverAuth certificate for the gateway (or another federation server).

        Its SANs are the host names and IP addresses clients dial, plus the
        URI ``intelshare:server:<name>``; it carries no agency URI, so
        :func:`intelshare.tls.peer_agency_id` never mistakes it for an agency.
        With ``out_dir``, writes ``tls.crt``, ``tls.key`` (0600), ``ca.pem``
        and ``anchor.json`` there.
        """
        now = _now(now)
        if not DNS_LABEL_RE.match(name):
            raise InvalidArgument(f"server name {name!r} must be a lowercase DNS label")
        host_list = tuple(dict.fromkeys(h.strip() for h in hosts if h.strip()))
        if not host_list:
            raise InvalidArgument("a server certificate needs at least one host name or address")
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(SERVER_URI_PREFIX + name)]
        sans += [parse_host(h) for h in host_list]
        if out_dir is not None and (out_dir / TLS_KEY_FILE).exists():
            raise InvalidArgument(f"{out_dir / TLS_KEY_FILE} already exists; refusing to overwrite")
        key = ec.generate_private_key(ec.SECP256R1())
        root = self._root()
        with self._locked() as state:
            for h in (name, *host_list):
                entry = state["agencies"].get(h.lower())
                if entry is not None and entry["kind"] != SERVICE_KIND:
                    raise InvalidArgument(f"{h!r} is an agency id; a server cannot use it")
            cert = issue_leaf(
                root=root,
                ca=self._ca(),
                public_key=key.public_key(),
                common_name=name,
                sans=sans,
                usages=[ExtendedKeyUsageOID.SERVER_AUTH],
                now=now,
                days=days,
            )
            state["servers"][name] = {
                "hosts": list(host_list),
                "tls_cert_sha256": certificate_fingerprint(cert).hex(),
                "not_after": _iso(cert.not_valid_after_utc),
            }
            if out_dir is not None:
                write_private_key(out_dir / TLS_KEY_FILE, key)
                self.write_bundle(out_dir, certificate_pem(cert))
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return ServerCertificate(name, certificate_pem(cert), key_pem, host_list, out_dir)

    # -- publishing

    def build_directory(
        self, state: dict[str, Any], version: int, now: datetime, expire_in: timedelta
    ) -> directory_pb2.Directory:
        directory = directory_pb2.Directory(federation_id=self.federation_id, version=version)
        directory.issue_time.CopyFrom(_ts(now))
        directory.expire_time.CopyFrom(_ts(now + expire_in))
        for aid in sorted(state["agencies"]):
            e = state["agencies"][aid]
            rec = directory_pb2.AgencyRecord(
                agency_id=aid,
                display_name=e["display_name"],
                country=e["country"],
                agency_kind=e["kind"],
                signing_key=_key_pb(e["signing_key"]),
                encryption_key=_key_pb(e["encryption_key"]),
                tls_cert_sha256=bytes.fromhex(e["tls_cert_sha256"]),
                status=_STATUS_PB[e["status"]],
                previous_keys=[_key_pb(k) for k in e["previous_keys"]],
            )
            rec.valid_from.CopyFrom(_ts(datetime.fromisoformat(e["valid_from"])))
            if e.get("valid_until"):
                rec.valid_until.CopyFrom(_ts(datetime.fromisoformat(e["valid_until"])))
            directory.agencies.append(rec)
        return directory

    def publish_directory(
        self, expire_in: timedelta = timedelta(days=30), *, now: datetime | None = None
    ) -> directory_pb2.SignedDirectory:
        """Sign the current state as the next directory version and write it.

        The version is bumped and saved before the file is written, so a
        crash can skip a version number but never reuse one (two documents
        under one version would be refused by every node's cache).
        """
        now = _now(now)
        if expire_in <= timedelta(0) or expire_in > MAX_DIRECTORY_LIFETIME:
            raise InvalidArgument("a directory must expire within 1 second to 366 days")
        root = self._root()
        with self._locked() as state:
            version = int(state["directory_version"]) + 1
            directory = self.build_directory(state, version, now, expire_in)
            directory_bytes = directory.SerializeToString(deterministic=True)
            signature = root.sign(directory_signing_payload(directory_bytes))
            signed = directory_pb2.SignedDirectory(
                directory_bytes=directory_bytes, signature=signature
            )
            state["directory_version"] = version
            state["last_published"] = _iso(now)
            self._write_state(state)  # the bump first: a version is never reused
            _atomic_write(self.directory_file, signed.SerializeToString())
        return signed


def _tls_public(req: EnrolmentRequest) -> ec.EllipticCurvePublicKey:
    key = req.tls_csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)  # checked when parsed
    return key


def init(
    path: Path,
    federation_id: str,
    *,
    ca_days: int = DEFAULT_CA_DAYS,
    now: datetime | None = None,
) -> Federation:
    """Create a federation: root key (0600), CA certificate, anchor and empty state.

    Refuses a directory that already holds a root key: overwriting it would
    silently orphan every node that pinned the old anchor.
    """
    now = _now(now)
    if not _FEDERATION_ID_RE.match(federation_id):
        raise InvalidArgument(
            f"federation id {federation_id!r} must be letters, digits, '.', '_' or '-' (max 64)"
        )
    if (path / ROOT_KEY_FILE).exists() or (path / STATE_FILE).exists():
        raise InvalidArgument(f"{path} already holds a federation; refusing to overwrite its root")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    root = ed25519.Ed25519PrivateKey.generate()
    ca = make_ca_certificate(root, federation_id, now, ca_days)
    anchor = Anchor(federation_id, root.public_key(), certificate_pem(ca))
    write_private_key(path / ROOT_KEY_FILE, root)
    _atomic_write(path / CA_CERT_FILE, certificate_pem(ca))
    _atomic_write(path / ANCHOR_FILE, anchor.to_bytes())
    state = {
        "format": STATE_FORMAT,
        "federation_id": federation_id,
        "directory_version": 0,
        "created_at": _iso(now),
        "agencies": {},
        "servers": {},
    }
    write_secret_file(
        path / STATE_FILE, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode("utf-8")
    )
    return Federation(path)


def open_federation(path: Path) -> Federation:
    """An existing federation directory; ConfigError if it is not one."""
    return Federation(path)
