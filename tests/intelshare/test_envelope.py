"""The envelope's safe API: what seal produces and what open and verify accept.

The attack cases are in test_envelope_attacks.py, the fixed-byte vectors and
RFC 9180 checks in test_envelope_vectors.py; both import the small fixtures
defined here (agencies with fixed or fresh keys, and a dict-backed
PublicKeyLookup standing in for the signed directory).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intelshare import envelope
from intelshare.envelope import (
    MAX_PAYLOAD_BYTES,
    HeaderFields,
    Opened,
    envelope_sha256,
    lookup_recipient_keys,
    max_envelope_bytes,
    open_envelope,
    seal,
    verify,
)
from intelshare.envelope.header import _MESSAGE_ID
from intelshare.errors import (
    AgencyUnknown,
    EnvelopeInvalid,
    InvalidArgument,
    PayloadTooLarge,
    SignatureInvalid,
    Unavailable,
    VerificationError,
)
from intelshare.hazmat import envelope_primitives as prim
from intelshare.ids import is_message_id, key_id, new_message_id
from intelshare.keys import raw_public
from intelshare.v1 import envelope_pb2

OPAQUE = "envelope could not be verified or opened"
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


# --- test doubles ------------------------------------------------------------


@dataclass(frozen=True)
class Agency:
    """An agency's signing and encryption keys, without the TLS key tests never use."""

    agency_id: str
    signing: ed25519.Ed25519PrivateKey
    encryption: x25519.X25519PrivateKey

    @classmethod
    def generate(cls, agency_id: str) -> Agency:
        return cls(
            agency_id, ed25519.Ed25519PrivateKey.generate(), x25519.X25519PrivateKey.generate()
        )

    @classmethod
    def from_seed(cls, agency_id: str, seed: bytes) -> Agency:
        """Fixed keys for vectors: both private keys derived from ``seed`` by SHA-256."""
        sign = hashlib.sha256(b"signing|" + seed).digest()
        enc = hashlib.sha256(b"encryption|" + seed).digest()
        return cls(
            agency_id,
            ed25519.Ed25519PrivateKey.from_private_bytes(sign),
            x25519.X25519PrivateKey.from_private_bytes(enc),
        )

    @property
    def signing_key_id(self) -> str:
        return key_id(raw_public(self.signing.public_key()))

    @property
    def encryption_key_id(self) -> str:
        return key_id(raw_public(self.encryption.public_key()))


@dataclass
class DictKeyLookup:
    """PublicKeyLookup over a dict: the test stand-in for the signed directory.

    Raises what the protocol says a real directory raises: a
    VerificationError subclass for an unknown or revoked agency or a key
    outside its validity, AgencyUnknown for an encryption key of an unknown
    agency.
    """

    signing: dict[tuple[str, str], tuple[ed25519.Ed25519PublicKey, datetime | None]] = field(
        default_factory=dict
    )
    encryption: dict[str, tuple[str, x25519.X25519PublicKey]] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    unavailable: bool = False

    @classmethod
    def of(cls, agencies: Iterable[Agency]) -> DictKeyLookup:
        lookup = cls()
        for agency in agencies:
            lookup.add(agency)
        return lookup

    def add(self, agency: Agency, *, valid_until: datetime | None = None) -> None:
        self.signing[(agency.agency_id, agency.signing_key_id)] = (
            agency.signing.public_key(),
            valid_until,
        )
        self.encryption[agency.agency_id] = (
            agency.encryption_key_id,
            agency.encryption.public_key(),
        )

    def signing_key(self, agency_id: str, key_id: str, at: datetime) -> ed25519.Ed25519PublicKey:
        if self.unavailable:
            raise Unavailable("directory cannot be read")
        if agency_id in self.revoked:
            raise SignatureInvalid(audit_detail=f"agency {agency_id} is revoked")
        entry = self.signing.get((agency_id, key_id))
        if entry is None:
            raise VerificationError(audit_detail=f"no key {key_id} for agency {agency_id}")
        public, valid_until = entry
        if valid_until is not None and at >= valid_until:
            raise SignatureInvalid(audit_detail=f"key {key_id} expired at {valid_until}")
        return public

    def encryption_key(self, agency_id: str) -> tuple[str, x25519.X25519PublicKey]:
        try:
            return self.encryption[agency_id]
        except KeyError:
            raise AgencyUnknown(f"no agency {agency_id}") from None


