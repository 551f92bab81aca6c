"""An envelope read once (``envelope.read``) verifies and opens as its bytes do.

The gateway's admission and a recipient's inbox read an envelope once and
hand that reading to ``verify`` / ``open_envelope``: every refusal of the
bytes must stay a refusal of the reading, and ``reencode`` must take an
encoding the generated code writes differently as the old gRPC parsing
did (canonical again), while unknown fields stay refused.
"""

from __future__ import annotations

import pytest

from intelshare.envelope import open_envelope, read, verify
from intelshare.errors import EnvelopeInvalid
from intelshare.v1 import envelope_pb2
from tests.intelshare.test_envelope import NOW, DictKeyLookup
from tests.intelshare.test_envelope_attacks import ALICE, lookup, refused, sealed

__all__ = ["lookup", "sealed"]  # fixtures


def test_a_reading_verifies_and_opens_like_its_bytes(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    data = sealed.SerializeToString()
    once = read(data)
    assert once.data == data
    assert once.header.message_id == verify(data, lookup, now=NOW).message_id
    assert verify(once, lookup, now=NOW) == verify(data, lookup, now=NOW)
    opened = open_envelope(
        once, lookup, recipient=ALICE.agency_id, encryption_key=ALICE.encryption, now=NOW
    )
    assert opened == open_envelope(
        data, lookup, recipient=ALICE.agency_id, encryption_key=ALICE.encryption, now=NOW
    )


def test_reencode_takes_the_generated_encoding_and_still_refuses_unknown_fields(
    sealed: envelope_pb2.Envelope, lookup: DictKeyLookup
) -> None:
    data = sealed.SerializeToString()
    # the signing key id repeated: "last one wins" parses to the same envelope
    dup = data + b"\x2a" + bytes([len(sealed.signing_key_id)]) + sealed.signing_key_id.encode()
    assert "canonical" in refused(verify, dup, lookup, now=NOW)
    assert "canonical" in refused(verify, read(dup), lookup, now=NOW)
    again = read(dup, reencode=True)
    assert again.data == data  # what parsing the request and serializing its field gave
    assert verify(again, lookup, now=NOW).message_id == sealed_id(sealed)
    # an unknown field survives re-encoding and is refused, as before
    unknown = read(data + b"\x98\x06\x01", reencode=True)
    assert "canonical" in refused(verify, unknown, lookup, now=NOW)
    with pytest.raises(EnvelopeInvalid):
        read(b"\xff\xff")


def sealed_id(env: envelope_pb2.Envelope) -> str:
    return envelope_pb2.Header.FromString(env.header_bytes).message_id
