"""Known answers: the committed envelope vectors and RFC 9180.

``vectors/envelope_v1.json`` pins the format: exact header bytes for given
fields, every digest and label, deterministic Ed25519 signatures, and whole
envelopes that must keep opening to the recorded payload (plus envelopes
that must keep being refused, each for its recorded reason). If a change to
the code breaks one of these, it changed the wire format: old envelopes
kept as evidence would stop verifying.

The RFC 9180 part answers "is our key wrap really HPKE?". The
``cryptography`` HPKE API is single-shot with a random ephemeral key and no
AAD, so it cannot replay the RFC's vectors (which fix the ephemeral key and
use AAD) through its public interface. Instead this file carries a small,
independent RFC 9180 base-mode key schedule built from HMAC, HKDF-Expand and
X25519, checks that it reproduces the RFC's published intermediate values
(A.1.1), and then checks, in both directions, that it interoperates with
``hpke_wrap``/``hpke_unwrap`` for the suite the envelope uses (AES-256-GCM,
for which the RFC has no X25519 vector).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from intelshare.envelope import (
    HeaderFields,
    envelope_sha256,
    open_envelope,
    verify,
)
from intelshare.envelope.sealing import _encode_header
from intelshare.errors import EnvelopeInvalid
from intelshare.hazmat import envelope_primitives as prim
from intelshare.ids import key_id
from intelshare.keys import raw_public
from intelshare.v1 import envelope_pb2
from tests.intelshare.test_envelope import DictKeyLookup

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "envelope_v1.json").read_text(encoding="utf-8")
)


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


class _FixedDirectory(DictKeyLookup):
    """The vectors' agencies, from the private keys recorded in the file."""

    def __init__(self) -> None:
        super().__init__()
        self.private_encryption: dict[str, x25519.X25519PrivateKey] = {}
        self.private_signing: dict[str, ed25519.Ed25519PrivateKey] = {}
        for agency in VECTORS["agencies"]:
            signing = ed25519.Ed25519PrivateKey.from_private_bytes(
                bytes.fromhex(agency["signing_private"])
            )
            encryption = x25519.X25519PrivateKey.from_private_bytes(
                bytes.fromhex(agency["encryption_private"])
            )
            sid = key_id(raw_public(signing.public_key()))
            eid = key_id(raw_public(encryption.public_key()))
            self.signing[(agency["id"], sid)] = (signing.public_key(), None)
            self.encryption[agency["id"]] = (eid, encryption.public_key())
            self.private_encryption[agency["id"]] = encryption
            self.private_signing[agency["id"]] = signing


@pytest.fixture(scope="module")
def directory() -> _FixedDirectory:
    return _FixedDirectory()


def _fields(recorded: dict[str, Any]) -> HeaderFields:
    return HeaderFields(
        sender=recorded["sender"],
        recipients=tuple(recorded["recipients"]),
        treaty_id=recorded["treaty_id"],
        treaty_version=recorded["treaty_version"],
        kind=envelope_pb2.MessageKind.Value(recorded["kind"]),
        handling=envelope_pb2.HandlingCode.Value(recorded["handling"]),
        tlp=envelope_pb2.Tlp.Value(recorded["tlp"]),
        categories=tuple(recorded["categories"]),
        expire_time=_time(recorded["expire_time"]),
        reference_id=recorded["reference_id"],
        case_id=recorded["case_id"],
        message_id=recorded["message_id"],
        create_time=_time(recorded["create_time"]),
    )


_BY_NAME = {v["name"]: v for v in VECTORS["vectors"]}


# --- envelope vectors ---------------------------------------------------------------


def test_vector_file_covers_the_format() -> None:
    assert VECTORS["format"] == "intelshare envelope, header version 1"
    assert len(VECTORS["vectors"]) >= 4
    assert {len(v["fields"]["recipients"]) for v in VECTORS["vectors"]} >= {1, 2, 3}
    assert any(v["payload"] == "" for v in VECTORS["vectors"])
    assert VECTORS["labels"] == {
        "content_key_commitment": prim.LABEL_CONTENT_KEY_COMMITMENT.decode(),
        "header_digest": prim.LABEL_HEADER_DIGEST.decode(),
        "key_wrap": prim.LABEL_KEY_WRAP.decode(),
        "envelope_digest": prim.LABEL_ENVELOPE_DIGEST.decode(),
    }


