"""Outbound: sealing envelopes and getting them to the gateway.

Sealing happens when the officer acts; sending happens later, from a queue.
An operation that shares something (issue, update, revoke, acknowledge,
report a hit, the receipt for a received alert) seals its envelopes and
inserts them into ``node_outbound`` in the same transaction as the change
itself. The officer's call succeeds as soon as that transaction commits,
whether or not the gateway is reachable: the record and the promise to
deliver it are durable together.

The :class:`Sender` thread submits pending rows in queue order. The gateway
is idempotent on message id (same envelope again → the first receipt), so
a row whose submission succeeded but whose acceptance was not yet recorded
when the node crashed is simply submitted again. Failures are classified:

* *transient* (gateway unreachable, deadline, gateway without directory):
  the row stays pending with exponential backoff, and the rows behind it
  wait too, so partners receive a node's messages in the order it sent
  them (an update never overtakes its alert);
* *stale* (``CLOCK_SKEW``: the envelope waited longer than the gateway's
  accepted clock skew during an outage): the row is sealed again with the
  *same* message id and payload and a fresh time — safe, because the
  gateway's refusal proves it never accepted the old bytes;
* *expired* (``EXPIRED``) and *refused* (policy, malformed, ...): the row
  fails for good; for an alert the issuer sees the failure on the
  delivery, an ``alert.delivery_failed`` event and an audit entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, update

from intelshare import errors
from intelshare.envelope import (
    HeaderFields,
    envelope_sha256,
    lookup_recipient_keys,
    seal,
)
from intelshare.gateway_client import GatewayClient
from intelshare.keys import AgencyKeys
from intelshare.treaty import kind_name
from intelshare.v1 import envelope_pb2, gateway_service_pb2
from node import tables as t
from node.store import Store, Writer, dumps, now_ms
from node.trust import Trust

log = logging.getLogger(__name__)

PENDING = "pending"
ACCEPTED = "accepted"
FAILED = "failed"

#: How often an idle sender looks for rows queued by other processes.
IDLE_POLL_SECONDS = 1.0

#: How many envelopes the sender has at the gateway at once.
MAX_IN_FLIGHT = 16

#: Errors after which trying again later may succeed.
_TRANSIENT = (errors.Unavailable, errors.DirectoryInvalid, errors.Unauthenticated)


# Statements built once (the sender runs them for every message).
_QUEUE_COLUMNS = [c for c in t.outbound.c if c.name != "payload"]  # payload: reseal only
_SELECT_PENDING = (
    select(*_QUEUE_COLUMNS)
    .where(t.outbound.c.state == PENDING)
    .order_by(t.outbound.c.id)
    .limit(bindparam("limit"))
)
_SELECT_ROW = select(*_QUEUE_COLUMNS).where(t.outbound.c.id == bindparam("row_id"))
_COUNT_PENDING = select(func.count()).select_from(t.outbound).where(t.outbound.c.state == PENDING)
_MARK_ACCEPTED = (
    update(t.outbound)
    .where(
        t.outbound.c.id.in_(bindparam("row_ids", expanding=True)),
        t.outbound.c.state == PENDING,
    )
    .values(state=ACCEPTED, accepted_ms=bindparam("at"), last_error=None)
    .returning(t.outbound.c.id)
)
_SET_RECEIPT = (
    update(t.outbound)
    .where(t.outbound.c.id == bindparam("row_id"))
    .values(receipt=bindparam("receipt"))
)
_DELIVERIES_ACCEPTED = (
    update(t.deliveries)
    .where(
        t.deliveries.c.view_id.in_(bindparam("views", expanding=True)),
        t.deliveries.c.accepted_ms.is_(None),
    )
    .values(accepted_ms=bindparam("at"))
)


@dataclass(frozen=True)
class Sealed:
    """An envelope sealed by this node, with what it carries."""

    message_id: str
    kind: int
    treaty_id: str
    treaty_version: int
    recipients: tuple[str, ...]
    reference_id: str
    case_id: str
    payload: bytes
    envelope: bytes
    created_ms: int
    expire_ms: int

    @property
    def envelope_sha256(self) -> bytes:
        return envelope_sha256(self.envelope)

    @property
    def payload_sha256(self) -> bytes:
        return hashlib.sha256(self.payload).digest()


class Sealer:
    """Seals envelopes as this agency."""

    def __init__(self, agency_id: str, keys: AgencyKeys, trust: Trust, max_payload: int) -> None:
        self.agency_id = agency_id
        self.keys = keys
        self.trust = trust
        self.max_payload = max_payload

    def seal(
        self,
        *,
        kind: envelope_pb2.MessageKind.ValueType,
        recipients: Sequence[str],
        treaty_id: str,
        treaty_version: int,
        handling: envelope_pb2.HandlingCode.ValueType,
        tlp: envelope_pb2.Tlp.ValueType,
        categories: Sequence[str],
        expire_ms: int,
        payload: bytes,
        reference_id: str = "",
        case_id: str = "",
        message_id: str | None = None,
    ) -> Sealed:
        directory = self.trust.directory
        now = datetime.now(UTC)
        fields = HeaderFields(
            sender=self.agency_id,
            recipients=tuple(recipients),
            treaty_id=treaty_id,
            treaty_version=treaty_version,
            kind=kind,
            handling=handling,
            tlp=tlp,
            categories=tuple(categories),
            expire_time=datetime.fromtimestamp(expire_ms / 1000, UTC),
            reference_id=reference_id,
            case_id=case_id,
            message_id=message_id,
            create_time=now,
        )
        envelope = seal(
            fields,
            payload,
            signing_key=self.keys.signing,
            signing_key_id=self.keys.signing_key_id,
            recipient_keys=lookup_recipient_keys(directory, fields.recipients),
            max_payload_bytes=self.max_payload,
        )
        header = envelope_pb2.Header.FromString(envelope.header_bytes)
        return Sealed(
            message_id=header.message_id,
            kind=int(kind),
            treaty_id=treaty_id,
            treaty_version=treaty_version,
            recipients=fields.recipients,
            reference_id=reference_id,
            case_id=case_id,
            payload=payload,
            envelope=envelope.SerializeToString(),
            created_ms=int(now.timestamp() * 1000),
            expire_ms=expire_ms,
        )

    def reseal(self, envelope_bytes: bytes, payload: bytes) -> bytes:
        """The same message (id, header fields, payload) sealed again now."""
        old = envelope_pb2.Envelope.FromString(envelope_bytes)
        header = envelope_pb2.Header.FromString(old.header_bytes)
        fields = HeaderFields.from_header(header)
        fields = HeaderFields(
            sender=fields.sender,
            recipients=fields.recipients,
            treaty_id=fields.treaty_id,
            treaty_version=fields.treaty_version,
            kind=fields.kind,
            handling=fields.handling,
            tlp=fields.tlp,
            categories=fields.categories,
            expire_time=fields.expire_time,
            reference_id=fields.reference_id,
            case_id=fields.case_id,
            message_id=fields.message_id,
            create_time=datetime.now(UTC),
        )
        envelope = seal(
            fields,
            payload,
            signing_key=self.keys.signing,
            signing_key_id=self.keys.signing_key_id,
            recipient_keys=lookup_recipient_keys(self.trust.directory, fields.recipients),
            max_payload_bytes=self.max_payload,
        )
        return envelope.SerializeToString()


def enqueue(w: Writer, sealed: Sealed, *, alert_id: str | None = None) -> None:
    """Queue ``sealed`` for the gateway inside the caller's transaction."""
    w.conn.execute(
        insert(t.outbound).values(
            message_id=sealed.message_id,
            kind=sealed.kind,
            alert_id=alert_id,
            case_id=sealed.case_id or None,
            reference_id=sealed.reference_id or None,
            treaty_id=sealed.treaty_id,
            treaty_version=sealed.treaty_version,
            recipients=dumps(list(sealed.recipients)),
            payload=sealed.payload,
            payload_sha256=sealed.payload_sha256,
            envelope=sealed.envelope,
            envelope_sha256=sealed.envelope_sha256,
            created_ms=sealed.created_ms,
            expire_ms=sealed.expire_ms,
            state=PENDING,
            attempts=0,
            next_attempt_ms=0,
        )
    )
    w.audit(
        "sealed",
        {
            "message_id": sealed.message_id,
            "kind": kind_name(sealed.kind),
            "recipients": list(sealed.recipients),
            "treaty": f"{sealed.treaty_id}@{sealed.treaty_version}",
            "reference_id": sealed.reference_id or None,
            "envelope_sha256": sealed.envelope_sha256.hex(),
        },
    )


