"""The Celery tasks of a node: fan-out, webhook delivery, sweep and periodic jobs.

Every task is idempotent, so a task that runs twice (redelivered after a
worker died, sent again by the sweep) changes nothing the second time:

``fan_out(seq)`` (task id = event id) or ``fan_out([seq, ...])``
    one transaction that begins by confirming the events (``notified_ms``,
    one conditional UPDATE for all of them: an event already confirmed is
    left out, and with none left the task does nothing), publishes one
    wake-up (topic name only) so feed streams in every node process look at
    the database again, and records one pending delivery per matching
    webhook (one read of the webhooks, one insert; a rights holder's webhook
    only for events of its own records: :mod:`node.notify.webhooks`); a failed publish rolls
    it all back and the task is retried. After commit it sends a
    ``deliver_webhook`` task per delivery. The relay sends the events it
    claimed together as one task: per message, the broker and the worker
    cost far more than the rows.
``deliver_webhook(webhook_id, event_id)``
    takes a lease on the pending delivery (one conditional UPDATE, so two
    copies of the task never POST at the same time), POSTs, and records the
    outcome: delivered; or retried with exponential backoff (Celery retry
    with a countdown); or, after the last attempt, dead (the dead letters).
    A worker killed between the POST and the record leaves the delivery
    pending; it is POSTed again after its lease — receivers dedupe on the
    event id (at-least-once, as every webhook system).
``sweep``, ``expire_alerts``, ``purge_retention``, ``sign_audit_head``,
``refresh_directory``, ``ipr_deadlines``
    the periodic jobs, sent by beat.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from intelshare import errors
from intelshare.db import Statement
from intelshare.wakeup import WakeupHub
from node.config import NodeConfig
from node.kinds import ipr_common
from node.notify import webhooks as wh
from node.notify.celery_app import (
    TASK_AUDIT_HEAD,
    TASK_DELIVER,
    TASK_DIRECTORY,
    TASK_EXPIRE,
    TASK_FAN_OUT,
    TASK_IPR,
    TASK_PURGE,
    TASK_SWEEP,
    make_app,
)
from node.storage import tables as t
from node.storage.store import EVENTS_TOPIC, now_ms

log = logging.getLogger(__name__)


class _PublishingHub(WakeupHub):
    """A worker's wake-ups: published to every node process, never listened to.

    Nothing in a worker waits for a wake-up, so it does not subscribe: a
    subscriber would parse every wake-up of every process for nothing. What
    the worker commits (expiry, purges) is published synchronously.
    """

    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(None, prefix)
        self._client = client
        self._topic_prefix = prefix

    def notify(self, topic: str) -> None:
        super().notify(topic)
        if self._client is not None:
            try:
                self._client.publish(self._topic_prefix + topic, b"1")
            except Exception as exc:  # a lost wake-up only delays a stream
                log.warning("wake-up publish failed: %s", type(exc).__name__)


class WorkerContext:
    """What the tasks of one worker process share, built on first use (after any fork)."""

    def __init__(self, config: NodeConfig, build_node: Callable[[NodeConfig], Any]) -> None:
        self.config = config
        self.node = build_node(config)
        self.store = self.node.store
        self.webhooks = wh.WebhookRegistry(self.store.engine, self.node.keys)
        self._redis: Any = None
        if config.redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                config.redis_url, socket_timeout=5, socket_connect_timeout=2
            )
        # The node's hub subscribes to every wake-up; the worker only publishes.
        self.node.hub.close()
        self.node.hub = self.store.hub = _PublishingHub(self._redis, config.redis_prefix)
        self.signed_size = -1

    def publish_wakeup(self) -> None:
        """Wake feed streams in every node process (raises if Redis is unreachable)."""
        if self._redis is not None:
            self._redis.publish(self.config.redis_prefix + EVENTS_TOPIC, b"1")
        else:
            self.store.hub.notify(EVENTS_TOPIC)

    def close(self) -> None:
        self.node.stop(grace=0)
        if self._redis is not None:
            self._redis.close()


_lock = threading.Lock()


def context(app: Any) -> WorkerContext:
    with _lock:
        ctx: WorkerContext | None = getattr(app, "_intelshare_ctx", None)
        if ctx is None:
            ctx = WorkerContext(app.intelshare_config, app.intelshare_build_node)
            app._intelshare_ctx = ctx
        return ctx


_INSERT_IGNORE = Statement(
    postgresql=postgresql.insert(t.webhook_deliveries).on_conflict_do_nothing(),
    sqlite=sqlite.insert(t.webhook_deliveries).on_conflict_do_nothing(),
)


def _insert_ignore(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    _INSERT_IGNORE.execute(conn, rows[0] if len(rows) == 1 else rows)


def backoff_seconds(config: NodeConfig, attempt: int) -> float:
    """Delay before attempt ``attempt + 1``: base * 2^(attempt - 1), capped."""
    return float(
        min(config.webhook_backoff_max_seconds, config.webhook_backoff_seconds * 2 ** (attempt - 1))
    )


_ev = t.events
_CONFIRM_ONE = (
    update(_ev)
    .where(_ev.c.seq == bindparam("b_seq"), _ev.c.notified_ms.is_(None))
    .values(notified_ms=bindparam("now"))
    .returning(_ev.c.seq, _ev.c.event_id, _ev.c.type, _ev.c.created_ms, _ev.c.record_id)
)
_CONFIRM = (
    update(_ev)
    .where(_ev.c.seq.in_(bindparam("seqs", expanding=True)), _ev.c.notified_ms.is_(None))
    .values(notified_ms=bindparam("now"))
    .returning(_ev.c.seq, _ev.c.event_id, _ev.c.type, _ev.c.created_ms, _ev.c.record_id)
)
_EXISTS = select(_ev.c.seq).where(_ev.c.seq == bindparam("seq"))
# an officer's own webhook goes quiet with its officer (node.notify.webhooks: whose webhook)
_HOOKS = (
    select(
        t.webhooks.c.webhook_id,
        t.webhooks.c.events,
        t.webhooks.c.created_ms,
        t.webhooks.c.holder_key,
    )
    .outerjoin(t.officers, t.officers.c.officer_id == t.webhooks.c.officer_id)
    .where(
        t.webhooks.c.disabled.is_(False),
        t.webhooks.c.officer_id.is_(None) | t.officers.c.disabled.is_(False),
    )
)


def _holder_filter(conn: Connection, hooks: list[Any], rows: list[Any]) -> set[tuple[str, int]]:
    """(holder key, event seq) of the IPR events each holder's webhook may receive."""
    keys = {h.holder_key for h in hooks if h.holder_key}
    if not keys:
        return set()
    ipr_rows = [r for r in rows if r.record_id and r.type.startswith(wh.HOLDER_FAMILIES)]
    detention_ids = {r.record_id for r in ipr_rows if r.type.startswith("detention.")}
    record_ids = {r.record_id for r in ipr_rows if r.type.startswith("recordation.")}
    allowed: set[tuple[str, int]] = set()
    for key in keys:
        seen_d, seen_r = ipr_common.holder_sees(
            conn, key, detention_ids=detention_ids, record_ids=record_ids
        )
        for r in ipr_rows:
            family = seen_d if r.type.startswith("detention.") else seen_r
            if r.record_id in family:
                allowed.add((key, int(r.seq)))
    return allowed