def test_agency_key_ids_follow_from_the_recorded_keys(directory: _FixedDirectory) -> None:
    for agency in VECTORS["agencies"]:
        signing = directory.private_signing[agency["id"]].public_key()
        encryption = directory.private_encryption[agency["id"]].public_key()
        assert raw_public(signing).hex() == agency["signing_public"]
        assert raw_public(encryption).hex() == agency["encryption_public"]
        assert key_id(raw_public(signing)) == agency["signing_key_id"]
        assert key_id(raw_public(encryption)) == agency["encryption_key_id"]


@pytest.mark.parametrize("name", sorted(_BY_NAME))
def test_vector_header_bytes_are_exactly_what_the_fields_encode_to(name: str) -> None:
    vector = _BY_NAME[name]
    fields = _fields(vector["fields"])
    assert fields.message_id is not None
    assert fields.create_time is not None
    encoded = _encode_header(
        fields,
        message_id=fields.message_id,
        create_time=fields.create_time,
        commitment=bytes.fromhex(vector["content_key_commitment"]),
    )
    assert encoded.hex() == vector["header_bytes"]


@pytest.mark.parametrize("name", sorted(_BY_NAME))
def test_vector_digests_commitment_and_signature_are_reproduced(
    name: str, directory: _FixedDirectory
) -> None:
    vector = _BY_NAME[name]
    data = bytes.fromhex(vector["envelope"])
    env = envelope_pb2.Envelope.FromString(data)
    header_bytes = bytes.fromhex(vector["header_bytes"])
    content_key = bytes.fromhex(vector["content_key"])

    assert env.header_bytes == header_bytes
    assert env.ciphertext.hex() == vector["ciphertext"]
    assert env.signature.hex() == vector["signature"]
    assert env.signing_key_id == vector["signing_key_id"]
    assert envelope_sha256(data).hex() == vector["envelope_sha256"]

    assert prim.key_commitment(content_key).hex() == vector["content_key_commitment"]
    header = envelope_pb2.Header.FromString(header_bytes)
    assert header.content_key_commitment.hex() == vector["content_key_commitment"]
    digest = prim.header_digest(header_bytes)
    assert digest.hex() == vector["header_digest"]

    recorded_blocks = vector["key_blocks"]
    assert [b.agency_id for b in env.key_blocks] == [b["agency_id"] for b in recorded_blocks]
    for block, recorded in zip(env.key_blocks, recorded_blocks, strict=True):
        assert block.key_id == recorded["key_id"]
        assert block.wrapped_key.hex() == recorded["wrapped_key"]
        assert prim.wrap_info(digest, block.agency_id).hex() == recorded["hpke_info"]
        unwrapped = prim.hpke_unwrap(
            block.wrapped_key,
            directory.private_encryption[block.agency_id],
            header_digest_value=digest,
            recipient=block.agency_id,
        )
        assert unwrapped == content_key

    parts = [prim.KeyBlockParts(b.agency_id, b.key_id, b.wrapped_key) for b in env.key_blocks]
    envelope_digest = prim.envelope_digest(header_bytes, parts, env.ciphertext)
    assert envelope_digest.hex() == vector["envelope_digest"]
    # Ed25519 is deterministic: the recorded signature is the only right one
    signer = directory.private_signing[vector["fields"]["sender"]]
    assert prim.sign_digest(signer, envelope_digest).hex() == vector["signature"]

    payload = prim.aead_decrypt(content_key, env.ciphertext, header_bytes)
    assert payload.hex() == vector["payload"]


@pytest.mark.parametrize("name", sorted(_BY_NAME))
def test_vector_opens_for_every_recipient(name: str, directory: _FixedDirectory) -> None:
    vector = _BY_NAME[name]
    data = bytes.fromhex(vector["envelope"])
    now = _time(vector["now"])
    assert now is not None
    header = verify(data, directory, now=now)
    assert HeaderFields.from_header(header) == _fields(vector["fields"])
    for recipient in vector["fields"]["recipients"]:
        opened = open_envelope(
            data,
            directory,
            recipient=recipient,
            encryption_key=directory.private_encryption[recipient],
            now=now,
        )
        assert opened.payload.hex() == vector["payload"]
        assert opened.envelope_sha256.hex() == vector["envelope_sha256"]
        assert opened.header.SerializeToString().hex() == vector["header_bytes"]


@pytest.mark.parametrize("case", VECTORS["invalid_vectors"], ids=lambda c: c["name"])
def test_invalid_vector_is_refused_for_its_reason(
    case: dict[str, Any], directory: _FixedDirectory
) -> None:
    now = _time(VECTORS["vectors"][0]["now"])
    assert now is not None
    with pytest.raises(EnvelopeInvalid) as info:
        open_envelope(
            bytes.fromhex(case["envelope"]),
            directory,
            recipient=case["reader"],
            encryption_key=directory.private_encryption[case["reader"]],
            now=now,
        )
    assert case["audit_detail_contains"] in info.value.audit_detail


