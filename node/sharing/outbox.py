"""The outbound queue: an envelope commits with the change that made it.

Sealing happens when the officer acts; sending happens later, from a queue.
An operation that shares something (issue, update, revoke, acknowledge,
report a hit, the receipt for a received alert) seals its envelopes and
inserts them into ``node_outbound`` in the same transaction as the change
itself (:func:`enqueue`). The officer's call succeeds as soon as that
transaction commits, whether or not the gateway is reachable: the record
and the promise to deliver it are durable together. The sender thread
(:mod:`node.sharing.outbound`) drains the queue.
"""

from __future__ import annotations

from sqlalchemy import insert

from intelshare.treaty import kind_name
from node.sharing.sealing import Sealed
from node.storage import tables as t
from node.storage.store import Writer, dumps

PENDING = "pending"
ACCEPTED = "accepted"
FAILED = "failed"


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
            "kind": kind_name(sealed.kind, sealed.record_kind),
            "recipients": list(sealed.recipients),
            "treaty": f"{sealed.treaty_id}@{sealed.treaty_version}",
            "reference_id": sealed.reference_id or None,
            "envelope_sha256": sealed.envelope_sha256.hex(),
        },
    )