def fan_out(app: Any, seq: int | list[int]) -> str:
    """Confirm events, wake the feeds, record webhook deliveries (see the module docstring)."""
    ctx = context(app)
    now = now_ms()
    single = isinstance(seq, int)
    # One transaction that writes first (no read-then-upgrade on SQLite): confirm the
    # events, publish the wake-up, record the deliveries; a failed publish rolls back.
    with ctx.store.engine.begin() as conn:
        if isinstance(seq, int):
            rows = conn.execute(_CONFIRM_ONE, {"b_seq": seq, "now": now}).all()
        else:
            rows = conn.execute(_CONFIRM, {"seqs": [int(s) for s in seq], "now": now}).all()
        if not rows:
            if not single:
                return "already"
            if conn.execute(_EXISTS, {"seq": seq}).first() is None:
                log.warning("fan_out: no event %d", seq)
                return "missing"
            return "already"  # confirmed before (or by a concurrent copy of this task)
        ctx.publish_wakeup()
        found = conn.execute(_HOOKS).all()
        hooks = [
            (h.webhook_id, json.loads(h.events), int(h.created_ms), h.holder_key) for h in found
        ]
        holders = _holder_filter(conn, found, rows)
        deliveries: list[tuple[str, str, int]] = []
        for row in sorted(rows, key=lambda r: int(r.seq)):
            for webhook_id, patterns, created_ms, holder_key in hooks:
                # webhooks that want this event and existed when it happened
                if created_ms > int(row.created_ms) or not wh.matches(patterns, row.type):
                    continue
                if holder_key and (holder_key, int(row.seq)) not in holders:
                    continue  # a holder's webhook: only its own records' events
                deliveries.append((webhook_id, row.event_id, int(row.seq)))
        _insert_ignore(
            conn,
            [
                {
                    "webhook_id": h,
                    "event_id": event_id,
                    "seq": event_seq,
                    "state": wh.PENDING,
                    "attempts": 0,
                    "next_attempt_ms": now,
                    "lease_until_ms": None,
                    "created_ms": now,
                }
                for h, event_id, event_seq in deliveries
            ],
        )
    metrics = getattr(app, "intelshare_metrics", None)
    if metrics is not None:
        metrics.observe_notified(now, [int(r.created_ms) for r in rows])
    if deliveries:
        with app.producer_or_acquire() as producer:
            for h, event_id, _seq in deliveries:
                app.send_task(
                    TASK_DELIVER,
                    args=[h, event_id],
                    task_id=f"{event_id}:{h}",
                    producer=producer,
                )
    if single:
        return f"notified {len(deliveries)} webhooks"
    return f"notified {len(rows)} events, {len(deliveries)} webhook deliveries"


