"""Client for the federation gateway, used by nodes, tools and tests.

Lives in the core so that nodes can talk to the gateway without importing the
gateway package. Every failed call raises the project exception that the
gateway's status names (see :mod:`intelshare.grpc_errors`), so callers
handle ``TreatyNotInForce`` or ``CursorExpired`` rather than raw statuses.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import grpc

from intelshare import wire
from intelshare.errors import IntelshareError, Unavailable
from intelshare.grpc_errors import follow, from_rpc_error, project_errors
from intelshare.grpc_server import CLIENT_KEEPALIVE_OPTIONS, message_size_options
from intelshare.v1 import (
    directory_pb2,
    envelope_pb2,
    gateway_service_pb2,
    gateway_service_pb2_grpc,
    treaty_pb2,
)

_R = TypeVar("_R")


class _StreamEnd:
    """Queued by the stream reader after the last item: how the stream ended."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class GatewayClient:
    """A mutually authenticated channel to the gateway."""

    def __init__(
        self,
        target: str,
        *,
        ca_pem: bytes,
        cert_pem: bytes | None,
        key_pem: bytes | None,
        server_name: str | None = None,
        max_message_bytes: int = 4 * 1024 * 1024,
        timeout: float = 30.0,
        options: Sequence[tuple[str, int | str]] = (),
    ) -> None:
        """``options`` are extra grpcio channel options (e.g. reconnect backoff)."""
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
        )
        channel_options: list[tuple[str, int | str]] = [
            *CLIENT_KEEPALIVE_OPTIONS,
            *message_size_options(max_message_bytes),
            *options,
        ]
        if server_name:
            channel_options.append(("grpc.ssl_target_name_override", server_name))
        self.channel = grpc.secure_channel(target, creds, options=channel_options)
        self.stub = gateway_service_pb2_grpc.GatewayServiceStub(self.channel)
        # SubmitEnvelope with the request written around the envelope's bytes
        # (submit_request_bytes): a sender's stored envelope is not parsed
        # into a message only to be serialized again.
        self._submit = self.channel.unary_unary(
            "/intelshare.v1.GatewayService/SubmitEnvelope",
            request_serializer=_request_bytes,
            response_deserializer=gateway_service_pb2.SubmitEnvelopeResponse.FromString,
        )
        # StreamInbox read around the envelopes' bytes (inbox_message), for
        # the node's inbox, which verifies and stores those bytes.
        self._stream_bytes = self.channel.unary_stream(
            "/intelshare.v1.GatewayService/StreamInbox",
            request_serializer=gateway_service_pb2.StreamInboxRequest.SerializeToString,
            response_deserializer=inbox_message,
        )
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def submit(
        self, envelope: envelope_pb2.Envelope | bytes, request_id: str | None = None
    ) -> gateway_service_pb2.SubmitEnvelopeResponse:
        """Submit an envelope (its message, or its serialized bytes as sealed and stored)."""
        req = submit_request_bytes(envelope, request_id or str(uuid.uuid4()))
        with project_errors():
            response: gateway_service_pb2.SubmitEnvelopeResponse = self._submit(
                req, timeout=self.timeout
            )
            return response

    def submit_async(
        self,
        envelope: envelope_pb2.Envelope | bytes,
        request_id: str | None,
        done: Callable[[gateway_service_pb2.SubmitEnvelopeResponse | IntelshareError], None],
    ) -> None:
        """Start :meth:`submit` without waiting; ``done`` gets the response or the error.

        The request leaves from the calling thread (no hand-over to another
        thread first); ``done`` runs on a gRPC thread, or at once in the
        caller's when the call has already ended.
        """
        req = submit_request_bytes(envelope, request_id or str(uuid.uuid4()))
        future = self._submit.future(req, timeout=self.timeout)

        def finished(call: grpc.Future[gateway_service_pb2.SubmitEnvelopeResponse]) -> None:
            result: gateway_service_pb2.SubmitEnvelopeResponse | IntelshareError
            try:
                result = call.result()
            except grpc.RpcError as err:
                result = from_rpc_error(err)
            except grpc.FutureCancelledError:
                result = Unavailable("the submission was cancelled")
            done(result)

        future.add_done_callback(finished)

    def stream_inbox(
        self, after_sequence: int
    ) -> Iterator[gateway_service_pb2.StreamInboxResponse]:
        """Entries and heartbeats after ``after_sequence``, until cancelled."""
        call = self.stub.StreamInbox(
            gateway_service_pb2.StreamInboxRequest(after_sequence=after_sequence)
        )
        yield from follow(call)

    def stream_inbox_batches(
        self, after_sequence: int, max_batch: int = 64
    ) -> Generator[list[InboxMessage], None, None]:
        """Like :meth:`stream_inbox`, in lists of what has already arrived, envelopes as bytes.

        Each item is an :class:`InboxMessage`: its entry's envelope and
        receipt are the bytes the gateway sent (the envelope as its sender
        submitted it), not parsed into messages.

        A reader thread takes items off the stream as soon as they come; each
        list holds everything received since the previous one (at least one
        item, at most ``max_batch``). Nothing waits for a batch to fill: an
        item that arrives alone is yielded alone, at once. Closing the
        generator cancels the call.
        """
        call = self._stream_bytes(
            gateway_service_pb2.StreamInboxRequest(after_sequence=after_sequence)
        )
        # Read ahead at most one batch (entries can be large); gRPC flow
        # control holds back the rest at the gateway.
        items: queue.Queue[InboxMessage | _StreamEnd] = queue.Queue(max(1, max_batch))
        closed = threading.Event()

        def put(item: InboxMessage | _StreamEnd) -> bool:
            while not closed.is_set():
                try:
                    items.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for response in call:
                    if not put(response):
                        return
                put(_StreamEnd(None))
            except BaseException as exc:  # handed to the consumer, raised there
                put(_StreamEnd(exc))

        reader = threading.Thread(target=read, name="gateway-inbox-reader", daemon=True)
        reader.start()
        try:
            while True:
                item = items.get()
                batch: list[InboxMessage] = []
                while not isinstance(item, _StreamEnd):
                    batch.append(item)
                    if len(batch) >= max_batch:
                        break
                    try:
                        item = items.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    yield batch
                if isinstance(item, _StreamEnd):
                    err = item.error
                    if err is None:
                        return
                    if isinstance(err, grpc.RpcError):
                        if cast(grpc.Call, err).code() == grpc.StatusCode.CANCELLED:
                            return
                        raise from_rpc_error(err) from None
                    raise err
        finally:
            closed.set()
            call.cancel()  # type: ignore[no-untyped-call]

    def acknowledge(self, sequence: int, request_id: str | None = None) -> int:
        req = gateway_service_pb2.AcknowledgeInboxRequest(
            request_id=request_id or str(uuid.uuid4()), sequence=sequence
        )
        with project_errors():
            return int(self.stub.AcknowledgeInbox(req, timeout=self.timeout).acknowledged_sequence)

    def get_directory(self) -> directory_pb2.SignedDirectory:
        with project_errors():
            return self.stub.GetDirectory(
                gateway_service_pb2.GetDirectoryRequest(), timeout=self.timeout
            )

    def publish_directory(self, signed: directory_pb2.SignedDirectory) -> int:
        req = gateway_service_pb2.PublishDirectoryRequest(
            request_id=str(uuid.uuid4()), directory=signed
        )
        with project_errors():
            return int(self.stub.PublishDirectory(req, timeout=self.timeout).version)

    def publish_treaty(
        self, signed: treaty_pb2.SignedTreaty
    ) -> gateway_service_pb2.PublishTreatyResponse:
        req = gateway_service_pb2.PublishTreatyRequest(request_id=str(uuid.uuid4()), treaty=signed)
        with project_errors():
            return self.stub.PublishTreaty(req, timeout=self.timeout)

    def get_treaty(self, treaty_id: str, version: int = 0) -> treaty_pb2.SignedTreaty:
        req = gateway_service_pb2.GetTreatyRequest(treaty_id=treaty_id, version=version)
        with project_errors():
            return self.stub.GetTreaty(req, timeout=self.timeout)

    def list_treaties(self) -> list[gateway_service_pb2.TreatyListing]:
        out: list[gateway_service_pb2.TreatyListing] = []
        token = ""
        while True:
            with project_errors():
                page = self.stub.ListTreaties(
                    gateway_service_pb2.ListTreatiesRequest(page_size=100, page_token=token),
                    timeout=self.timeout,
                )
            out.extend(page.treaties)
            token = page.next_page_token
            if not token:
                return out


