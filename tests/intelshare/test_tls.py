"""Real mTLS handshakes with grpcio: P-256 leaves under an Ed25519 federation CA.

These tests start a real gRPC server on 127.0.0.1:0 with the standard health
service and prove what the design relies on: grpcio accepts the Ed25519 CA,
the server learns the client's agency id, and everything that is not a
certificate of this federation for the right name is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from intelshare import federation, tls
from intelshare.directory import verify_directory
from intelshare.errors import AgencyNotActive, AgencyUnknown, ConfigError


@dataclass
class Bundle:
    cert: bytes
    key: bytes
    ca: bytes


def _bundle(d: Path) -> Bundle:
    return Bundle(
        cert=(d / "tls.crt").read_bytes(),
        key=(d / "tls.key").read_bytes(),
        ca=(d / "ca.pem").read_bytes(),
    )


@dataclass
class Recorder(health.HealthServicer):  # type: ignore[misc]
    """Health service that records who the server thinks each caller is."""

    seen: list[tuple[str | None, bytes | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.seen.append((tls.peer_agency_id(context), tls.peer_certificate_pem(context)))
        return super().Check(request, context)


@dataclass
class World:
    fed: federation.Federation
    agency: Bundle
    gateway: Bundle
    other_agency: Bundle  # enrolled in another federation
    other_gateway: Bundle
    wrong_host_gateway: Bundle


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("tls")
    fed = federation.init(tmp / "fed", "demo-federation")
    fed.enrol(
        "nl-customs", display_name="NL Customs", country="NL", kind="customs", out_dir=tmp / "nl"
    )
    fed.issue_server_certificate("gateway", ["localhost", "127.0.0.1"], out_dir=tmp / "gw")
    fed.issue_server_certificate("elsewhere", ["gw.example.org"], out_dir=tmp / "gw-wrong")
    other = federation.init(tmp / "other", "other-federation")
    other.enrol(
        "nl-customs", display_name="Impostor", country="NL", kind="customs", out_dir=tmp / "imp"
    )
    other.issue_server_certificate("gateway", ["localhost"], out_dir=tmp / "other-gw")
    return World(
        fed=fed,
        agency=_bundle(tmp / "nl"),
        gateway=_bundle(tmp / "gw"),
        other_agency=_bundle(tmp / "imp"),
        other_gateway=_bundle(tmp / "other-gw"),
        wrong_host_gateway=_bundle(tmp / "gw-wrong"),
    )


@dataclass
class Server:
    port: int
    recorder: Recorder


def _serve(server_bundle: Bundle, client_ca: bytes) -> Iterator[Server]:
    recorder = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(recorder, server)
    creds = tls.server_credentials(server_bundle.cert, server_bundle.key, client_ca)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        yield Server(port, recorder)
    finally:
        server.stop(None)


@pytest.fixture
def gateway(world: World) -> Iterator[Server]:
    yield from _serve(world.gateway, world.gateway.ca)


def _check(
    port: int,
    creds: grpc.ChannelCredentials,
    host: str = "localhost",
    options: list[tuple[str, Any]] | None = None,
) -> None:
    with grpc.secure_channel(f"{host}:{port}", creds, options=options) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _refused(port: int, creds: grpc.ChannelCredentials, host: str = "localhost") -> None:
    with pytest.raises(grpc.RpcError) as info:
        _check(port, creds, host)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_enrolled_agency_connects_and_server_sees_its_id(world: World, gateway: Server) -> None:
    creds = tls.channel_credentials(world.agency.ca, world.agency.cert, world.agency.key)
    _check(gateway.port, creds)
    _check(gateway.port, creds, host="127.0.0.1")  # the IP SAN works too
    agency_id, pem = gateway.recorder.seen[0]
    assert agency_id == "nl-customs"
    assert pem is not None
    # The gateway's full mapping: pinned fingerprint in the verified directory.
    signed = world.fed.publish_directory()
    trusted = verify_directory(signed, world.fed.anchor, now=datetime.now(UTC))
    assert trusted.agency_for_certificate(pem).agency_id == agency_id


def test_client_without_certificate_is_refused(world: World, gateway: Server) -> None:
    _refused(gateway.port, tls.channel_credentials(world.agency.ca))
    assert gateway.recorder.seen == []


def test_client_from_another_federation_is_refused(world: World, gateway: Server) -> None:
    # It trusts our CA (so the server is fine for it) but presents a
    # certificate that another federation's CA issued for the same agency id.
    creds = tls.channel_credentials(
        world.agency.ca, world.other_agency.cert, world.other_agency.key
    )
    _refused(gateway.port, creds)
    assert gateway.recorder.seen == []


def test_server_with_wrong_host_name_is_refused(world: World) -> None:
    for server in _serve(world.wrong_host_gateway, world.agency.ca):
        creds = tls.channel_credentials(world.agency.ca, world.agency.cert, world.agency.key)
        _refused(server.port, creds)
        assert server.recorder.seen == []
        # Control: the same server is accepted under the name it was issued for,
        # so the refusal above is the host name check and nothing else.
        _check(server.port, creds, options=[("grpc.ssl_target_name_override", "gw.example.org")])
        assert server.recorder.seen[0][0] == "nl-customs"


def test_server_from_another_federation_is_refused(world: World) -> None:
    for server in _serve(world.other_gateway, world.agency.ca):
        creds = tls.channel_credentials(world.agency.ca, world.agency.cert, world.agency.key)
        _refused(server.port, creds)
        assert server.recorder.seen == []


def test_revoked_agency_passes_tls_but_not_the_directory(
    tmp_path: Path, world: World, gateway: Server
) -> None:
    # The CA signature on a revoked agency's certificate stays valid; what
    # refuses it is the directory lookup the gateway makes after the handshake.
    world.fed.enrol(
        "be-police", display_name="BE Police", country="BE", kind="police", out_dir=tmp_path / "be"
    )
    be = _bundle(tmp_path / "be")
    world.fed.revoke("be-police")
    trusted = verify_directory(
        world.fed.publish_directory(), world.fed.anchor, now=datetime.now(UTC)
    )
    _check(gateway.port, tls.channel_credentials(be.ca, be.cert, be.key))
    agency_id, pem = gateway.recorder.seen[-1]
    assert agency_id == "be-police"
    assert pem is not None
    with pytest.raises(AgencyNotActive):
        trusted.agency_for_certificate(pem)
    assert trusted.agency_for_certificate(pem, require_active=False).status == "revoked"


def test_replaced_certificate_no_longer_maps(tmp_path: Path, world: World) -> None:
    world.fed.enrol(
        "de-customs", display_name="DE Zoll", country="DE", kind="customs", out_dir=tmp_path / "a"
    )
    old = (tmp_path / "a" / "tls.crt").read_bytes()
    world.fed.rotate("de-customs", out_dir=tmp_path / "b")
    trusted = verify_directory(
        world.fed.publish_directory(), world.fed.anchor, now=datetime.now(UTC)
    )
    with pytest.raises(AgencyUnknown):
        trusted.agency_for_certificate(old)
    new = (tmp_path / "b" / "tls.crt").read_bytes()
    assert trusted.agency_for_certificate(new).agency_id == "de-customs"


# --- peer_agency_id on crafted auth contexts -----------------------------------


class FakeContext:
    def __init__(self, ctx: dict[str, list[bytes]]) -> None:
        self._ctx = ctx

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._ctx


@pytest.mark.parametrize(
    ("ctx", "expected"),
    [
        (
            {
                "x509_common_name": [b"nl-customs"],
                "x509_subject_alternative_name": [b"nl-customs", b"intelshare:agency:nl-customs"],
            },
            "nl-customs",
        ),
        ({}, None),
        ({"transport_security_type": [b"ssl"]}, None),
        (  # CN and URI disagree
            {
                "x509_common_name": [b"be-police"],
                "x509_subject_alternative_name": [b"intelshare:agency:nl-customs"],
            },
            None,
        ),
        (  # a server certificate names no agency
            {
                "x509_common_name": [b"gateway"],
                "x509_subject_alternative_name": [b"localhost", b"intelshare:server:gateway"],
            },
            None,
        ),
        (  # two agencies in one certificate
            {
                "x509_common_name": [b"nl-customs"],
                "x509_subject_alternative_name": [
                    b"intelshare:agency:nl-customs",
                    b"intelshare:agency:be-police",
                ],
            },
            None,
        ),
    ],
)
def test_peer_agency_id(ctx: dict[str, list[bytes]], expected: str | None) -> None:
    assert tls.peer_agency_id(FakeContext(ctx)) == expected


def test_peer_certificate_pem_absent() -> None:
    assert tls.peer_certificate_pem(FakeContext({})) is None


# --- input checks -------------------------------------------------------------------


def test_mismatched_key_and_certificate_refused(world: World) -> None:
    with pytest.raises(ConfigError, match="does not belong"):
        tls.channel_credentials(world.agency.ca, world.agency.cert, world.gateway.key)
    with pytest.raises(ConfigError, match="together"):
        tls.channel_credentials(world.agency.ca, world.agency.cert)
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        tls.server_credentials(b"junk", world.gateway.key, world.gateway.ca)


def test_non_p256_key_refused(world: World) -> None:
    key = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigError, match="P-256"):
        tls.server_credentials(world.gateway.cert, key, world.gateway.ca)
