"""The operator's side: init, enrolment, certificates, statuses, rotation, publishing."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from intelshare import federation
from intelshare.directory import Anchor, directory_signing_payload, verify_directory
from intelshare.errors import ConfigError, InvalidArgument, KeyFileError
from intelshare.keys import AgencyKeys, load_signing_key, raw_public, write_private_key
from intelshare.v1 import directory_pb2

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def fed(tmp_path: Path) -> federation.Federation:
    return federation.init(tmp_path / "fed", "demo-federation", now=T0)


def _enrol(
    fed: federation.Federation, aid: str = "nl-customs", **kw: Any
) -> tuple[AgencyKeys, federation.IssuedAgency]:
    keys = AgencyKeys.generate()
    args: dict[str, Any] = {"display_name": "Douane", "country": "nl", "kind": "customs", "now": T0}
    args.update(kw)
    issued = fed.enrol(aid, request=federation.make_enrolment_request(keys, aid), **args)
    return keys, issued


def _cert(pem: bytes | None) -> x509.Certificate:
    assert pem is not None
    return x509.load_pem_x509_certificate(pem)


# --- init ---------------------------------------------------------------------------


def test_init_creates_root_ca_anchor_state(fed: federation.Federation) -> None:
    d = fed.path
    for name in ("root.key", "ca.pem", "anchor.json", "state.json"):
        assert (d / name).is_file(), name
    assert _mode(d / "root.key") == 0o600
    assert _mode(d / "state.json") == 0o600
    assert _mode(d) == 0o700
    root = load_signing_key(d / "root.key")  # refuses loose modes itself
    ca = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    assert ca.public_key() == root.public_key()
    assert isinstance(ca.public_key(), ed25519.Ed25519PublicKey)
    ca.verify_directly_issued_by(ca)
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign
    cn = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "intelshare federation CA demo-federation"
    anchor = Anchor.load(d / "anchor.json")
    assert anchor.federation_id == "demo-federation"
    assert anchor.root_public_key == root.public_key()
    state = json.loads((d / "state.json").read_text())
    assert state["directory_version"] == 0
    assert state["agencies"] == {}


def test_init_refuses_to_overwrite_a_root(fed: federation.Federation) -> None:
    before = (fed.path / "root.key").read_bytes()
    with pytest.raises(InvalidArgument, match="already holds a federation"):
        federation.init(fed.path, "demo-federation")
    assert (fed.path / "root.key").read_bytes() == before


@pytest.mark.parametrize("fid", ["", "has space", "-lead", "x" * 65, "é"])
def test_init_refuses_bad_federation_id(tmp_path: Path, fid: str) -> None:
    with pytest.raises(InvalidArgument):
        federation.init(tmp_path / "f", fid)
    assert not (tmp_path / "f").exists()


def test_open_uninitialised_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="federation init"):
        federation.open_federation(tmp_path)


def test_loose_root_key_mode_refused(fed: federation.Federation) -> None:
    (fed.path / "root.key").chmod(0o644)
    with pytest.raises(KeyFileError, match="0600"):
        fed.publish_directory(now=T0)


# --- enrolment ------------------------------------------------------------------------


def test_enrol_from_request_issues_a_proper_leaf(fed: federation.Federation) -> None:
    keys, issued = _enrol(fed, cert_days=90)
    cert = _cert(issued.certificate_pem)
    ca = x509.load_pem_x509_certificate(fed.ca_pem)
    cert.verify_directly_issued_by(ca)
    assert cert.public_key() == keys.tls.public_key()
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "nl-customs"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "intelshare:agency:nl-customs"
    ]
    assert san.get_values_for_type(x509.DNSName) == ["nl-customs"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == T0 + timedelta(days=90)
    assert issued.signing_key_id == keys.signing_key_id
    assert issued.encryption_key_id == keys.encryption_key_id
    assert issued.tls_cert_sha256 == cert.fingerprint(hashes.SHA256())
    entry = fed.agency_state("nl-customs")
    assert entry["country"] == "NL"  # normalised
    assert entry["status"] == "active"
    assert entry["signing_key"]["key_id"] == keys.signing_key_id
    assert entry["valid_until"] == (T0 + timedelta(days=90)).isoformat()


def test_enrol_with_generated_keys_writes_a_bundle(
    fed: federation.Federation, tmp_path: Path
) -> None:
    out = tmp_path / "nl"
    issued = fed.enrol(
        "nl-customs", display_name="Douane", country="NL", kind="customs", out_dir=out, now=T0
    )
    for name in ("signing.key", "encryption.key", "tls.key"):
        assert _mode(out / name) == 0o600, name
    keys = AgencyKeys.load(out)
    assert keys.signing_key_id == issued.signing_key_id
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    assert cert.public_key() == keys.tls.public_key()
    assert (out / "ca.pem").read_bytes() == fed.ca_pem
    assert Anchor.load(out / "anchor.json") == fed.anchor
    with pytest.raises(InvalidArgument, match="refusing to overwrite"):
        fed.enrol("be-police", display_name="x", country="BE", kind="police", out_dir=out)


@pytest.mark.parametrize(
    ("aid", "changes", "match"),
    [
        ("NL-Customs", {}, "lowercase"),
        ("localhost", {}, "reserved"),
        ("nl_customs", {}, "lowercase"),
        ("nl-customs", {"country": "NLD"}, "alpha-2"),
        ("nl-customs", {"kind": "army"}, "kind"),
        ("nl-customs", {"display_name": " "}, "name"),
    ],
)
def test_enrol_refuses_bad_input_and_writes_nothing(
    fed: federation.Federation, aid: str, changes: dict[str, str], match: str
) -> None:
    before = (fed.path / "state.json").read_bytes()
    args = {"display_name": "Douane", "country": "NL", "kind": "customs"} | changes
    with pytest.raises(InvalidArgument, match=match):
        fed.enrol(aid, out_dir=fed.path.parent / "out", **args)
    assert (fed.path / "state.json").read_bytes() == before
    assert not (fed.path.parent / "out").exists()


def test_enrol_twice_refused(fed: federation.Federation) -> None:
    _enrol(fed)
    with pytest.raises(InvalidArgument, match="already enrolled"):
        _enrol(fed)


def test_enrol_needs_exactly_one_source(fed: federation.Federation, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="exactly one"):
        fed.enrol("nl-customs", display_name="x", country="NL", kind="customs")
    req = federation.make_enrolment_request(AgencyKeys.generate(), "nl-customs")
    with pytest.raises(InvalidArgument, match="exactly one"):
        fed.enrol(
            "nl-customs",
            display_name="x",
            country="NL",
            kind="customs",
            request=req,
            out_dir=tmp_path,
        )


def test_request_for_another_agency_refused(fed: federation.Federation) -> None:
    req = federation.make_enrolment_request(AgencyKeys.generate(), "be-police")
    with pytest.raises(InvalidArgument, match="not for 'nl-customs'"):
        fed.enrol("nl-customs", display_name="x", country="NL", kind="customs", request=req)


def _tamper(req: bytes, **change: str) -> bytes:
    doc = json.loads(req)
    doc.update(change)
    return json.dumps(doc).encode()


def test_request_proofs_of_possession() -> None:
    keys = AgencyKeys.generate()
    other = AgencyKeys.generate()
    req = federation.make_enrolment_request(keys, "nl-customs")
    parsed = federation.parse_enrolment_request(req)
    assert parsed.signing_key_id == keys.signing_key_id
    # Someone else's signing key: the proof no longer verifies.
    other_pub = json.loads(federation.make_enrolment_request(other, "nl-customs"))
    with pytest.raises(InvalidArgument, match="proof"):
        federation.parse_enrolment_request(
            _tamper(req, signing_public_key=other_pub["signing_public_key"])
        )
    # Swapped encryption key or CSR: bound by the proof as well.
    with pytest.raises(InvalidArgument, match="proof"):
        federation.parse_enrolment_request(
            _tamper(req, encryption_public_key=other_pub["encryption_public_key"])
        )
    with pytest.raises(InvalidArgument, match="proof"):
        federation.parse_enrolment_request(_tamper(req, tls_csr=other_pub["tls_csr"]))
    # The agency id is bound by the CSR's CN and by the proof.
    with pytest.raises(InvalidArgument, match="CN differs"):
        federation.parse_enrolment_request(_tamper(req, agency_id="be-police"))


def test_request_with_wrong_tls_curve_refused() -> None:
    keys = AgencyKeys.generate()
    p384 = ec.generate_private_key(ec.SECP384R1())
    csr = federation.make_tls_csr(p384, "nl-customs").decode()
    with pytest.raises(InvalidArgument, match="P-256"):
        federation.parse_enrolment_request(
            _tamper(federation.make_enrolment_request(keys, "nl-customs"), tls_csr=csr)
        )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": "other"}',
        b'{"format": "intelshare-enrolment-request/1"}',
    ],
)
def test_garbage_requests_refused(raw: bytes) -> None:
    with pytest.raises(InvalidArgument):
        federation.parse_enrolment_request(raw)


def test_request_fingerprint_is_stable() -> None:
    req = federation.make_enrolment_request(AgencyKeys.generate(), "nl-customs")
    fp = federation.request_fingerprint(req)
    assert fp == federation.request_fingerprint(req)
    assert len(fp.split()) == 8


# --- server certificates -----------------------------------------------------------------


def test_server_certificate(fed: federation.Federation, tmp_path: Path) -> None:
    issued = fed.issue_server_certificate(
        "gateway", ["localhost", "127.0.0.1", "::1", "gw.example.org"], out_dir=tmp_path / "gw"
    )
    cert = _cert(issued.certificate_pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(fed.ca_pem))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "gw.example.org"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["intelshare:server:gateway"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert _mode(tmp_path / "gw" / "tls.key") == 0o600
    key = serialization.load_pem_private_key(issued.key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == cert.public_key()
    assert fed.state()["servers"]["gateway"]["hosts"][0] == "localhost"


def test_server_and_agency_names_do_not_collide(fed: federation.Federation) -> None:
    _enrol(fed)
    with pytest.raises(InvalidArgument, match="agency id"):
        fed.issue_server_certificate("gw", ["nl-customs"])
    with pytest.raises(InvalidArgument, match="agency id"):
        fed.issue_server_certificate("nl-customs", ["localhost"])
    fed.issue_server_certificate("hub", ["hub.example.org"])
    with pytest.raises(InvalidArgument, match="server name"):
        _enrol(fed, "hub")
    fed.issue_server_certificate("edge", ["edge-host"])
    with pytest.raises(InvalidArgument, match="server name or host"):
        _enrol(fed, "edge-host")


def test_gateway_service_entry_may_share_its_server_name(fed: federation.Federation) -> None:
    # The gateway has an identity in the directory (it signs receipts) and a
    # server certificate under the same name; only kind "gateway" may do that.
    _enrol(fed, "gateway", display_name="Federation gateway", country="EU", kind="gateway")
    fed.issue_server_certificate("gateway", ["localhost", "127.0.0.1"])
    fed.issue_server_certificate("gw2", ["gateway"])
    assert fed.agency_state("gateway")["kind"] == "gateway"


@pytest.mark.parametrize("host", ["bad host", "-x.example", "a..b", ""])
def test_server_certificate_bad_hosts(fed: federation.Federation, host: str) -> None:
    with pytest.raises(InvalidArgument):
        fed.issue_server_certificate("gateway", [host])


# --- status and rotation -------------------------------------------------------------------


def test_status_transitions(fed: federation.Federation) -> None:
    _enrol(fed)
    assert fed.suspend("nl-customs", now=T0 + timedelta(hours=1)) == "active"
    entry = fed.agency_state("nl-customs")
    assert entry["status"] == "suspended"
    assert entry["signing_key"]["valid_until"] == (T0 + timedelta(hours=1)).isoformat()
    assert fed.suspend("nl-customs") == "suspended"  # idempotent
    assert fed.reactivate("nl-customs") == "suspended"
    assert fed.agency_state("nl-customs")["signing_key"]["valid_until"] is None
    assert fed.revoke("nl-customs") == "active"
    with pytest.raises(InvalidArgument, match="final"):
        fed.reactivate("nl-customs")
    with pytest.raises(InvalidArgument, match="final"):
        fed.suspend("nl-customs")
    with pytest.raises(InvalidArgument, match="not enrolled"):
        fed.suspend("be-police")
    with pytest.raises(InvalidArgument, match="status"):
        fed.set_status("nl-customs", "paused")


def test_rotate_moves_old_keys_to_previous(fed: federation.Federation) -> None:
    old, first = _enrol(fed)
    new = AgencyKeys.generate()
    at = T0 + timedelta(days=10)
    issued = fed.rotate(
        "nl-customs", request=federation.make_enrolment_request(new, "nl-customs"), now=at
    )
    entry = fed.agency_state("nl-customs")
    assert entry["signing_key"]["key_id"] == new.signing_key_id
    assert entry["signing_key"]["valid_from"] == at.isoformat()
    prev = {k["key_id"]: k for k in entry["previous_keys"]}
    assert set(prev) == {old.signing_key_id, old.encryption_key_id}
    assert all(k["valid_until"] == at.isoformat() for k in prev.values())
    assert issued.tls_cert_sha256 != first.tls_cert_sha256
    assert entry["tls_cert_sha256"] == issued.tls_cert_sha256.hex()
    # Going back to an old key is refused: it would be listed twice.
    with pytest.raises(InvalidArgument, match="used before"):
        fed.rotate("nl-customs", request=federation.make_enrolment_request(old, "nl-customs"))


def test_rotate_only_tls_keeps_current_keys(fed: federation.Federation) -> None:
    keys, first = _enrol(fed)
    same = AgencyKeys(
        signing=keys.signing,
        encryption=keys.encryption,
        tls=ec.generate_private_key(ec.SECP256R1()),
    )
    issued = fed.rotate("nl-customs", request=federation.make_enrolment_request(same, "nl-customs"))
    entry = fed.agency_state("nl-customs")
    assert entry["previous_keys"] == []
    assert entry["signing_key"]["key_id"] == keys.signing_key_id
    assert issued.tls_cert_sha256 != first.tls_cert_sha256


def test_rotate_refuses_revoked_and_unknown(fed: federation.Federation) -> None:
    _enrol(fed)
    fed.revoke("nl-customs")
    req = federation.make_enrolment_request(AgencyKeys.generate(), "nl-customs")
    with pytest.raises(InvalidArgument, match="revoked"):
        fed.rotate("nl-customs", request=req)
    req = federation.make_enrolment_request(AgencyKeys.generate(), "be-police")
    with pytest.raises(InvalidArgument, match="not enrolled"):
        fed.rotate("be-police", request=req)


def test_rotate_while_suspended_stays_barred(fed: federation.Federation) -> None:
    _enrol(fed)
    suspended = T0 + timedelta(hours=1)
    fed.suspend("nl-customs", now=suspended)
    fed.rotate(
        "nl-customs",
        request=federation.make_enrolment_request(AgencyKeys.generate(), "nl-customs"),
        now=T0 + timedelta(hours=2),
    )
    entry = fed.agency_state("nl-customs")
    # The old key keeps its earlier end (the suspension), not the rotation time.
    assert all(k["valid_until"] == suspended.isoformat() for k in entry["previous_keys"])
    assert entry["signing_key"]["valid_until"] is not None
    fed.reactivate("nl-customs")
    assert fed.agency_state("nl-customs")["signing_key"]["valid_until"] is None


# --- publishing ----------------------------------------------------------------------------


def test_publish_bumps_version_and_signs(fed: federation.Federation) -> None:
    _enrol(fed)
    s1 = fed.publish_directory(timedelta(days=7), now=T0)
    s2 = fed.publish_directory(timedelta(days=7), now=T0 + timedelta(minutes=1))
    d1 = directory_pb2.Directory.FromString(s1.directory_bytes)
    d2 = directory_pb2.Directory.FromString(s2.directory_bytes)
    assert (d1.version, d2.version) == (1, 2)
    assert d1.federation_id == "demo-federation"
    assert d1.expire_time.ToDatetime(tzinfo=UTC) == T0 + timedelta(days=7)
    fed.anchor.root_public_key.verify(s2.signature, directory_signing_payload(s2.directory_bytes))
    assert fed.directory_file.read_bytes() == s2.SerializeToString()
    assert fed.state()["directory_version"] == 2
    trusted = verify_directory(
        fed.directory_file.read_bytes(), fed.anchor, now=T0 + timedelta(minutes=1)
    )
    assert trusted.agency("nl-customs").display_name == "Douane"


@pytest.mark.parametrize("expire", [timedelta(0), timedelta(seconds=-1), timedelta(days=400)])
def test_publish_refuses_silly_lifetimes(fed: federation.Federation, expire: timedelta) -> None:
    with pytest.raises(InvalidArgument):
        fed.publish_directory(expire, now=T0)
    assert fed.state()["directory_version"] == 0
    assert not fed.directory_file.exists()


def test_concurrent_enrolments_are_all_kept(fed: federation.Federation) -> None:
    ids = [f"agency-{i}" for i in range(8)]
    reqs = {a: federation.make_enrolment_request(AgencyKeys.generate(), a) for a in ids}
    errors: list[BaseException] = []

    def work(aid: str) -> None:
        try:
            fed.enrol(aid, display_name=aid, country="NL", kind="other", request=reqs[aid])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a,)) for a in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(fed.state()["agencies"]) == sorted(ids)


def test_keys_in_directory_match_agency_keys(fed: federation.Federation) -> None:
    keys, _ = _enrol(fed)
    signed = fed.publish_directory(now=T0)
    d = directory_pb2.Directory.FromString(signed.directory_bytes)
    rec = d.agencies[0]
    assert rec.signing_key.public_key == raw_public(keys.signing.public_key())
    assert rec.encryption_key.public_key == raw_public(keys.encryption.public_key())
    assert rec.signing_key.usage == directory_pb2.KEY_USAGE_SIGNING
    assert rec.status == directory_pb2.AGENCY_STATUS_ACTIVE
    assert not rec.signing_key.HasField("valid_until")


def test_root_key_not_matching_anchor_refused(fed: federation.Federation) -> None:
    write_private_key(fed.path / "root.key", ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ConfigError, match=r"not the key anchor\.json pins"):
        fed.publish_directory(now=T0)
    assert not fed.directory_file.exists()
