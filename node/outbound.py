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

from sqlalchemy import Row, insert, select, update

from intelshare import errors
from intelshare.envelope import (
    HeaderFields,
    envelope_sha256,
    lookup_recipient_keys,
    seal,
)
from intelshare.gateway_client import GatewayClient, receipt_from_bytes
from intelshare.keys import AgencyKeys
from intelshare.treaty import kind_name
from intelshare.v1 import envelope_pb2
from node import tables as t
from node.store import Store, Writer, dumps, now_ms
from node.trust import Trust

log = logging.getLogger(__name__)

PENDING = "pending"
ACCEPTED = "accepted"
FAILED = "failed"

#: How often an idle sender looks for rows queued by other processes.
IDLE_POLL_SECONDS = 1.0

#: Errors after which trying again later may succeed.
_TRANSIENT = (errors.Unavailable, errors.DirectoryInvalid, errors.Unauthenticated)


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
            rows = conn.execute(select(t.outbound.c.id).where(t.outbound.c.state == PENDING)).all()
        return len(rows)

    def send_due(self) -> float:
        """Submit what is due, in order; return how long to wait before the next pass."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(t.outbound)
                .where(t.outbound.c.state == PENDING)
                .order_by(t.outbound.c.id)
                .limit(100)
            ).all()
        if not rows:
            # Rows queued by other processes (Celery workers) have no way to
            # wake this thread; a cheap indexed look every second finds them.
            return IDLE_POLL_SECONDS
        now = now_ms()
        for row in rows:
            due: int = row.next_attempt_ms
            if due > now:
                # Head of line waits: later rows must not overtake it.
                return max(0.05, (due - now) / 1000)
            if not self._send_one(row):
                return 0.05 if self._stop.is_set() else self._backoff_seconds(row.attempts + 1)
        return 0.0 if len(rows) == 100 else IDLE_POLL_SECONDS

    def _backoff_seconds(self, attempts: int) -> float:
        return float(min(self.max_backoff, 0.25 * 2 ** min(attempts, 16)))

    def _send_one(self, r: Row[Any]) -> bool:
        """True when the row left the queue (accepted or failed for good)."""
        envelope_bytes: bytes = bytes(r.envelope)
        message_id: str = r.message_id
        row_id: int = r.id
        attempts: int = r.attempts
        if r.expire_ms <= now_ms():
            self._fail(r, "EXPIRED", "the message expired before the gateway accepted it")
            return True
        try:
            response = self.client.submit(
                envelope_pb2.Envelope.FromString(envelope_bytes), request_id=message_id
            )
        except errors.ClockSkew:
            try:
                fresh = self.sealer.reseal(envelope_bytes, bytes(r.payload))
            except errors.IntelshareError as exc:
                self._retry(row_id, attempts, f"{exc.reason}: {exc.message}")
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
        except errors.MessageIdReused:
            # An earlier sealing of this very message was accepted and its
            # answer lost; the gateway delivers that one. Same payload.
            log.warning("message %s: gateway holds an earlier sealing; counted as sent", message_id)
            self._accepted(row_id, message_id, r.kind, None)
            return True
        except errors.MessageExpired as exc:
            self._fail(r, exc.reason, exc.message)
            return True
        except _TRANSIENT as exc:
            self._retry(row_id, attempts, f"{exc.reason}: {exc.message}")
            return False
        except errors.IntelshareError as exc:
            if exc.grpc_code in ("INTERNAL", "UNKNOWN", "RESOURCE_EXHAUSTED", "ABORTED"):
                self._retry(row_id, attempts, f"{exc.reason}: {exc.message}")
                return False
            self._fail(r, exc.reason, exc.message)
            return True
        self._accepted(row_id, message_id, r.kind, response.receipt.SerializeToString())
        return True

    def _send_again(self, row_id: int) -> bool:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t.outbound).where(t.outbound.c.id == row_id)).first()
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

    def _accepted(self, row_id: int, message_id: str, kind: int, receipt: bytes | None) -> None:
        at = now_ms()
        with self.store.write() as w:
            done = w.conn.execute(
                update(t.outbound)
                .where(t.outbound.c.id == row_id, t.outbound.c.state == PENDING)
                .values(state=ACCEPTED, accepted_ms=at, receipt=receipt, last_error=None)
            )
            if not done.rowcount:
                return
            if kind == envelope_pb2.MESSAGE_KIND_ALERT:
                w.conn.execute(
                    update(t.deliveries)
                    .where(
                        t.deliveries.c.view_id == message_id, t.deliveries.c.accepted_ms.is_(None)
                    )
                    .values(accepted_ms=at)
                )
            log_index = None
            if receipt:
                log_index = int(receipt_from_bytes(receipt).log_index)
            w.audit("submitted", {"message_id": message_id, "gateway_log_index": log_index})

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
