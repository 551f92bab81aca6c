"""Webhook signing, secrets at rest, registration rules, retry schedule, bundled Redis."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from intelshare import errors, migrate
from intelshare.db import make_engine
from intelshare.errors import ConfigError
from intelshare.keys import AgencyKeys
from intelshare.wakeup import WakeupHub
from node.config import NodeConfig
from node.notify import broker
from node.notify import webhooks as wh
from node.notify.celery_app import beat_schedule, make_app
from node.notify.tasks import backoff_seconds, make_worker_app
from node.server import MIGRATIONS, build
from node.storage import tables as t


def config(tmp_path: Path, **over: object) -> NodeConfig:
    values: dict[str, object] = {
        "agency_id": "be-police",
        "listen": "127.0.0.1:0",
        "database_url": f"sqlite:///{tmp_path / 'n.db'}",
        "gateway": "127.0.0.1:1",
        "identity_dir": tmp_path / "id",
    }
    values.update(over)
    cfg = NodeConfig(**values)  # type: ignore[arg-type]
    cfg.validate()
    return cfg


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    import hashlib
    import hmac

    body = b'{"event_id":"e1"}'
    sig = wh.signature("whsec_x", 1767225600, body)
    assert sig == "v1=" + hmac.new(b"whsec_x", b"1767225600." + body, hashlib.sha256).hexdigest()
    now = time.time()
    headers = {
        wh.TIMESTAMP_HEADER: str(int(now)),
        wh.SIGNATURE_HEADER: wh.signature("s", int(now), body),
    }
    assert wh.verify("s", headers, body)
    assert not wh.verify("other", headers, body)
    assert not wh.verify("s", headers, body + b" ")
    assert not wh.verify("s", headers, body, now=now + 301)  # replayed too late
    assert not wh.verify("s", {wh.SIGNATURE_HEADER: headers[wh.SIGNATURE_HEADER]}, body)


def test_secrets_are_stored_encrypted_under_the_agency_key() -> None:
    keys, other = AgencyKeys.generate(), AgencyKeys.generate()
    sealed = wh.seal_secret(keys, "hook-1", "whsec_abc")
    assert b"whsec_abc" not in sealed
    assert wh.open_secret(keys, "hook-1", sealed) == "whsec_abc"
    with pytest.raises(errors.FailedPrecondition):
        wh.open_secret(other, "hook-1", sealed)
    with pytest.raises(errors.FailedPrecondition):
        wh.open_secret(keys, "hook-2", sealed)  # bound to its webhook id


def test_event_patterns_and_urls() -> None:
    assert wh.check_patterns(["alert.received", " alert.* ", "alert.received"]) == (
        "alert.received",
        "alert.*",
    )
    assert wh.matches(("alert.*",), "alert.revoked")
    assert not wh.matches(("alert.*",), "case.entry_added")
    assert wh.matches(("*",), "case.entry_added")
    for bad in ([], ["alert.nonsense"], ["payload.*"]):
        with pytest.raises(errors.InvalidArgument):
            wh.check_patterns(bad)
    assert wh.check_url("https://hooks.example.org/x")
    assert wh.check_url("http://127.0.0.1:8080/x")
    for bad_url in ("ftp://x/y", "/relative", "http://hooks.example.org/x"):
        with pytest.raises(errors.InvalidArgument):
            wh.check_url(bad_url)
    assert wh.check_url("http://hooks.example.org/x", allow_http=True)


def test_ipr_patterns_by_owner() -> None:
    # the agency's webhooks may name IPR events too, by their families
    assert wh.check_patterns(["detention.*", "recordation.extended"]) == (
        "detention.*",
        "recordation.extended",
    )
    assert wh.matches(("detention.*",), "detention.deadline_due")
    assert not wh.matches(("detention.*",), "detention_report.received")
    officer = wh.OFFICER_FAMILIES
    assert wh.check_patterns(["detention_report.*"], families=officer) == ("detention_report.*",)
    holder = wh.HOLDER_FAMILIES
    assert wh.check_patterns(["detention.moved", "recordation.*"], families=holder)
    for bad in (["*"], ["alert.*"], ["detention_report.*"], ["detention.*", "case.*"], []):
        with pytest.raises(errors.InvalidArgument):
            wh.check_patterns(bad, families=holder)
    with pytest.raises(errors.InvalidArgument):
        wh.check_patterns(["alert.received"], families=officer)


def test_registry_add_list_dead_letters_retry(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    migrate.upgrade(engine, MIGRATIONS)
    registry = wh.WebhookRegistry(engine, AgencyKeys.generate())
    hook, secret = registry.add("https://hooks.example.org/in", ["alert.*"])
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    assert [h.webhook_id for h in registry.list()] == [hook.webhook_id]
    with engine.begin() as conn:
        found = registry.get(conn, hook.webhook_id)
        assert found is not None
        assert found[1] == secret
        stored = conn.execute(select(t.webhooks.c.secret)).scalar_one()
        assert secret.encode() not in bytes(stored)
        assert wh.matching_webhooks(conn, "alert.received", hook.created_ms) == [hook.webhook_id]
        assert wh.matching_webhooks(conn, "alert.received", hook.created_ms - 1) == []
        assert wh.matching_webhooks(conn, "case.entry_added", hook.created_ms) == []
        conn.execute(
            t.webhook_deliveries.insert().values(
                webhook_id=hook.webhook_id,
                event_id="e1",
                seq=1,
                state=wh.DEAD,
                attempts=8,
                next_attempt_ms=0,
                created_ms=0,
                dead_ms=5,
                last_error="HTTP 500",
            )
        )
    assert [d.event_id for d in registry.dead_letters()] == ["e1"]
    assert registry.retry_dead(webhook_id=hook.webhook_id) == [(hook.webhook_id, "e1")]
    (again,) = registry.deliveries()
    assert (again.state, again.attempts, again.dead_ms) == (wh.PENDING, 0, None)
    registry.remove(hook.webhook_id)
    assert registry.list() == []
    assert registry.deliveries() == []
    with pytest.raises(errors.NotFound):
        registry.remove(hook.webhook_id)
    engine.dispose()


def test_retry_schedule_and_its_limits(tmp_path: Path) -> None:
    cfg = config(tmp_path, webhook_backoff_seconds=5.0, webhook_backoff_max_seconds=60.0)
    assert [backoff_seconds(cfg, n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    # A countdown waits unacknowledged at the broker: the visibility timeout must outlast it.
    with pytest.raises(ConfigError, match="notify_visibility_timeout_seconds"):
        config(tmp_path, notify_visibility_timeout_seconds=100.0)
    with pytest.raises(ConfigError, match="webhook_timeout_seconds"):
        config(tmp_path, webhook_timeout_seconds=90.0)


def test_celery_settings_for_at_least_once(tmp_path: Path) -> None:
    cfg = config(tmp_path, redis_url="redis://127.0.0.1:6379/0", redis_prefix="p:")
    app = make_worker_app(cfg, build)
    c = app.conf
    assert c.task_acks_late
    assert c.task_reject_on_worker_lost
    assert c.worker_prefetch_multiplier == 1
    opts = c.broker_transport_options
    assert opts["global_keyprefix"] == "p:be-police:celery:"
    assert opts["visibility_timeout"] > c.task_time_limit + cfg.webhook_backoff_max_seconds
    assert {"intelshare.notify.fan_out", "intelshare.notify.deliver_webhook"} <= set(app.tasks)
    assert set(beat_schedule(cfg)) == {
        "notify-sweep",
        "alert-expiry",
        "retention-purge",
        "audit-head",
        "directory-refresh",
        "ipr-deadlines",
    }
    app.close()


def test_broker_resolution(tmp_path: Path) -> None:
    assert broker.broker_url(config(tmp_path, broker_url="redis://b:6379/1")) == "redis://b:6379/1"
    assert broker.broker_url(config(tmp_path, redis_url="redis://r:6379/0")) == "redis://r:6379/0"
    bundled = config(tmp_path)
    assert (
        broker.broker_url(bundled) == f"redis+socket://{tmp_path / 'id' / 'redis' / 'redis.sock'}"
    )
    deep = config(tmp_path, embedded_redis_dir=tmp_path / ("x" * 120))
    assert len(str(broker.socket_path(deep))) < 100


@pytest.mark.skipif(broker.redis_binary() is None, reason="no redis-server binary")
def test_bundled_redis_is_real_and_append_only(tmp_path: Path) -> None:
    import redis

    cfg = config(tmp_path)
    first = broker.ensure_bundled(cfg)
    assert first is not None
    assert first.proc is not None
    try:
        again = broker.ensure_bundled(cfg)  # a second process finds it through the socket
        assert again is not None
        assert again.proc is None
        client = redis.Redis(unix_socket_path=str(first.socket))
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.set("k", "v")
        client.close()
        assert oct(first.socket.stat().st_mode & 0o777) == "0o700"
    finally:
        first.stop()
    assert not first.socket.exists()
    assert any(p.name.startswith("appendonly") for p in (tmp_path / "id" / "redis").iterdir())
    # Restarted: what was written is still there (the append-only file).
    second = broker.ensure_bundled(cfg)
    assert second is not None
    try:
        client = redis.Redis(unix_socket_path=str(second.socket))
        assert client.get("k") == b"v"
        client.close()
    finally:
        second.stop()


def test_config_dataclass_defaults_are_valid(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert cfg.maintenance_in_node is True
    assert dataclasses.replace(cfg, notify_deadline_seconds=1.0).notify_deadline_seconds == 1.0


@pytest.mark.redis
def test_sweep_adds_nothing_to_a_backlog(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    """Workers down for long: the sweep must not stack a copy per row per deadline."""
    from node.notify.relay import queue_depth, sweep_once
    from node.storage.store import Store

    cfg = config(tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    engine = make_engine(cfg.database_url)
    migrate.upgrade(engine, MIGRATIONS)
    store = Store(engine, None, WakeupHub())
    with store.write() as w:
        w.event("alert.received", alert_id="a1")
    app = make_app(cfg)
    try:
        assert sweep_once(engine, app, deadline_ms=60_000) == (0, 0)  # not late yet
        assert sweep_once(engine, app, deadline_ms=-1) == (1, 0)  # late: sent again
        assert queue_depth(app) == 1
        assert sweep_once(engine, app, deadline_ms=-1, limit=1) == (0, 0)  # backlog: held
        assert queue_depth(app) == 1
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge("intelshare.notify")
        assert sweep_once(engine, app, deadline_ms=-1, limit=1) == (1, 0)  # drained: again
    finally:
        app.close()
        engine.dispose()