# --- an independent RFC 9180 base mode ---------------------------------------------


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


KEM_X25519_SHA256 = 0x0020
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_128_GCM = 0x0001
AEAD_AES_256_GCM = 0x0002
_KEM_SUITE_ID = b"KEM" + _i2osp(KEM_X25519_SHA256, 2)


def _hpke_suite_id(aead_id: int) -> bytes:
    return b"HPKE" + _i2osp(KEM_X25519_SHA256, 2) + _i2osp(KDF_HKDF_SHA256, 2) + _i2osp(aead_id, 2)


def _extract(salt: bytes, ikm: bytes) -> bytes:
    mac = crypto_hmac.HMAC(salt, hashes.SHA256())  # HKDF-Extract (RFC 5869 section 2.2)
    mac.update(ikm)
    return mac.finalize()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(hashes.SHA256(), length, info).derive(prk)


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, _i2osp(length, 2) + b"HPKE-v1" + suite_id + label + info, length)


def _derive_key_pair(ikm: bytes) -> x25519.X25519PrivateKey:
    dkp_prk = _labeled_extract(_KEM_SUITE_ID, b"", b"dkp_prk", ikm)
    return x25519.X25519PrivateKey.from_private_bytes(
        _labeled_expand(_KEM_SUITE_ID, dkp_prk, b"sk", b"", 32)
    )


def _kem_shared_secret(dh: bytes, enc: bytes, pk_rm: bytes) -> bytes:
    eae_prk = _labeled_extract(_KEM_SUITE_ID, b"", b"eae_prk", dh)
    return _labeled_expand(_KEM_SUITE_ID, eae_prk, b"shared_secret", enc + pk_rm, 32)


def _encap(pk_r: x25519.X25519PublicKey, sk_e: x25519.X25519PrivateKey) -> tuple[bytes, bytes]:
    enc = raw_public(sk_e.public_key())
    return _kem_shared_secret(sk_e.exchange(pk_r), enc, raw_public(pk_r)), enc


def _decap(enc: bytes, sk_r: x25519.X25519PrivateKey) -> bytes:
    dh = sk_r.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    return _kem_shared_secret(dh, enc, raw_public(sk_r.public_key()))