class Sender:
    """Submits queued envelopes to the gateway; see the module docstring."""

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
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="node-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.send_due()
            except Exception:
                log.exception("sender loop failed")
                delay = 1.0
            self._wake.wait(timeout=delay)
            self._wake.clear()

    def pending_count(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(_COUNT_PENDING).scalar_one())

    def send_due(self) -> float:
        """Submit what is due, in order; return how long to wait before the next pass.

        The due rows at the head of the queue go to the gateway together, at
        most :data:`MAX_IN_FLIGHT` at once and never two of one conversation
        (alert or case) together, so a message never overtakes an earlier one
        about the same thing; their acceptances are recorded in one
        transaction. A row that must wait (backoff after a transient failure)
        holds back every row behind it.
        """
        with self.store.engine.connect() as conn:
            rows = conn.execute(_SELECT_PENDING, {"limit": 2 * MAX_IN_FLIGHT}).all()
        if not rows:
            # Rows queued by other processes (Celery workers) have no way to
            # wake this thread; a cheap indexed look every second finds them.
            return IDLE_POLL_SECONDS
        now = now_ms()
        wave: list[Row[Any]] = []
        conversations: set[str] = set()
        wait: float | None = None
        for row in rows:
            due: int = row.next_attempt_ms
            if due > now:
                # Head of line waits: later rows must not overtake it.
                wait = max(0.05, (due - now) / 1000)
                break
            conversation = row.alert_id or row.case_id or row.message_id
            if conversation in conversations or len(wave) == MAX_IN_FLIGHT:
                wait = 0.0
                break
            conversations.add(conversation)
            wave.append(row)
        if not wave:
            return IDLE_POLL_SECONDS if wait is None else wait
        blocked = self._send_wave(wave)
        if blocked is not None:
            return 0.05 if self._stop.is_set() else self._backoff_seconds(blocked + 1)
        if wait is not None:
            return wait
        return 0.0 if len(rows) == 2 * MAX_IN_FLIGHT else IDLE_POLL_SECONDS

    def _backoff_seconds(self, attempts: int) -> float:
        return float(min(self.max_backoff, 0.25 * 2 ** min(attempts, 16)))

    def _send_wave(self, wave: list[Row[Any]]) -> int | None:
        """Submit ``wave`` concurrently and settle every row.

        Returns None when all of them left the queue, else the earlier attempt
        count of the first row that stays (for the backoff).
        """
        now = now_ms()
        live = [r for r in wave if r.expire_ms > now]
        results = self.client.submit_many(
            [(envelope_pb2.Envelope.FromString(bytes(r.envelope)), r.message_id) for r in live]
        )
        outcome = dict(zip([r.id for r in live], results, strict=True))
        accepted: list[tuple[Row[Any], gateway_service_pb2.SubmitEnvelopeResponse | None]] = []
        blocked: int | None = None
        for r in wave:
            result = outcome.get(r.id)
            if result is None:
                self._fail(r, "EXPIRED", "the message expired before the gateway accepted it")
            elif isinstance(result, errors.IntelshareError):
                if not self._settle_error(r, result, accepted) and blocked is None:
                    blocked = int(r.attempts)
            else:
                accepted.append((r, result))
        if accepted:
            self._accepted_many(accepted)
        return blocked

    def _send_one(self, r: Row[Any]) -> bool:
        """Submit one row on its own; True when it left the queue (accepted or failed)."""
        if r.expire_ms <= now_ms():
            self._fail(r, "EXPIRED", "the message expired before the gateway accepted it")
            return True
        try:
            response = self.client.submit(
                envelope_pb2.Envelope.FromString(bytes(r.envelope)), request_id=r.message_id
            )
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
        at = now_ms()
        by_id = {int(r.id): (r, response) for r, response in accepted}
        with self.store.write() as w:
            done = {
                int(row_id)
                for row_id in w.conn.execute(
                    _MARK_ACCEPTED, {"row_ids": list(by_id), "at": at}
                ).scalars()
            }
            receipts = [
                {"row_id": row_id, "receipt": response.receipt.SerializeToString()}
                for row_id in sorted(done)
                if (response := by_id[row_id][1]) is not None
            ]
            if receipts:
                w.conn.execute(_SET_RECEIPT, receipts)
            views = [
                str(by_id[row_id][0].message_id)
                for row_id in sorted(done)
                if by_id[row_id][0].kind == envelope_pb2.MESSAGE_KIND_ALERT
            ]
            if views:
                w.conn.execute(_DELIVERIES_ACCEPTED, {"views": views, "at": at})
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
