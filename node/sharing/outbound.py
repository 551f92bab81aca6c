"""Outbound: getting queued envelopes to the gateway.

Operations queue their sealed envelopes in ``node_outbound`` with the change
that made them (:mod:`node.sharing.outbox`); this module drains that queue.

The :class:`Sender` thread submits pending rows in queue order, several at
once (up to :data:`MAX_IN_FLIGHT`) but never two of one *conversation* —
the alert or case a message is about: a message goes only once the earlier
ones about the same thing were accepted, so an update never overtakes its
alert, while messages about different things need not wait for each other.
Answers are recorded as they come, many acceptances in one transaction.
The gateway is idempotent on message id (same envelope again → the first
receipt), so a row whose submission succeeded but whose acceptance was not
yet recorded when the node crashed is simply submitted again. Failures are
classified:

* *transient* (gateway unreachable, deadline, gateway without directory):
  the row stays pending with exponential backoff, and the rows behind it
  wait too (those already on their way, about other things, arrive), so
  partners receive a node's messages about one thing in the order it sent
  them;
* *stale* (``CLOCK_SKEW``: the envelope waited longer than the gateway's
  accepted clock skew during an outage): the row is sealed again with the
  *same* message id and payload and a fresh time — safe, because the
  gateway's refusal proves it never accepted the old bytes;
* *expired* (``EXPIRED``) and *refused* (policy, malformed, ...): the row
  fails for good; for an alert the issuer sees the failure on the
  delivery, an ``alert.delivery_failed`` event and an audit entry.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Row, bindparam, func, select, tuple_, update
from sqlalchemy.exc import OperationalError

from intelshare import errors
from intelshare.db import KeptReader, Statement
from intelshare.envelope import envelope_sha256
from intelshare.gateway_client import GatewayClient
from intelshare.v1 import envelope_pb2, gateway_service_pb2
from node.sharing.outbox import ACCEPTED, FAILED, PENDING
from node.sharing.sealing import Sealer
from node.storage import tables as t
from node.storage.store import Store, Writer, now_ms

log = logging.getLogger(__name__)

#: How often an idle sender looks for rows queued by other processes.
IDLE_POLL_SECONDS = 1.0

#: How many envelopes the sender has at the gateway at once.
MAX_IN_FLIGHT = 16

#: How many answered submissions may wait to be recorded before the sender
#: launches no more (recording is done in batches by its own thread).
MAX_UNRECORDED = 256

#: Rows read per look at the queue.
_LOOK_LIMIT = 2 * MAX_IN_FLIGHT

#: Errors after which trying again later may succeed.
_TRANSIENT = (errors.Unavailable, errors.DirectoryInvalid, errors.Unauthenticated)


# Statements built once (the sender runs them for every message). The hot
# ones have PostgreSQL text of their own, run on psycopg's cursor
# (intelshare.db.Statement): SQLAlchemy's statement and result handling
# cost more than these queries.
_QUEUE_COLUMNS = [c for c in t.outbound.c if c.name != "payload"]  # payload: reseal only
_SELECT_PENDING = Statement(
    select(*_QUEUE_COLUMNS)
    .where(
        t.outbound.c.state == PENDING,
        t.outbound.c.id.not_in(bindparam("busy", expanding=True)),
    )
    .order_by(t.outbound.c.id)
    .limit(bindparam("limit")),
    postgresql=f"SELECT {', '.join(c.name for c in _QUEUE_COLUMNS)} "  # noqa: S608
    f"FROM {t.outbound.name} WHERE state = '{PENDING}' AND NOT (id = ANY(%(busy)s)) "
    "ORDER BY id LIMIT %(limit)s",
    named=True,  # rows with the attributes of SQLAlchemy's
    prepare=True,  # on the launcher's kept connection (KeptReader)
)
_SELECT_ROW = select(*_QUEUE_COLUMNS).where(t.outbound.c.id == bindparam("row_id"))
_COUNT_PENDING = select(func.count()).select_from(t.outbound).where(t.outbound.c.state == PENDING)
_MARK_ACCEPTED = Statement(
    update(t.outbound)
    .where(
        t.outbound.c.id.in_(bindparam("row_ids", expanding=True)),
        t.outbound.c.state == PENDING,
    )
    .values(state=ACCEPTED, accepted_ms=bindparam("at"), last_error=None)
    .returning(t.outbound.c.id),
    postgresql=f"UPDATE {t.outbound.name} SET state = '{ACCEPTED}', "  # noqa: S608
    f"accepted_ms = %(at)s, last_error = NULL WHERE id = ANY(%(row_ids)s) AND state = '{PENDING}' "
    "RETURNING id",
)
_MARK_ONE_ACCEPTED = Statement(
    update(t.outbound)
    .where(t.outbound.c.id == bindparam("row_id"), t.outbound.c.state == PENDING)
    .values(
        state=ACCEPTED,
        accepted_ms=bindparam("at"),
        receipt=bindparam("receipt"),
        last_error=None,
    )
    .returning(t.outbound.c.id),
    postgresql=f"UPDATE {t.outbound.name} SET state = '{ACCEPTED}', "  # noqa: S608
    "accepted_ms = %(at)s, receipt = %(receipt)s, last_error = NULL "
    f"WHERE id = %(row_id)s AND state = '{PENDING}' RETURNING id",
)
_SET_RECEIPT = (
    update(t.outbound)
    .where(t.outbound.c.id == bindparam("row_id"))
    .values(receipt=bindparam("receipt"))
)
# The deliveries of accepted alerts: locked without waiting. The inbox thread
# locks deliveries rows too (receipts, acknowledgements, in its batches, in
# its own order); a row it holds makes this statement fail at once
# (LockNotAvailable) and the recorder try again shortly, instead of the two
# transactions possibly waiting for each other until PostgreSQL's deadlock
# detection kills one of them a second later.
_DELIVERIES_ACCEPTED = Statement(
    update(t.deliveries)
    .where(
        tuple_(t.deliveries.c.alert_id, t.deliveries.c.agency_id).in_(
            select(t.deliveries.c.alert_id, t.deliveries.c.agency_id)
            .where(
                t.deliveries.c.view_id.in_(bindparam("views", expanding=True)),
                t.deliveries.c.accepted_ms.is_(None),
            )
            .with_for_update(nowait=True)
        )
    )
    .values(accepted_ms=bindparam("at")),
    postgresql=f"UPDATE {t.deliveries.name} SET accepted_ms = %(at)s "  # noqa: S608
    "WHERE (alert_id, agency_id) IN ("
    f"SELECT alert_id, agency_id FROM {t.deliveries.name} "
    "WHERE view_id = ANY(%(views)s) AND accepted_ms IS NULL FOR UPDATE NOWAIT)",
)

#: Attempts at recording acceptances while deliveries rows are busy.
_LOCK_ATTEMPTS = 8


def _lock_not_available(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "55P03"


_Result = gateway_service_pb2.SubmitEnvelopeResponse | errors.IntelshareError


class Sender:
    """Submits queued envelopes to the gateway; see the module docstring.

    Two threads. The *launcher* keeps up to :data:`MAX_IN_FLIGHT`
    submissions going at once (asynchronous calls started from that
    thread), never two of one conversation (the alert or case a message is
    about) and never past a row that waits for its backoff, so a message
    never overtakes an earlier one about the same thing; woken by
    :meth:`wake` (a commit that queued something), it launches at once,
    whatever is still on its way or being recorded. The *recorder* writes
    the answers down as they come, all that have come in one transaction,
    and tells the launcher when that frees a conversation or a slot.
    """

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        client: GatewayClient,
        *,
        max_backoff: float,
        on_failed: Callable[[Writer, str, int, str | None, list[str], str], None] | None = None,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.client = client
        self.max_backoff = max_backoff
        self.on_failed = on_failed
        self._lock = threading.Lock()
        self._launch_cv = threading.Condition(self._lock)  # the launcher waits on it
        self._record_cv = threading.Condition(self._lock)  # the recorder waits on it
        # Under the lock:
        self._look = True  # something may have been queued since the last look
        self._done: list[tuple[Row[Any], _Result]] = []  # answers not yet recorded
        self._in_flight: dict[int, str] = {}  # submitted, not yet recorded: id -> conversation
        self._unanswered = 0  # submitted, no answer yet
        self._recorded = 0  # how many times answers were recorded (a look's snapshot is stale)
        self._held = False  # the last look left due rows for later (slot, conversation)
        # After a transient failure one submission at a time, until one is accepted
        # (a gateway coming back is not met by a burst of retries).
        self._probing = False
        self._reader = KeptReader(store.engine)  # the launcher's own connection for looks
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def wake(self) -> None:
        with self._lock:
            self._look = True
            self._launch_cv.notify()

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._run_launcher, name="node-sender", daemon=True),
            threading.Thread(target=self._run_recorder, name="node-sender-record", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._launch_cv.notify_all()
            self._record_cv.notify_all()
        # Answers not recorded by then are lost: those rows stay pending and
        # are submitted again (the gateway is idempotent).
        for thread in self._threads:
            thread.join(timeout=5)

    def pending_count(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(_COUNT_PENDING).scalar_one())

    # --- the two threads ----------------------------------------------------------------

    def _run_launcher(self) -> None:
        next_look = 0.0
        try:
            while not self._stop.is_set():
                with self._lock:
                    while (
                        not self._stop.is_set() and not self._look and time.monotonic() < next_look
                    ):
                        self._launch_cv.wait(next_look - time.monotonic())
                    if self._stop.is_set():
                        return
                    self._look = False
                try:
                    next_look = time.monotonic() + self._launch_due()
                except Exception:
                    log.exception("sender loop failed")
                    next_look = time.monotonic() + 1.0
        finally:
            self._close_reader()

    def _run_recorder(self) -> None:
        while True:
            with self._lock:
                while not self._stop.is_set() and not self._done:
                    self._record_cv.wait()
                if self._stop.is_set():
                    return
                done, self._done = self._done, []
            try:
                self._settle(done)
            except Exception:
                log.exception("sender could not record answers")
                time.sleep(0.5)

    # --- launching ---------------------------------------------------------------------

    def send_due(self) -> float:
        """One pass, waiting for the answers: submit what is due, record the outcomes.

        Returns how long to wait before the next pass. (The threads do the
        same without waiting; this is for callers driving the queue by hand,
        with the threads not started.)
        """
        try:
            delay = self._launch_due()
            while True:
                with self._lock:
                    if not self._in_flight:
                        break
                    while not self._done:
                        self._record_cv.wait()
                    done, self._done = self._done, []
                retry_in = self._settle(done)
                if retry_in is not None:
                    delay = min(delay, retry_in)
        finally:
            self._close_reader()
        return 0.0 if self._held else delay

    def _backoff_seconds(self, attempts: int) -> float:
        return float(min(self.max_backoff, 0.25 * 2 ** min(attempts, 16)))

    def _launch_due(self) -> float:
        """Submit the due rows at the head of the queue; how long until the next look."""
        with self._lock:
            self._held = False
            in_flight = dict(self._in_flight)
            recorded = self._recorded
        rows = self._pending(list(in_flight))
        busy = set(in_flight.values())
        now = now_ms()
        stale = False
        for row in rows:
            due: int = row.next_attempt_ms
            if due > now:
                # Head of line waits: later rows must not overtake it.
                return max(0.05, (due - now) / 1000)
            conversation = str(row.alert_id or row.case_id or row.message_id)
            with self._lock:
                full = self._unanswered >= (1 if self._probing else MAX_IN_FLIGHT) or (
                    len(self._in_flight) >= MAX_UNRECORDED
                )
                if full or conversation in busy:
                    # Looked at again when an answer is recorded (at once if
                    # one was recorded since this look began). Another
                    # conversation may go ahead of one that is busy.
                    self._held = True
                    stale = stale or self._recorded != recorded
                    if full:
                        return 0.0 if stale else IDLE_POLL_SECONDS
                    continue
            if row.expire_ms <= now:
                self._fail(row, "EXPIRED", "the message expired before the gateway accepted it")
                continue
            busy.add(conversation)
            with self._lock:
                self._in_flight[int(row.id)] = conversation
                self._unanswered += 1
            self._submit(row)
        if len(rows) == _LOOK_LIMIT:
            with self._lock:
                self._held = True
                stale = stale or self._recorded != recorded
        # Rows queued by other processes (Celery workers) have no way to
        # wake this thread; a cheap indexed look every second finds them.
        return 0.0 if stale else IDLE_POLL_SECONDS

    def _pending(self, exclude: list[int]) -> list[Row[Any]]:
        """The head of the queue, without the rows on their way or being recorded.

        Read on a connection this thread keeps (autocommit: no transaction
        is left open between looks), so a look costs one round trip, not a
        pool checkout with its ping and reset as well.
        """
        return self._reader.execute(_SELECT_PENDING, {"busy": exclude, "limit": _LOOK_LIMIT}).rows

    def _close_reader(self) -> None:
        self._reader.close()

    def _submit(self, row: Row[Any]) -> None:
        """Start one submission; its answer goes to :meth:`_answered` (on a gRPC thread)."""
        try:
            self.client.submit_async(
                bytes(row.envelope),
                row.message_id,
                lambda result: self._answered(row, result),
            )
        except Exception as exc:  # e.g. the channel was closed under us
            log.warning("gateway submit of %s not started: %r", row.message_id, exc)
            self._answered(
                row, errors.GatewayUnreachable(f"submit not started: {type(exc).__name__}")
            )

    def _answered(self, row: Row[Any], result: _Result) -> None:
        with self._lock:
            self._unanswered -= 1
            self._done.append((row, result))
            self._record_cv.notify()

    # --- recording ---------------------------------------------------------------------

    def _settle(self, done: list[tuple[Row[Any], _Result]]) -> float | None:
        """Record answers (acceptances in one transaction); the earliest retry delay, if any."""
        accepted: list[tuple[Row[Any], gateway_service_pb2.SubmitEnvelopeResponse | None]] = []
        retry_in: float | None = None
        probing = self._probing
        try:
            for row, result in sorted(done, key=lambda d: int(d[0].id)):
                if isinstance(result, errors.IntelshareError):
                    if not self._settle_error(row, result, accepted):
                        delay = self._backoff_seconds(int(row.attempts) + 1)
                        retry_in = delay if retry_in is None else min(retry_in, delay)
                        probing = True
                else:
                    accepted.append((row, result))
                    probing = False
            if accepted:
                self._accepted_many(accepted)
        finally:
            # Whatever was not recorded stays pending and is looked at again.
            with self._lock:
                for row, _result in done:
                    self._in_flight.pop(int(row.id), None)
                self._recorded += 1
                self._probing = probing
                if self._held or retry_in is not None:
                    # Held-back rows may go now; a new backoff changes the next look.
                    self._look = True
                    self._launch_cv.notify()
        return retry_in

    def _send_one(self, r: Row[Any]) -> bool:
        """Submit one row on its own; True when it left the queue (accepted or failed)."""
        if r.expire_ms <= now_ms():
            self._fail(r, "EXPIRED", "the message expired before the gateway accepted it")
            return True
        try:
            response = self.client.submit(bytes(r.envelope), request_id=r.message_id)
        except errors.IntelshareError as exc:
            accepted: list[tuple[Row[Any], gateway_service_pb2.SubmitEnvelopeResponse | None]] = []
            left = self._settle_error(r, exc, accepted)
            if accepted:
                self._accepted_many(accepted)
            return left
        self._accepted_many([(r, response)])
        return True

    def _settle_error(
        self,
        r: Row[Any],
        exc: errors.IntelshareError,
        accepted: list[tuple[Row[Any], gateway_service_pb2.SubmitEnvelopeResponse | None]],
    ) -> bool:
        """Act on a failed submit; True when the row left the queue.

        A row the gateway holds already is appended to ``accepted``.
        """
        message_id: str = r.message_id
        row_id: int = r.id
        attempts: int = r.attempts
        if isinstance(exc, errors.ClockSkew):
            with self.store.engine.connect() as conn:
                payload = conn.execute(
                    select(t.outbound.c.payload).where(t.outbound.c.id == row_id)
                ).scalar_one()
            try:
                fresh = self.sealer.reseal(bytes(r.envelope), bytes(payload))
            except errors.IntelshareError as reseal_exc:
                self._retry(row_id, attempts, f"{reseal_exc.reason}: {reseal_exc.message}")
                return False
            with self.store.write() as w:
                w.conn.execute(
                    update(t.outbound)
                    .where(t.outbound.c.id == row_id)
                    .values(envelope=fresh, envelope_sha256=envelope_sha256(fresh))
                )
                w.audit(
                    "resealed",
                    {"message_id": message_id, "envelope_sha256": envelope_sha256(fresh).hex()},
                )
            log.info("message %s resealed after waiting past the clock skew", message_id)
            return self._send_again(row_id)
        if isinstance(exc, errors.MessageIdReused):
            # An earlier sealing of this very message was accepted and its
            # answer lost; the gateway delivers that one. Same payload.
            log.warning("message %s: gateway holds an earlier sealing; counted as sent", message_id)
            accepted.append((r, None))
            return True
        if isinstance(exc, errors.MessageExpired):
            self._fail(r, exc.reason, exc.message)
            return True
        if isinstance(exc, _TRANSIENT) or exc.grpc_code in (
            "INTERNAL",
            "UNKNOWN",
            "RESOURCE_EXHAUSTED",
            "ABORTED",
        ):
            self._retry(row_id, attempts, f"{exc.reason}: {exc.message}")
            return False
        self._fail(r, exc.reason, exc.message)
        return True

    def _send_again(self, row_id: int) -> bool:
        with self.store.engine.connect() as conn:
            row = conn.execute(_SELECT_ROW, {"row_id": row_id}).first()
        if row is None or row.state != PENDING:
            return True
        return self._send_one(row)

    def _retry(self, row_id: int, attempts: int, error: str) -> None:
        delay_ms = int(self._backoff_seconds(attempts + 1) * 1000)
        with self.store.engine.begin() as conn:
            conn.execute(
                update(t.outbound)
                .where(t.outbound.c.id == row_id)
                .values(
                    attempts=attempts + 1,
                    next_attempt_ms=now_ms() + delay_ms,
                    last_error=error[:1000],
                )
            )
        if self.store.metrics is not None:
            self.store.metrics.send_retries.inc()
        log.info("gateway submit deferred (%s); next attempt in %d ms", error[:200], delay_ms)

    def _accepted_many(
        self, accepted: list[tuple[Row[Any], gateway_service_pb2.SubmitEnvelopeResponse | None]]
    ) -> None:
        """Record acceptances (a response, or None for an earlier sealing) in one transaction."""
        for attempt in range(_LOCK_ATTEMPTS):
            try:
                self._accepted_once(accepted)
                return
            except OperationalError as exc:
                if not _lock_not_available(exc) or attempt == _LOCK_ATTEMPTS - 1:
                    raise
            time.sleep(0.005 * 2**attempt)

    def _accepted_once(
        self, accepted: list[tuple[Row[Any], gateway_service_pb2.SubmitEnvelopeResponse | None]]
    ) -> None:
        at = now_ms()
        by_id = {int(r.id): (r, response) for r, response in accepted}
        receipts = {
            row_id: None if response is None else response.receipt.SerializeToString()
            for row_id, (_r, response) in by_id.items()
        }
        with self.store.write() as w:
            if len(by_id) == 1:
                ((row_id, receipt),) = receipts.items()
                marked = _MARK_ONE_ACCEPTED.execute(
                    w.conn, {"row_id": row_id, "at": at, "receipt": receipt}
                )
                done = {int(row_id) for row_id in marked.scalars()}
            else:
                marked = _MARK_ACCEPTED.execute(w.conn, {"row_ids": sorted(by_id), "at": at})
                done = {int(row_id) for row_id in marked.scalars()}
                with_receipt = [
                    {"row_id": row_id, "receipt": receipts[row_id]}
                    for row_id in sorted(done)
                    if receipts[row_id] is not None
                ]
                if with_receipt:
                    w.conn.execute(_SET_RECEIPT, with_receipt)
            views = [
                str(by_id[row_id][0].message_id)
                for row_id in sorted(done)
                if by_id[row_id][0].kind == envelope_pb2.MESSAGE_KIND_ALERT
            ]
            if views:
                _DELIVERIES_ACCEPTED.execute(w.conn, {"views": views, "at": at})
            for row_id in sorted(done):
                r, response = by_id[row_id]
                log_index = None if response is None else int(response.receipt.log_index)
                w.audit("submitted", {"message_id": r.message_id, "gateway_log_index": log_index})

    def _fail(self, r: Row[Any], reason: str, detail: str) -> None:
        recipients = json.loads(r.recipients)
        with self.store.write() as w:
            done = w.conn.execute(
                update(t.outbound)
                .where(t.outbound.c.id == r.id, t.outbound.c.state == PENDING)
                .values(state=FAILED, last_error=f"{reason}: {detail}"[:1000])
            )
            if not done.rowcount:
                return
            w.audit(
                "send_failed",
                {
                    "message_id": r.message_id,
                    "reason": reason,
                    "detail": detail[:500],
                    "recipients": recipients,
                },
            )
            if self.on_failed is not None:
                self.on_failed(
                    w,
                    r.message_id,
                    int(r.kind),
                    r.alert_id,
                    recipients,
                    f"{reason}: {detail}",
                )
        log.warning("message %s refused for good: %s %s", r.message_id, reason, detail[:200])