def fields_for(
    sender: Agency, recipients: Iterable[Agency], /, **overrides: object
) -> HeaderFields:
    values: dict[str, object] = {
        "sender": sender.agency_id,
        "recipients": tuple(r.agency_id for r in recipients),
        "treaty_id": "treaty-customs-2025",
        "treaty_version": 3,
        "kind": envelope_pb2.MESSAGE_KIND_ALERT,
        "handling": envelope_pb2.HANDLING_CODE_H1,
        "tlp": envelope_pb2.TLP_AMBER,
        "categories": ("narcotics", "counterfeit_goods"),
        "create_time": NOW - timedelta(minutes=1),
    }
    values.update(overrides)
    return HeaderFields(**values)  # type: ignore[arg-type]


def seal_for(
    sender: Agency,
    recipients: Iterable[Agency],
    payload: bytes,
    lookup: DictKeyLookup,
    /,
    **overrides: object,
) -> envelope_pb2.Envelope:
    fields = fields_for(sender, recipients, **overrides)
    return seal(
        fields,
        payload,
        signing_key=sender.signing,
        signing_key_id=sender.signing_key_id,
        recipient_keys=lookup_recipient_keys(lookup, fields.recipients),
    )


def open_as(agency: Agency, data: envelope_pb2.Envelope | bytes, lookup: DictKeyLookup) -> Opened:
    return open_envelope(
        data, lookup, recipient=agency.agency_id, encryption_key=agency.encryption, now=NOW
    )


# --- fixtures ----------------------------------------------------------------

_POOL = [Agency.generate(name) for name in ("fr-douane", "de-zoll", "nl-fiod", "it-gdf")]
_POOL += [Agency.generate(f"agency-{i:02d}") for i in range(6)]


@pytest.fixture
def agencies() -> list[Agency]:
    return _POOL[:4]


@pytest.fixture
def lookup(agencies: list[Agency]) -> DictKeyLookup:
    return DictKeyLookup.of(_POOL)


# --- round trip ----------------------------------------------------------------