def deliver_webhook(task: Any, webhook_id: str, event_id: str) -> str:
    app = task.app
    ctx = context(app)
    cfg = ctx.config
    engine = ctx.store.engine
    wd = t.webhook_deliveries
    key = (wd.c.webhook_id == webhook_id, wd.c.event_id == event_id)
    now = now_ms()
    lease_ms = int(cfg.notify_task_time_limit_seconds * 1000)
    with engine.begin() as conn:
        claimed = conn.execute(
            update(wd)
            .where(
                *key,
                wd.c.state == wh.PENDING,
                (wd.c.lease_until_ms.is_(None)) | (wd.c.lease_until_ms < now),
            )
            .values(lease_until_ms=now + lease_ms, attempts=wd.c.attempts + 1)
            .returning(wd.c.attempts, wd.c.seq)
        ).first()
    if claimed is None:
        return "not pending"  # delivered, dead, removed, or another worker holds the lease
    attempt = int(claimed.attempts)
    problem = "gone"
    with engine.connect() as conn:
        try:
            found = ctx.webhooks.get(conn, webhook_id)
        except errors.IntelshareError as exc:  # a secret this identity cannot open
            found, problem = None, exc.message[:500]
        event = conn.execute(select(t.events).where(t.events.c.event_id == event_id)).first()
    if found is None or event is None:
        with engine.begin() as conn:
            conn.execute(
                update(wd)
                .where(*key)
                .values(state=wh.DEAD, dead_ms=now, lease_until_ms=None, last_error=problem)
            )
        return "gone"
    hook, secret = found
    summary: dict[str, Any] | None = None
    withheld = _owner_disabled(engine, hook.officer_id)
    if not withheld and event.type.startswith(wh.OFFICER_FAMILIES):
        summary = _ipr_summary(ctx, event, hook.holder_key)
        withheld = summary is None and hook.holder_key is not None
    if withheld:
        # its officer disabled, or the record gone or (checked again now) no longer
        # the holder's: nothing is POSTed
        with engine.begin() as conn:
            conn.execute(
                update(wd)
                .where(*key)
                .values(
                    state=wh.DEAD,
                    dead_ms=now,
                    lease_until_ms=None,
                    last_error="withheld: the webhook's officer is disabled, or the record is "
                    "gone or not visible to its owner",
                )
            )
        return "withheld"
    body = wh.event_body(event, summary)
    stamp = int(time.time())
    headers = {
        wh.TIMESTAMP_HEADER: str(stamp),
        wh.SIGNATURE_HEADER: wh.signature(secret, stamp, body),
        wh.EVENT_ID_HEADER: event_id,
        wh.WEBHOOK_ID_HEADER: webhook_id,
    }
    status: int | None = None
    error: str | None = None
    try:
        status = wh.post(hook.url, body, headers, cfg.webhook_timeout_seconds)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    done = now_ms()
    if error is None:
        with engine.begin() as conn:
            conn.execute(
                update(wd)
                .where(*key)
                .values(
                    state=wh.DELIVERED,
                    delivered_ms=done,
                    last_status=status,
                    last_error=None,
                    lease_until_ms=None,
                )
            )
        return "delivered"
    if attempt >= cfg.webhook_max_attempts:
        with engine.begin() as conn:
            conn.execute(
                update(wd)
                .where(*key)
                .values(
                    state=wh.DEAD,
                    dead_ms=done,
                    last_status=status,
                    last_error=error,
                    lease_until_ms=None,
                )
            )
        log.warning(
            "webhook delivery dead after %d attempts",
            attempt,
            extra={"webhook_id": webhook_id, "event_id": event_id, "error": error},
        )
        return "dead"
    countdown = backoff_seconds(cfg, attempt)
    with engine.begin() as conn:
        conn.execute(
            update(wd)
            .where(*key)
            .values(
                next_attempt_ms=done + int(countdown * 1000),
                last_status=status,
                last_error=error,
                lease_until_ms=None,
            )
        )
    log.info(
        "webhook delivery failed (%s); attempt %d again in %.1fs", error, attempt + 1, countdown
    )
    raise task.retry(countdown=countdown, max_retries=None)


