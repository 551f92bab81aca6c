"""The hand-written framing of the messages around an envelope is the generated code's.

The client writes ``SubmitEnvelopeRequest`` around the stored envelope bytes,
the gateway reads it and writes ``SubmitEnvelopeResponse`` and
``StreamInboxResponse`` around stored bytes, and the node reads the inbox
entries: each must give the bytes (or values) the generated code gives for
the same message, and any other encoding must go through the generated
parser as before.
"""

from __future__ import annotations

import os

import pytest
from google.protobuf.message import DecodeError

from gateway.inbox import _inbox_entry
from gateway.store import InboxRow
from gateway.submit import SubmitAnswer, submit_request, submit_response_bytes
from intelshare import wire
from intelshare.gateway_client import inbox_message, submit_request_bytes
from intelshare.v1 import envelope_pb2, gateway_service_pb2, receipt_pb2


def envelope(ciphertext: int = 800) -> envelope_pb2.Envelope:
    return envelope_pb2.Envelope(
        header_bytes=os.urandom(200),
        key_blocks=[
            envelope_pb2.KeyBlock(agency_id="be-police", key_id="k1", wrapped_key=os.urandom(80))
        ],
        ciphertext=os.urandom(ciphertext),
        signature=os.urandom(64),
        signing_key_id="k2",
    )


RECEIPT = receipt_pb2.Receipt(message_id="m-1", log_index=5, envelope_sha256=b"\x01" * 32)


@pytest.mark.parametrize("request_id", ["", "r-1", "ü" * 80])
@pytest.mark.parametrize("env", [envelope_pb2.Envelope(), envelope(), envelope(20_000)])
def test_submit_requests_are_the_generated_bytes_and_read_back(
    request_id: str, env: envelope_pb2.Envelope
) -> None:
    generated = gateway_service_pb2.SubmitEnvelopeRequest(
        request_id=request_id, envelope=env
    ).SerializeToString()
    assert submit_request_bytes(env.SerializeToString(), request_id) == generated
    assert submit_request_bytes(env, request_id) == generated
    got = submit_request(generated)
    assert (got.request_id, got.envelope) == (request_id, env.SerializeToString())


def test_other_request_encodings_are_read_as_the_generated_parser_reads_them() -> None:
    # fields in another order, the envelope given twice (merged), an unknown field
    odd = b"\x12\x02\x22\x00" + b"\x12\x03\x22\x01k" + b"\x0a\x01x" + b"\x18\x05"
    parsed = gateway_service_pb2.SubmitEnvelopeRequest.FromString(odd)
    got = submit_request(odd)
    assert got.request_id == "x" == parsed.request_id
    assert got.envelope == parsed.envelope.SerializeToString() == b'"\x01k'
    with pytest.raises(DecodeError):  # what the generated deserializer raised
        submit_request(b"\x12\x05\x22")


@pytest.mark.parametrize("duplicate", [False, True])
def test_submit_responses_are_the_generated_bytes(duplicate: bool) -> None:
    generated = gateway_service_pb2.SubmitEnvelopeResponse(receipt=RECEIPT, duplicate=duplicate)
    answer = SubmitAnswer(RECEIPT.SerializeToString(), duplicate=duplicate)
    assert submit_response_bytes(answer) == generated.SerializeToString()


@pytest.mark.parametrize("sequence", [1, 127, 128, 300, 2**40])
def test_inbox_entries_are_read_around_their_envelope_and_receipt(sequence: int) -> None:
    env = envelope()
    data = _inbox_entry(
        InboxRow(sequence, "m-1", env.SerializeToString(), RECEIPT.SerializeToString(), False, 0)
    )
    generated = gateway_service_pb2.StreamInboxResponse(
        entry=gateway_service_pb2.InboxEntry(sequence=sequence, envelope=env, receipt=RECEIPT)
    )
    assert data == generated.SerializeToString()
    got = inbox_message(data)
    assert got.WhichOneof("event") == "entry"
    assert got.HasField("entry")
    assert got.entry is not None
    assert got.entry.sequence == sequence
    assert got.entry.envelope == env.SerializeToString()
    assert got.entry.receipt == RECEIPT.SerializeToString()


def test_heartbeats_and_other_encodings_go_through_the_generated_parser() -> None:
    beat = gateway_service_pb2.StreamInboxResponse(
        heartbeat=gateway_service_pb2.Heartbeat(head_sequence=9)
    )
    got = inbox_message(beat.SerializeToString())
    assert got.HasField("heartbeat")
    assert not got.HasField("entry")
    assert got.heartbeat is not None
    assert got.heartbeat.head_sequence == 9
    # an entry with its fields in another order: the generated encoding comes back
    env = envelope()
    body = (
        wire.length_delimited(3, RECEIPT.SerializeToString())
        + wire.length_delimited(2, env.SerializeToString())
        + b"\x08\x07"
    )
    got = inbox_message(wire.length_delimited(1, body, message=True))
    assert got.entry is not None
    assert (got.entry.sequence, got.entry.envelope) == (7, env.SerializeToString())
    assert inbox_message(b"").WhichOneof("event") is None


def test_truncated_fields_are_refused() -> None:
    with pytest.raises(wire.WireError):
        wire.take(b"\x0a\x05ab", 0, 0x0A)
    assert wire.take(b"\x12\x00", 0, 0x0A) == (None, 0)
    assert wire.take_varint(b"\x08\xac\x02", 0, 0x08) == (300, 3)
