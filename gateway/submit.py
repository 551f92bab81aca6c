"""SubmitEnvelope: admission, acceptance, refusals, and the call's bytes on the wire.

A submitted envelope passes :func:`gateway.admission.admit` (the checks of
its signed header, in their fixed order) and is accepted by the store in one
transaction with its audit entry and signed receipt
(:meth:`gateway.store.GatewayStore.accept`); then each recipient's inbox
topic is woken.

Submitting is idempotent on the message id: the same envelope again gets
the first receipt back (``duplicate``) and is queued nothing twice; the
same id with other bytes is ``MESSAGE_ID_REUSED``. A retry of an envelope
accepted earlier gets its receipt even when it would not be admitted any
more. Every refusal is audited with header metadata only, never the
payload, and with the precise cause where the caller is told less.

Request and response are (de)serialized here rather than by the generated
code: the envelope stays the bytes that arrived (:func:`submit_request`),
which admission parses once, and the receipt, stored serialized, is sent as
stored (:func:`submit_response_bytes`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import grpc

from gateway.admission import admit
from gateway.metrics import instrument_submit
from gateway.state import GatewayState, inbox_topic, ms
from gateway.store import Accepted
from intelshare import errors, wire
from intelshare.tls import peer_agency_id
from intelshare.v1 import envelope_pb2, gateway_service_pb2, gateway_service_pb2_grpc

log = logging.getLogger(__name__)


class SubmitMethods(gateway_service_pb2_grpc.GatewayServiceServicer):
    """SubmitEnvelope, mixed into :class:`gateway.service.GatewayServicer` (which sets ``s``)."""

    s: GatewayState

    @instrument_submit
    def SubmitEnvelope(  # the request is read by submit_request
        self, request: SubmitRequest, context: grpc.ServicerContext
    ) -> SubmitAnswer:
        s = self.s
        now = s.clock()
        data = request.envelope
        try:
            peer = s.peer_agency(context)
            try:
                admitted = admit(
                    data,
                    peer_agency=peer,
                    directory=s.directory,
                    treaties=s.treaties,
                    now=now,
                    max_envelope_bytes=s.config.max_envelope_bytes,
                    max_clock_skew=timedelta(seconds=s.config.clock_skew_seconds),
                    max_expiry=timedelta(days=s.config.max_expiry_days),
                )
            except errors.IntelshareError:
                # A retry of a message accepted earlier gets its first receipt
                # even when it would not be admitted now (its clock-skew window
                # passed, the treaty or the agency changed). Looked up only on
                # refusal: an admissible duplicate is caught by the store's
                # unique message id, so new messages pay no extra query.
                earlier = self._earlier_receipt(peer, data)
                if earlier is not None:
                    return earlier
                raise
        except errors.IntelshareError as exc:
            self._refused(exc, data, context)
            raise
        h = admitted.header
        result = s.store.accept(
            message_id=h.message_id,
            sender=h.sender,
            recipients=list(h.recipients),
            treaty_id=h.treaty_id,
            envelope=admitted.envelope_bytes,
            envelope_sha256=admitted.envelope_sha256,
            now_ms=ms(now),
            expire_ms=h.expire_time.seconds * 1000 + h.expire_time.nanos // 1_000_000,
            audit_fields={
                "message_id": h.message_id,
                "sender": h.sender,
                "recipients": list(h.recipients),
                "treaty": f"{h.treaty_id}@{h.treaty_version}",
                "kind": envelope_pb2.MessageKind.Name(h.kind),
                "envelope_sha256": admitted.envelope_sha256.hex(),
            },
        )
        if not isinstance(result, Accepted):
            if result.envelope_sha256 != admitted.envelope_sha256:
                reused = errors.MessageIdReused(
                    f"message id {h.message_id} was already used for a different envelope"
                )
                self._refused(reused, data, context)
                raise reused
            return SubmitAnswer(result.receipt, duplicate=True)
        for agency in result.sequences:
            s.hub.notify(inbox_topic(agency))
        return SubmitAnswer(result.receipt, duplicate=False)

    def _earlier_receipt(self, peer: str, data: bytes) -> SubmitAnswer | None:
        """The first receipt if ``peer`` already submitted exactly this envelope."""
        header = self._peek_header(data)
        if header is None or header.sender != peer:
            return None
        existing = self.s.store.find_message(header.message_id)
        if existing is None or existing.envelope_sha256 != _sha(data):
            return None
        return SubmitAnswer(existing.receipt, duplicate=True)

    @staticmethod
    def _peek_header(data: bytes) -> envelope_pb2.Header | None:
        """The unverified header of a refused envelope, for the log (parsed on refusal only)."""
        try:
            return envelope_pb2.Header.FromString(
                envelope_pb2.Envelope.FromString(data).header_bytes
            )
        except Exception:
            return None

    def _refused(
        self, exc: errors.IntelshareError, data: bytes, context: grpc.ServicerContext
    ) -> None:
        """Log a refusal with header metadata only (never payload)."""
        header = self._peek_header(data)
        detail = getattr(exc, "audit_detail", "") or exc.message
        fields: dict[str, str | int | bool | list[str] | None] = {
            "reason": exc.reason,
            "detail": detail[:500],
            "peer": peer_agency_id(context) or "",
        }
        if header is not None:
            fields.update(
                message_id=header.message_id[:64],
                sender=header.sender[:128],
                recipients=[r[:128] for r in header.recipients][:64],
                treaty=f"{header.treaty_id[:128]}@{header.treaty_version}",
            )
        try:
            self.s.store.record("refused", fields)
        except Exception:
            log.exception("could not audit a refusal")
        log.info("refused submission: %s (%s)", exc.reason, fields.get("message_id", "?"))


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    """SubmitEnvelope's answer: the stored receipt's bytes (see :func:`submit_response_bytes`)."""

    receipt: bytes
    duplicate: bool


def submit_response_bytes(answer: SubmitAnswer) -> bytes:
    """``SubmitEnvelopeResponse{receipt, duplicate}`` on the wire, around the stored receipt.

    The receipt is stored serialized; it is not parsed into a message only
    for gRPC to serialize it again (the same bytes as the generated code
    writes for the same response).
    """
    duplicate = b"\x10\x01" if answer.duplicate else b""  # 2: duplicate (varint true)
    return wire.length_delimited(1, answer.receipt, message=True) + duplicate


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """A ``SubmitEnvelopeRequest`` with its envelope as the bytes that arrived."""

    request_id: str
    envelope: bytes


def submit_request(data: bytes) -> SubmitRequest:
    """SubmitEnvelope's request deserializer: the envelope stays bytes (:mod:`intelshare.wire`).

    The usual request (a request id and an envelope, once each) is taken
    apart around the envelope, which admission then parses once
    (:func:`intelshare.envelope.read`). Any other encoding goes through the
    generated parser, and its envelope is serialized again, as every
    request was before.
    """
    try:
        request_id, pos = wire.take(data, 0, 0x0A)  # 1: request_id
        envelope, pos = wire.take(data, pos, 0x12)  # 2: envelope
        if pos == len(data):
            return SubmitRequest((request_id or b"").decode("utf-8"), envelope or b"")
    except (wire.WireError, UnicodeDecodeError):
        pass
    parsed = gateway_service_pb2.SubmitEnvelopeRequest.FromString(data)
    return SubmitRequest(parsed.request_id, parsed.envelope.SerializeToString())


def _sha(data: bytes) -> bytes:
    from intelshare.envelope import envelope_sha256

    return envelope_sha256(data)
