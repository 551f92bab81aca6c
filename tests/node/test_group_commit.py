"""Units of work of many threads committed as one transaction (``Store.write(grouped=True)``).

To make grouping certain rather than likely, the tests hold the first
commit in flight until the other threads have queued behind it: those then
go in one transaction together. On SQLite a grouped unit is an ordinary
unit of work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from intelshare.audit.log import audit_entries
from node import tables as t
from node.store import Store, Writer, now_ms

pg_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def request_row(request_id: str) -> dict[str, object]:
    return {
        "request_id": request_id,
        "officer_id": "o-1",
        "method": "CreateAlert",
        "fingerprint": "f" * 64,
        "response": b"answer",
        "created_ms": now_ms(),
    }


def unit(store: Store, n: int, woke: list[int]) -> Callable[[], None]:
    def run() -> None:
        with store.write(grouped=True) as w:
            w.insert_later(t.requests, request_row(f"req-{n}"))
            w.event("alert.issued", alert_id=f"a-{n}")
            w.audit("alert_issued", {"alert_id": f"a-{n}"})
            w.after_commit(lambda: woke.append(n))

    return run


def run_held(store: Store, jobs: list[Callable[[], None]]) -> list[BaseException | None]:
    """Run ``jobs`` in threads, the first commit held until all the others queued."""
    assert store.groups is not None
    commit = store.groups._commit
    release = threading.Event()
    first = [True]

    def held(units: list[Writer]) -> None:
        if first[0]:
            first[0] = False
            assert release.wait(30)
        commit(units)

    store.groups._commit = held
    outcomes: list[BaseException | None] = [None] * len(jobs)

    def call(i: int) -> None:
        try:
            jobs[i]()
        except BaseException as exc:  # reported to the test
            outcomes[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(jobs))]
    threads[0].start()
    while store.groups._busy is False:
        time.sleep(0.001)
    for th in threads[1:]:
        th.start()
    deadline = time.monotonic() + 30
    while len(store.groups._queue) < len(jobs) - 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for th in threads:
        th.join(30)
    store.groups._commit = commit
    return outcomes


def count(store: Store, table: object) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


@pg_only
def test_units_queued_behind_a_commit_share_the_next_one(store: Store) -> None:
    woke: list[int] = []
    outcomes = run_held(store, [unit(store, n, woke) for n in range(8)])
    assert outcomes == [None] * 8
    assert store.groups is not None
    assert (store.groups.commits, store.groups.units) == (2, 8)  # the held one, then seven
    assert sorted(woke) == list(range(8))
    events = store.events_after(0, 100)
    assert [e.seq for e in events] == list(range(1, 9))
    assert sorted(e.alert_id or "" for e in events) == sorted(f"a-{n}" for n in range(8))
    # every unit got its own seq back, and feeds of this process serve them from memory
    assert [e.seq for e in store.feed_after(0, 100, memory_only=True)] == list(range(1, 9))
    assert count(store, t.requests) == 8
    assert store.audit is not None
    assert store.audit.verify(store.audit.public_key).entries_checked == 8


@pg_only
def test_a_unit_at_fault_fails_alone(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(t.requests).values(request_row("req-1")))  # unit 1 will clash
    woke: list[int] = []
    outcomes = run_held(store, [unit(store, n, woke) for n in range(4)])
    assert outcomes[0] is None
    assert isinstance(outcomes[1], IntegrityError)
    assert outcomes[2:] == [None, None]
    assert sorted(woke) == [0, 2, 3]
    assert sorted(e.alert_id or "" for e in store.events_after(0, 100)) == ["a-0", "a-2", "a-3"]
    assert count(store, audit_entries) == 3
    assert store.audit is not None
    store.audit.verify(store.audit.public_key)


@pg_only
def test_a_grouped_unit_cannot_write_through_its_connection(store: Store) -> None:
    def sneaky() -> None:
        with store.write(grouped=True) as w:
            w.event("alert.issued", alert_id="a-1")
            w.conn.execute(insert(t.requests).values(request_row("req-sneaky")))

    with pytest.raises(DBAPIError, match="read-only transaction"):
        sneaky()
    assert count(store, t.requests) == 0
    assert store.events_after(0, 10) == []
    # the pooled connection is usable again, and writable for ordinary units
    with store.write() as w:
        w.conn.execute(insert(t.requests).values(request_row("req-plain")))
        w.event("alert.issued", alert_id="a-2")
    assert count(store, t.requests) == 1


def test_grouped_units_commit_on_either_database(store: Store) -> None:
    woke: list[int] = []
    for n in range(3):
        unit(store, n, woke)()
    assert woke == [0, 1, 2]
    assert [e.seq for e in store.events_after(0, 10)] == [1, 2, 3]
    assert count(store, t.requests) == 3
    if store.engine.dialect.name == "sqlite":
        assert store.groups is None  # one writer at a time there anyway
    else:
        assert store.groups is not None
        assert (store.groups.commits, store.groups.units) == (3, 3)  # alone: at once
