"""StreamInbox and AcknowledgeInbox: a recipient agency's queue, pulled by its node.

A node reads its queue over one long-lived server stream from the last
sequence it acknowledged: the stream replays from the database, then waits
for a wake-up of the agency's inbox topic (a heartbeat when the interval
passes) and reads again. It always reads from the database, so a lost
wake-up costs at most a heartbeat interval, never a message.

Before a stream is served, its cursor must lie in the queue: one below the
acknowledged floor is ``CURSOR_EXPIRED`` (those entries were released); one
beyond the last allocated sequence is ``CURSOR_AHEAD``, which only a queue
that went back (a restored database) produces, and is audited as evidence,
as is a sequence no queue can allocate (``SEQUENCE_OUT_OF_RANGE``). The
agency's streams are limited (:mod:`gateway.capacity`): a flood is refused
before any query, and only a stream that would be served replaces the
agency's oldest, which then ends with ``STREAM_REPLACED``.

The database works while gRPC sends: the next batch is read ahead when one
was full, and an entry counts as delivered once gRPC has sent it (it asked
for the next message), recorded in the background by the stream's
:class:`gateway.state.Deliveries`. An acknowledgement releases the entries
up to its sequence and records the deliveries not yet recorded, taking them
off the open streams' records: each entry gets one ``delivered`` audit entry.

Entries go on the wire around the stored envelope and receipt bytes
(:func:`_inbox_entry`), without a parse and a re-serialization: the
recipient gets the envelope byte for byte as the sender submitted it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from functools import partial
from typing import Any

import grpc

from gateway.capacity import check_sequence, stream_replaced
from gateway.state import DELIVERY_BATCH, Deliveries, GatewayState, inbox_topic, ms
from gateway.store import InboxRow, cursor_ahead
from intelshare import errors, wire
from intelshare.v1 import gateway_service_pb2, gateway_service_pb2_grpc

log = logging.getLogger(__name__)

#: Inbox entries read per query.
INBOX_BATCH = 256


class InboxMethods(gateway_service_pb2_grpc.GatewayServiceServicer):
    """StreamInbox and AcknowledgeInbox, mixed into :class:`gateway.service.GatewayServicer`
    (which sets ``s``)."""

    s: GatewayState

    def StreamInbox(  # type: ignore[override]  # entries are encoded: see _inbox_entry
        self, request: gateway_service_pb2.StreamInboxRequest, context: grpc.ServicerContext
    ) -> Iterator[gateway_service_pb2.StreamInboxResponse | bytes]:
        """The caller's inbox from ``after_sequence``: entries (encoded, see
        :func:`_inbox_entry`), and heartbeats while idle."""
        s = self.s
        agency = s.peer_agency(context)
        cursor = int(request.after_sequence)
        self._check_sequence(agency, cursor, "after_sequence")
        try:
            # Before any database work: a flood of streams costs no query.
            s.streams.precheck(agency)
        except errors.TooManyStreams:
            s.metrics.stream_limited("TOO_MANY_STREAMS", agency)
            raise
        if not s.directory.is_active(agency, s.clock()):
            raise errors.AgencyNotActive(f"agency {agency!r} is not active")
        last, acked = s.store.position(agency)
        if cursor < acked:
            raise errors.CursorExpired(
                f"cursor {cursor} is before the acknowledged position {acked}; "
                "those entries were released",
                metadata={"acknowledged_sequence": str(acked)},
            )
        if cursor > last:
            self._audit_cursor_ahead(agency, cursor, last)
            raise cursor_ahead(cursor, last, acked)
        topic = inbox_topic(agency)
        # Only a stream that would be served replaces an older one: a bad
        # cursor must not end the agency's good stream.
        try:
            slot = s.streams.open(
                agency, cancel=partial(_cancel, context), wake=partial(s.hub.wake_local, topic)
            )
        except errors.TooManyStreams:
            s.metrics.stream_limited("TOO_MANY_STREAMS", agency)
            raise
        try:
            yield from self._stream(request, context, agency, cursor, slot.replaced)
        finally:
            s.streams.close(slot)
        if slot.replaced.is_set() and context.is_active():
            # A newer stream of this agency carries on.
            raise stream_replaced(slot, s.streams.per_agency)

    def _stream(
        self,
        request: gateway_service_pb2.StreamInboxRequest,
        context: grpc.ServicerContext,
        agency: str,
        cursor: int,
        replaced: threading.Event,
    ) -> Iterator[gateway_service_pb2.StreamInboxResponse | bytes]:
        """The stream's entries and heartbeats until the call ends or ``replaced`` is set."""
        s = self.s
        topic = inbox_topic(agency)
        heartbeat = s.config.heartbeat_seconds
        # A call that ends (cancelled, deadline, client gone) wakes its own wait,
        # so its worker thread is back in the pool now, not at the next heartbeat.
        context.add_callback(partial(s.hub.wake_local, topic))
        s.metrics.stream_opened(agency, context)
        # The database works while gRPC sends: the next batch is read ahead
        # when this one was full, and what was sent is recorded in the
        # background (see Deliveries) — never an entry read but not sent.
        deliveries = Deliveries(s, agency)
        s.open_deliveries(agency, deliveries)
        # Sent and not delivered before: handed to ``deliveries`` a batch at a time.
        sent: list[InboxRow] = []
        ahead: tuple[int, Future[list[InboxRow]]] | None = None
        try:
            while context.is_active() and not replaced.is_set():
                if ahead is not None:
                    (generation, pending), ahead = ahead, None
                    rows = pending.result()
                else:
                    generation = s.hub.generation(topic)
                    rows = s.store.read_inbox(agency, cursor, INBOX_BATCH, ms(s.clock()))
                if rows:
                    full = len(rows) == INBOX_BATCH
                    if full:
                        # The generation before the read, as for any read.
                        ahead = (
                            s.hub.generation(topic),
                            s.pool.submit(
                                s.store.read_inbox,
                                agency,
                                rows[-1].sequence,
                                INBOX_BATCH,
                                ms(s.clock()),
                            ),
                        )
                    for row in rows:
                        if replaced.is_set():
                            return
                        yield _inbox_entry(row)
                        # gRPC asks for the next message once it sent this one.
                        cursor = row.sequence
                        if not row.delivered:
                            sent.append(row)
                            if len(sent) >= DELIVERY_BATCH:
                                deliveries.sent(sent)
                                sent = []
                    deliveries.sent(sent)
                    sent = []
                    if full:
                        deliveries.flush()
                        continue
                    deliveries.flush_soon()
                    # A short batch was all there was when it was read. Only
                    # an entry committed since can be new, and its commit
                    # moves the topic past ``generation`` (taken before the
                    # read): wait for that rather than read again at once.
                if (
                    not s.hub.wait(topic, generation, heartbeat)
                    and context.is_active()
                    and not replaced.is_set()
                ):
                    head, _ = s.store.position(agency)
                    yield gateway_service_pb2.StreamInboxResponse(
                        heartbeat=gateway_service_pb2.Heartbeat(head_sequence=head)
                    )
        finally:
            if ahead is not None:
                ahead[1].cancel()
            deliveries.sent(sent)
            try:
                deliveries.close()
            finally:
                s.close_deliveries(agency, deliveries)

    def AcknowledgeInbox(
        self, request: gateway_service_pb2.AcknowledgeInboxRequest, context: grpc.ServicerContext
    ) -> gateway_service_pb2.AcknowledgeInboxResponse:
        agency = self.s.peer_agency(context)
        self._check_sequence(agency, int(request.sequence), "sequence")
        try:
            acked = self.s.store.acknowledge(agency, int(request.sequence))
            for deliveries in self.s.open_deliveries(agency):
                deliveries.acknowledged(acked)
        except errors.CursorAhead as exc:
            last = int(exc.metadata["last_sequence"])
            self._audit_cursor_ahead(agency, int(request.sequence), last)
            raise
        return gateway_service_pb2.AcknowledgeInboxResponse(acknowledged_sequence=acked)

    def _check_sequence(self, agency: str, value: int, name: str) -> None:
        """Refuse a sequence no queue can allocate, with the evidence in the audit log."""
        try:
            check_sequence(value, name)
        except errors.SequenceOutOfRange:
            log.warning("agency %s sent %s %d, beyond any queue", agency, name, value)
            # As a string: the audit log holds 64-bit signed integers only.
            self.s.store.record(
                "sequence_out_of_range", {"agency": agency, "field": name, "value": str(value)}
            )
            raise

    def _audit_cursor_ahead(self, agency: str, cursor: int, last: int) -> None:
        """A recipient ahead of its queue: evidence that the queue went back (a restore)."""
        log.error(
            "agency %s is at sequence %d, beyond its queue's last %d: "
            "was the gateway's database restored?",
            agency,
            cursor,
            last,
        )
        self.s.store.record(
            "cursor_ahead", {"recipient": agency, "cursor": cursor, "last_sequence": last}
        )


