"""The verifying side: every way a directory can be wrong is refused (fail closed)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from intelshare import federation
from intelshare.directory import (
    Anchor,
    DirectoryCache,
    TrustedDirectory,
    certificate_fingerprint,
    directory_signing_payload,
    verify_directory,
)
from intelshare.errors import (
    AgencyNotActive,
    AgencyUnknown,
    ConfigError,
    DirectoryInvalid,
    InvalidArgument,
    SignatureInvalid,
    VerificationError,
)
from intelshare.keylookup import PublicKeyLookup
from intelshare.keys import AgencyKeys, load_signing_key, raw_public
from intelshare.v1 import directory_pb2

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@dataclass
class Fed:
    fed: federation.Federation
    nl: AgencyKeys
    be: AgencyKeys
    tmp: Path

    @property
    def anchor(self) -> Anchor:
        return self.fed.anchor

    def root(self) -> ed25519.Ed25519PrivateKey:
        return load_signing_key(self.fed.path / "root.key")

    def publish(self, at: datetime = T0, days: int = 30) -> directory_pb2.SignedDirectory:
        return self.fed.publish_directory(timedelta(days=days), now=at)

    def sign(self, directory: directory_pb2.Directory) -> directory_pb2.SignedDirectory:
        data = directory.SerializeToString()
        return directory_pb2.SignedDirectory(
            directory_bytes=data, signature=self.root().sign(directory_signing_payload(data))
        )


def _enrol(fed: federation.Federation, tmp: Path, aid: str, at: datetime) -> AgencyKeys:
    keys = AgencyKeys.generate()
    fed.enrol(
        aid,
        display_name=aid.upper(),
        country=aid[:2],
        kind="customs" if "customs" in aid else "police",
        request=federation.make_enrolment_request(keys, aid),
        now=at,
    )
    return keys


@pytest.fixture
def fx(tmp_path: Path) -> Fed:
    fed = federation.init(tmp_path / "fed", "demo-federation", now=T0 - timedelta(days=1))
    nl = _enrol(fed, tmp_path, "nl-customs", T0 - timedelta(hours=2))
    be = _enrol(fed, tmp_path, "be-police", T0 - timedelta(hours=2))
    return Fed(fed, nl, be, tmp_path)


def _verify(
    signed: directory_pb2.SignedDirectory | bytes,
    anchor: Anchor,
    *,
    at: datetime = T0,
    min_version: int = 0,
) -> TrustedDirectory:
    return verify_directory(signed, anchor, now=at, min_version=min_version, clock=lambda: at)


# --- round trip ---------------------------------------------------------------------


def test_round_trip(fx: Fed) -> None:
    signed = fx.publish()
    trusted = _verify(signed.SerializeToString(), fx.anchor)
    lookup: PublicKeyLookup = trusted  # the protocol other code depends on
    assert trusted.version == 1
    assert trusted.federation_id == "demo-federation"
    assert trusted.issue_time == T0
    assert trusted.expire_time == T0 + timedelta(days=30)
    assert [a.agency_id for a in trusted.agencies()] == ["be-police", "nl-customs"]
    nl = trusted.agency("nl-customs")
    assert (nl.country, nl.kind, nl.status) == ("NL", "customs", "active")
    key = lookup.signing_key("nl-customs", fx.nl.signing_key_id, T0)
    assert raw_public(key) == raw_public(fx.nl.signing.public_key())
    kid, enc = lookup.encryption_key("be-police")
    assert kid == fx.be.encryption_key_id
    assert raw_public(enc) == raw_public(fx.be.encryption.public_key())
    assert trusted.is_active("nl-customs", T0)
    assert "nl-customs" in trusted
    assert trusted.signed().SerializeToString() == signed.SerializeToString()
    json.dumps([a.to_json() for a in trusted])  # serialisable for --json


def test_signature_covers_labelled_digest(fx: Fed) -> None:
    signed = fx.publish()
    fx.anchor.root_public_key.verify(
        signed.signature, directory_signing_payload(signed.directory_bytes)
    )
    assert directory_signing_payload(b"x").startswith(b"intelshare/v1 directory\x00")


# --- fail closed ---------------------------------------------------------------------


def test_unsigned_refused(fx: Fed) -> None:
    signed = fx.publish()
    unsigned = directory_pb2.SignedDirectory(directory_bytes=signed.directory_bytes)
    with pytest.raises(DirectoryInvalid, match="not signed"):
        _verify(unsigned, fx.anchor)


def test_signed_by_another_root_refused(fx: Fed) -> None:
    signed = fx.publish()
    impostor = ed25519.Ed25519PrivateKey.generate()
    forged = directory_pb2.SignedDirectory(
        directory_bytes=signed.directory_bytes,
        signature=impostor.sign(directory_signing_payload(signed.directory_bytes)),
    )
    with pytest.raises(DirectoryInvalid, match="does not match the federation root"):
        _verify(forged, fx.anchor)


def test_another_federations_anchor_refuses(fx: Fed, tmp_path: Path) -> None:
    other = federation.init(tmp_path / "other", "demo-federation")
    with pytest.raises(DirectoryInvalid, match="does not match the federation root"):
        _verify(fx.publish(), other.anchor)


def test_signature_without_label_refused(fx: Fed) -> None:
    signed = fx.publish()
    bare = directory_pb2.SignedDirectory(
        directory_bytes=signed.directory_bytes, signature=fx.root().sign(signed.directory_bytes)
    )
    with pytest.raises(DirectoryInvalid):
        _verify(bare, fx.anchor)


def test_every_bit_flip_in_directory_bytes_refused(fx: Fed) -> None:
    signed = fx.publish()
    data = bytearray(signed.directory_bytes)
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            flipped = bytearray(data)
            flipped[i] ^= bit
            bad = directory_pb2.SignedDirectory(
                directory_bytes=bytes(flipped), signature=signed.signature
            )
            with pytest.raises(DirectoryInvalid):
                _verify(bad, fx.anchor)


def test_bit_flip_in_signature_refused(fx: Fed) -> None:
    signed = fx.publish()
    sig = bytearray(signed.signature)
    sig[10] ^= 0x04
    bad = directory_pb2.SignedDirectory(
        directory_bytes=signed.directory_bytes, signature=bytes(sig)
    )
    with pytest.raises(DirectoryInvalid):
        _verify(bad, fx.anchor)


def test_expired_refused(fx: Fed) -> None:
    fx.publish(days=1)
    signed = fx.fed.directory_file.read_bytes()
    _verify(signed, fx.anchor, at=T0 + timedelta(hours=23))
    for late in (T0 + timedelta(days=1), T0 + timedelta(days=400)):
        with pytest.raises(DirectoryInvalid, match="expired"):
            _verify(signed, fx.anchor, at=late)


def test_not_yet_issued_refused_beyond_skew(fx: Fed) -> None:
    signed = fx.publish()
    _verify(signed, fx.anchor, at=T0 - timedelta(minutes=4))
    with pytest.raises(DirectoryInvalid, match="future"):
        _verify(signed, fx.anchor, at=T0 - timedelta(minutes=10))


def test_older_than_known_version_refused(fx: Fed) -> None:
    v1 = fx.publish()
    v2 = fx.publish(T0 + timedelta(minutes=1))
    assert _verify(v2, fx.anchor, min_version=1).version == 2
    assert _verify(v2, fx.anchor, min_version=2).version == 2  # re-fetch of the same
    with pytest.raises(DirectoryInvalid, match="downgrade"):
        _verify(v1, fx.anchor, min_version=2)


def test_federation_id_mismatch_refused(fx: Fed) -> None:
    signed = fx.publish()
    wrong = Anchor("another-federation", fx.anchor.root_public_key)
    with pytest.raises(DirectoryInvalid, match="another-federation"):
        _verify(signed, wrong)


@pytest.mark.parametrize("raw", [b"", b"\xff\xff\xff", b"\x0a\x05abc", b"garbage" * 10])
def test_malformed_bytes_refused(fx: Fed, raw: bytes) -> None:
    with pytest.raises(DirectoryInvalid):
        _verify(raw, fx.anchor)


def test_signed_garbage_content_refused(fx: Fed) -> None:
    data = b"\xff\xff\xff\xff"
    signed = directory_pb2.SignedDirectory(
        directory_bytes=data, signature=fx.root().sign(directory_signing_payload(data))
    )
    with pytest.raises(DirectoryInvalid, match="cannot be parsed"):
        _verify(signed, fx.anchor)


def _base(fx: Fed) -> directory_pb2.Directory:
    return directory_pb2.Directory.FromString(fx.publish().directory_bytes)


def test_duplicate_agency_refused(fx: Fed) -> None:
    d = _base(fx)
    d.agencies.append(d.agencies[0])
    with pytest.raises(DirectoryInvalid, match="listed twice"):
        _verify(fx.sign(d), fx.anchor)


def test_shared_tls_fingerprint_refused(fx: Fed) -> None:
    d = _base(fx)
    d.agencies[1].tls_cert_sha256 = d.agencies[0].tls_cert_sha256
    with pytest.raises(DirectoryInvalid, match="share a TLS certificate"):
        _verify(fx.sign(d), fx.anchor)


def test_key_id_not_matching_key_refused(fx: Fed) -> None:
    d = _base(fx)
    d.agencies[0].signing_key.key_id = "00" * 16
    with pytest.raises(DirectoryInvalid, match="does not match its key"):
        _verify(fx.sign(d), fx.anchor)


def test_wrong_usage_and_missing_pieces_refused(fx: Fed) -> None:
    d = _base(fx)
    d.agencies[0].signing_key.usage = directory_pb2.KEY_USAGE_ENCRYPTION
    with pytest.raises(DirectoryInvalid, match="usage"):
        _verify(fx.sign(d), fx.anchor)
    d = _base(fx)
    d.agencies[0].status = directory_pb2.AGENCY_STATUS_UNSPECIFIED
    with pytest.raises(DirectoryInvalid, match="status"):
        _verify(fx.sign(d), fx.anchor)
    d = _base(fx)
    d.agencies[0].ClearField("encryption_key")
    with pytest.raises(DirectoryInvalid, match="lacks"):
        _verify(fx.sign(d), fx.anchor)
    d = _base(fx)
    d.ClearField("expire_time")
    with pytest.raises(DirectoryInvalid, match="expiry"):
        _verify(fx.sign(d), fx.anchor)
    d = _base(fx)
    d.version = 0
    with pytest.raises(DirectoryInvalid, match="version"):
        _verify(fx.sign(d), fx.anchor)


def test_previous_key_without_end_refused(fx: Fed) -> None:
    d = _base(fx)
    old = directory_pb2.AgencyKey()
    old.CopyFrom(d.agencies[1].signing_key)
    new = AgencyKeys.generate()
    d.agencies[1].signing_key.public_key = raw_public(new.signing.public_key())
    d.agencies[1].signing_key.key_id = new.signing_key_id
    d.agencies[1].previous_keys.append(old)
    with pytest.raises(DirectoryInvalid, match="no end of validity"):
        _verify(fx.sign(d), fx.anchor)


# --- lookups ---------------------------------------------------------------------------


def test_unknown_agency_and_key(fx: Fed) -> None:
    trusted = _verify(fx.publish(), fx.anchor)
    with pytest.raises(SignatureInvalid) as info:
        trusted.signing_key("xx-nobody", fx.nl.signing_key_id, T0)
    assert info.value.message == "signature does not verify"
    assert "xx-nobody" in info.value.audit_detail
    with pytest.raises(SignatureInvalid):
        trusted.signing_key("nl-customs", fx.be.signing_key_id, T0)
    with pytest.raises(AgencyUnknown):
        trusted.encryption_key("xx-nobody")
    with pytest.raises(AgencyUnknown):
        trusted.agency("xx-nobody")
    assert not trusted.is_active("xx-nobody", T0)


def test_naive_time_is_a_programming_error(fx: Fed) -> None:
    trusted = _verify(fx.publish(), fx.anchor)
    with pytest.raises(InvalidArgument):
        trusted.signing_key("nl-customs", fx.nl.signing_key_id, datetime(2026, 6, 1))
    with pytest.raises(InvalidArgument):
        verify_directory(fx.publish(), fx.anchor, now=datetime(2026, 6, 1))


def test_key_not_valid_before_enrolment(fx: Fed) -> None:
    trusted = _verify(fx.publish(), fx.anchor)
    with pytest.raises(SignatureInvalid) as info:
        trusted.signing_key("nl-customs", fx.nl.signing_key_id, T0 - timedelta(days=1))
    assert "validity" in info.value.audit_detail


def test_revoked_agency_verifies_nothing(fx: Fed) -> None:
    fx.fed.revoke("be-police", now=T0 - timedelta(hours=1))
    trusted = _verify(fx.publish(), fx.anchor)
    for at in (T0 - timedelta(hours=1, minutes=30), T0):  # before and after revocation
        with pytest.raises(VerificationError) as info:
            trusted.signing_key("be-police", fx.be.signing_key_id, at)
        assert "revoked" in info.value.audit_detail
        assert "revoked" not in info.value.message
    with pytest.raises(AgencyNotActive):
        trusted.encryption_key("be-police")
    assert not trusted.is_active("be-police", T0)
    assert trusted.agency("be-police").status == "revoked"


def test_suspended_agency(fx: Fed) -> None:
    suspended_at = T0 - timedelta(hours=1)
    fx.fed.suspend("be-police", now=suspended_at)
    trusted = _verify(fx.publish(), fx.anchor)
    # Made before the suspension: still verifies; after: refused.
    trusted.signing_key("be-police", fx.be.signing_key_id, suspended_at - timedelta(minutes=1))
    with pytest.raises(SignatureInvalid):
        trusted.signing_key("be-police", fx.be.signing_key_id, suspended_at)
    with pytest.raises(AgencyNotActive):
        trusted.encryption_key("be-police")
    assert not trusted.is_active("be-police", T0)
    # Reactivated: verifies new messages again and can be sealed for.
    fx.fed.reactivate("be-police", now=T0)
    trusted = _verify(fx.publish(T0 + timedelta(minutes=1)), fx.anchor)
    trusted.signing_key("be-police", fx.be.signing_key_id, T0 + timedelta(minutes=1))
    assert trusted.encryption_key("be-police")[0] == fx.be.encryption_key_id


def test_suspended_without_key_end_verifies_nothing(fx: Fed) -> None:
    # A directory made by other tooling may mark an agency suspended without
    # ending its key: then nothing verifies (fail closed).
    d = _base(fx)
    d.agencies[0].status = directory_pb2.AGENCY_STATUS_SUSPENDED
    trusted = _verify(fx.sign(d), fx.anchor)
    with pytest.raises(SignatureInvalid) as info:
        trusted.signing_key(d.agencies[0].agency_id, d.agencies[0].signing_key.key_id, T0)
    assert "barred" in info.value.audit_detail


def test_rotation_keeps_old_signatures_verifiable_before_rotation_only(fx: Fed) -> None:
    rotated_at = T0 - timedelta(minutes=30)
    old = fx.nl
    new = AgencyKeys.generate()
    fx.fed.rotate(
        "nl-customs",
        request=federation.make_enrolment_request(new, "nl-customs"),
        now=rotated_at,
    )
    trusted = _verify(fx.publish(), fx.anchor)
    just_before = rotated_at - timedelta(seconds=1)
    trusted.signing_key("nl-customs", old.signing_key_id, just_before)
    for after in (rotated_at, rotated_at + timedelta(seconds=1), T0):
        with pytest.raises(SignatureInvalid):
            trusted.signing_key("nl-customs", old.signing_key_id, after)
    trusted.signing_key("nl-customs", new.signing_key_id, T0)
    with pytest.raises(SignatureInvalid):  # the new key did not exist an hour before
        trusted.signing_key("nl-customs", new.signing_key_id, rotated_at - timedelta(hours=1))
    assert trusted.encryption_key("nl-customs")[0] == new.encryption_key_id
    prev = {k.key_id: k for k in trusted.agency("nl-customs").previous_keys}
    assert prev[old.signing_key_id].valid_until == rotated_at
    assert prev[old.encryption_key_id].usage == "encryption"
    # An old encryption key id is never accepted as a signing key id.
    with pytest.raises(SignatureInvalid):
        trusted.signing_key("nl-customs", old.encryption_key_id, just_before)


def test_lookups_fail_closed_once_the_directory_expires(fx: Fed) -> None:
    signed = fx.publish(days=1)
    clock = [T0]
    trusted = verify_directory(signed, fx.anchor, now=T0, clock=lambda: clock[0])
    trusted.signing_key("nl-customs", fx.nl.signing_key_id, T0)
    clock[0] = T0 + timedelta(days=2)
    assert not trusted.is_fresh()
    with pytest.raises(DirectoryInvalid, match="expired"):
        trusted.signing_key("nl-customs", fx.nl.signing_key_id, T0)
    with pytest.raises(DirectoryInvalid):
        trusted.encryption_key("nl-customs")
    assert not trusted.is_active("nl-customs", T0)


def test_agency_for_certificate_pem_and_der(fx: Fed) -> None:
    trusted = _verify(fx.publish(), fx.anchor)
    pem = fx.fed.agency_state("nl-customs")["tls_certificate"].encode()
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert certificate_fingerprint(pem) == certificate_fingerprint(der)
    assert trusted.agency_for_certificate(pem).agency_id == "nl-customs"
    assert trusted.agency_for_certificate(der).agency_id == "nl-customs"
    with pytest.raises(AgencyUnknown):
        trusted.agency_for_certificate(b"not a certificate")


# --- anchor ----------------------------------------------------------------------------


def test_anchor_round_trip_and_checks(fx: Fed, tmp_path: Path) -> None:
    a = Anchor.load(fx.fed.anchor_file)
    assert a.federation_id == "demo-federation"
    assert a.ca_certificate_pem == fx.fed.ca_pem
    assert Anchor.from_bytes(a.to_bytes()) == a
    doc = json.loads(a.to_bytes())
    assert len(base64.b64decode(doc["root_public_key"])) == 32

    def bad(**change: object) -> bytes:
        d = dict(doc)
        d.update(change)
        return json.dumps(d).encode()

    with pytest.raises(ConfigError, match="root_key_id"):
        Anchor.from_bytes(bad(root_key_id="00" * 16))
    other = federation.init(tmp_path / "o", "x")
    with pytest.raises(ConfigError, match="not the federation root"):
        Anchor.from_bytes(bad(ca_certificate=other.ca_pem.decode()))
    with pytest.raises(ConfigError):
        Anchor.from_bytes(bad(root_public_key="AAAA"))
    with pytest.raises(ConfigError):
        Anchor.from_bytes(bad(format="something-else"))
    with pytest.raises(ConfigError):
        Anchor.from_bytes(b"\x00not json")
    with pytest.raises(ConfigError, match="cannot read"):
        Anchor.load(tmp_path / "missing.json")


# --- cache -----------------------------------------------------------------------------


def test_cache_keeps_newest_and_refuses_older(fx: Fed, tmp_path: Path) -> None:
    cache = DirectoryCache(tmp_path / "cache" / "directory.pb", fx.anchor, clock=lambda: T0)
    assert cache.load() is None
    assert cache.known_version() == 0
    v1 = fx.publish()
    v2 = fx.publish(T0 + timedelta(seconds=1))
    assert cache.store(v1).version == 1
    assert cache.store(v2, now=T0 + timedelta(seconds=1)).version == 2
    assert cache.store(v2, now=T0 + timedelta(seconds=1)).version == 2  # same again: fine
    with pytest.raises(DirectoryInvalid, match="downgrade"):
        cache.store(v1)
    loaded = cache.load(now=T0 + timedelta(seconds=2))
    assert loaded is not None
    assert loaded.version == 2


def test_cache_refuses_a_different_document_under_the_same_version(fx: Fed, tmp_path: Path) -> None:
    cache = DirectoryCache(tmp_path / "d.pb", fx.anchor, clock=lambda: T0)
    v1 = fx.publish()
    cache.store(v1)
    d = directory_pb2.Directory.FromString(v1.directory_bytes)
    d.agencies[0].display_name = "Changed"
    with pytest.raises(DirectoryInvalid, match="same version"):
        cache.store(fx.sign(d))


def test_cache_knows_version_of_expired_directory(fx: Fed, tmp_path: Path) -> None:
    late = T0 + timedelta(days=90)
    cache = DirectoryCache(tmp_path / "d.pb", fx.anchor, clock=lambda: late)
    cache.store(fx.publish(), now=T0)
    fx.publish(T0 + timedelta(days=1))  # v2, never seen by this cache
    assert cache.known_version() == 1
    with pytest.raises(DirectoryInvalid, match="expired"):
        cache.load()
    v3 = fx.publish(late)
    assert cache.store(v3).version == 3


def test_cache_with_tampered_file_refuses(fx: Fed, tmp_path: Path) -> None:
    path = tmp_path / "d.pb"
    cache = DirectoryCache(path, fx.anchor, clock=lambda: T0)
    cache.store(fx.publish())
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DirectoryInvalid):
        cache.load()
    with pytest.raises(DirectoryInvalid):
        cache.known_version()
