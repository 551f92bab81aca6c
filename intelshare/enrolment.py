"""Enrolment requests: how an agency asks to join a federation.

The agency runs :func:`make_enrolment_request` at home (its private keys
never leave it) and sends the result to the federation operator, who parses
it with :func:`parse_enrolment_request` before
:meth:`intelshare.federation.Federation.enrol` records the keys and issues
the TLS certificate. Both sides need the same format and the same proof
digest, which is why they live together here rather than with the operator.

Request format (JSON)::

    {"format": "intelshare-enrolment-request/1",
     "agency_id": "...",
     "signing_public_key": "<base64 raw Ed25519>",
     "encryption_public_key": "<base64 raw X25519>",
     "tls_csr": "<PEM PKCS#10 for the P-256 TLS key, CN = agency id>",
     "proof": "<base64 Ed25519 signature by the signing key>"}

The CSR proves possession of the TLS key and ``proof`` of the signing key
(over a labelled digest of all the other fields), so a request cannot claim
someone else's keys. Whether the request really comes from the agency is
for the operator to confirm out of band: both sides can print
:func:`request_fingerprint` and read it to each other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import NameOID

from intelshare.errors import InvalidArgument
from intelshare.ids import key_id
from intelshare.keys import AgencyKeys, raw_public

REQUEST_FORMAT = "intelshare-enrolment-request/1"
REQUEST_PROOF_LABEL = b"intelshare/v1 enrolment request\x00"

# DNS-label shaped: agency ids (and the operator's server names, which share
# their namespace) end up as DNS SANs and in URIs.
DNS_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_RESERVED_IDS = frozenset({"localhost"})


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def validate_agency_id(agency_id: str) -> str:
    """Agency ids are lowercase DNS labels (``nl-customs``): they become SANs."""
    if not DNS_LABEL_RE.match(agency_id):
        raise InvalidArgument(
            f"agency id {agency_id!r} must be lowercase letters, digits and dashes (max 63)",
            violations={"agency_id": "not a lowercase DNS label"},
        )
    if agency_id in _RESERVED_IDS:
        raise InvalidArgument(f"agency id {agency_id!r} is reserved")
    return agency_id


@dataclass(frozen=True)
class EnrolmentRequest:
    """An agency's public keys and TLS CSR, proven to be held by the requester."""

    agency_id: str
    signing_public_key: bytes
    encryption_public_key: bytes
    tls_csr: x509.CertificateSigningRequest

    @property
    def signing_key_id(self) -> str:
        return key_id(self.signing_public_key)

    @property
    def encryption_key_id(self) -> str:
        return key_id(self.encryption_public_key)


def _request_digest(agency_id: str, sign_pub: bytes, enc_pub: bytes, csr_der: bytes) -> bytes:
    h = hashlib.sha256()
    for part in (agency_id.encode("utf-8"), sign_pub, enc_pub, csr_der):
        h.update(len(part).to_bytes(4, "big"))  # length prefixes: no field can bleed into another
        h.update(part)
    return REQUEST_PROOF_LABEL + h.digest()


def make_tls_csr(tls_key: ec.EllipticCurvePrivateKey, agency_id: str) -> bytes:
    """A PEM CSR for the agency's P-256 TLS key, CN = agency id."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agency_id)]))
        .sign(tls_key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def make_enrolment_request(keys: AgencyKeys, agency_id: str) -> bytes:
    """The request an agency sends to the operator (its private keys stay home)."""
    validate_agency_id(agency_id)
    sign_pub = raw_public(keys.signing.public_key())
    enc_pub = raw_public(keys.encryption.public_key())
    csr_pem = make_tls_csr(keys.tls, agency_id)
    csr_der = x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER)
    proof = keys.signing.sign(_request_digest(agency_id, sign_pub, enc_pub, csr_der))
    doc = {
        "format": REQUEST_FORMAT,
        "agency_id": agency_id,
        "signing_public_key": _b64(sign_pub),
        "encryption_public_key": _b64(enc_pub),
        "tls_csr": csr_pem.decode("ascii"),
        "proof": _b64(proof),
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def request_fingerprint(request: bytes) -> str:
    """A short digest of a request for both sides to compare out of band."""
    digest = hashlib.sha256(request).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def parse_enrolment_request(data: bytes) -> EnrolmentRequest:
    """Parse a request and check both proofs of possession; InvalidArgument if not."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument("the enrolment request is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != REQUEST_FORMAT:
        raise InvalidArgument(f"not an enrolment request (format {REQUEST_FORMAT!r} expected)")
    agency_id = doc.get("agency_id")
    if not isinstance(agency_id, str):
        raise InvalidArgument("the enrolment request has no agency_id")
    validate_agency_id(agency_id)
    try:
        sign_pub = base64.b64decode(str(doc["signing_public_key"]), validate=True)
        enc_pub = base64.b64decode(str(doc["encryption_public_key"]), validate=True)
        proof = base64.b64decode(str(doc["proof"]), validate=True)
        signing = ed25519.Ed25519PublicKey.from_public_bytes(sign_pub)
        x25519.X25519PublicKey.from_public_bytes(enc_pub)
        csr = x509.load_pem_x509_csr(str(doc["tls_csr"]).encode("ascii"))
    except (KeyError, binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise InvalidArgument(f"the enrolment request is malformed: {exc}") from exc
    if not csr.is_signature_valid:
        raise InvalidArgument("the TLS CSR's signature is invalid")
    csr_key = csr.public_key()
    if not isinstance(csr_key, ec.EllipticCurvePublicKey) or not isinstance(
        csr_key.curve, ec.SECP256R1
    ):
        raise InvalidArgument("the TLS key must be ECDSA P-256 (grpcio cannot use others)")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [a.value for a in cns] != [agency_id]:
        raise InvalidArgument(f"the TLS CSR is not for {agency_id!r} (its CN differs)")
    csr_der = csr.public_bytes(serialization.Encoding.DER)
    try:
        signing.verify(proof, _request_digest(agency_id, sign_pub, enc_pub, csr_der))
    except InvalidSignature:
        raise InvalidArgument("the request's proof does not verify with its signing key") from None
    return EnrolmentRequest(agency_id, sign_pub, enc_pub, csr)
