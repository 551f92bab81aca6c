"""Inbound: the inbox stream from the gateway, opened and stored exactly once.

One thread keeps a server stream to the gateway open (mTLS with the
agency's certificate), starting after the last sequence number this node
stored, and reconnects with exponential backoff when the gateway goes away.
For every entry, in order:

1. skip it if its message id is already stored (a redelivery after a crash
   between commit and acknowledgement): the cursor moves, nothing else;
2. verify and open it with the directory (``open_envelope``);
3. check the treaty again (``decide_header``: in force, parties, kind,
   category, handling); the kind's handler then checks what needs storage
   (the referenced record exists and was shared under this treaty) and the
   record's fields (``check_fields``: a field the treaty does not allow is a
   refusal, never a silent fix);
4. in **one transaction**: the verbatim envelope with the gateway's receipt
   (``node_received``), the record, the event row, the audit entry and the
   new cursor;
5. only **then** acknowledge the sequence number to the gateway.

A crash anywhere before 4 commits leaves nothing and the entry comes again;
a crash between 4 and 5 brings a redelivery that step 1 absorbs. The unique
message id makes "stored once" a database fact, not a hope.

A bad envelope (does not verify or open, treaty refuses it, malformed or
non-permitted record, reference to nothing we sent) is audited with the
precise reason and **acknowledged**: it will never become valid by being
retried, and leaving it at the head of the queue would block every later
message from every partner. The audit entry and the cursor move commit
together, so a refusal is never silently lost either. The exception is a
problem on *our* side: no usable directory (expired, not yet fetched) or an
unknown treaty the gateway could not give us. Then the entry is not
acknowledged; the stream is dropped and retried with backoff (fail closed,
lose nothing).

Handlers are registered per message kind (:meth:`Inbound.register`); the
alert handlers live in :mod:`node.alerts`, case handlers join them there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from intelshare import errors
from intelshare.envelope import Opened, open_envelope
from intelshare.gateway_client import GatewayClient
from intelshare.keys import AgencyKeys
from intelshare.treaty import Treaty, decide_header, kind_name, retention_until
from intelshare.v1 import envelope_pb2, gateway_service_pb2
from node import tables as t
from node.store import Store, Writer, is_unique_violation, now_ms
from node.trust import Trust

log = logging.getLogger(__name__)


class Refused(Exception):
    """A handler's verdict that an envelope must not be stored."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _OurSide(Exception):
    """A problem of this node (not of the envelope): do not acknowledge, retry later."""


@dataclass(frozen=True)
class Incoming:
    """An opened envelope that passed the generic checks, as handlers see it."""

    sequence: int
    header: envelope_pb2.Header
    payload: bytes
    envelope: bytes
    envelope_sha256: bytes
    gateway_receipt: bytes
    treaty: Treaty
    received_ms: int
    retain_until_ms: int

    @property
    def kind(self) -> str:
        return kind_name(self.header.kind)

    @property
    def create_ms(self) -> int:
        ts = self.header.create_time
        return ts.seconds * 1000 + ts.nanos // 1_000_000

    @property
    def expire_ms(self) -> int:
        ts = self.header.expire_time
        return ts.seconds * 1000 + ts.nanos // 1_000_000


@dataclass(frozen=True)
class Stored:
    """What a handler stored, for the ``node_received`` row."""

    alert_id: str | None = None
    case_id: str | None = None


Handler = Callable[[Writer, Incoming], Stored]


