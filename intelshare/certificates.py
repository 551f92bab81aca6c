"""The federation's X.509 certificates: the CA and the TLS leaves it issues.

The CA is Ed25519 while TLS leaves are ECDSA P-256, because grpcio (BoringSSL)
handshakes with an Ed25519 issuer but not with an Ed25519 leaf;
``tests/intelshare/test_tls.py`` proves the combination end to end. The CA's
key is the federation's root key (see :mod:`intelshare.federation` for why
one key may both sign directories and issue certificates).

A leaf names what it belongs to by a URI SAN: ``intelshare:agency:<id>`` for
an agency, ``intelshare:server:<name>`` for a federation server such as the
gateway. :func:`intelshare.tls.peer_agency_id` reads the first, so a server
certificate, which never carries it, cannot pass for an agency.

These are the building blocks only; what goes into which certificate, and
the checks before one is issued, are :class:`intelshare.federation.Federation`'s.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from intelshare.errors import InvalidArgument

#: URI SAN that names the agency in its TLS certificate; see intelshare.tls.
AGENCY_URI_PREFIX = "intelshare:agency:"
SERVER_URI_PREFIX = "intelshare:server:"

_HOST_LABEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _ca_name(federation_id: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"intelshare federation CA {federation_id}")]
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca_certificate(
    root: ed25519.Ed25519PrivateKey, federation_id: str, now: datetime, days: int
) -> x509.Certificate:
    """The federation's self-signed CA certificate, made with (and for) the root key."""
    name = _ca_name(federation_id)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root.public_key()), critical=False)
        .sign(root, None)  # Ed25519 takes no separate hash
    )


def issue_leaf(
    *,
    root: ed25519.Ed25519PrivateKey,
    ca: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    common_name: str,
    sans: Sequence[x509.GeneralName],
    usages: Sequence[x509.ObjectIdentifier],
    now: datetime,
    days: int,
) -> x509.Certificate:
    """A P-256 leaf signed by the CA; it never outlives the CA certificate."""
    if days < 1:
        raise InvalidArgument("certificate validity must be at least one day")
    not_after = min(now + timedelta(days=days), ca.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.public_key()), critical=False
        )
        .sign(root, None)
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    """A certificate in PEM, as written to ``ca.pem``, ``tls.crt`` and the state file."""
    return cert.public_bytes(serialization.Encoding.PEM)


def parse_host(host: str) -> x509.GeneralName:
    """A host name or IP address as a SAN; InvalidArgument if it is neither."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > 253 or not all(_HOST_LABEL_RE.match(label) for label in host.split(".")):
        raise InvalidArgument(f"{host!r} is neither an IP address nor a DNS name")
    return x509.DNSName(host.lower())
