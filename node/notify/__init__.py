"""Real-time notifications: outbox relay, Celery workers on Redis, feeds, webhooks.

The truth is the database
-------------------------
Every change of the node commits together with its row in ``node_events``
(:mod:`node.storage.store`): that table is the transactional outbox *and* the feed
log. ``seq`` comes from a counter row locked until commit, so commit order is
sequence order and a reader of ``seq > cursor`` never skips a late commit.
``notified_ms`` stays NULL until a worker confirmed the fan-out. Redis holds
only task messages and wake-ups (ids, topic names); losing it — even its
append-only file — delays notifications and never loses one, because the
relay and the sweep derive everything they send from the database again.

The path of one event
---------------------
::

    officer/inbox ──commit──▶ node_events (notified_ms NULL)
        │ after commit: in-process wake-up (+ Redis publish if redis_url)
        │     └──▶ WatchAlerts / WatchCase streams of this process read seq > cursor
        ▼
    relay thread (node process) ──claim (relay_ms)──▶ Celery task fan_out (event ids)
                                                          │  (Redis broker, append-only)
    intelshare worker ◀───────────────────────────────────┘
        fan_out: publish wake-up to every node process (ids never, topic only)
                 one transaction: webhook deliveries (pending) + notified_ms
                 send deliver_webhook per delivery
        deliver_webhook: lease → signed POST → delivered | retry (backoff) | dead

Two wake-up paths reach the feed streams on purpose. The direct one (after
commit, in the committing process, plus a best-effort Redis publish) is the
fast path that the latency figures measure; the Celery fan-out is the
guaranteed one, retried until Redis takes it, for streams served by other
processes. Streams also re-read the database on every heartbeat, so even a
lost wake-up costs at most one heartbeat interval. Streams never trust the
wake-up for content: they replay from their cursor.

Where things run (and why)
--------------------------
* **Relay: a thread in each node process** (:mod:`node.notify.relay`). It
  is woken by this process's own commits of events (not by the workers'
  confirmations, which are most wake-ups) and claims at once, in one
  conditional UPDATE, so several node processes on one database do not send
  the same row twice. Events committed elsewhere (a worker's expiry job,
  another node process) are found by its look every
  ``notify_relay_seconds`` of quiet. After a commit it waits 5 ms (25 ms
  while busy) so that nearby events travel as **one** ``fan_out`` task: a
  Celery message costs the relay, the broker and a worker far more than the
  event rows it names, and at a hundred alerts a second one task per event
  was most of the workers' CPU.
* **Sweep: in the relay thread and in beat**. An event not confirmed within
  ``notify_deadline_seconds`` of its last hand-over, or a webhook delivery
  overdue by as much, is sent again; claims make each stale row go once per
  deadline, not once per sweeper, and nothing is resent while the queue
  already holds a batch (workers behind or down would otherwise see it grow
  by a copy per row per deadline).
* **Tasks: ``intelshare worker``**, any number of them, on any hosts that
  reach the database and Redis. The pool is threads by default (webhook
  POSTs and SQL wait on I/O); ``--pool prefork`` is available, and is the
  one where Celery enforces ``task_time_limit`` by killing the child (with
  threads, the webhook timeout, shorter than the task limit, bounds a task).
* **Periodic jobs: beat** (``intelshare worker --beat``, one per agency):
  alert expiry, retention purge, audit tree-head signing, directory and
  treaty refresh, and the sweep. The node process keeps running expiry,
  purge and head signing itself unless ``maintenance_in_node: false``:
  the embedded single-process default (``intelshare node serve`` alone)
  must still expire alerts and purge on time, and every job is idempotent,
  so running both is safe — only wasteful. Directory and treaty refresh stay
  in the node process regardless: each process holds its own verified copy
  in memory, which beat's refresh (for the worker's own use) cannot update.
* **Supervision: ``intelshare worker`` restarts its Celery worker**
  (:mod:`node.notify.supervise`). Celery stops on what it calls an
  unrecoverable error, and kombu's Redis transport raises some when the
  broker connection drops mid-operation; the process tests kill Redis and
  saw exactly that. Nothing is lost then, but a worker that stays down
  delays everything, so the command runs the worker as a child, starts it
  again with a backoff, and the child dies with it (``PR_SET_PDEATHSIG``).

Guarantees and the settings behind them
---------------------------------------
* ``acks_late`` + ``reject_on_worker_lost``: a task whose worker dies is
  redelivered, after ``notify_visibility_timeout_seconds``; that timeout is
  validated to exceed the task time limit plus the longest retry countdown
  (on Redis a task waiting for its countdown is unacknowledged too).
* Idempotency: a task names its events by sequence number; its id is the
  event id for a single event and ``<first event id>+<n - 1>`` for a batch
  (``<event>:<webhook>`` for deliveries). ``fan_out`` confirms each event in
  one conditional UPDATE and does nothing for one already confirmed; a delivery is leased before
  its POST. Webhooks are at-least-once: a worker killed after the receiver's
  2xx but before the record POSTs again; receivers dedupe on
  ``X-Intelshare-Event-Id``.
* Webhook bodies carry event id, type, cursor and resource names only
  (*notify, then fetch*); signatures are HMAC-SHA256 over
  ``"<timestamp>." + body`` with a per-webhook secret stored encrypted
  (:mod:`node.notify.webhooks`).
* Key prefix ``<redis_prefix><agency_id>:celery:`` (``global_keyprefix``):
  agencies and test runs sharing a Redis never see each other's queues.

Deliberately *not* through Celery: case entries for remote member agencies.
They travel through the node's durable outbound queue (``node_outbound``),
written in the same transaction as the entry and drained by the sender
thread to the gateway, because delivering a record to a partner must not
depend on Redis. Celery only notifies; it never carries records.

Modules: :mod:`~node.notify.broker` (broker URL, bundled Redis),
:mod:`~node.notify.celery_app`, :mod:`~node.notify.relay`,
:mod:`~node.notify.tasks`, :mod:`~node.notify.webhooks`,
:mod:`~node.notify.supervise`, :mod:`~node.admin.worker`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from node.config import NodeConfig
from node.storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class Notifier:
    """The node process's part: the relay thread, and the bundled Redis it may own."""

    relay: Any
    app: Any
    bundled: Any

    def stop(self) -> None:
        self.relay.stop()
        self.app.close()
        if self.bundled is not None:
            self.bundled.stop()


def start_notifier(config: NodeConfig, store: Store) -> Notifier | None:
    """Start the outbox relay of a node process (None if no broker can be had)."""
    from node.notify.broker import ensure_bundled, uses_bundled
    from node.notify.celery_app import make_app
    from node.notify.relay import Relay

    bundled = None
    if uses_bundled(config):
        try:
            bundled = ensure_bundled(config)
        except (OSError, RuntimeError) as exc:
            log.warning("bundled Redis did not start (%s); notifications wait for it", exc)
            return None
        if bundled is None:
            return None
    app = make_app(config)
    relay = Relay(
        store,
        app,
        poll_seconds=config.notify_relay_seconds,
        deadline_seconds=config.notify_deadline_seconds,
    )
    relay.start()
    return Notifier(relay, app, bundled)
