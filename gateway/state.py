"""What the gateway's calls share: stores, trust material, caches, background work.

One :class:`GatewayState` per process, made by :func:`gateway.server.start`
and handed to the servicer (:mod:`gateway.service`, as ``self.s``) and to
the maintenance thread (:mod:`gateway.maintenance`). It holds:

* the store, the audit log, the federation's anchor and the wake-up hub;
* caches of the database: the directory in use and the treaties
  (:class:`gateway.admission.TreatyBook`), reloaded on a timer and when a
  wake-up says another replica published;
* who is calling (:meth:`GatewayState.peer_agency`): the CA-vouched agency
  name in the client certificate *and* the certificate's exact fingerprint
  in the directory, so a rotated or revoked certificate that is still
  correctly CA-signed maps to nobody;
* the inbox streams open (:class:`gateway.capacity.StreamLimiter`), a thread
  pool for database work beside the request threads, and delayed callbacks
  (:class:`gateway.later.Later`);
* each open stream's delivery record (:class:`Deliveries`): what the stream
  sent is recorded as delivered, and audited, in background transactions,
  so the stream neither waits for the database nor leaves a sent entry
  unrecorded. The records are kept here because the state keeps them: an
  acknowledgement takes its entries off them, and shutdown waits for them
  before the database engine goes.

The wake-up topics (:func:`inbox_topic`, :data:`DIRECTORY_TOPIC`,
:data:`TREATY_TOPIC`) and the millisecond timestamps the store keeps
(:func:`ms`) are here for every module of the servicer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

import grpc

from gateway.admission import TreatyBook
from gateway.capacity import StreamLimiter
from gateway.config import GatewayConfig
from gateway.later import Later
from gateway.metrics import GatewayMetrics, caller
from gateway.store import GatewayStore, InboxRow
from intelshare import errors
from intelshare.audit.log import AuditLog
from intelshare.directory import Anchor, TrustedDirectory, verify_directory
from intelshare.tls import peer_agency_id, peer_certificate_pem
from intelshare.treaty import SignedTreatyDoc
from intelshare.wakeup import WakeupHub

log = logging.getLogger(__name__)

#: Sent entries that start a delivery record (when none is running).
DELIVERY_BATCH = 128
#: How long a short batch of sent entries waits before it is recorded as
#: delivered: the recipient's acknowledgement (nodes send one every 100 ms)
#: usually comes first and records the delivery in its own transaction.
DELIVERY_DELAY_SECONDS = 0.5
#: Threads for database work beside the request threads.
BACKGROUND_WORKERS = 8
#: Client certificates remembered (then forgotten all at once).
MAX_KNOWN_PEERS = 4096
DIRECTORY_TOPIC = "gateway:directory"
TREATY_TOPIC = "gateway:treaties"


def inbox_topic(agency: str) -> str:
    return f"gateway:inbox:{agency}"


def ms(at: datetime) -> int:
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
        #: the open streams' delivery records, by recipient (see Deliveries)
        self._deliveries: dict[str, set[Deliveries]] = {}
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
        self, agency: str, deliveries: Deliveries | None = None
    ) -> list[Deliveries]:
        """Register ``deliveries`` (an opening stream) and list ``agency``'s open ones."""
        with self._streams_done:
            mine = self._deliveries.get(agency, set())
            if deliveries is not None:
                mine.add(deliveries)
                self._deliveries[agency] = mine
            return list(mine)

    def close_deliveries(self, agency: str, deliveries: Deliveries) -> None:
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


class Deliveries:
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
            self._agency, rows, [r.sequence for r in rows], ms(self._state.clock())
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
            now_ms = ms(s.clock())
            s.store.mark_delivered(self._agency, rows, now_ms)
        except Exception:
            log.exception("could not record %d deliveries to %s", len(rows), self._agency)
            return rows
        return []
