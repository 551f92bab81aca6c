"""Inbound: the inbox stream from the gateway, opened and stored exactly once.

One thread keeps a server stream to the gateway open (mTLS with the
agency's certificate), starting after the last sequence number this node
stored, and reconnects with exponential backoff when the gateway goes away.
The stream is read ahead by the client: the entries that have arrived
while the previous ones were being stored are taken together (whatever is
there, up to :data:`MAX_BATCH`; a lone entry is never held back to wait
for company). For every entry, in order:

1. verify and open it with the directory (``open_envelope``);
2. check the treaty again (the checks of ``decide_header``: in force, parties,
   kind, category, handling; a treaty found in force is reused for a moment,
   see :meth:`Trust.in_force_at`); the kind's handler then checks what needs storage
   (the referenced record exists and was shared under this treaty) and the
   record's fields (``check_fields``: a field the treaty does not allow is a
   refusal, never a silent fix);
3. in **one transaction for the batch**: per entry the verbatim envelope
   with the gateway's receipt (``node_received``), the record, the event
   row and the audit entry; then the new cursor, once;
4. only **then** acknowledge the position to the gateway (from a helper
   thread, at most every :data:`ACK_INTERVAL_SECONDS`; see :class:`_Acker`).

A crash anywhere before 3 commits leaves nothing and the entries come
again; a crash between 3 and 4 is harmless, since the stream resumes after
the cursor in the database and the reconnect acknowledges that cursor
first. A message that was stored before under another sequence number
fails the unique message id of ``node_received``; the batch then takes the
careful path below, which finds it stored and only moves the cursor. The
unique message id makes "stored once" a database fact, not a hope.

When any handler in a batch fails (its refusal, a constraint, anything),
the batch transaction is rolled back whole and the entries are taken again
one at a time, each in its own transaction (a refusal in another), so a bad
envelope costs the good ones around it nothing but time.

A bad envelope (does not verify or open, treaty refuses it, malformed or
non-permitted record, reference to nothing we sent) is audited with the
precise reason and **acknowledged**: it will never become valid by being
retried, and leaving it at the head of the queue would block every later
message from every partner. The audit entry and the cursor move commit
together, so a refusal is never silently lost either. The exception is a
problem on *our* side: no usable directory (expired, not yet fetched) or an
unknown treaty the gateway could not give us. Then the entries before it
are committed, it is not; the stream is dropped and retried with backoff
(fail closed, lose nothing).

Handlers are registered per message kind (:meth:`Inbound.register`); the
Handlers are registered per message kind (:meth:`Inbound.register`); the
alert handlers live in :mod:`node.kinds.alerts`, case handlers join them there.
What a handler is given and answers is :mod:`node.sharing.incoming`; steps 1
and 2 (the verdict on one entry) are :mod:`node.sharing.inbound_checks`; this
module holds the stream, the batches and their transactions, and the
acknowledgements.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.asymmetric import x25519
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from intelshare import errors
from intelshare.audit import FieldValue
from intelshare.gateway_client import GatewayClient
from intelshare.keys import AgencyKeys
from node.sharing.inbound_checks import (
    Entry,
    InboundChecks,
    _envelope_bytes,
    _OurSide,
    _peek_header,
    _Refusal,
)
from node.sharing.incoming import Handler, Incoming, Refused, Stored
from node.sharing.trust import Trust
from node.storage import tables as t
from node.storage.store import Store, Writer, is_unique_violation, now_ms

log = logging.getLogger(__name__)


#: The most inbox entries stored in one transaction.
MAX_BATCH = 32

#: Acknowledgements to the gateway are at most this often: the first after a
#: quiet spell goes at once, later ones carry the newest stored position.
ACK_INTERVAL_SECONDS = 0.1

# Statements built once: per-entry statements cost no building or cache lookups.
_SELECT_KNOWN = select(t.received.c.message_id).where(
    t.received.c.message_id.in_(bindparam("ids", expanding=True))
)


class Inbound(InboundChecks):
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
        self._decryption: (
            tuple[x25519.X25519PrivateKey, dict[str, x25519.X25519PrivateKey]] | None
        ) = None

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
            except errors.CursorAhead as exc:
                self._cursor_ahead(exc)
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
        acker = _Acker(client, ACK_INTERVAL_SECONDS)
        try:
            for items in client.stream_inbox_batches(cursor, max_batch=MAX_BATCH):
                if self._stop.is_set():
                    return
                self.connected.set()
                entries = [i.entry for i in items if i.entry is not None]
                if not entries:
                    continue
                self.handle_batch(entries, client)
                acker.note(entries[-1].sequence)
        finally:
            acker.close()

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
        self._move_cursor(
            acked, "cursor_expired", {"cursor": cursor, "gateway_acknowledged": acked}
        )

    def _cursor_ahead(self, exc: errors.CursorAhead) -> None:
        """This node's cursor is beyond the gateway's queue: the queue went back.

        Only a restored (or replaced) gateway database does that, and then the
        sequence numbers after its acknowledged position may name messages
        this node never saw. So the node reads again from there: what it
        stored before is recognized by message id (acknowledged, not stored
        twice), the rest is stored. Nothing is skipped, nothing doubled.
        """
        acked = int(exc.metadata.get("acknowledged_sequence", "0") or 0)
        last = int(exc.metadata.get("last_sequence", "0") or 0)
        cursor = self.cursor()
        log.error(
            "inbox cursor %d is beyond the gateway's last sequence %d (its database was "
            "restored or replaced?): reading again after its acknowledged position %d",
            cursor,
            last,
            acked,
        )
        self._move_cursor(
            acked,
            "cursor_reset",
            {"cursor": cursor, "gateway_last": last, "gateway_acknowledged": acked},
        )

    def _move_cursor(self, to: int, event: str, fields: dict[str, FieldValue]) -> None:
        """Set the inbox cursor to ``to`` (either way), with an audit entry saying why."""
        with self.store.write() as w:
            w.conn.execute(
                update(t.inbox).where(t.inbox.c.id == 1).values(sequence=to, updated_ms=now_ms())
            )
            w.audit(event, fields)

    # --- entries ---------------------------------------------------------------------

    def handle_entry(self, entry: Entry, client: GatewayClient | None = None) -> str:
        """Process one inbox entry durably; return "stored", "duplicate" or "refused".

        Raises :class:`_OurSide` (entry not acknowledged) when this node
        cannot judge the entry now.
        """
        return self.handle_batch([entry], client)[0]

    def handle_batch(
        self, entries: Sequence[Entry], client: GatewayClient | None = None
    ) -> list[str]:
        """Process inbox entries in order, durably; the outcome of each, as :meth:`handle_entry`.

        All of them in one transaction, with one cursor move. When a handler
        fails (a refusal it found, a constraint, anything) that transaction
        is rolled back whole and the entries are processed again one by one,
        each in its own transaction, so a bad entry costs the good ones
        around it nothing but time. :class:`_OurSide` at an entry commits
        the entries before it, then is raised.
        """
        if not entries:
            return []
        try:
            return self._handle_together(entries, client)
        except _Isolate as isolate:
            log.info(
                "inbox batch of %d handled one by one: %s: %s",
                len(entries),
                type(isolate.__cause__).__name__,
                str(isolate.__cause__)[:200],
            )
        return [self._handle_alone(entry, client) for entry in entries]

    def _handle_together(self, entries: Sequence[Entry], client: GatewayClient | None) -> list[str]:
        paused: _OurSide | None = None
        judged: list[tuple[int, _Refusal | tuple[Incoming, Handler]]] = []
        for entry in entries:
            try:
                judged.append((int(entry.sequence), self._judge(entry, client)))
            except _OurSide as exc:
                paused = exc
                break
        if not judged and paused is not None:
            raise paused
        outcomes: list[str] = []
        logged: list[tuple[str, int, str, str, str]] = []
        try:
            outcomes = self._store_together(judged, logged)
        except IntegrityError as exc:
            # A row written at the end of the transaction (Writer.insert_later:
            # the node_received row, a received alert) broke a constraint,
            # e.g. a message stored before under another sequence number.
            raise _Isolate from exc
        for what, seq, message_id, kind, sender in logged:
            if what == "stored":
                log.info("stored %s %s from %s", kind, message_id, sender)
            else:
                log.warning("refused inbox entry %d (%s)", seq, message_id)
        if paused is not None:
            raise paused
        return outcomes

    def _store_together(
        self,
        judged: list[tuple[int, _Refusal | tuple[Incoming, Handler]]],
        logged: list[tuple[str, int, str, str, str]],
    ) -> list[str]:
        """The judged entries in one transaction (see :meth:`_handle_together`)."""
        outcomes: list[str] = []
        with self.store.write() as w:
            # A message stored before (under another sequence) fails the
            # unique message id of node_received at the end of the
            # transaction, which sends the batch down the one-by-one path and
            # its duplicate check; only a refusal
            # must look first, so that it is not audited for a stored message.
            known = self._known_among(
                w, [v.header.message_id for _s, v in judged if isinstance(v, _Refusal) and v.header]
            )
            for seq, verdict in judged:
                if isinstance(verdict, _Refusal):
                    if verdict.header is not None and verdict.header.message_id in known:
                        outcomes.append("duplicate")
                        continue
                    fields = verdict.fields(seq)
                    w.audit("refused", fields)
                    outcomes.append("refused")
                    logged.append(("refused", seq, str(fields.get("message_id", "?")), "", ""))
                    continue
                incoming, handler = verdict
                header = incoming.header
                try:
                    stored = handler(w, incoming)
                    self._record(w, incoming, stored)
                except Exception as exc:
                    raise _Isolate from exc
                known.add(header.message_id)
                outcomes.append("stored")
                logged.append(("stored", seq, header.message_id, incoming.kind, header.sender))
            self._set_cursor(w, judged[-1][0])
        return outcomes

    def _handle_alone(self, entry: Entry, client: GatewayClient | None) -> str:
        """One entry in its own transaction (a refusal found by the handler in another)."""
        seq = int(entry.sequence)
        peek = _peek_header(_envelope_bytes(entry))
        if peek is not None and self._known(peek.message_id):
            self._advance_only(seq)
            return "duplicate"
        verdict = self._judge(entry, client)
        if isinstance(verdict, _Refusal):
            self._refuse(seq, verdict)
            return "refused"
        incoming, handler = verdict
        header = incoming.header
        try:
            with self.store.write() as w:
                stored = handler(w, incoming)
                self._record(w, incoming, stored)
                self._set_cursor(w, seq)
        except Refused as exc:
            self._refuse(seq, _Refusal(header, exc.reason, exc.detail))
            return "refused"
        except IntegrityError as exc:
            if is_unique_violation(exc) and self._known(header.message_id):
                self._advance_only(seq)
                return "duplicate"
            raise
        log.info("stored %s %s from %s", incoming.kind, header.message_id, header.sender)
        return "stored"

    @staticmethod
    def _record(w: Writer, incoming: Incoming, stored: Stored) -> None:
        """The ``node_received`` row and the audit entry of a stored envelope.

        The row is written at the end of the transaction (nothing reads it
        back before): its unique message id then fails the transaction at its
        end, which the batch path takes as a reason to go one by one.
        """
        header = incoming.header
        w.insert_later(
            t.received,
            {
                "message_id": header.message_id,
                "kind": int(header.kind),
                "sender": header.sender,
                "treaty_id": header.treaty_id,
                "treaty_version": header.treaty_version,
                "reference_id": header.reference_id or None,
                "alert_id": stored.alert_id,
                "case_id": stored.case_id or header.case_id or None,
                "record_id": stored.record_id,
                "sequence": incoming.sequence,
                "envelope": incoming.envelope,
                "envelope_sha256": incoming.envelope_sha256,
                "gateway_receipt": incoming.gateway_receipt,
                "received_ms": incoming.received_ms,
                "retain_until_ms": incoming.retain_until_ms,
            },
        )
        w.audit(
            "received",
            {
                "message_id": header.message_id,
                "sender": header.sender,
                "kind": incoming.kind,
                "treaty": f"{header.treaty_id}@{header.treaty_version}",
                "reference_id": header.reference_id or None,
                "envelope_sha256": incoming.envelope_sha256.hex(),
                "gateway_sequence": incoming.sequence,
            },
        )

    def _known(self, message_id: str) -> bool:
        if not message_id:
            return False
        with self.store.engine.connect() as conn:
            return conn.execute(_SELECT_KNOWN, {"ids": [message_id]}).first() is not None

    @staticmethod
    def _known_among(w: Writer, message_ids: list[str]) -> set[str]:
        """Which of these message ids are stored already (one query)."""
        ids = [m for m in message_ids if m]
        if not ids:
            return set()
        return {str(m) for m in w.conn.execute(_SELECT_KNOWN, {"ids": ids}).scalars()}

    @staticmethod
    def _set_cursor(w: Writer, seq: int) -> None:
        # At the end of the transaction, with the events (one statement on PostgreSQL).
        w.advance_inbox(seq)

    def _advance_only(self, seq: int) -> None:
        with self.store.write() as w:
            self._set_cursor(w, seq)

    def _refuse(self, seq: int, refusal: _Refusal) -> None:
        fields = refusal.fields(seq)
        with self.store.write() as w:
            w.audit("refused", fields)
            self._set_cursor(w, seq)
        log.warning(
            "refused inbox entry %d (%s): %s", seq, fields.get("message_id", "?"), refusal.reason
        )


class _Acker:
    """Acknowledges stored positions to the gateway from its own thread.

    The inbox thread only notes what it committed; this one sends the newest
    position at once when idle, and then at most every ``interval`` seconds,
    so a busy inbox costs the gateway one release per interval instead of
    one per batch. An acknowledgement is a release of storage only: the
    stream resumes from the cursor in the database, and a reconnect
    acknowledges that cursor first, so a lost acknowledgement loses nothing.
    """

    def __init__(self, client: GatewayClient, interval: float) -> None:
        self._client = client
        self._interval = interval
        self._cond = threading.Condition()
        self._noted = 0
        self._sent = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-inbox-ack", daemon=True)
        self._thread.start()

    def note(self, sequence: int) -> None:
        with self._cond:
            if sequence > self._noted:
                self._noted = sequence
                self._cond.notify()

    def close(self) -> None:
        self._closed.set()
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed.is_set() and self._noted <= self._sent:
                    self._cond.wait()
                if self._closed.is_set():
                    return
                sequence = self._noted
            try:
                self._client.acknowledge(sequence)
                self._sent = sequence
            except errors.IntelshareError as exc:
                if not self._closed.is_set():
                    log.info("inbox acknowledgement deferred: %s %s", exc.reason, exc.message)
            except Exception:
                if not self._closed.is_set():
                    log.exception("inbox acknowledgement failed")
            if self._closed.wait(self._interval):
                return


class _Isolate(Exception):
    """A handler failed inside a batch: roll it back and take the entries one by one."""