def _cancel(context: Any) -> None:
    """Cancel a call from another thread (looked up late: test contexts lack it)."""
    context.cancel()


def _inbox_entry(row: InboxRow) -> bytes:
    """``StreamInboxResponse{entry: InboxEntry{sequence, envelope, receipt}}`` on the wire.

    Envelope and receipt are stored serialized, and an embedded message is
    encoded exactly like bytes (tag, length, content): the entry is written
    around them without parsing and re-serializing ~2 KB per entry, and the
    recipient gets the envelope byte for byte as the sender submitted it.
    The server sends it as is (see :func:`inbox_response_bytes`).
    """
    env, receipt = row.envelope, row.receipt
    sequence, env_size, receipt_size = (
        wire.varint(row.sequence),
        wire.varint(len(env)),
        wire.varint(len(receipt)),
    )
    size = 3 + len(sequence) + len(env_size) + len(env) + len(receipt_size) + len(receipt)
    return b"".join(
        (
            b"\x0a",  # StreamInboxResponse 1: entry (length-delimited)
            wire.varint(size),
            b"\x08",  # InboxEntry 1: sequence (varint)
            sequence,
            b"\x12",  # 2: envelope (length-delimited)
            env_size,
            env,
            b"\x1a",  # 3: receipt (length-delimited)
            receipt_size,
            receipt,
        )
    )


def inbox_response_bytes(response: gateway_service_pb2.StreamInboxResponse | bytes) -> bytes:
    """StreamInbox's response serializer: entries come encoded already."""
    if isinstance(response, bytes):
        return response
    return response.SerializeToString()