def submit_request_bytes(envelope: envelope_pb2.Envelope | bytes, request_id: str) -> bytes:
    """``SubmitEnvelopeRequest{request_id, envelope}`` on the wire, around the envelope's bytes.

    An embedded message is encoded like bytes (:mod:`intelshare.wire`), so
    this is byte for byte what the generated code writes for the same
    request when ``envelope`` is a serialized envelope as :func:`seal`'s
    caller stores it.
    """
    data = envelope if isinstance(envelope, bytes) else envelope.SerializeToString()
    return wire.length_delimited(1, request_id.encode("utf-8")) + wire.length_delimited(
        2, data, message=True
    )


def _request_bytes(request: bytes) -> bytes:
    return request


@dataclass(frozen=True, slots=True)
class InboxEntryBytes:
    """An ``InboxEntry`` with its envelope and receipt as the bytes that arrived."""

    sequence: int
    envelope: bytes
    receipt: bytes


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A ``StreamInboxResponse`` read by :func:`inbox_message`: an entry or a heartbeat."""

    entry: InboxEntryBytes | None = None
    heartbeat: gateway_service_pb2.Heartbeat | None = None

    def WhichOneof(self, group: str) -> str | None:
        """As on the message: which of ``event`` this carries."""
        if group != "event":
            raise ValueError(f"no oneof {group!r}")
        if self.entry is not None:
            return "entry"
        return "heartbeat" if self.heartbeat is not None else None

    def HasField(self, name: str) -> bool:
        return self.WhichOneof("event") == name


def inbox_message(data: bytes) -> InboxMessage:
    """StreamInbox's response deserializer for the node's inbox: envelopes stay bytes.

    An entry (sequence, envelope, receipt, each once) is taken apart around
    its envelope and receipt (:mod:`intelshare.wire`); anything else (a
    heartbeat, another encoding) goes through the generated parser, an
    entry's envelope and receipt then serialized again as before.
    """
    try:
        body, pos = wire.take(data, 0, 0x0A)  # StreamInboxResponse 1: entry
        if body is not None and pos == len(data):
            sequence, at = wire.take_varint(body, 0, 0x08)  # InboxEntry 1: sequence
            envelope, at = wire.take(body, at, 0x12)  # 2: envelope
            receipt, at = wire.take(body, at, 0x1A)  # 3: receipt
            if at == len(body):
                return InboxMessage(
                    entry=InboxEntryBytes(sequence or 0, envelope or b"", receipt or b"")
                )
    except wire.WireError:
        pass
    parsed = gateway_service_pb2.StreamInboxResponse.FromString(data)
    if parsed.WhichOneof("event") == "entry":
        e = parsed.entry
        return InboxMessage(
            entry=InboxEntryBytes(
                e.sequence, e.envelope.SerializeToString(), e.receipt.SerializeToString()
            )
        )
    if parsed.WhichOneof("event") == "heartbeat":
        return InboxMessage(heartbeat=parsed.heartbeat)
    return InboxMessage()
