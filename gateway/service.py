"""The GatewayService gRPC servicer."""

from __future__ import annotations

import base64
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import grpc
from google.protobuf import empty_pb2  # noqa: F401  (kept for reflection of well-known types)

from gateway.admission import TreatyBook, admit
from gateway.capacity import StreamLimiter, check_sequence, stream_replaced
from gateway.config import GatewayConfig
from gateway.metrics import GatewayMetrics, caller, instrument_submit
from gateway.store import Accepted, GatewayStore, InboxRow, cursor_ahead
from intelshare import errors, wire
from intelshare.audit.log import AuditLog
from intelshare.directory import Anchor, TrustedDirectory, verify_directory
from intelshare.grpc_errors import translate_errors
from intelshare.tls import peer_agency_id, peer_certificate_pem
from intelshare.treaty import SignedTreatyDoc, verify_signatures
from intelshare.v1 import (
    directory_pb2,
    envelope_pb2,
    gateway_service_pb2,
    gateway_service_pb2_grpc,
    treaty_pb2,
)
from intelshare.wakeup import WakeupHub

log = logging.getLogger(__name__)

#: Inbox entries read per query.
INBOX_BATCH = 256
#: Sent entries that start a delivery record (when none is running).
DELIVERY_BATCH = 128
#: How long a short batch of sent entries waits before it is recorded as
#: delivered: the recipient's acknowledgement (nodes send one every 100 ms)
#: usually comes first and records the delivery in its own transaction.
DELIVERY_DELAY_SECONDS = 0.5
#: Threads for database work beside the request threads.
BACKGROUND_WORKERS = 8
#: How often the maintenance thread looks for other replicas' publications.
BACKGROUND_TICK = 0.25
#: Client certificates remembered (then forgotten all at once).
MAX_KNOWN_PEERS = 4096
DEFAULT_PAGE = 50
MAX_PAGE = 500
DIRECTORY_TOPIC = "gateway:directory"
TREATY_TOPIC = "gateway:treaties"