def _owner_disabled(engine: Any, officer_id: str | None) -> bool:
    """Whether the officer who registered a webhook was disabled (an agency's: never)."""
    if officer_id is None:
        return False
    with engine.connect() as conn:
        disabled = conn.execute(
            select(t.officers.c.disabled).where(t.officers.c.officer_id == officer_id)
        ).scalar_one_or_none()
    return disabled is None or bool(disabled)


def _ipr_summary(ctx: WorkerContext, event: Any, holder_key: str | None) -> dict[str, Any] | None:
    """An IPR event's resource and summary as the webhook's owner may see it (None: it may not)."""
    record_id = event.record_id or ""
    if event.type.startswith("detention_report."):
        if holder_key is not None:
            return None
        return {"resource": f"{ipr_common.REPORTS}/{record_id}"}
    if event.type.startswith("recordation."):
        with ctx.store.engine.connect() as conn:
            return ipr_common.recordation_summary(conn, record_id, holder_key)
    detentions = getattr(ctx.node, "detentions", None)
    if detentions is None:
        return None
    summary: dict[str, Any] | None = detentions.webhook_summary(record_id, holder_key)
    return summary


def make_worker_app(config: NodeConfig, build_node: Callable[[NodeConfig], Any]) -> Any:
    """The worker's Celery app: :func:`make_app` with the tasks defined on it.

    ``build_node`` builds the node the tasks work with (``node.server.build``),
    passed in by the caller because the server sits above this package.
    """
    app = make_app(config)
    app.intelshare_build_node = build_node
    register(app)
    return app


def register(app: Any) -> None:
    """Define the tasks on ``app`` (one app per node configuration)."""
    # shared=False: an app keeps its tasks to itself (tests hold several apps at once)
    reliable = {"acks_late": True, "reject_on_worker_lost": True, "shared": False}

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_FAN_OUT,
        bind=True,
        autoretry_for=(Exception,),
        retry_backoff=0.5,
        retry_backoff_max=30,
        retry_jitter=True,
        max_retries=None,
        **reliable,
    )
    def fan_out_task(self: Any, seq: int | list[int]) -> str:
        return fan_out(self.app, seq if isinstance(seq, list) else int(seq))

    @app.task(name=TASK_DELIVER, bind=True, max_retries=None, **reliable)  # type: ignore[untyped-decorator]
    def deliver_task(self: Any, webhook_id: str, event_id: str) -> str:
        return deliver_webhook(self, webhook_id, event_id)

    @app.task(name=TASK_SWEEP, bind=True, **reliable)  # type: ignore[untyped-decorator]
    def sweep_task(self: Any) -> str:
        from node.notify.relay import sweep_once

        ctx = context(self.app)
        n, d = sweep_once(
            ctx.store.engine, self.app, int(ctx.config.notify_deadline_seconds * 1000)
        )
        return f"{n} events, {d} deliveries"

    @app.task(name=TASK_EXPIRE, bind=True, **reliable)  # type: ignore[untyped-decorator]
    def expire_task(self: Any) -> int:
        return int(context(self.app).node.alerts.note_expired())

    @app.task(name=TASK_PURGE, bind=True, **reliable)  # type: ignore[untyped-decorator]
    def purge_task(self: Any) -> int:
        # Both kinds of received records have a treaty retention to honour.
        node = context(self.app).node
        return int(node.purge_retention())

    @app.task(name=TASK_AUDIT_HEAD, bind=True, **reliable)  # type: ignore[untyped-decorator]
    def audit_head_task(self: Any) -> int:
        ctx = context(self.app)
        audit = ctx.store.audit
        if audit is None:
            return 0
        size = int(audit.size())
        if size > 0 and size != ctx.signed_size:
            audit.sign_head()
            ctx.signed_size = size
        return size

    @app.task(name=TASK_DIRECTORY, bind=True, **reliable)  # type: ignore[untyped-decorator]
    def directory_task(self: Any) -> int:
        ctx = context(self.app)
        ctx.node.refresh_trust()
        return int(ctx.node.trust.directory.version)

    @app.task(name=TASK_IPR, bind=True, **reliable)  # type: ignore[untyped-decorator]
    def ipr_task(self: Any) -> int:
        """Deadline reminders and passed deadlines of detentions, recordations expired."""
        node = context(self.app).node
        done = 0
        if getattr(node, "detentions", None) is not None:
            done += int(node.detentions.check_deadlines())
        if getattr(node, "recordations", None) is not None:
            done += int(node.recordations.expire_due())
        return done
