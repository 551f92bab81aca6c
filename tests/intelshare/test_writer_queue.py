"""The SQLite writer queue: one holder, served in arrival order, woken, bounded waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from intelshare.db import DatabaseBusy, WriterQueue, make_engine, write_turn, writer_queue


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


def test_waiters_are_served_in_arrival_order() -> None:
    queue = WriterQueue()
    assert queue.acquire(1.0)
    order: list[int] = []

    def writer(n: int) -> None:
        assert queue.acquire(10.0)
        order.append(n)
        queue.release()

    threads = []
    for n in range(6):
        thread = threading.Thread(target=writer, args=(n,))
        thread.start()
        threads.append(thread)
        _wait_for(lambda n=n: queue.waiting() == n + 1)  # type: ignore[misc]
    queue.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4, 5]
    assert queue.waiting() == 0


def test_a_thread_arriving_at_release_does_not_go_first() -> None:
    queue = WriterQueue()
    assert queue.acquire(1.0)
    checked = threading.Event()
    got: list[str] = []

    def waiter() -> None:
        assert queue.acquire(10.0)
        got.append("waiter")
        checked.wait(10)
        queue.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    _wait_for(lambda: queue.waiting() == 1)
    queue.release()  # handed to the waiter, not left free for whoever asks next
    late = queue.acquire(0.0)  # this thread asks again at once
    checked.set()
    thread.join(10)
    assert got == ["waiter"]
    assert late is False


def test_the_holder_may_enter_again() -> None:
    queue = WriterQueue()
    with queue.turn(), queue.turn():
        assert queue.waiting() == 0
    # released twice over: another thread gets it at once
    other: list[bool] = []
    thread = threading.Thread(target=lambda: other.append(queue.acquire(0.0)))
    thread.start()
    thread.join(10)
    assert other == [True]


def test_a_wait_that_ends_leaves_the_queue() -> None:
    queue = WriterQueue()
    holder_in, holder_out = threading.Event(), threading.Event()

    def holder() -> None:
        with queue.turn():
            holder_in.set()
            holder_out.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    holder_in.wait(10)
    started = time.monotonic()
    with pytest.raises(DatabaseBusy, match="stayed busy"), queue.turn(timeout=0.05):
        pass
    assert time.monotonic() - started >= 0.05
    assert queue.waiting() == 0
    holder_out.set()
    thread.join(10)
    assert queue.acquire(0.0)


def test_only_the_holder_releases() -> None:
    queue = WriterQueue()
    with pytest.raises(RuntimeError, match="not holding"):
        queue.release()


def test_sqlite_engines_have_a_queue_others_not(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    queue = writer_queue(engine)
    assert isinstance(queue, WriterQueue)
    assert writer_queue(make_engine(f"sqlite:///{tmp_path / 'q2.db'}")) is not queue
    with write_turn(engine), engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    assert queue.acquire(0.0)  # released after the block
    queue.release()
    engine.dispose()
    pg = make_engine("postgresql://nobody@127.0.0.1:1/none")  # never connected
    assert writer_queue(pg) is None
