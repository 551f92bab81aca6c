"""Receipts for received alerts: owed in the alert's transaction, sealed in batches.

A recipient answers every alert it stores with a ``RECEIPT``, which the
issuer records as *delivered*. One envelope per alert would cost as much
again as the alert itself: a seal here, a submit, a queue entry, a
delivery and an acknowledgement at the gateway, an open and a transaction
at the issuer. Under load most of that is avoidable, because many alerts
of one issuer arrive close together and one receipt can name them all.

So receiving an alert only writes a row to ``node_receipts_due`` (in the
alert's own transaction: a stored alert always owes its receipt, whatever
happens next) and wakes :class:`Receipts`. That thread waits
:data:`RECEIPT_DELAY_SECONDS` for more to come, then, in one transaction,
deletes what is due (``DELETE ... RETURNING``: the delete is the claim, so
two claimers can never send one row twice) and queues one receipt per
issuer, treaty and marking, each naming up to :data:`MAX_RECEIPT_REFERENCES`
alerts with the digest of the envelope received (fewer when the payload limit
is small: a receipt is split to fit it). A crash before that
commit leaves the rows, and the next start sends them; "delivered" reaches
the issuer at most the delay later than it would have, which no officer
notices, while the federation does one receipt's work for many alerts.

Without a usable directory (expired, not fetched yet: a problem on our
side) nothing is sealed and every receipt stays owed until there is one. A
receipt that cannot be sealed for the issuer's sake (gone from the
directory, no longer active) is dropped with a warning: the alerts are
stored either way, and that issuer only misses "delivered".

The payload (:func:`receipt_payload`) lists the alerts; the header's
``reference_id`` is the first of them, so the gateway and the audit logs
see a receipt as before. :func:`receipt_references` reads both that form
and the earlier one-alert form, for the issuer's side (``node.kinds.alerts``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, func, select

from intelshare import errors
from intelshare.v1 import envelope_pb2
from node.sharing.incoming import Incoming, Refused, parse_payload
from node.sharing.sealing import Sealed, Sealer
from node.storage import tables as t
from node.storage.store import Store, Writer, canonical_bytes

log = logging.getLogger(__name__)

#: how long a receipt waits for company after the first alert it answers
RECEIPT_DELAY_SECONDS = 0.1
#: the most alerts one receipt names (and one claim takes)
MAX_RECEIPT_REFERENCES = 256
#: wait after a failed flush before trying again (the rows are still due)
RETRY_SECONDS = 1.0
#: bytes one alert takes in a receipt's payload, at most (ids of up to 64 characters)
_ENTRY_BYTES = 180

_r = t.receipts_due
_CLAIM = (
    delete(_r)
    .where(
        _r.c.message_id.in_(
            select(_r.c.message_id)
            .order_by(_r.c.received_ms, _r.c.sequence)
            .limit(MAX_RECEIPT_REFERENCES)
            .scalar_subquery()
        )
    )
    .returning(*_r.c)
)


def receipt_payload(received: Sequence[tuple[str, bytes]]) -> bytes:
    """A receipt's payload: each alert received, with the digest of its envelope.

    ``{"receipts": [{"reference_id": ..., "envelope_sha256": hex}, ...]}``;
    the first is the header's ``reference_id``.
    """
    return canonical_bytes(
        {
            "receipts": [
                {"reference_id": ref, "envelope_sha256": digest.hex()} for ref, digest in received
            ]
        }
    )


def receipt_references(payload: bytes, header_reference: str) -> list[str]:
    """The alerts a receipt names, the header's reference first; :class:`Refused` if malformed.

    A payload without ``receipts`` is the one-alert form
    (``{"envelope_sha256": hex}``) and names the header's reference alone.
    """
    body = parse_payload(payload)
    if "receipts" not in body:
        return [header_reference]
    items = body["receipts"]
    if not isinstance(items, list) or not 0 < len(items) <= MAX_RECEIPT_REFERENCES:
        raise Refused(
            "MALFORMED", f"receipts is not a list of 1 to {MAX_RECEIPT_REFERENCES} entries"
        )
    refs: list[str] = []
    for item in items:
        ref = item.get("reference_id") if isinstance(item, dict) else None
        if not isinstance(ref, str) or not ref:
            raise Refused("MALFORMED", "a receipt entry has no reference_id")
        refs.append(ref)
    if refs[0] != header_reference:
        raise Refused("MALFORMED", "the first receipt entry is not the header's reference_id")
    if len(set(refs)) != len(refs):
        raise Refused("MALFORMED", "a receipt names an alert twice")
    return refs


class Receipts:
    """The receipts owed by this node, and the thread that seals them; see the module docstring.

    ``queue(w, sealed, alert_id)`` puts sealed envelopes in the outbox in
    ``w``'s transaction (and wakes the sender after commit);
    ``expire_ms()`` is when a control message sealed now expires.
    """

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        queue: Callable[[Writer, Sequence[Sealed], str], None],
        expire_ms: Callable[[], int],
        *,
        delay: float = RECEIPT_DELAY_SECONDS,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.queue = queue
        self.expire_ms = expire_ms
        self.delay = delay
        self._cv = threading.Condition()
        self._due = True  # rows may be left from before a restart
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def owe(self, w: Writer, inc: Incoming) -> None:
        """Owe a receipt for the alert ``inc``, in the transaction that stores it."""
        h = inc.header
        w.insert_later(
            _r,
            {
                "message_id": h.message_id,
                "sender": h.sender,
                "treaty_id": h.treaty_id,
                "treaty_version": h.treaty_version,
                "handling": int(h.handling),
                "tlp": int(h.tlp),
                "envelope_sha256": inc.envelope_sha256,
                "received_ms": inc.received_ms,
                "sequence": inc.sequence,
            },
        )
        w.after_commit(self.wake)

    def wake(self) -> None:
        with self._cv:
            self._due = True
            self._cv.notify()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="node-receipts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; receipts still due stay in the database for the next start."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def due_count(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(_r)).scalar_one())

    def flush(self) -> int:
        """Seal and queue every receipt due now; how many envelopes were queued."""
        queued = 0
        while True:
            claimed, n = self._flush_once()
            queued += n
            if claimed < MAX_RECEIPT_REFERENCES:
                return queued

    def _flush_once(self) -> tuple[int, int]:
        with self.store.write() as w:
            # in the order they were stored (RETURNING keeps none)
            rows = sorted(w.conn.execute(_CLAIM).all(), key=lambda r: (r.received_ms, r.sequence))
            groups: dict[tuple[str, str, int, int, int], list[Any]] = {}
            for r in rows:
                key = (r.sender, r.treaty_id, r.treaty_version, r.handling, r.tlp)
                groups.setdefault(key, []).append(r)
            # A receipt must fit the payload limit the partner opens with (ours,
            # as far as we know): smaller limits make more, smaller receipts.
            per = max(
                1, min(MAX_RECEIPT_REFERENCES, (self.sealer.max_payload - 32) // _ENTRY_BYTES)
            )
            chunks = [
                (key, group[i : i + per])
                for key, group in groups.items()
                for i in range(0, len(group), per)
            ]
            queued = 0
            for (sender, treaty_id, version, handling, tlp), group in chunks:
                first = str(group[0].message_id)
                try:
                    sealed = self.sealer.seal(
                        kind=envelope_pb2.MESSAGE_KIND_RECEIPT,
                        recipients=[sender],
                        treaty_id=treaty_id,
                        treaty_version=version,
                        handling=envelope_pb2.HandlingCode.ValueType(handling),
                        tlp=envelope_pb2.Tlp.ValueType(tlp),
                        categories=[],
                        expire_ms=self.expire_ms(),
                        payload=receipt_payload(
                            [(str(r.message_id), bytes(r.envelope_sha256)) for r in group]
                        ),
                        reference_id=first,
                    )
                except errors.DirectoryInvalid:
                    raise  # our side: keep them all owed (rolled back) until it is usable
                except errors.IntelshareError as exc:
                    log.warning(
                        "no receipt for %d alert(s) from %s: %s", len(group), sender, exc.message
                    )
                    continue
                self.queue(w, [sealed], first)
                queued += 1
        return len(rows), queued

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                while not self._due and not self._stop.is_set():
                    self._cv.wait()
                self._due = False
            if self._stop.wait(self.delay):  # let the receipt gather company
                return
            try:
                self.flush()
            except errors.DirectoryInvalid as exc:
                log.warning("receipts kept owed, no usable directory: %s", exc.message)
                self.wake()
                self._stop.wait(RETRY_SECONDS)
            except Exception:
                log.exception("sealing receipts failed; trying again")
                self.wake()
                self._stop.wait(RETRY_SECONDS)