def inbox_topic(agency: str) -> str:
    return f"gateway:inbox:{agency}"


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class GatewayState:
    """What the servicer shares: stores, trust material and caches.

    The directory and treaties are caches of the database, reloaded when a
    wake-up says another replica published something and on a timer.
    """

    def __init__(
        self,
        *,
        config: GatewayConfig,
        store: GatewayStore,
        audit: AuditLog,
        anchor: Anchor,
        hub: WakeupHub,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.store = store
        self.audit = audit
        self.anchor = anchor
        self.hub = hub
        self.clock = clock
        self.metrics = GatewayMetrics()
        self.treaties = TreatyBook()
        self._directory: TrustedDirectory | None = None
        self._lock = threading.Lock()
        #: database work done beside the request threads (inbox read-ahead,
        #: delivery records); shut down by :meth:`close`
        self.pool = ThreadPoolExecutor(
            max_workers=BACKGROUND_WORKERS, thread_name_prefix="gateway-db"
        )
        #: delayed callbacks (delivery records) on one thread; stopped by close
        self.later = Later()
        #: inbox streams open, per agency and in total (see gateway.capacity)
        self.streams = StreamLimiter(
            per_agency=config.max_inbox_streams_per_agency,
            total=config.max_inbox_streams,
            later=self.later.call_later,
            on_replaced=partial(self.metrics.stream_limited, "STREAM_REPLACED"),
        )
        #: the open streams' delivery records, by recipient (see _Deliveries)
        self._deliveries: dict[str, set[_Deliveries]] = {}
        self._streams_done = threading.Condition()
        #: peer certificate (PEM) -> (directory, agency id) it was matched in
        self._peers: dict[bytes, tuple[TrustedDirectory, str]] = {}
        #: last seen modification time of the configured directory file
        self.directory_file_mtime: int | None = None

    def close(self, timeout: float = 5.0) -> None:
        """Finish the background work (after the server stopped).

        Streams cancelled by the stop record what they sent on their way out:
        they are waited for (up to ``timeout``), so that nothing uses the
        database once this returns and the engine can be disposed of.
        """
        deadline = time.monotonic() + timeout
        with self._streams_done:
            while self._deliveries and time.monotonic() < deadline:
                self._streams_done.wait(max(0.0, deadline - time.monotonic()))
            if self._deliveries:
                log.warning("%d inbox streams still open at shutdown", len(self._deliveries))
        self.later.close()
        self.pool.shutdown(wait=True, cancel_futures=False)

    def open_deliveries(
        self, agency: str, deliveries: _Deliveries | None = None
    ) -> list[_Deliveries]:
        """Register ``deliveries`` (an opening stream) and list ``agency``'s open ones."""
        with self._streams_done:
            mine = self._deliveries.get(agency, set())
            if deliveries is not None:
                mine.add(deliveries)
                self._deliveries[agency] = mine
            return list(mine)

    def close_deliveries(self, agency: str, deliveries: _Deliveries) -> None:
        """Unregister a stream's record once it recorded everything it sent."""
        with self._streams_done:
            mine = self._deliveries.get(agency)
            if mine is not None:
                mine.discard(deliveries)
                if not mine:
                    del self._deliveries[agency]
            self._streams_done.notify_all()

    # --- directory ------------------------------------------------------

    @property
    def directory(self) -> TrustedDirectory:
        with self._lock:
            current = self._directory
        if current is None:
            raise errors.DirectoryMissing("the gateway has no directory yet; publish one")
        return current

    def current_version(self) -> int:
        with self._lock:
            return 0 if self._directory is None else self._directory.version

    def install_directory(self, signed: bytes) -> TrustedDirectory:
        """Verify and serve ``signed`` if it is newer than the one in use."""
        with self._lock:
            floor = 0 if self._directory is None else self._directory.version
        trusted = verify_directory(
            signed, self.anchor, now=self.clock(), min_version=floor, clock=self.clock
        )
        with self._lock:
            if self._directory is None or trusted.version >= self._directory.version:
                self._directory = trusted
        return trusted

    def reload(self) -> None:
        """Refresh directory and treaties from the database."""
        latest = self.store.latest_directory()
        if latest is not None:
            try:
                self.install_directory(latest)
            except errors.DirectoryInvalid as exc:
                log.error("stored directory refused: %s", exc.message)
        for _tid, _version, signed in self.store.all_treaties():
            try:
                self.treaties.put(SignedTreatyDoc.from_bytes(signed))
            except errors.IntelshareError as exc:
                log.error("stored treaty refused: %s", exc.message)

    # --- peers ----------------------------------------------------------

    def peer_agency(self, context: grpc.ServicerContext) -> str:
        """The calling agency: CA-vouched name *and* published fingerprint.

        Remembered per certificate for the directory in use (a node keeps its
        certificate across calls), so a call parses no certificate; a new
        directory starts afresh, and an expired one is refused as before.
        """
        auth = _Auth(context.auth_context())
        pem = peer_certificate_pem(auth)
        directory = self.directory
        if pem is not None:
            known = self._peers.get(pem)
            if known is not None and known[0] is directory and directory.is_fresh():
                caller.set(known[1])
                return known[1]
        named = peer_agency_id(auth)
        if named is None or pem is None:
            raise errors.CertificateInvalid("a client certificate naming an agency is required")
        agency = directory.agency_for_certificate(pem, require_active=False)
        if agency.agency_id != named:
            raise errors.CertificateInvalid("the peer certificate does not match the directory")
        if len(self._peers) >= MAX_KNOWN_PEERS:
            self._peers.clear()
        self._peers[pem] = (directory, agency.agency_id)
        caller.set(agency.agency_id)
        return agency.agency_id


class _Auth:
    """One call's auth context, read from gRPC once."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: Mapping[str, Any]) -> None:
        self._ctx = ctx

    def auth_context(self) -> Mapping[str, Any]:
        return self._ctx


class Later:
    """Callbacks run after a delay, all on one thread (not a thread per timer)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._count = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> bool:
        """Run ``callback`` in ``delay`` seconds; False (not scheduled) once closed."""
        with self._cond:
            if self._stopped:
                return False
            self._count += 1
            heapq.heappush(self._due, (time.monotonic() + delay, self._count, callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gateway-later", daemon=True)
                self._thread.start()
            self._cond.notify()
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._due or self._due[0][0] > time.monotonic()):
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._due)
            try:
                callback()
            except Exception:
                log.exception("a delayed gateway task failed")

    def close(self) -> None:
        """Run what is still due now, here, and take nothing more."""
        with self._cond:
            self._stopped = True
            due, self._due = self._due, []
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for _, _, callback in sorted(due):
            with suppress(Exception):
                callback()


class _Deliveries:
    """Entries one stream sent, recorded as delivered (and audited) in the background.

    A background task records what was sent in transactions one after the
    other, each taking everything sent while the previous one ran, until
    nothing is left; so the stream neither waits for the database nor
    leaves a sent entry unrecorded while it idles. A short batch waits
    :data:`DELIVERY_DELAY_SECONDS` first (:meth:`flush_soon`): the
    recipient's acknowledgement usually comes sooner, records those
    deliveries itself and takes them off this record (:meth:`acknowledged`),
    a transaction per batch fewer. However the stream ends, :meth:`close`
    waits for that task and records what remains. Entries of a failed
    transaction are tried again with the next flush.
    """

    def __init__(self, state: GatewayState, agency: str) -> None:
        self._state = state
        self._agency = agency
        self._cond = threading.Condition()
        self._rows: list[InboxRow] = []
        self._active = False
        self._scheduled = False

    def sent(self, rows: list[InboxRow]) -> None:
        """Take ``rows`` (sent, in order); a background record starts once a
        batch is waiting and none is running."""
        if not rows:
            return
        # The lag is observed as gRPC sent them, not when they are recorded
        # (that may wait, or be left to the acknowledgement).
        self._state.metrics.delivered(
            self._agency, rows, [r.sequence for r in rows], _ms(self._state.clock())
        )
        with self._cond:
            self._rows.extend(rows)
            start = len(self._rows) >= DELIVERY_BATCH and not self._active
            if start:
                self._active = True
        if start:
            self._start()

    def flush(self) -> None:
        """Have everything sent so far recorded, without waiting for it."""
        with self._cond:
            if not self._rows or self._active:
                return
            self._active = True
        self._start()

    def flush_soon(self) -> None:
        """:meth:`flush` in :data:`DELIVERY_DELAY_SECONDS`, unless one is already due."""
        with self._cond:
            if not self._rows or self._scheduled:
                return
            self._scheduled = True
        if not self._state.later.call_later(DELIVERY_DELAY_SECONDS, self._flush_due):
            self._flush_due()

    def _flush_due(self) -> None:
        with self._cond:
            self._scheduled = False
        self.flush()

    def acknowledged(self, up_to: int) -> None:
        """The recipient acknowledged ``up_to``: its acknowledgement recorded those."""
        with self._cond:
            self._rows = [r for r in self._rows if r.sequence > up_to]

    def _start(self) -> None:
        try:
            self._state.pool.submit(self._drain)
        except RuntimeError:  # the gateway is stopping: record here and now
            self._drain()

    def close(self) -> None:
        with self._cond:
            while self._active:
                self._cond.wait()
            rows, self._rows = self._rows, []
        if rows and self._record(rows):
            log.error(
                "%d entries sent to %s are not recorded as delivered", len(rows), self._agency
            )

    def _drain(self) -> None:
        while True:
            with self._cond:
                rows, self._rows = self._rows, []
                if not rows:
                    self._active = False
                    self._cond.notify_all()
                    return
            failed = self._record(rows)
            if failed:
                with self._cond:
                    self._rows[:0] = failed
                    self._active = False
                    self._cond.notify_all()
                return

    def _record(self, rows: list[InboxRow]) -> list[InboxRow]:
        """Record ``rows``; returns them if that failed (logged), else nothing."""
        s = self._state
        try:
            now_ms = _ms(s.clock())
            s.store.mark_delivered(self._agency, rows, now_ms)
        except Exception:
            log.exception("could not record %d deliveries to %s", len(rows), self._agency)
            return rows
        return []


class GatewayServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    def __init__(self, state: GatewayState) -> None:
        self.s = state

    # --- submit ---------------------------------------------------------

    @translate_errors
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
            now_ms=_ms(now),
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

    # --- inbox ----------------------------------------------------------

    @translate_errors
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
        # background (see _Deliveries) — never an entry read but not sent.
        deliveries = _Deliveries(s, agency)
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
                    rows = s.store.read_inbox(agency, cursor, INBOX_BATCH, _ms(s.clock()))
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
                                _ms(s.clock()),
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

    @translate_errors
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

    # --- directory ------------------------------------------------------

    @translate_errors
    def GetDirectory(
        self, request: gateway_service_pb2.GetDirectoryRequest, context: grpc.ServicerContext
    ) -> directory_pb2.SignedDirectory:
        return directory_pb2.SignedDirectory.FromString(self.s.directory.signed_bytes)

    @translate_errors
    def PublishDirectory(
        self, request: gateway_service_pb2.PublishDirectoryRequest, context: grpc.ServicerContext
    ) -> gateway_service_pb2.PublishDirectoryResponse:
        s = self.s
        signed = request.directory.SerializeToString()
        trusted = s.install_directory(signed)
        s.store.save_directory(trusted.version, trusted.signed_bytes, _ms(s.clock()))
        s.store.record("directory_published", {"version": trusted.version})
        s.hub.notify(DIRECTORY_TOPIC)
        return gateway_service_pb2.PublishDirectoryResponse(version=s.directory.version)

    # --- treaties -------------------------------------------------------

    @translate_errors
    def ListTreaties(
        self, request: gateway_service_pb2.ListTreatiesRequest, context: grpc.ServicerContext
    ) -> gateway_service_pb2.ListTreatiesResponse:
        s = self.s
        if request.page_size < 0:
            raise errors.PageSizeInvalid(
                "page_size must not be negative", violations={"page_size": "must be >= 0"}
            )
        size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
        offset = _decode_token(request.page_token)
        docs = s.treaties.all()
        page = docs[offset : offset + size]
        now = s.clock()
        directory = s.directory
        listings = [
            gateway_service_pb2.TreatyListing(
                treaty=d.treaty.to_proto(), in_force=s.treaties.in_force(d, directory, now)
            )
            for d in page
        ]
        more = offset + size < len(docs)
        token = _encode_token(offset + size) if more else ""
        return gateway_service_pb2.ListTreatiesResponse(treaties=listings, next_page_token=token)

    @translate_errors
    def GetTreaty(
        self, request: gateway_service_pb2.GetTreatyRequest, context: grpc.ServicerContext
    ) -> treaty_pb2.SignedTreaty:
        doc = self.s.treaties.get(request.treaty_id, request.version)
        if doc is None:
            raise errors.TreatyNotFound(
                f"treaty {request.treaty_id!r} is not known",
                metadata={"treaty_id": request.treaty_id},
            )
        return doc.to_proto()

    @translate_errors
    def PublishTreaty(
        self, request: gateway_service_pb2.PublishTreatyRequest, context: grpc.ServicerContext
    ) -> gateway_service_pb2.PublishTreatyResponse:
        s = self.s
        s.peer_agency(context)
        doc = SignedTreatyDoc.from_proto(request.treaty)
        now = s.clock()
        directory = s.directory
        signed_by = verify_signatures(doc, directory, now)
        missing = sorted(set(doc.treaty.parties) - signed_by)
        if missing:
            raise errors.TreatyNotInForce(
                f"treaty {doc.treaty.label} lacks a valid signature from {', '.join(missing)}"
            )
        s.store.save_treaty(doc.treaty.id, doc.treaty.version, doc.to_bytes(), _ms(now))
        s.treaties.put(doc)
        s.store.record(
            "treaty_published",
            {
                "treaty": f"{doc.treaty.id}@{doc.treaty.version}",
                "parties": list(doc.treaty.parties),
            },
        )
        s.hub.notify(TREATY_TOPIC)
        return gateway_service_pb2.PublishTreatyResponse(
            treaty=doc.treaty.to_proto(), in_force=s.treaties.in_force(doc, directory, now)
        )


def _cancel(context: Any) -> None:
    """Cancel a call from another thread (looked up late: test contexts lack it)."""
    context.cancel()


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


def _sha(data: bytes) -> bytes:
    from intelshare.envelope import envelope_sha256

    return envelope_sha256(data)


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        kind, _, value = text.partition(":")
        if kind != "o" or not value.isdigit():
            raise ValueError(token)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise errors.PageTokenInvalid(
            "page_token is not valid", violations={"page_token": "not a token from this server"}
        ) from None


def _pick_up_directory_file(state: GatewayState) -> None:
    """Serve a newer directory the operator wrote to the configured file.

    The operator publishes with ``intelshare directory publish`` into the
    file the gateway is configured with; no extra command or credential is
    needed to push it. An older or invalid file is ignored (and logged).
    """
    path = state.config.directory
    if path is None:
        return
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return
    if mtime == state.directory_file_mtime:
        return
    state.directory_file_mtime = mtime
    try:
        data = path.read_bytes()
        current = state.current_version()
        trusted = state.install_directory(data)
        if trusted.version > current:
            state.store.save_directory(trusted.version, trusted.signed_bytes, _ms(state.clock()))
            state.store.record("directory_published", {"version": trusted.version})
            state.hub.notify(DIRECTORY_TOPIC)
            log.info("serving directory version %d from %s", trusted.version, path)
    except errors.IntelshareError as exc:
        log.warning("directory file %s not used: %s", path, exc.message)


def background_loop(state: GatewayState, stop: threading.Event) -> None:
    """Purge expired entries and pick up other replicas' publications."""
    next_purge = 0.0
    seen_dir = state.hub.generation(DIRECTORY_TOPIC)
    seen_treaty = state.hub.generation(TREATY_TOPIC)
    while not stop.is_set():
        if time.monotonic() >= next_purge:
            try:
                purged = state.store.purge_expired(_ms(state.clock()))
                state.metrics.expired.inc(purged)
                if purged:
                    log.info("purged %d expired inbox entries", purged)
                state.reload()
            except Exception:
                log.exception("background maintenance failed")
            next_purge = time.monotonic() + state.config.purge_interval_seconds
        _pick_up_directory_file(state)
        d = state.hub.generation(DIRECTORY_TOPIC)
        t = state.hub.generation(TREATY_TOPIC)
        if d != seen_dir or t != seen_treaty:
            seen_dir, seen_treaty = d, t
            try:
                state.reload()
            except Exception:
                log.exception("reload failed")
        # Polled rather than woken: the hub wakes its waiters on every topic,
        # and this thread would otherwise be woken by every accepted envelope.
        stop.wait(BACKGROUND_TICK)