def _key_schedule_base(shared_secret: bytes, info: bytes, aead_id: int) -> dict[str, bytes]:
    suite_id = _hpke_suite_id(aead_id)
    nk = {AEAD_AES_128_GCM: 16, AEAD_AES_256_GCM: 32}[aead_id]
    psk_id_hash = _labeled_extract(suite_id, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(suite_id, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash  # mode_base = 0x00
    secret = _labeled_extract(suite_id, shared_secret, b"secret", b"")
    return {
        "key_schedule_context": context,
        "secret": secret,
        "key": _labeled_expand(suite_id, secret, b"key", context, nk),
        "base_nonce": _labeled_expand(suite_id, secret, b"base_nonce", context, 12),
        "exporter_secret": _labeled_expand(suite_id, secret, b"exp", context, 32),
    }


def _single_shot_seal(
    pk_r: x25519.X25519PublicKey,
    info: bytes,
    plaintext: bytes,
    aead_id: int,
    sk_e: x25519.X25519PrivateKey,
) -> bytes:
    shared, enc = _encap(pk_r, sk_e)
    schedule = _key_schedule_base(shared, info, aead_id)
    return enc + AESGCM(schedule["key"]).encrypt(schedule["base_nonce"], plaintext, b"")


def _single_shot_open(
    sk_r: x25519.X25519PrivateKey, info: bytes, sealed: bytes, aead_id: int
) -> bytes:
    enc, ciphertext = sealed[:32], sealed[32:]
    schedule = _key_schedule_base(_decap(enc, sk_r), info, aead_id)
    return AESGCM(schedule["key"]).decrypt(schedule["base_nonce"], ciphertext, b"")


# RFC 9180 appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode.
RFC_A11 = {
    name: bytes.fromhex(value)
    for name, value in {
        "info": "4f6465206f6e2061204772656369616e2055726e",
        "ikmE": "7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234",
        "pkEm": "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
        "skEm": "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736",
        "ikmR": "6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037",
        "pkRm": "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
        "skRm": "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
        "enc": "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
        "shared_secret": "fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc",
        "key_schedule_context": "00725611c9d98c07c03f60095cd32d400d8347d45ed67097bbad50fc56"
        "da742d07cb6cffde367bb0565ba28bb02c90744a20f5ef37f30523526106f637abb05449",
        "secret": "12fff91991e93b48de37e7daddb52981084bd8aa64289c3788471d9a9712f397",
        "key": "4531685d41d65f03dc48f6b8302c05b0",
        "base_nonce": "56d890e5accaaf011cff4b7d",
        "exporter_secret": "45ff1c2e220db587171952c0592d5f5ebe103f1561a2614e38f2ffd47e99e3f8",
        # sequence number 0
        "pt": "4265617574792069732074727574682c20747275746820626561757479",
        "aad": "436f756e742d30",
        "ct": "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83"
        "d07bea87e13c512a",
    }.items()
}


def test_independent_key_schedule_reproduces_rfc9180_a_1_1() -> None:
    sk_e = _derive_key_pair(RFC_A11["ikmE"])
    sk_r = _derive_key_pair(RFC_A11["ikmR"])
    assert sk_e.private_bytes_raw() == RFC_A11["skEm"]
    assert sk_r.private_bytes_raw() == RFC_A11["skRm"]
    assert raw_public(sk_e.public_key()) == RFC_A11["pkEm"]
    assert raw_public(sk_r.public_key()) == RFC_A11["pkRm"]

    shared, enc = _encap(sk_r.public_key(), sk_e)
    assert enc == RFC_A11["enc"]
    assert shared == RFC_A11["shared_secret"]
    assert _decap(enc, sk_r) == shared

    schedule = _key_schedule_base(shared, RFC_A11["info"], AEAD_AES_128_GCM)
    for name in ("key_schedule_context", "secret", "key", "base_nonce", "exporter_secret"):
        assert schedule[name] == RFC_A11[name], name
    ct = AESGCM(schedule["key"]).encrypt(schedule["base_nonce"], RFC_A11["pt"], RFC_A11["aad"])
    assert ct == RFC_A11["ct"]


def test_library_hpke_opens_an_rfc9180_a_1_1_single_shot() -> None:
    """The library's public decrypt, fed the RFC's keys and our RFC-checked sender side."""
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
    sk_r = x25519.X25519PrivateKey.from_private_bytes(RFC_A11["skRm"])
    sk_e = x25519.X25519PrivateKey.from_private_bytes(RFC_A11["skEm"])
    sealed = _single_shot_seal(
        sk_r.public_key(), RFC_A11["info"], RFC_A11["pt"], AEAD_AES_128_GCM, sk_e
    )
    assert sealed[:32] == RFC_A11["enc"]
    assert suite.decrypt(sealed, sk_r, RFC_A11["info"]) == RFC_A11["pt"]


def test_library_hpke_opens_the_rfc9180_a_1_1_ciphertext_itself() -> None:
    """The RFC's own bytes, through the library's (private) AAD-taking entry point."""
    from cryptography.hazmat.bindings._rust import openssl as rust_openssl

    decrypt_with_aad = getattr(rust_openssl.hpke, "_decrypt_with_aad", None)
    if decrypt_with_aad is None:
        pytest.skip("this cryptography release has no HPKE decrypt with AAD")
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
    sk_r = x25519.X25519PrivateKey.from_private_bytes(RFC_A11["skRm"])
    plaintext = decrypt_with_aad(
        suite, RFC_A11["enc"] + RFC_A11["ct"], sk_r, RFC_A11["info"], RFC_A11["aad"]
    )
    assert plaintext == RFC_A11["pt"]


def test_hpke_wrap_is_rfc9180_aes_256_gcm_as_an_independent_implementation_reads_it() -> None:
    recipient = x25519.X25519PrivateKey.generate()
    content_key = prim.new_content_key()
    digest = prim.header_digest(b"some header")
    wrapped = prim.hpke_wrap(
        content_key, recipient.public_key(), header_digest_value=digest, recipient="de-zoll"
    )
    info = prim.wrap_info(digest, "de-zoll")
    assert _single_shot_open(recipient, info, wrapped, AEAD_AES_256_GCM) == content_key


def test_hpke_unwrap_reads_what_an_independent_implementation_wrapped() -> None:
    recipient = x25519.X25519PrivateKey.generate()
    content_key = prim.new_content_key()
    digest = prim.header_digest(b"some header")
    info = prim.wrap_info(digest, "nl-fiod")
    sealed = _single_shot_seal(
        recipient.public_key(),
        info,
        content_key,
        AEAD_AES_256_GCM,
        _derive_key_pair(RFC_A11["ikmE"]),
    )
    unwrapped = prim.hpke_unwrap(sealed, recipient, header_digest_value=digest, recipient="nl-fiod")
    assert unwrapped == content_key
