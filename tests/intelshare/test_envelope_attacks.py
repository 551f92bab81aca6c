"""Attacks on the envelope: every one must end in EnvelopeInvalid.

Two kinds of attacker appear. A *network* attacker (or a curious gateway)
changes bytes in transit without any private key: the signature alone must
stop it. A *malicious sender* holds a valid signing key and signs whatever
it built: then the bindings below the signature (header digest and recipient
in the HPKE info, header bytes as AES-GCM associated data, the key
commitment) must stop it. Tests of the second kind re-sign with the
sender's real key and check the audit detail, so they prove the inner check
fired and not merely the signature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intelshare.envelope import (
    max_envelope_bytes,
    open_envelope,
    verify,
)
from intelshare.errors import EnvelopeInvalid, PayloadTooLarge
from intelshare.hazmat import envelope_primitives as prim
from intelshare.v1 import envelope_pb2
from tests.intelshare.test_envelope import (
    NOW,
    OPAQUE,
    Agency,
    DictKeyLookup,
    open_as,
    seal_for,
)

SENDER = Agency.generate("fr-douane")
ALICE = Agency.generate("de-zoll")
BOB = Agency.generate("nl-fiod")
OUTSIDER = Agency.generate("xx-outsider")
STRANGER = Agency.generate("zz-not-in-directory")
REVOKED = Agency.generate("yy-revoked")

PAYLOAD = b'{"alert":"stolen vehicle WVWZZZ1JZXW000001"}'


@pytest.fixture
def lookup() -> DictKeyLookup:
    directory = DictKeyLookup.of([SENDER, ALICE, BOB, OUTSIDER, REVOKED])
    directory.revoked.add(REVOKED.agency_id)
    return directory


@pytest.fixture
def sealed(lookup: DictKeyLookup) -> envelope_pb2.Envelope:
    return seal_for(SENDER, [ALICE, BOB], PAYLOAD, lookup)


def refused(attempt: Callable[..., object], *args: Any, **kwargs: Any) -> str:
    """Call ``attempt``, require the opaque EnvelopeInvalid, return its audit detail."""
    with pytest.raises(EnvelopeInvalid) as info:
        attempt(*args, **kwargs)
    assert str(info.value) == OPAQUE
    assert info.value.audit_detail
    return info.value.audit_detail


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def copy(env: envelope_pb2.Envelope) -> envelope_pb2.Envelope:
    out = envelope_pb2.Envelope()
    out.CopyFrom(env)
    return out


def resign(env: envelope_pb2.Envelope, signer: Agency = SENDER) -> envelope_pb2.Envelope:
    """What a malicious sender does after editing: sign the edited envelope for real."""
    out = copy(env)
    blocks = [prim.KeyBlockParts(b.agency_id, b.key_id, b.wrapped_key) for b in out.key_blocks]
    digest = prim.envelope_digest(out.header_bytes, blocks, out.ciphertext)
    out.signature = prim.sign_digest(signer.signing, digest)
    out.signing_key_id = signer.signing_key_id
    return out


def edit_header(
    env: envelope_pb2.Envelope, edit: Callable[[envelope_pb2.Header], None]
) -> envelope_pb2.Envelope:
    out = copy(env)
    header = envelope_pb2.Header.FromString(out.header_bytes)
    edit(header)
    out.header_bytes = header.SerializeToString()
    return out


def both_recipients_refuse(env: envelope_pb2.Envelope, lookup: DictKeyLookup) -> list[str]:
    data = env.SerializeToString()
    return [refused(open_as, agency, data, lookup) for agency in (ALICE, BOB)]


def test_untouched_envelope_opens(sealed: envelope_pb2.Envelope, lookup: DictKeyLookup) -> None:
    # the control for everything below
    for agency in (ALICE, BOB):
        assert open_as(agency, sealed, lookup).payload == PAYLOAD
    assert open_as(ALICE, resign(sealed), lookup).payload == PAYLOAD


# --- bit flips in transit ------------------------------------------------------


def _every_bit(data: bytes) -> range:
    return range(len(data) * 8)


def test_every_flipped_bit_in_the_header_is_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    for bit in _every_bit(sealed.header_bytes):
        env = copy(sealed)
        env.header_bytes = flip(sealed.header_bytes, bit)
        refused(verify, env, lookup, now=NOW)
        # a sender that signs the flipped header still cannot make it open:
        # the header digest is in every key wrap and the header is the AAD
        refused(open_as, ALICE, resign(env), lookup)


def test_every_flipped_bit_in_the_ciphertext_is_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    for bit in _every_bit(sealed.ciphertext):
        env = copy(sealed)
        env.ciphertext = flip(sealed.ciphertext, bit)
        assert "signature" in refused(verify, env, lookup, now=NOW)
        detail = refused(open_as, BOB, resign(env), lookup)
        assert "does not decrypt" in detail


def test_every_flipped_bit_in_a_wrapped_key_is_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    for bit in _every_bit(sealed.key_blocks[0].wrapped_key):
        env = copy(sealed)
        env.key_blocks[0].wrapped_key = flip(sealed.key_blocks[0].wrapped_key, bit)
        assert "signature" in refused(verify, env, lookup, now=NOW)
        detail = refused(open_as, ALICE, resign(env), lookup)
        assert "does not unwrap" in detail


@pytest.mark.parametrize("field", ["agency_id", "key_id"])
def test_every_changed_character_of_a_key_block_id_is_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup, field: str
) -> None:
    original: str = getattr(sealed.key_blocks[0], field)
    variants = {original + "x", original[:-1]}
    for i, char in enumerate(original):
        variants.add(original[:i] + ("a" if char != "a" else "b") + original[i + 1 :])
    for variant in variants:
        env = copy(sealed)
        setattr(env.key_blocks[0], field, variant)
        refused(verify, env, lookup, now=NOW)
        refused(open_as, ALICE, env, lookup)


def test_every_flipped_bit_in_the_signature_is_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    for bit in _every_bit(sealed.signature):
        env = copy(sealed)
        env.signature = flip(sealed.signature, bit)
        assert "signature does not verify" in refused(verify, env, lookup, now=NOW)


def test_signature_truncated_or_missing_is_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    for signature in (b"", sealed.signature[:-1], sealed.signature + b"\x00"):
        env = copy(sealed)
        env.signature = signature
        refused(verify, env, lookup, now=NOW)


def test_signing_key_id_changed_is_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    last = sealed.signing_key_id[-1]
    changed = sealed.signing_key_id[:-1] + ("0" if last != "0" else "1")
    for key_id in ("", ALICE.signing_key_id, changed):
        env = copy(sealed)
        env.signing_key_id = key_id
        refused(verify, env, lookup, now=NOW)


# --- moving parts between envelopes ---------------------------------------------


def test_key_block_swapped_between_two_envelopes_is_refused(lookup: DictKeyLookup) -> None:
    one = seal_for(SENDER, [ALICE, BOB], b"first", lookup)
    two = seal_for(SENDER, [ALICE, BOB], b"second", lookup)
    env = copy(one)
    env.key_blocks[0].CopyFrom(two.key_blocks[0])
    assert "signature" in refused(open_as, ALICE, env, lookup)
    # even re-signed by the sender, the lifted block is bound to the other header
    assert "does not unwrap" in refused(open_as, ALICE, resign(env), lookup)
    # and so is a whole ciphertext lifted the other way (header is the AAD)
    env = copy(one)
    env.ciphertext = two.ciphertext
    assert "signature" in refused(open_as, ALICE, env, lookup)
    assert "does not decrypt" in refused(open_as, ALICE, resign(env), lookup)


def test_key_blocks_swapped_between_recipients_are_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    env = copy(sealed)
    a, b = copy_block(env.key_blocks[0]), copy_block(env.key_blocks[1])
    env.key_blocks[0].wrapped_key, env.key_blocks[1].wrapped_key = b.wrapped_key, a.wrapped_key
    both_recipients_refuse(env, lookup)
    for detail in both_recipients_refuse(resign(env), lookup):
        assert "does not unwrap" in detail


def copy_block(block: envelope_pb2.KeyBlock) -> envelope_pb2.KeyBlock:
    out = envelope_pb2.KeyBlock()
    out.CopyFrom(block)
    return out


# --- recipient list edited -----------------------------------------------------


def _add_outsider(h: envelope_pb2.Header) -> None:
    recipients = sorted([*h.recipients, OUTSIDER.agency_id])
    del h.recipients[:]
    h.recipients.extend(recipients)


def _remove_bob(h: envelope_pb2.Header) -> None:
    h.recipients.remove(BOB.agency_id)


def _reverse(h: envelope_pb2.Header) -> None:
    recipients = list(h.recipients)[::-1]
    del h.recipients[:]
    h.recipients.extend(recipients)


@pytest.mark.parametrize("edit", [_add_outsider, _remove_bob, _reverse], ids=lambda f: f.__name__)
def test_recipient_list_edited_in_the_header_is_refused(
    sealed: envelope_pb2.Envelope,
    lookup: DictKeyLookup,
    edit: Callable[[envelope_pb2.Header], None],
) -> None:
    env = edit_header(sealed, edit)
    refused(verify, env, lookup, now=NOW)
    refused(open_as, ALICE, env, lookup)
    refused(open_as, ALICE, resign(env), lookup)


def test_key_blocks_added_removed_or_reordered_are_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    extra = seal_for(SENDER, [OUTSIDER], b"", lookup).key_blocks[0]
    edits: list[Callable[[envelope_pb2.Envelope], object]] = [
        lambda e: e.key_blocks.append(copy_block(extra)),
        lambda e: e.key_blocks.append(copy_block(e.key_blocks[0])),
        lambda e: e.key_blocks.pop(),
        lambda e: e.key_blocks.reverse(),
    ]
    for edit in edits:
        env = copy(sealed)
        edit(env)
        refused(verify, env, lookup, now=NOW)
        detail = refused(verify, resign(env), lookup, now=NOW)
        assert "key blocks do not match" in detail


def test_sender_who_drops_a_recipient_and_re_signs_still_cannot_reuse_the_blocks(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    env = edit_header(sealed, _remove_bob)
    env.key_blocks.pop()
    env = resign(env)
    verify(env, lookup, now=NOW)  # well formed and signed by the real sender ...
    assert "does not unwrap" in refused(open_as, ALICE, env, lookup)  # ... yet bound


# --- wrong reader, wrong writer --------------------------------------------------


def test_envelope_replayed_to_an_agency_not_among_its_recipients_is_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    data = sealed.SerializeToString()
    assert "not among the recipients" in refused(open_as, OUTSIDER, data, lookup)
    # claiming to be a recipient does not help without its key
    detail = refused(
        lambda: open_envelope(
            data, lookup, recipient=ALICE.agency_id, encryption_key=OUTSIDER.encryption, now=NOW
        )
    )
    assert "we hold" in detail
    # nor does relabelling a block for oneself
    env = copy(sealed)
    env.key_blocks[0].agency_id = OUTSIDER.agency_id
    refused(open_as, OUTSIDER, env, lookup)


def test_signature_by_an_agency_unknown_to_the_directory_is_refused(
    lookup: DictKeyLookup,
) -> None:
    stranger_directory = DictKeyLookup.of([STRANGER, ALICE])
    env = seal_for(STRANGER, [ALICE], PAYLOAD, stranger_directory)
    assert open_as(ALICE, env, stranger_directory).payload == PAYLOAD  # control
    assert "no key" in refused(open_as, ALICE, env, lookup)


def test_signature_by_a_revoked_agency_is_refused(lookup: DictKeyLookup) -> None:
    env = seal_for(REVOKED, [ALICE], PAYLOAD, lookup)
    detail = refused(open_as, ALICE, env, lookup)
    assert "revoked" in detail
    refused(verify, env, lookup, now=NOW)


def test_agency_signing_in_another_agency_s_name_is_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    # OUTSIDER names SENDER as sender and signs with its own key, under either key id
    own_id = resign(sealed, OUTSIDER)
    assert "no key" in refused(verify, own_id, lookup, now=NOW)
    senders_id = copy(own_id)
    senders_id.signing_key_id = SENDER.signing_key_id
    assert "signature does not verify" in refused(verify, senders_id, lookup, now=NOW)


# --- key commitment ----------------------------------------------------------------


def _forge_split_keys(lookup: DictKeyLookup, *, ciphertext_key: str) -> envelope_pb2.Envelope:
    """A malicious sender's envelope: the header commits to key 1, BOB is given key 2.

    ``ciphertext_key`` says which key the payload is encrypted under; with
    "k2", BOB's AES-GCM decryption would succeed, so only the commitment
    check stands between BOB and a payload ALICE never sees.
    """
    k1, k2 = prim.new_content_key(), prim.new_content_key()
    header = envelope_pb2.Header(
        version=1,
        message_id="01972b5c-0000-7000-8000-000000000001",
        sender=SENDER.agency_id,
        recipients=sorted([ALICE.agency_id, BOB.agency_id]),
        treaty_id="t",
        treaty_version=1,
        kind=envelope_pb2.MESSAGE_KIND_ALERT,
        content_key_commitment=prim.key_commitment(k1),
    )
    header.create_time.FromDatetime(NOW)
    header_bytes = header.SerializeToString()
    digest = prim.header_digest(header_bytes)
    blocks = []
    for agency, key in ((ALICE, k1), (BOB, k2)):
        kid, public = lookup.encryption_key(agency.agency_id)
        wrapped = prim.hpke_wrap(
            key, public, header_digest_value=digest, recipient=agency.agency_id
        )
        blocks.append(prim.KeyBlockParts(agency.agency_id, kid, wrapped))
    blocks.sort(key=lambda b: b.agency_id)
    ciphertext = prim.aead_encrypt(k1 if ciphertext_key == "k1" else k2, PAYLOAD, header_bytes)
    env = envelope_pb2.Envelope(
        header_bytes=header_bytes,
        key_blocks=[envelope_pb2.KeyBlock(**b._asdict()) for b in blocks],
        ciphertext=ciphertext,
    )
    return resign(env)


def test_recipient_given_a_different_key_than_committed_refuses(lookup: DictKeyLookup) -> None:
    env = _forge_split_keys(lookup, ciphertext_key="k1")
    verify(env, lookup, now=NOW)  # the gateway cannot tell
    assert open_as(ALICE, env, lookup).payload == PAYLOAD
    assert "key commitment" in refused(open_as, BOB, env, lookup)


def test_commitment_is_what_stops_a_ciphertext_readable_under_the_wrong_key(
    lookup: DictKeyLookup,
) -> None:
    env = _forge_split_keys(lookup, ciphertext_key="k2")
    # without the commitment BOB would decrypt this; with it, BOB refuses
    assert "key commitment" in refused(open_as, BOB, env, lookup)
    assert "does not decrypt" in refused(open_as, ALICE, env, lookup)


# --- header that a sender signed but that is not a valid header ---------------------


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda h: setattr(h, "version", 2), "version"),
        (lambda h: setattr(h, "version", 0), "version"),
        (lambda h: setattr(h, "message_id", "not-a-uuid"), "message id"),
        (lambda h: setattr(h, "message_id", "00000000-0000-4000-8000-000000000000"), "message id"),
        (lambda h: setattr(h, "sender", ""), "no sender"),
        (lambda h: h.ClearField("create_time"), "create_time"),
        (lambda h: setattr(h, "content_key_commitment", b"short"), "commitment"),
        (lambda h: setattr(h.create_time, "seconds", 10**12), "out of range"),
    ],
)
def test_signed_but_malformed_header_is_refused(
    sealed: envelope_pb2.Envelope,
    lookup: DictKeyLookup,
    edit: Callable[[envelope_pb2.Header], None],
    expected: str,
) -> None:
    env = resign(edit_header(sealed, edit))
    assert expected in refused(verify, env, lookup, now=NOW)


def test_header_with_duplicate_recipients_is_refused(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    env = edit_header(sealed, lambda h: h.recipients.append(BOB.agency_id))
    env.key_blocks.append(copy_block(env.key_blocks[1]))
    assert "sorted" in refused(verify, resign(env), lookup, now=NOW)


def test_unknown_fields_are_refused_even_when_signed(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    data = sealed.SerializeToString()
    # field 99, varint 1: ignored by the parser, so a digest over fields would miss it
    assert "canonical" in refused(verify, data + b"\x98\x06\x01", lookup, now=NOW)
    # a repeated scalar field parses as "last one wins": the same signature, new bytes
    dup = data + b"\x2a" + bytes([len(sealed.signing_key_id)]) + sealed.signing_key_id.encode()
    assert "canonical" in refused(verify, dup, lookup, now=NOW)
    env = copy(sealed)
    env.header_bytes = sealed.header_bytes + b"\x98\x06\x01"
    assert "canonical" in refused(verify, resign(env), lookup, now=NOW)


# --- truncation and garbage ----------------------------------------------------------


def test_every_truncation_is_refused(sealed: envelope_pb2.Envelope, lookup: DictKeyLookup) -> None:
    data = sealed.SerializeToString()
    for length in range(len(data)):
        refused(open_as, ALICE, data[:length], lookup)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=2048))
def test_garbage_bytes_are_refused(garbage: bytes) -> None:
    lookup = DictKeyLookup.of([SENDER, ALICE])
    refused(open_as, ALICE, garbage, lookup)


_SEALED_FOR_MUTATION: list[bytes] = []


def _sealed_bytes() -> bytes:
    if not _SEALED_FOR_MUTATION:
        lookup = DictKeyLookup.of([SENDER, ALICE, BOB])
        _SEALED_FOR_MUTATION.append(
            seal_for(SENDER, [ALICE, BOB], PAYLOAD, lookup).SerializeToString()
        )
    return _SEALED_FOR_MUTATION[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_of_a_valid_envelope_are_refused(data: st.DataObject) -> None:
    lookup = DictKeyLookup.of([SENDER, ALICE, BOB])
    original = _sealed_bytes()
    edits: Sequence[tuple[int, int]] = data.draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=len(original) - 1),
                st.integers(min_value=1, max_value=255),
            ),
            min_size=1,
            max_size=4,
            unique_by=lambda e: e[0],
        )
    )
    mutated = bytearray(original)
    for position, xor in edits:
        mutated[position] ^= xor
    refused(open_as, ALICE, bytes(mutated), lookup)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header_bytes=st.binary(max_size=300),
    blocks=st.lists(
        st.tuples(st.text(max_size=12), st.text(max_size=40), st.binary(max_size=100)),
        max_size=3,
    ),
    ciphertext=st.binary(max_size=200),
    signature=st.binary(min_size=0, max_size=70),
    signing_key_id=st.text(max_size=40),
)
def test_well_formed_protobuf_with_random_fields_is_refused(
    header_bytes: bytes,
    blocks: list[tuple[str, str, bytes]],
    ciphertext: bytes,
    signature: bytes,
    signing_key_id: str,
) -> None:
    lookup = DictKeyLookup.of([SENDER, ALICE])
    env = envelope_pb2.Envelope(
        header_bytes=header_bytes,
        key_blocks=[
            envelope_pb2.KeyBlock(agency_id=a, key_id=k, wrapped_key=w) for a, k, w in blocks
        ],
        ciphertext=ciphertext,
        signature=signature,
        signing_key_id=signing_key_id,
    )
    refused(open_as, ALICE, env.SerializeToString(), lookup)


# --- size ----------------------------------------------------------------------------


def test_oversize_bytes_are_refused_before_parsing(lookup: DictKeyLookup) -> None:
    limit = max_envelope_bytes(1024)
    too_big = b"\xff" * (limit + 1)  # would not even parse
    with pytest.raises(PayloadTooLarge):
        open_envelope(
            too_big,
            lookup,
            recipient=ALICE.agency_id,
            encryption_key=ALICE.encryption,
            now=NOW,
            max_payload_bytes=1024,
        )
    with pytest.raises(PayloadTooLarge):
        verify(too_big, lookup, now=NOW, max_payload_bytes=1024)


def test_envelope_with_a_payload_over_the_receiver_s_limit_is_refused(
    lookup: DictKeyLookup,
) -> None:
    env = seal_for(SENDER, [ALICE], b"\x00" * 5000, lookup)
    for form in (env, env.SerializeToString()):
        with pytest.raises(PayloadTooLarge):
            open_envelope(
                form,
                lookup,
                recipient=ALICE.agency_id,
                encryption_key=ALICE.encryption,
                now=NOW,
                max_payload_bytes=4096,
            )
    # the ciphertext alone is checked too, so a small header cannot hide a large payload
    with pytest.raises(PayloadTooLarge):
        verify(env, lookup, now=NOW, max_payload_bytes=4999)