class Inbound:
    """The inbox stream; see the module docstring."""

    def __init__(
        self,
        *,
        agency_id: str,
        keys: AgencyKeys,
        store: Store,
        trust: Trust,
        client_factory: Callable[[], GatewayClient],
        max_backoff: float,
        max_payload_bytes: int,
    ) -> None:
        self.agency_id = agency_id
        self.keys = keys
        self.store = store
        self.trust = trust
        self.client_factory = client_factory
        self.max_backoff = max_backoff
        self.max_payload_bytes = max_payload_bytes
        self.handlers: dict[int, Handler] = {}
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: GatewayClient | None = None
        self._lock = threading.Lock()
        self._last_directory_refresh = 0.0

    def register(self, kind: int, handler: Handler) -> None:
        self.handlers[kind] = handler

    # --- thread ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="node-inbound", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            client = self._client
        if client is not None:
            client.close()  # cancels the open stream
        if self._thread is not None:
            self._thread.join(timeout=5)

    def cursor(self) -> int:
        with self.store.engine.connect() as conn:
            value = conn.execute(select(t.inbox.c.sequence).where(t.inbox.c.id == 1)).scalar_one()
        return int(value)

    def _run(self) -> None:
        backoff = 0.25
        while not self._stop.is_set():
            # A fresh channel per connection: grpcio's own reconnect backoff
            # grows to minutes, ours is bounded by inbox_backoff_max_seconds.
            client = self.client_factory()
            with self._lock:
                self._client = client
            try:
                self._stream(client)
                backoff = 0.25
            except errors.CursorExpired as exc:
                self._cursor_expired(exc)
            except _OurSide as exc:
                log.warning("inbox paused: %s", exc)
            except errors.IntelshareError as exc:
                if not self._stop.is_set():
                    log.info("inbox stream ended: %s %s", exc.reason, exc.message[:200])
            except Exception:
                if not self._stop.is_set():
                    log.exception("inbox stream failed")
            finally:
                self.connected.clear()
                client.close()
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, self.max_backoff)

    def _stream(self, client: GatewayClient) -> None:
        cursor = self.cursor()
        if cursor > 0:
            # Release what was stored before a crash that came before the ack.
            client.acknowledge(cursor)
        for item in client.stream_inbox(cursor):
            if self._stop.is_set():
                return
            self.connected.set()
            if item.WhichOneof("event") != "entry":
                continue
            self.handle_entry(item.entry, client)
            client.acknowledge(item.entry.sequence)

    def _cursor_expired(self, exc: errors.CursorExpired) -> None:
        """The gateway released entries this node never stored (database restored?)."""
        acked = int(exc.metadata.get("acknowledged_sequence", "0") or 0)
        cursor = self.cursor()
        log.error(
            "inbox cursor %d is behind the gateway's released position %d: entries in between "
            "are lost to this node; continuing from %d",
            cursor,
            acked,
            acked,
        )
        with self.store.write() as w:
            w.conn.execute(
                update(t.inbox).where(t.inbox.c.id == 1).values(sequence=acked, updated_ms=now_ms())
            )
            w.audit("cursor_expired", {"cursor": cursor, "gateway_acknowledged": acked})

    # --- one entry ---------------------------------------------------------------------

    def handle_entry(
        self, entry: gateway_service_pb2.InboxEntry, client: GatewayClient | None = None
    ) -> str:
        """Process one inbox entry durably; return "stored", "duplicate" or "refused".

        Raises :class:`_OurSide` (entry not acknowledged) when this node
        cannot judge the entry now.
        """
        seq = int(entry.sequence)
        data = entry.envelope.SerializeToString()
        receipt = entry.receipt.SerializeToString()
        peek = _peek_header(entry.envelope)
        if peek is not None and self._known(peek.message_id):
            self._advance_only(seq)
            return "duplicate"
        if not self.trust.has_fresh_directory():
            raise _OurSide("no fresh directory to verify envelopes with")
        now = datetime.now(UTC)
        try:
            opened = self._open(data, now, client)
        except (errors.EnvelopeInvalid, errors.PayloadTooLarge) as exc:
            detail = getattr(exc, "audit_detail", "") or exc.message
            self._refuse(seq, peek, exc.reason, detail)
            return "refused"
        header = opened.header
        if self._known(header.message_id):
            self._advance_only(seq)
            return "duplicate"
        doc = self.trust.treaty(header.treaty_id, header.treaty_version, client)
        if doc is None:
            if client is None:
                raise _OurSide(f"treaty {header.treaty_id} v{header.treaty_version} unknown")
            self._refuse(
                seq,
                header,
                "TREATY_NOT_IN_FORCE",
                f"treaty {header.treaty_id} v{header.treaty_version} is not known to the gateway",
            )
            return "refused"
        decision = decide_header(doc, header, self.trust.directory, now)
        if not decision:
            self._refuse(seq, header, decision.reason, decision.detail)
            return "refused"
        if self.agency_id not in header.recipients:
            self._refuse(seq, header, "NOT_A_PARTY", "this agency is not a recipient")
            return "refused"
        handler = self.handlers.get(header.kind)
        if handler is None:
            self._refuse(
                seq,
                header,
                "KIND_NOT_PERMITTED",
                f"this node does not handle {kind_name(header.kind) or header.kind}",
            )
            return "refused"
        received = now_ms()
        incoming = Incoming(
            sequence=seq,
            header=header,
            payload=opened.payload,
            envelope=data,
            envelope_sha256=opened.envelope_sha256,
            gateway_receipt=receipt,
            treaty=doc.treaty,
            received_ms=received,
            retain_until_ms=int(
                retention_until(
                    doc.treaty, datetime.fromtimestamp(received / 1000, UTC)
                ).timestamp()
                * 1000
            ),
        )
        try:
            with self.store.write() as w:
                stored = handler(w, incoming)
                w.conn.execute(
                    insert(t.received).values(
                        message_id=header.message_id,
                        kind=int(header.kind),
                        sender=header.sender,
                        treaty_id=header.treaty_id,
                        treaty_version=header.treaty_version,
                        reference_id=header.reference_id or None,
                        alert_id=stored.alert_id,
                        case_id=stored.case_id or header.case_id or None,
                        sequence=seq,
                        envelope=data,
                        envelope_sha256=opened.envelope_sha256,
                        gateway_receipt=receipt,
                        received_ms=received,
                        retain_until_ms=incoming.retain_until_ms,
                    )
                )
                self._set_cursor(w, seq)
                w.audit(
                    "received",
                    {
                        "message_id": header.message_id,
                        "sender": header.sender,
                        "kind": incoming.kind,
                        "treaty": f"{header.treaty_id}@{header.treaty_version}",
                        "reference_id": header.reference_id or None,
                        "envelope_sha256": opened.envelope_sha256.hex(),
                        "gateway_sequence": seq,
                    },
                )
        except Refused as exc:
            self._refuse(seq, header, exc.reason, exc.detail)
            return "refused"
        except IntegrityError as exc:
            if is_unique_violation(exc) and self._known(header.message_id):
                self._advance_only(seq)
                return "duplicate"
            raise
        log.info("stored %s %s from %s", incoming.kind, header.message_id, header.sender)
        return "stored"

    def _open(self, data: bytes, now: datetime, client: GatewayClient | None) -> Opened:
        try:
            return self._open_once(data, now)
        except errors.EnvelopeInvalid as exc:
            detail = exc.audit_detail
            if "DirectoryInvalid" in detail:
                raise _OurSide("the directory expired while opening") from None
            # A sender enrolled or rotated after our directory was fetched
            # looks like an unknown key: refresh once (rate-limited) and retry.
            if client is not None and time.monotonic() - self._last_directory_refresh > 30:
                self._last_directory_refresh = time.monotonic()
                try:
                    self.trust.refresh_directory(client)
                except errors.IntelshareError as refresh_exc:
                    log.warning("directory refresh failed: %s", refresh_exc.message)
                    raise exc from None
                return self._open_once(data, now)
            raise

    def _open_once(self, data: bytes, now: datetime) -> Opened:
        return open_envelope(
            data,
            self.trust.directory,
            recipient=self.agency_id,
            encryption_key={self.keys.encryption_key_id: self.keys.encryption},
            now=now,
            max_payload_bytes=self.max_payload_bytes,
        )

    def _known(self, message_id: str) -> bool:
        if not message_id:
            return False
        with self.store.engine.connect() as conn:
            return (
                conn.execute(
                    select(t.received.c.message_id).where(t.received.c.message_id == message_id)
                ).first()
                is not None
            )

    @staticmethod
    def _set_cursor(w: Writer, seq: int) -> None:
        w.conn.execute(
            update(t.inbox)
            .where(t.inbox.c.id == 1, t.inbox.c.sequence < seq)
            .values(sequence=seq, updated_ms=now_ms())
        )

    def _advance_only(self, seq: int) -> None:
        with self.store.write() as w:
            self._set_cursor(w, seq)

    def _refuse(
        self, seq: int, header: envelope_pb2.Header | None, reason: str, detail: str
    ) -> None:
        fields: dict[str, str | int | list[str] | None] = {
            "reason": reason,
            "detail": detail[:1000],
            "gateway_sequence": seq,
        }
        if header is not None:
            fields.update(
                message_id=header.message_id[:64],
                sender=header.sender[:128],
                kind=kind_name(header.kind) or str(int(header.kind)),
                treaty=f"{header.treaty_id[:128]}@{header.treaty_version}",
                reference_id=header.reference_id[:64] or None,
            )
        with self.store.write() as w:
            w.audit("refused", fields)
            self._set_cursor(w, seq)
        log.warning("refused inbox entry %d (%s): %s", seq, fields.get("message_id", "?"), reason)


def _peek_header(envelope: envelope_pb2.Envelope) -> envelope_pb2.Header | None:
    """The unverified header, for duplicate checks and audit context only."""
    try:
        return envelope_pb2.Header.FromString(envelope.header_bytes)
    except Exception:
        return None
