"""The write path's shortcuts keep the event log's promises (SQLite and PostgreSQL).

* rows inserted later (``Writer.insert_later``) commit with the events, or
  not at all;
* feeds reading committed events from memory (``Store.feed_after``) see
  exactly what the database holds, in order, also when other processes
  commit between this process's events;
* the relay's wake-up (``Store.wait_commit``) comes from commits with
  events only, never from a wake-up published elsewhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from intelshare import migrate
from intelshare.audit.log import AuditLog
from intelshare.audit.tables import audit_entries
from intelshare.db import make_engine
from intelshare.ids import key_id
from intelshare.keys import raw_public
from intelshare.wakeup import WakeupHub
from node.server import MIGRATIONS
from node.storage import tables as t
from node.storage.store import EVENTS_TOPIC, Store, Writer, is_unique_violation


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


def _request(request_id: str, n: int) -> dict[str, object]:
    return {
        "request_id": request_id,
        "officer_id": "o1",
        "method": "CreateAlert",
        "fingerprint": "f",
        "response": bytes([n]) + b"\x00answer",
        "created_ms": n,
    }


def test_rows_inserted_later_commit_with_the_events(store: Store) -> None:
    with store.write() as w:
        w.insert_later(t.requests, _request("r1", 1))
        w.insert_later(t.requests, [_request("r2", 2), _request("r3", 3)])
        w.event("alert.issued", alert_id="a1")
        w.event("alert.received", alert_id="a2", agency_id="be-police")
        w.audit("test", {"n": 1})
    assert w.seqs == [1, 2]
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.requests).order_by(t.requests.c.request_id)).all()
        audits = conn.execute(select(func.count()).select_from(audit_entries)).scalar_one()
    assert [(r.request_id, bytes(r.response), r.created_ms) for r in rows] == [
        ("r1", b"\x01\x00answer", 1),
        ("r2", b"\x02\x00answer", 2),
        ("r3", b"\x03\x00answer", 3),
    ]
    assert audits == 1
    assert [(e.seq, e.type, e.alert_id, e.agency_id) for e in store.events_after(0, 10)] == [
        (1, "alert.issued", "a1", None),
        (2, "alert.received", "a2", "be-police"),
    ]
    # rows alone, without events
    with store.write() as w:
        w.insert_later(t.requests, _request("r4", 4))
    assert w.seqs == []
    assert store.stored_response("r4", officer_id="o1", method="CreateAlert", fingerprint="f") == (
        b"\x04\x00answer"
    )


def test_a_constraint_broken_at_the_end_leaves_nothing(store: Store) -> None:
    with store.write() as w:
        w.insert_later(t.requests, _request("r1", 1))
        w.event("alert.issued", alert_id="a1")

    def duplicate(w: Writer) -> None:
        w.insert_later(t.requests, [_request("r2", 2), _request("r1", 9)])  # r1 exists
        w.event("alert.issued", alert_id="a2")
        w.audit("test", {"n": 2})

    with pytest.raises(IntegrityError) as raised, store.write() as w:
        duplicate(w)
    assert is_unique_violation(raised.value)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.requests)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(audit_entries)).scalar_one() == 0
    assert store.head_seq() == 1
    assert [e.alert_id for e in store.feed_after(0, 10)] == ["a1"]


def test_feeds_from_memory_skip_nothing_other_processes_commit(store: Store) -> None:
    """A second Store on the database stands for another process.

    Its commits are not in the first Store's memory, so a reader following
    the first one meets gaps and must read them from the database: every
    alert event once, in sequence order, none skipped.
    """
    other = Store(store.engine, store.audit, WakeupHub(None))
    writers, per_writer = 4, 20
    errors: list[BaseException] = []
    done = threading.Event()

    def write(n: int) -> None:
        mine = store if n % 2 else other
        try:
            for i in range(per_writer):
                with mine.write() as w:
                    w.event("alert.received", alert_id=f"w{n}-{i}")
                    if i % 3 == 0:  # not about an alert: alert-only feeds skip it
                        w.event("case.entry_added", case_id=f"c{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    seen: list[str] = []

    def read() -> None:
        cursor = 0
        while not done.is_set() or len(seen) < writers * per_writer:
            batch = store.feed_after(cursor, 7, alert_only=True)
            for e in batch:
                if e.seq <= cursor or e.alert_id is None:
                    errors.append(AssertionError(f"after {cursor} came {e}"))
                    return
                cursor = e.seq
                seen.append(e.alert_id)
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
    other.hub.close()
    assert errors == []
    assert len(seen) == writers * per_writer
    assert seen == [e.alert_id for e in store.events_after(0, 10_000, alert_only=True)]
    # what memory holds is what the database holds (notified_ms aside: not kept there)
    remembered = {e.seq: e for e in store._recent.values()}
    assert remembered
    assert {e.seq: e for e in store.events_after(0, 10_000) if e.seq in remembered} == (remembered)


def test_the_relay_is_woken_by_commits_with_events_only(store: Store) -> None:
    generation = store.commit_generation()
    store.hub.notify(EVENTS_TOPIC)  # what another process's confirmation looks like
    assert not store.wait_commit(generation, 0.05)
    with store.write() as w:
        w.audit("test", {"n": 1})  # a commit without events
    assert not store.wait_commit(generation, 0.05)
    with store.write() as w:
        w.event("alert.issued", alert_id="a1")
    assert store.wait_commit(generation, 0.05)
    assert store.commit_generation() == generation + 1


def _inbox_cursor(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(t.inbox.c.sequence)).scalar_one())


def test_the_inbox_cursor_moves_with_the_transaction_and_never_back(store: Store) -> None:
    with store.write() as w:  # alone
        w.advance_inbox(3)
        w.advance_inbox(2)
    assert _inbox_cursor(store) == 3
    with store.write() as w:  # with rows and events
        w.insert_later(t.requests, _request("r1", 1))
        w.event("alert.received", alert_id="a1", agency_id="nl-customs")
        w.advance_inbox(5)
    assert _inbox_cursor(store) == 5
    assert [e.alert_id for e in store.events_after(0, 10)] == ["a1"]
    with store.write() as w:  # a cursor already further stays
        w.event("alert.received", alert_id="a2", agency_id="nl-customs")
        w.advance_inbox(4)
    assert _inbox_cursor(store) == 5

    def failing(w: Writer) -> None:
        w.insert_later(t.requests, _request("r1", 9))  # r1 exists
        w.event("alert.received", alert_id="a3", agency_id="nl-customs")
        w.advance_inbox(9)

    with pytest.raises(IntegrityError), store.write() as w:  # nothing of a failed one
        failing(w)
    assert _inbox_cursor(store) == 5
    assert store.head_seq() == 2
