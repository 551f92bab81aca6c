"""gRPC credentials from federation certificates, and who the mTLS peer is.

All federation traffic is mutual TLS with certificates from the federation
CA (an Ed25519 CA over ECDSA P-256 leaves; see :mod:`intelshare.certificates`).
The helpers here check the PEM inputs before handing them to grpcio, because
grpcio reports a bad key or a key/certificate mismatch only as an opaque
handshake failure much later, on the first call.

Mapping a peer to an agency, on the gateway:

1. the TLS handshake has already verified the chain to the federation CA
   (``server_credentials(..., require_client_auth=True)``);
2. :func:`peer_agency_id` reads the agency id the CA put in the certificate
   (URI SAN ``intelshare:agency:<id>``, which must agree with the CN);
3. the gateway then calls
   ``directory.agency_for_certificate(peer_certificate_pem(context))``: this
   pins the exact certificate the directory publishes for that agency and its
   status, so a replaced certificate or a revoked/suspended agency is refused
   although the CA signature on its certificate is still valid. The two ids
   must be equal, and the envelope's sender must equal them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from intelshare.certificates import AGENCY_URI_PREFIX
from intelshare.errors import ConfigError


class _HasAuthContext(Protocol):
    # Both grpc.ServicerContext and grpc.aio.ServicerContext fit.
    def auth_context(self) -> Mapping[str, Any]: ...


def _check_cert(cert_pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise ConfigError(f"{what} is not a PEM certificate") from exc
    if not certs:
        raise ConfigError(f"{what} holds no certificate")
    return certs


def _check_pair(cert_pem: bytes, key_pem: bytes) -> None:
    leaf = _check_cert(cert_pem, "the TLS certificate")[0]
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError("the TLS key is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError("the TLS key must be ECDSA P-256 (grpcio cannot use Ed25519 leaves)")
    if key.public_key() != leaf.public_key():
        raise ConfigError("the TLS key does not belong to the TLS certificate")


def server_credentials(
    cert_pem: bytes, key_pem: bytes, ca_pem: bytes, require_client_auth: bool = True
) -> grpc.ServerCredentials:
    """Server credentials that accept only clients with a certificate from ``ca_pem``.

    ``require_client_auth`` stays True for every federation server; it is a
    parameter only for local test servers and health probes that cannot
    present a client certificate.
    """
    _check_pair(cert_pem, key_pem)
    _check_cert(ca_pem, "the CA certificate")
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=require_client_auth
    )


def channel_credentials(
    ca_pem: bytes, cert_pem: bytes | None = None, key_pem: bytes | None = None
) -> grpc.ChannelCredentials:
    """Client credentials trusting only ``ca_pem``, optionally presenting a certificate.

    Nodes always present their agency certificate to the gateway; the
    certificate-less form exists for tools that only read public endpoints.
    The server's host name is checked against its certificate's SANs by
    grpcio; dial the name the gateway's certificate was issued for.
    """
    _check_cert(ca_pem, "the CA certificate")
    if (cert_pem is None) != (key_pem is None):
        raise ConfigError("a client certificate and its key must be given together")
    if cert_pem is not None and key_pem is not None:
        _check_pair(cert_pem, key_pem)
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


def _values(ctx: Mapping[str, Any], key: str) -> list[str]:
    raw = ctx.get(key)
    if raw is None:
        return []
    items: Iterable[Any] = [raw] if isinstance(raw, bytes | str) else raw
    out: list[str] = []
    for item in items:
        if isinstance(item, bytes):
            try:
                out.append(item.decode("utf-8"))
            except UnicodeDecodeError:
                continue
        elif isinstance(item, str):
            out.append(item)
    return out


def peer_agency_id(context: _HasAuthContext) -> str | None:
    """The agency id in the mTLS peer's certificate, or None.

    None when there is no verified client certificate, when it names no
    agency (a server certificate), names several, or when its CN disagrees
    with its agency URI. The result is only what the CA vouched for; check it
    against the directory (see the module docstring) before trusting it.
    """
    ctx = context.auth_context()
    if not ctx or ("x509_pem_cert" not in ctx and "x509_common_name" not in ctx):
        return None
    uris = [
        v[len(AGENCY_URI_PREFIX) :]
        for v in _values(ctx, "x509_subject_alternative_name")
        if v.startswith(AGENCY_URI_PREFIX)
    ]
    if len(set(uris)) != 1:
        return None
    agency = uris[0]
    if not agency or _values(ctx, "x509_common_name") != [agency]:
        return None
    return agency


def peer_certificate_pem(context: _HasAuthContext) -> bytes | None:
    """The mTLS peer's leaf certificate as PEM, or None without one."""
    ctx = context.auth_context()
    raw = ctx.get("x509_pem_cert") if ctx else None
    if raw is None:
        return None
    items = [raw] if isinstance(raw, bytes | str) else list(raw)
    if len(items) != 1:
        return None
    item = items[0]
    return item if isinstance(item, bytes) else str(item).encode("ascii")
