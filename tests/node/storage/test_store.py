"""The node's storage on SQLite and PostgreSQL: schema, unit of work, event log.

The event log's central promise is that commit order equals sequence
order, so a reader following "events after my cursor" never skips one that
commits late. The concurrency test makes commits slow and checks that every
batch a concurrent reader sees continues exactly where the last one ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError

from intelshare import migrate
from intelshare.audit.log import AuditLog
from intelshare.audit.tables import audit_entries
from intelshare.db import make_engine
from intelshare.errors import RequestIdReused
from intelshare.ids import key_id
from intelshare.keys import raw_public
from intelshare.wakeup import WakeupHub
from node.server import MIGRATIONS
from node.storage import tables as t
from node.storage.officers import OfficerRegistry, Permission
from node.storage.store import EVENTS_TOPIC, Store


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    engine = make_engine(db_url)
    migrate.upgrade(engine, MIGRATIONS)
    key = Ed25519PrivateKey.generate()
    audit = AuditLog(engine, "nl-customs", key, key_id(raw_public(key.public_key())))
    hub = WakeupHub(None)
    yield Store(engine, audit, hub)
    hub.close()
    engine.dispose()


def test_migrations_match_the_table_definitions(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
    # The audit tables belong to intelshare.audit and are not in node.storage.tables.
    relevant = [
        d
        for d in diff
        if not (d[0] == "remove_table" and d[1].name.startswith("audit_"))
        and not (d[0] == "remove_index" and d[1].table.name.startswith("audit_"))
    ]
    assert relevant == []
    migrate.upgrade(store.engine, MIGRATIONS)  # running again is a no-op


def test_unit_of_work_commits_everything_or_nothing(store: Store) -> None:
    woke: list[str] = []

    def fail_midway() -> None:
        with store.write() as w:
            w.conn.execute(insert(t.inbox).values(id=2, sequence=1, updated_ms=1))
            w.event("alert.issued", alert_id="a1")
            w.audit("test", {"n": 1})
            w.after_commit(lambda: woke.append("no"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.events)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(audit_entries)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(t.inbox)).scalar_one() == 1
    assert store.head_seq() == 0
    assert woke == []
    generation = store.hub.generation(EVENTS_TOPIC)
    with store.write() as w:
        w.event("alert.issued", alert_id="a1")
        w.event("alert.delivered", alert_id="a1", agency_id="be-police")
        w.audit("test", {"n": 2})
        w.after_commit(lambda: woke.append("yes"))
    assert woke == ["yes"]
    assert store.hub.generation(EVENTS_TOPIC) == generation + 1
    events = store.events_after(0, 10)
    assert [(e.seq, e.type, e.agency_id) for e in events] == [
        (1, "alert.issued", None),
        (2, "alert.delivered", "be-police"),
    ]
    assert store.head_seq() == 2
    with pytest.raises(ValueError, match="unknown event type"), store.write() as w:
        w.event("alert.exploded", alert_id="a1")


def test_a_failure_in_the_last_statements_commits_nothing(store: Store) -> None:
    """The rows, events and audit entries sent with the COMMIT fail together.

    On PostgreSQL they go in one round trip with the COMMIT: a unique
    violation in the first must abort the audit append and the COMMIT behind
    it, surface as SQLAlchemy's IntegrityError (what callers catch to detect
    a reused request id), and leave the pooled connection usable.
    """
    woke: list[str] = []

    def clash() -> None:
        with store.write() as w:
            w.insert_later(t.inbox, {"id": 1, "sequence": 5, "updated_ms": 1})  # row 1 exists
            w.event("alert.issued", alert_id="a1")
            w.audit("test", {"n": 1})
            w.after_commit(lambda: woke.append("no"))

    with pytest.raises(IntegrityError):
        clash()
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.events)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(audit_entries)).scalar_one() == 0
        assert conn.execute(select(t.inbox.c.sequence)).scalar_one() == 0
    assert woke == []
    assert store.audit is not None
    assert store.audit.size() == 0
    for n in range(3):  # the same pool, connections and all
        with store.write() as w:
            w.event("alert.issued", alert_id=f"b{n}")
            w.audit("test", {"n": n})
    assert [e.seq for e in store.events_after(0, 10)] == [1, 2, 3]
    assert store.audit.size() == 3
    store.audit.verify(store.audit.public_key)


def test_outbox_view_of_the_event_log(store: Store) -> None:
    for n in range(5):
        with store.write() as w:
            w.event("alert.received", alert_id=f"a{n}")
    assert [e.seq for e in store.unnotified()] == [1, 2, 3, 4, 5]
    assert store.mark_notified([1, 2, 3]) == 3
    assert store.mark_notified([1, 2, 3]) == 0  # idempotent
    assert [e.seq for e in store.unnotified()] == [4, 5]
    assert all(e.notified_ms is not None for e in store.events_after(0, 3))


def test_event_sequence_follows_commit_order(store: Store) -> None:
    """Readers following the log never see a gap, even while commits are slow."""

    import random

    def slow_commit(conn: Any) -> None:
        time.sleep(random.random() * 0.005)  # commits finish in any order unless ordered

    event.listen(store.engine, "commit", slow_commit)
    if store.engine.dialect.name == "postgresql":
        # There the COMMIT leaves with the last statements (before SQLAlchemy's
        # commit hook runs): slow it down in the server, at commit time.
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(random() * 0.005); RETURN NULL; END $$"
            )
            conn.exec_driver_sql(
                "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON node_events "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )
    writers, per_writer = 4, 25
    errors: list[BaseException] = []
    done = threading.Event()

    def write(n: int) -> None:
        try:
            for i in range(per_writer):
                with store.write() as w:
                    w.event("alert.received", alert_id=f"w{n}-{i}")
                    w.audit("received", {"alert_id": f"w{n}-{i}"})
        except BaseException as exc:
            errors.append(exc)

    seen: list[int] = []

    def read() -> None:
        cursor = 0
        while not done.is_set() or cursor < writers * per_writer:
            batch = store.events_after(cursor, 1000)
            for e in batch:
                if e.seq != cursor + 1:
                    errors.append(AssertionError(f"after {cursor} came {e.seq}"))
                    return
                cursor = e.seq
                seen.append(e.seq)
            if not batch:
                time.sleep(0.001)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    done.set()
    reader.join(60)
    event.remove(store.engine, "commit", slow_commit)
    assert errors == []
    assert seen == list(range(1, writers * per_writer + 1))
    assert store.audit is not None
    assert store.audit.verify(store.audit.public_key).entries_checked == writers * per_writer


def test_idempotency_records(store: Store) -> None:
    with store.write() as w:
        store.save_response(
            w, "r1", officer_id="o1", method="CreateAlert", fingerprint="f", response=b"resp"
        )
    assert (
        store.stored_response("r1", officer_id="o1", method="CreateAlert", fingerprint="f")
        == b"resp"
    )
    assert (
        store.stored_response("r2", officer_id="o1", method="CreateAlert", fingerprint="f") is None
    )
    for kwargs in (
        {"officer_id": "o2", "method": "CreateAlert", "fingerprint": "f"},
        {"officer_id": "o1", "method": "RevokeAlert", "fingerprint": "f"},
        {"officer_id": "o1", "method": "CreateAlert", "fingerprint": "g"},
    ):
        with pytest.raises(RequestIdReused):
            store.stored_response("r1", **kwargs)


def test_officers(store: Store) -> None:
    registry = OfficerRegistry(store.engine)
    officer, token = registry.add("Anna Analyst", "analyst")
    assert len(token) == 43  # 32 random bytes, URL-safe base64
    assert registry.authenticate(token) == officer
    assert officer.can(Permission.ACKNOWLEDGE)
    assert not officer.can(Permission.ISSUE)
    from intelshare.errors import InvalidArgument, NotFound, Unauthenticated

    with pytest.raises(InvalidArgument) as exc:
        registry.add("Anna Analyst", "analyst")
    assert "name" in exc.value.violations
    with pytest.raises(InvalidArgument) as exc:
        registry.add("", "superuser")
    assert set(exc.value.violations) == {"name", "role"}
    for bad in (None, "", token[:-1], "x" * 300):
        with pytest.raises(Unauthenticated):
            registry.authenticate(bad)
    registry.disable("Anna Analyst")
    with pytest.raises(Unauthenticated):
        registry.authenticate(token)
    with pytest.raises(NotFound):
        registry.disable("nobody")
    assert [o.name for o in registry.list()] == ["Anna Analyst"]


def test_officers_lookup_survives_a_lost_connection(store: Store) -> None:
    """PostgreSQL: the lookups' own connection, when lost, is replaced on the next call."""
    registry = OfficerRegistry(store.engine)
    officer, token = registry.add("Olga Officer", "liaison")
    assert registry.authenticate(token) == officer
    kept = registry._reader.connection
    assert (kept is not None) == (store.engine.dialect.name == "postgresql")
    if kept is not None:
        kept.connection.driver_connection.close()  # type: ignore[union-attr]  # as if PostgreSQL had restarted
    assert registry.authenticate(token) == officer
    registry.disable("Olga Officer")  # takes effect at once
    from intelshare.errors import Unauthenticated

    with pytest.raises(Unauthenticated):
        registry.authenticate(token)
    registry.close()
    assert registry._reader.connection is None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_pooled_connections_are_pinged_only_after_idling(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ping per transaction; a connection the server dropped while idle is replaced."""
    from sqlalchemy import text

    from node import server

    engine = make_engine(db_url, pool_pre_ping=False)
    server._ping_when_idle(engine)
    pings: list[int] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(1) or real_ping(c))
    try:
        for _ in range(3):
            with engine.connect() as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert pings == []  # used again at once: no ping
        other = make_engine(db_url)
        with other.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        other.dispose()
        monkeypatch.setattr(server, "PING_AFTER_IDLE_SECONDS", 0.0)
        time.sleep(0.05)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
        assert pings
    finally:
        engine.dispose()