def test_every_recipient_opens_the_same_payload(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, *recipients = agencies
    payload = b'{"alert": "container MSCU1234567, cocaine"}'
    data = seal_for(sender, recipients, payload, lookup).SerializeToString()
    for recipient in recipients:
        opened = open_as(recipient, data, lookup)
        assert opened.payload == payload
        assert opened.envelope_sha256 == hashlib.sha256(data).digest()
        assert opened.header.sender == sender.agency_id


def test_header_carries_what_the_caller_chose(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, b, c = agencies
    expire = NOW + timedelta(days=30)
    env = seal_for(
        sender,
        [c, a, b, a],
        b"x",
        lookup,
        categories=("narcotics", "firearms", "narcotics"),
        expire_time=expire,
        reference_id="01900000-0000-7000-8000-000000000001",
        case_id="case-42",
    )
    header = verify(env, lookup, now=NOW)
    assert header.version == 1
    assert list(header.recipients) == sorted({a.agency_id, b.agency_id, c.agency_id})
    assert [blk.agency_id for blk in env.key_blocks] == list(header.recipients)
    assert [blk.key_id for blk in env.key_blocks] == [
        lookup.encryption[r][0] for r in header.recipients
    ]
    assert list(header.categories) == ["firearms", "narcotics"]
    assert header.treaty_id == "treaty-customs-2025"
    assert header.treaty_version == 3
    assert header.kind == envelope_pb2.MESSAGE_KIND_ALERT
    assert header.handling == envelope_pb2.HANDLING_CODE_H1
    assert header.tlp == envelope_pb2.TLP_AMBER
    assert header.expire_time.ToDatetime(tzinfo=UTC) == expire
    assert header.create_time.ToDatetime(tzinfo=UTC) == NOW - timedelta(minutes=1)
    assert header.reference_id == "01900000-0000-7000-8000-000000000001"
    assert header.case_id == "case-42"
    assert is_message_id(header.message_id)
    assert len(header.content_key_commitment) == 32
    assert env.signing_key_id == sender.signing_key_id


def test_generated_message_id_is_time_ordered_with_create_time(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, *_ = agencies
    header = verify(seal_for(sender, [a], b"", lookup), lookup, now=NOW)
    id_ms = int(header.message_id.replace("-", "")[:12], 16)
    assert id_ms == int((NOW - timedelta(minutes=1)).timestamp() * 1000)


def test_create_time_defaults_to_now(agencies: list[Agency], lookup: DictKeyLookup) -> None:
    sender, a, *_ = agencies
    before = datetime.now(UTC)
    env = seal_for(sender, [a], b"", lookup, create_time=None)
    header = verify(env, lookup, now=datetime.now(UTC))
    created = header.create_time.ToDatetime(tzinfo=UTC)
    assert before <= created <= datetime.now(UTC)


def test_from_header_round_trips_fields(agencies: list[Agency], lookup: DictKeyLookup) -> None:
    sender, a, b, _ = agencies
    fields = fields_for(
        sender,
        [a, b],
        message_id="01900000-0000-7000-8000-0000000000aa",
        expire_time=NOW + timedelta(days=1),
        case_id="c",
    )
    env = seal(
        fields,
        b"p",
        signing_key=sender.signing,
        signing_key_id=sender.signing_key_id,
        recipient_keys=lookup_recipient_keys(lookup, fields.recipients),
    )
    assert HeaderFields.from_header(verify(env, lookup, now=NOW)) == fields


def test_open_accepts_message_bytes_bytearray_and_memoryview(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, *_ = agencies
    env = seal_for(sender, [a], b"payload", lookup)
    data = env.SerializeToString()
    for form in (env, data, bytearray(data), memoryview(data)):
        opened = open_as(a, form, lookup)  # type: ignore[arg-type]
        assert opened.payload == b"payload"
        assert opened.envelope_sha256 == envelope_sha256(data)


def test_two_seals_of_the_same_payload_share_nothing_secret(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, *_ = agencies
    one = seal_for(sender, [a], b"same", lookup)
    two = seal_for(sender, [a], b"same", lookup)
    assert one.ciphertext != two.ciphertext
    assert one.key_blocks[0].wrapped_key != two.key_blocks[0].wrapped_key
    h1 = envelope_pb2.Header.FromString(one.header_bytes)
    h2 = envelope_pb2.Header.FromString(two.header_bytes)
    assert h1.message_id != h2.message_id
    assert h1.content_key_commitment != h2.content_key_commitment


def test_sender_may_be_its_own_recipient(agencies: list[Agency], lookup: DictKeyLookup) -> None:
    sender, a, *_ = agencies
    data = seal_for(sender, [sender, a], b"copy", lookup).SerializeToString()
    assert open_as(sender, data, lookup).payload == b"copy"


def test_opened_repr_never_shows_the_payload(agencies: list[Agency], lookup: DictKeyLookup) -> None:
    sender, a, *_ = agencies
    opened = open_as(a, seal_for(sender, [a], b"TOP-SECRET-PLATE", lookup), lookup)
    assert "TOP-SECRET-PLATE" not in repr(opened)


def test_open_is_importable_under_both_names() -> None:
    assert envelope.open is envelope.open_envelope


# --- keys and rotation ---------------------------------------------------------


def test_recipient_with_rotated_keys_opens_with_a_key_map(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, *_ = agencies
    data = seal_for(sender, [a], b"before rotation", lookup).SerializeToString()
    new_key = x25519.X25519PrivateKey.generate()
    keyring = {key_id(raw_public(new_key.public_key())): new_key, a.encryption_key_id: a.encryption}
    opened = open_envelope(data, lookup, recipient=a.agency_id, encryption_key=keyring, now=NOW)
    assert opened.payload == b"before rotation"
    with pytest.raises(EnvelopeInvalid) as info:
        open_envelope(data, lookup, recipient=a.agency_id, encryption_key=new_key, now=NOW)
    assert "we hold" in info.value.audit_detail
    with pytest.raises(EnvelopeInvalid) as info:
        open_envelope(
            data, lookup, recipient=a.agency_id, encryption_key={"other": new_key}, now=NOW
        )
    assert "do not hold" in info.value.audit_detail


def test_old_signing_key_still_verifies_messages_made_while_it_was_valid(
    agencies: list[Agency],
) -> None:
    sender, a, *_ = agencies
    lookup = DictKeyLookup.of(agencies)
    lookup.add(sender, valid_until=NOW - timedelta(seconds=30))
    # made one minute before NOW: the key was valid then
    assert open_as(a, seal_for(sender, [a], b"ok", lookup), lookup).payload == b"ok"
    late = seal_for(sender, [a], b"late", lookup, create_time=NOW)
    with pytest.raises(EnvelopeInvalid) as info:
        open_as(a, late, lookup)
    assert "expired" in info.value.audit_detail


def test_directory_outage_is_not_reported_as_an_invalid_envelope(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, *_ = agencies
    env = seal_for(sender, [a], b"x", lookup)
    lookup.unavailable = True
    with pytest.raises(Unavailable):
        verify(env, lookup, now=NOW)


def test_lookup_recipient_keys_refuses_unknown_agency(lookup: DictKeyLookup) -> None:
    with pytest.raises(AgencyUnknown):
        lookup_recipient_keys(lookup, ["fr-douane", "xx-nobody"])
    keys = lookup_recipient_keys(lookup, ["de-zoll", "fr-douane", "de-zoll"])
    assert sorted(keys) == ["de-zoll", "fr-douane"]


# --- clock ---------------------------------------------------------------------


def test_create_time_within_skew_is_accepted_beyond_is_not(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, *_ = agencies
    soon = seal_for(sender, [a], b"", lookup, create_time=NOW + timedelta(minutes=4))
    verify(soon, lookup, now=NOW)
    later = seal_for(sender, [a], b"", lookup, create_time=NOW + timedelta(minutes=6))
    with pytest.raises(EnvelopeInvalid) as info:
        verify(later, lookup, now=NOW)
    assert "future" in info.value.audit_detail
    verify(later, lookup, now=NOW, max_clock_skew=timedelta(minutes=10))


def test_naive_now_is_a_programming_error(agencies: list[Agency], lookup: DictKeyLookup) -> None:
    sender, a, *_ = agencies
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(seal_for(sender, [a], b"", lookup), lookup, now=datetime(2025, 1, 1))


# --- seal refuses what could never verify --------------------------------------


@pytest.mark.parametrize(
    ("overrides", "violation"),
    [
        ({"sender": ""}, "sender"),
        ({"recipients": ()}, "recipients"),
        ({"recipients": ("",)}, "recipients"),
        ({"treaty_id": ""}, "treaty_id"),
        ({"treaty_version": -1}, "treaty_version"),
        ({"treaty_version": 2**32}, "treaty_version"),
        ({"kind": envelope_pb2.MESSAGE_KIND_UNSPECIFIED}, "kind"),
        ({"categories": ("",)}, "categories"),
        ({"message_id": "not-a-uuid"}, "message_id"),
        ({"message_id": "00000000-0000-4000-8000-000000000000"}, "message_id"),
        ({"create_time": datetime(2025, 1, 1)}, "create_time"),
        ({"expire_time": NOW - timedelta(days=1)}, "expire_time"),
        ({"expire_time": datetime(2030, 1, 1)}, "expire_time"),
    ],
)
def test_seal_refuses_a_bad_header(
    agencies: list[Agency], lookup: DictKeyLookup, overrides: dict[str, object], violation: str
) -> None:
    sender, a, *_ = agencies
    every_key = {**lookup.encryption, "": lookup.encryption[a.agency_id]}
    with pytest.raises(InvalidArgument) as info:
        seal(
            fields_for(sender, [a], **overrides),
            b"",
            signing_key=sender.signing,
            signing_key_id=sender.signing_key_id,
            recipient_keys=every_key,
        )
    assert violation in info.value.violations


def test_single_string_recipient_list_is_refused(agencies: list[Agency]) -> None:
    sender = agencies[0]
    with pytest.raises(InvalidArgument):
        fields_for(sender, [], recipients="de-zoll")


def test_seal_needs_a_key_for_every_recipient(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, b, _ = agencies
    fields = fields_for(sender, [a, b])
    with pytest.raises(InvalidArgument) as info:
        seal(
            fields,
            b"",
            signing_key=sender.signing,
            signing_key_id=sender.signing_key_id,
            recipient_keys={a.agency_id: lookup.encryption[a.agency_id]},
        )
    assert f"recipients[{b.agency_id}]" in info.value.violations
    with pytest.raises(InvalidArgument):
        seal(
            fields,
            b"",
            signing_key=sender.signing,
            signing_key_id="",
            recipient_keys=lookup_recipient_keys(lookup, fields.recipients),
        )
    with pytest.raises(InvalidArgument):
        seal(
            fields,
            b"",
            signing_key=sender.signing,
            signing_key_id=sender.signing_key_id,
            recipient_keys={r: ("", lookup.encryption[r][1]) for r in fields.recipients},
        )


# --- size limit ----------------------------------------------------------------


def test_payload_at_the_limit_seals_and_opens_one_byte_more_does_not(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, *_ = agencies
    limit = 4096
    fields = fields_for(sender, [a])
    kwargs = {
        "signing_key": sender.signing,
        "signing_key_id": sender.signing_key_id,
        "recipient_keys": lookup_recipient_keys(lookup, fields.recipients),
        "max_payload_bytes": limit,
    }
    env = seal(fields, b"\x00" * limit, **kwargs)  # type: ignore[arg-type]
    opened = open_envelope(
        env,
        lookup,
        recipient=a.agency_id,
        encryption_key=a.encryption,
        now=NOW,
        max_payload_bytes=limit,
    )
    assert len(opened.payload) == limit
    with pytest.raises(PayloadTooLarge):
        seal(fields, b"\x00" * (limit + 1), **kwargs)  # type: ignore[arg-type]
    # the receiver's limit is its own: a smaller one refuses before any crypto
    with pytest.raises(PayloadTooLarge):
        verify(env, lookup, now=NOW, max_payload_bytes=limit - 1)


def test_default_limit_is_one_mebibyte(agencies: list[Agency], lookup: DictKeyLookup) -> None:
    sender, a, *_ = agencies
    assert MAX_PAYLOAD_BYTES == 1024 * 1024
    env = seal_for(sender, [a], b"\x01" * MAX_PAYLOAD_BYTES, lookup)
    assert env.ByteSize() <= max_envelope_bytes()
    assert open_as(a, env.SerializeToString(), lookup).payload == b"\x01" * MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadTooLarge):
        seal_for(sender, [a], b"\x01" * (MAX_PAYLOAD_BYTES + 1), lookup)


def test_seal_refuses_a_header_too_large_for_any_recipient_to_accept(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, *_ = agencies
    fields = fields_for(sender, [a], categories=tuple(f"c{i:06d}" for i in range(10_000)))
    with pytest.raises(PayloadTooLarge):
        seal(
            fields,
            b"",
            signing_key=sender.signing,
            signing_key_id=sender.signing_key_id,
            recipient_keys=lookup_recipient_keys(lookup, fields.recipients),
            max_payload_bytes=1024,
        )


# --- opacity -------------------------------------------------------------------


def test_every_refusal_has_the_same_message_and_a_private_reason(
    agencies: list[Agency], lookup: DictKeyLookup
) -> None:
    sender, a, b, outsider = agencies
    data = seal_for(sender, [a, b], b"x", lookup).SerializeToString()
    failures: list[Callable[[], object]] = [
        lambda: open_as(outsider, data, lookup),
        lambda: open_as(a, data[:-1] + bytes([data[-1] ^ 1]), lookup),
        lambda: open_as(a, b"garbage", lookup),
        lambda: open_envelope(
            data, lookup, recipient=a.agency_id, encryption_key=b.encryption, now=NOW
        ),
    ]
    details = set()
    for failure in failures:
        with pytest.raises(EnvelopeInvalid) as info:
            failure()
        assert str(info.value) == OPAQUE
        assert info.value.message == OPAQUE
        assert info.value.reason == "ENVELOPE_INVALID"
        assert info.value.metadata == {}
        assert info.value.audit_detail
        details.add(info.value.audit_detail)
    assert len(details) == len(failures)


# --- properties ----------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.binary(max_size=4096),
    recipient_idx=st.sets(st.integers(min_value=1, max_value=len(_POOL) - 1), min_size=1),
    sender_idx=st.integers(min_value=0, max_value=len(_POOL) - 1),
)
def test_property_seal_then_open_round_trips_for_every_recipient_only(
    payload: bytes, recipient_idx: set[int], sender_idx: int
) -> None:
    lookup = DictKeyLookup.of(_POOL)
    sender = _POOL[sender_idx]
    recipients = [_POOL[i] for i in recipient_idx]
    data = seal_for(sender, recipients, payload, lookup).SerializeToString()
    header = verify(data, lookup, now=NOW)
    assert list(header.recipients) == sorted(r.agency_id for r in recipients)
    for agency in _POOL:
        if agency in recipients:
            assert open_as(agency, data, lookup).payload == payload
        else:
            with pytest.raises(EnvelopeInvalid):
                open_as(agency, data, lookup)


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=2048), aad=st.binary(max_size=256))
def test_property_aead_round_trips_and_binds_aad(payload: bytes, aad: bytes) -> None:
    key = prim.new_content_key()
    sealed = prim.aead_encrypt(key, payload, aad)
    assert len(sealed) == len(payload) + prim.CIPHERTEXT_OVERHEAD
    assert prim.aead_decrypt(key, sealed, aad) == payload
    with pytest.raises(InvalidTag):
        prim.aead_decrypt(key, sealed, aad + b"\x00")


# --- hazmat layer --------------------------------------------------------------


def test_digests_are_domain_separated() -> None:
    data = b"\x00" * 32
    values = {
        prim.key_commitment(data),
        prim.header_digest(data),
        prim.envelope_digest(data, [], b""),
        hashlib.sha256(data).digest(),
    }
    assert len(values) == 4


def test_envelope_digest_framing_is_unambiguous() -> None:
    parts = prim.KeyBlockParts
    base = prim.envelope_digest(b"h", [parts("ab", "c", b"w")], b"ct")
    assert base != prim.envelope_digest(b"h", [parts("a", "bc", b"w")], b"ct")
    assert base != prim.envelope_digest(b"h", [parts("ab", "cw", b"")], b"ct")
    assert base != prim.envelope_digest(b"hc", [parts("ab", "c", b"w")], b"t")
    two = [parts("a", "k", b"w"), parts("b", "k", b"w")]
    assert prim.envelope_digest(b"h", two, b"") != prim.envelope_digest(b"h", two[::-1], b"")
    assert prim.envelope_digest(b"h", two, b"") != prim.envelope_digest(b"h", two[:1], b"")


def test_wrap_is_bound_to_header_and_recipient() -> None:
    key = prim.new_content_key()
    private = x25519.X25519PrivateKey.generate()
    digest = prim.header_digest(b"header")
    wrapped = prim.hpke_wrap(key, private.public_key(), header_digest_value=digest, recipient="a")
    assert len(wrapped) == prim.WRAPPED_KEY_BYTES
    assert prim.hpke_unwrap(wrapped, private, header_digest_value=digest, recipient="a") == key
    with pytest.raises(InvalidTag):
        prim.hpke_unwrap(wrapped, private, header_digest_value=digest, recipient="b")
    with pytest.raises(InvalidTag):
        prim.hpke_unwrap(
            wrapped, private, header_digest_value=prim.header_digest(b"other"), recipient="a"
        )
    with pytest.raises(InvalidTag):
        prim.hpke_unwrap(
            wrapped,
            x25519.X25519PrivateKey.generate(),
            header_digest_value=digest,
            recipient="a",
        )


def test_commitment_check_is_exact() -> None:
    key = prim.new_content_key()
    assert prim.commitment_matches(key, prim.key_commitment(key))
    assert not prim.commitment_matches(prim.new_content_key(), prim.key_commitment(key))
    assert not prim.commitment_matches(key, prim.key_commitment(key)[:-1])


def test_signature_is_deterministic_and_checked() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    digest = prim.envelope_digest(b"h", [], b"c")
    assert prim.sign_digest(signer, digest) == prim.sign_digest(signer, digest)
    prim.verify_digest(signer.public_key(), prim.sign_digest(signer, digest), digest)
    with pytest.raises(ValueError, match="32 bytes"):
        prim.sign_digest(signer, b"short")


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        st.builds(new_message_id, st.integers(min_value=0, max_value=2**48 - 1)),
        st.text(alphabet="0123456789abcdefABCDEF-{}x7", max_size=40),
        st.builds(
            lambda u, v, var: (
                f"{u.hex[:8]}-{u.hex[8:12]}-{v}{u.hex[13:16]}-{var}{u.hex[17:20]}-{u.hex[20:]}"
            ),
            st.uuids(),
            st.sampled_from("0123456789abcdef"),
            st.sampled_from("0123456789abcdef"),
        ),
    )
)
def test_envelope_message_id_check_agrees_with_ids(text: str) -> None:
    assert bool(_MESSAGE_ID.fullmatch(text)) == is_message_id(text)
