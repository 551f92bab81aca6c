"""The outbox relay: ``node_events`` rows not yet confirmed become ``fan_out`` tasks.

A row is *claimed* before it is sent (``relay_ms`` set in one conditional
UPDATE), so several node processes relaying the same database send each new
row once; the task itself is idempotent, so the rare second send (a claim
whose process died before sending, found by the sweep) is harmless. A send
that fails (Redis down) gives the claim back at once, so relaying resumes as
soon as Redis answers again.

The relay thread is woken by this process's own commits of events
(:meth:`Store.wait_commit`) and then claims at once, in one statement: a
commit is work. Wake-ups from other processes do not reach it, because most
of them are confirmations of events already handed over (the ``fan_out``
task wakes every feed); events other processes committed (periodic jobs in a
worker, another node process) are found by the look it takes every
``notify_relay_seconds`` of quiet, and by any claim before that.

**Events with no one to notify skip the broker.** A ``fan_out`` task
confirms its events, publishes a wake-up and records webhook deliveries;
the commit that wrote an event already woke this process's feeds and, through
Redis, every other process's (and feeds read the database again at every
heartbeat, so a wake-up lost with Redis only delays them). So while the node
has no enabled webhook, the claim itself confirms what it claims
(``notified_ms`` in the same statement) and no task is sent: nothing is left
for a worker to do, and the broker, a worker and two more statements per
event are spared. The check is part of the claim statement, so a webhook
whose registration committed before a claim gets every event that claim
takes (one registered in the same few milliseconds may miss the events
claimed meanwhile, as it may miss a ``fan_out`` running meanwhile); with one
enabled, every event goes through ``fan_out`` exactly as before.

The events claimed together go to the broker as **one** ``fan_out`` task
(its id is the event id for a single event): each message costs the relay,
the broker and a worker far more than the event rows themselves. To make
such batches, a woken relay waits :data:`COALESCE_SECONDS` before it claims
(:data:`BUSY_COALESCE_SECONDS` while events keep coming), which also leaves
the first moments after a commit to the feed streams and the sender, the
threads that officers and partners wait for.

The **sweep** (:func:`sweep_once`) is the safety net: an event not confirmed
(``notified_ms``) within ``notify_deadline_seconds`` of its last hand-over
is sent again, and so is a webhook delivery overdue by as much. It runs in
the relay thread and, with ``intelshare worker --beat``, as a beat task.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, bindparam, case, exists, func, or_, select, update

from intelshare.db import Statement, write_turn
from node.notify.celery_app import QUEUE, TASK_DELIVER, TASK_FAN_OUT
from node.notify.webhooks import PENDING
from node.storage import tables as t
from node.storage.store import Store, now_ms

log = logging.getLogger(__name__)

BATCH = 500
#: after a commit wakes the relay, how long it lets further commits join the claim
COALESCE_SECONDS = 0.005
#: the same while events keep coming (the last claim less than BUSY_SECONDS ago):
#: under load, fewer and larger tasks matter more than a few ms for webhooks
BUSY_COALESCE_SECONDS = 0.025
BUSY_SECONDS = 0.1


_ev = t.events
_FRESH = (_ev.c.notified_ms.is_(None), _ev.c.relay_ms.is_(None))
_LOOK = select(_ev.c.seq).where(*_FRESH).limit(1)
_NO_TARGETS = ~exists().where(t.webhooks.c.disabled.is_(False))
# Every commit with events claims: psycopg's own execute on PostgreSQL.
_CLAIM = Statement(
    update(_ev)
    .where(
        _ev.c.seq.in_(
            select(_ev.c.seq)
            .where(*_FRESH)
            .order_by(_ev.c.seq)
            .limit(bindparam("limit"))
            .scalar_subquery()
        ),
        *_FRESH,
    )
    .values(
        relay_ms=bindparam("now"),
        # confirmed by the claim when no webhook could want it (module docstring)
        notified_ms=case((_NO_TARGETS, bindparam("now")), else_=None),
    )
    .returning(_ev.c.seq, _ev.c.event_id, _ev.c.notified_ms, _ev.c.created_ms),
    postgresql=f"UPDATE {_ev.name} SET relay_ms = %(now)s, "  # noqa: S608
    f"notified_ms = CASE WHEN NOT EXISTS (SELECT 1 FROM {t.webhooks.name} WHERE NOT disabled) "
    f"THEN %(now)s END WHERE seq IN (SELECT seq FROM {_ev.name} "
    "WHERE notified_ms IS NULL AND relay_ms IS NULL ORDER BY seq LIMIT %(limit)s) "
    "AND notified_ms IS NULL AND relay_ms IS NULL "
    "RETURNING seq, event_id, notified_ms, created_ms",
)
_UNCLAIM = (
    update(_ev)
    .where(_ev.c.seq.in_(bindparam("seqs", expanding=True)), _ev.c.notified_ms.is_(None))
    .values(relay_ms=None)
)


@dataclass(frozen=True)
class Claimed:
    """What one claim took: events for ``fan_out``, and those it confirmed itself.

    ``confirmed_created_ms`` are the commit times of the events it
    confirmed, at ``at_ms``: their notification latency, for the metric
    the workers cannot observe (no worker saw them).
    """

    to_send: list[tuple[int, str]]
    confirmed_created_ms: tuple[int, ...] = ()
    at_ms: int = 0

    @property
    def confirmed(self) -> int:
        return len(self.confirmed_created_ms)


def claim_new(engine: Engine, limit: int = BATCH, *, look: bool = True) -> Claimed:
    """Claim events never handed to Celery: (seq, event_id) to send, in order.

    The claim is one statement, which also confirms the events when no
    webhook is enabled (see the module docstring); those are counted, not
    returned. ``look=True`` reads first and claims only when there is
    something (on SQLite any UPDATE takes the database's write lock): for
    the relay's periodic look, not for a wake-up by a commit.
    """
    if look:
        with engine.connect() as conn:
            if conn.execute(_LOOK).first() is None:
                return Claimed([])
    now = now_ms()
    # in line with the node's other writers on SQLite (intelshare.db.WriterQueue)
    with write_turn(engine), engine.begin() as conn:
        rows = _CLAIM.execute(conn, {"limit": limit, "now": now}).rows
    to_send = sorted(
        (int(seq), event_id) for seq, event_id, notified, _ in rows if notified is None
    )
    created = tuple(int(c) for _, _, notified, c in rows if notified is not None)
    return Claimed(to_send, confirmed_created_ms=created, at_ms=now)


def unclaim(engine: Engine, seqs: list[int]) -> None:
    if not seqs:
        return
    with write_turn(engine), engine.begin() as conn:
        conn.execute(_UNCLAIM, {"seqs": seqs})


#: events per fan_out task (a task confirms its events in one transaction)
TASK_BATCH = 100


def send_fan_out(app: Any, claimed: list[tuple[int, str]]) -> int:
    """Send the claimed events as fan_out tasks over one producer; returns how many were sent.

    A single event is sent as before (``args=[seq]``, task id = event id);
    several go as one task per :data:`TASK_BATCH` (``args=[[seq, ...]]``).
    """
    sent = 0
    with app.producer_or_acquire() as producer:
        for start in range(0, len(claimed), TASK_BATCH):
            chunk = claimed[start : start + TASK_BATCH]
            if len(chunk) == 1:
                seq, event_id = chunk[0]
                app.send_task(TASK_FAN_OUT, args=[seq], task_id=event_id, producer=producer)
            else:
                app.send_task(
                    TASK_FAN_OUT,
                    args=[[seq for seq, _ in chunk]],
                    task_id=f"{chunk[0][1]}+{len(chunk) - 1}",
                    producer=producer,
                )
            sent += len(chunk)
    return sent


def queue_depth(app: Any) -> int:
    """Messages waiting at the broker in the notification queue (not those being run)."""
    with app.connection_for_write() as conn:
        return int(conn.default_channel._size(QUEUE))


def sweep_once(engine: Engine, app: Any, deadline_ms: int, limit: int = BATCH) -> tuple[int, int]:
    """Send again what was not confirmed in time; returns (events, webhook deliveries).

    Nothing is sent while the queue already holds ``limit`` messages or more:
    when the workers are behind (or down), unconfirmed rows are waiting in that
    queue, and adding copies on every sweep would only grow it. A message that
    was lost is sent once the queue has drained below the limit.
    """
    now = now_ms()
    stale = now - deadline_ms
    ev = t.events
    wd = t.webhook_deliveries
    overdue = and_(
        wd.c.state == PENDING,
        wd.c.next_attempt_ms < stale,
        or_(wd.c.lease_until_ms.is_(None), wd.c.lease_until_ms < now),
    )
    late = and_(ev.c.notified_ms.is_(None), func.coalesce(ev.c.relay_ms, ev.c.created_ms) < stale)
    with engine.connect() as conn:  # read first: nothing to do is the common case
        if (
            conn.execute(select(ev.c.seq).where(late).limit(1)).first() is None
            and conn.execute(select(wd.c.seq).where(overdue).limit(1)).first() is None
        ):
            return 0, 0
    depth = queue_depth(app)
    if depth >= limit:
        log.info("notify sweep: %d messages already queued; nothing resent this time", depth)
        return 0, 0
    pick = select(ev.c.seq).where(late).order_by(ev.c.seq).limit(limit).scalar_subquery()
    with engine.begin() as conn:
        events = conn.execute(
            update(ev)
            .where(ev.c.seq.in_(pick), late)
            .values(relay_ms=now)
            .returning(ev.c.seq, ev.c.event_id)
        ).all()
    with engine.begin() as conn:
        keys = conn.execute(
            select(wd.c.webhook_id, wd.c.event_id).where(overdue).order_by(wd.c.seq).limit(limit)
        ).all()
        for k in keys:
            conn.execute(
                update(wd)
                .where(wd.c.webhook_id == k.webhook_id, wd.c.event_id == k.event_id, overdue)
                .values(next_attempt_ms=now)
            )
    claimed = sorted((int(r.seq), r.event_id) for r in events)
    # A failed send leaves the claims in place: the next sweep after the deadline
    # tries again (the relay gives back only its own fresh claims).
    if claimed:
        send_fan_out(app, claimed)
    if keys:
        with app.producer_or_acquire() as producer:
            for k in keys:
                app.send_task(
                    TASK_DELIVER,
                    args=[k.webhook_id, k.event_id],
                    task_id=f"{k.event_id}:{k.webhook_id}",
                    producer=producer,
                )
    if claimed or keys:
        log.info(
            "notify sweep: %d events and %d webhook deliveries sent again", len(claimed), len(keys)
        )
    return len(claimed), len(keys)


class Relay:
    """The relay thread of a node process (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        app: Any,
        *,
        poll_seconds: float,
        deadline_seconds: float,
    ) -> None:
        self.store = store
        self.app = app
        self.poll_seconds = poll_seconds
        self.deadline_ms = int(deadline_seconds * 1000)
        self.sweep_seconds = max(0.5, deadline_seconds / 2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        #: events the claims confirmed themselves (no webhook enabled)
        self.confirmed = 0
        self.healthy = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="notify-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.store.wake_committed()  # wake the thread if it waits
        if self._thread is not None:
            self._thread.join(timeout=5)

    def relay_once(self, *, look: bool = True) -> int:
        """Claim and hand over once; how many events were taken (sent or confirmed)."""
        claimed = claim_new(self.store.engine, look=look)
        self.confirmed += claimed.confirmed
        if claimed.confirmed and self.store.metrics is not None:
            self.store.metrics.observe_relay_confirmed(claimed.at_ms, claimed.confirmed_created_ms)
        events = claimed.to_send
        if not events:
            return claimed.confirmed
        sent = 0
        try:
            sent = send_fan_out(self.app, events)
        finally:
            if sent < len(events):
                unclaim(self.store.engine, [seq for seq, _ in events[sent:]])
        self.sent += sent
        return sent + claimed.confirmed

    def _run(self) -> None:
        store = self.store
        backoff = 0.1
        next_sweep = time.monotonic() + self.sweep_seconds
        quiet_until = 0.0
        committed = True  # claim at start: events may be waiting from before
        last_sent = 0.0
        while not self._stop.is_set():
            generation = store.commit_generation()
            try:
                # After a commit there is work: claim at once. After a quiet
                # interval, look first (nothing there is the common case).
                sent = self.relay_once(look=not committed)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_seconds
                    sweep_once(store.engine, self.app, self.deadline_ms)
                if not self.healthy.is_set():
                    self.healthy.set()
                    if quiet_until:
                        log.info("notify relay: the broker takes events again")
                backoff = 0.1
            except Exception as exc:
                if self.healthy.is_set() or time.monotonic() >= quiet_until:
                    log.warning(
                        "notify relay: cannot hand events to the broker (%s: %s); retrying",
                        type(exc).__name__,
                        str(exc)[:200],
                    )
                    quiet_until = time.monotonic() + 60  # one line a minute while it lasts
                self.healthy.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                committed = True
                continue
            if sent >= BATCH:
                committed = True
                continue
            if sent:
                last_sent = time.monotonic()
            committed = store.wait_commit(generation, self.poll_seconds)
            if committed:
                # Let the commits of the next moment join this claim (one task
                # for them all), and the feeds and the sender go first.
                busy = time.monotonic() - last_sent < BUSY_SECONDS
                self._stop.wait(BUSY_COALESCE_SECONDS if busy else COALESCE_SECONDS)
