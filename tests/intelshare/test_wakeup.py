"""Wake-ups within a process and across processes through a real Redis."""

from __future__ import annotations

import threading
import time

from intelshare.wakeup import WakeupHub


def test_local_wait_wakes_on_notify() -> None:
    hub = WakeupHub()
    seen = hub.generation("t")
    threading.Timer(0.05, hub.notify, args=("t",)).start()
    assert hub.wait("t", seen, timeout=5)
    assert not hub.wait("t", hub.generation("t"), timeout=0.05)
    hub.close()


def test_wakeups_cross_hubs_through_redis(redis_url: str, redis_prefix: str) -> None:
    a = WakeupHub(redis_url, channel_prefix=redis_prefix)
    b = WakeupHub(redis_url, channel_prefix=redis_prefix)
    try:
        assert b.connected.wait(5), "subscriber did not connect to Redis"
        seen = b.generation("inbox:x")
        a.notify("inbox:x")
        assert b.wait("inbox:x", seen, timeout=5)
        # Other topics are not woken.
        other = b.generation("inbox:y")
        assert not b.wait("inbox:y", other, timeout=0.2)
    finally:
        a.close()
        b.close()


def test_own_publications_do_not_wake_twice(redis_url: str, redis_prefix: str) -> None:
    """A hub's local waiters are woken once by its notify, not again by the Redis echo."""
    a = WakeupHub(redis_url, channel_prefix=redis_prefix)
    b = WakeupHub(redis_url, channel_prefix=redis_prefix)
    try:
        assert a.connected.wait(5)
        assert b.connected.wait(5)
        seen_b = b.generation("t")
        a.notify("t")
        assert b.wait("t", seen_b, timeout=5)  # the other hub got it through Redis
        after = a.generation("t")
        assert after == 1
        assert not a.wait("t", after, timeout=0.3)  # ... and a got no echo of its own
    finally:
        a.close()
        b.close()


def test_a_burst_is_coalesced_and_still_arrives(redis_url: str, redis_prefix: str) -> None:
    """Many notifies in a row reach the other process; the last one is never dropped."""
    a = WakeupHub(redis_url, channel_prefix=redis_prefix)
    b = WakeupHub(redis_url, channel_prefix=redis_prefix)
    try:
        assert b.connected.wait(5)
        before = b.generation("burst")
        for _ in range(2000):
            a.notify("burst")
        assert b.wait("burst", before, timeout=5)
        # After the burst, one more notify still gets through on its own.
        last = b.generation("burst")
        a.notify("burst")
        assert b.wait("burst", last, timeout=5)
        assert b.generation("burst") < 2000  # coalesced, not one publication each
    finally:
        a.close()
        b.close()


def test_a_hub_alone_stops_publishing_until_another_subscribes(
    redis_url: str, redis_prefix: str
) -> None:
    """Nobody else listens: no publications; a newcomer still gets what follows at once."""
    a = WakeupHub(redis_url, channel_prefix=redis_prefix)
    b = None
    try:
        assert a.connected.wait(5)
        a.notify("x")
        deadline = time.monotonic() + 5
        while a._alone_until <= time.monotonic() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert a._alone_until > time.monotonic(), "a lone hub kept publishing"
        b = WakeupHub(redis_url, channel_prefix=redis_prefix)
        assert b.connected.wait(5)
        seen = b.generation("x")
        a.notify("x")  # possibly before a heard b's hello: published again once it does
        started = time.monotonic()
        assert b.wait("x", seen, timeout=5)
        assert time.monotonic() - started < 0.5
        # From then on a publishes as before.
        seen = b.generation("y")
        a.notify("y")
        assert b.wait("y", seen, timeout=2)
    finally:
        a.close()
        if b is not None:
            b.close()


def test_remote_generation_counts_only_other_processes(redis_url: str, redis_prefix: str) -> None:
    a = WakeupHub(redis_url, channel_prefix=redis_prefix)
    b = WakeupHub(redis_url, channel_prefix=redis_prefix)
    try:
        assert a.connected.wait(5)
        assert b.connected.wait(5)
        seen_b = b.generation("t")
        a.notify("t")
        a.wake_local("t")
        assert b.wait("t", seen_b, timeout=5)
        assert b.remote_generation("t") == 1  # a's, through Redis
        assert a.generation("t") == 2
        assert a.remote_generation("t") == 0  # its own wake-ups, and no echo
        seen = a.generation("t")
        b.notify("t")
        assert a.wait("t", seen, timeout=5)
        assert a.remote_generation("t") == 1
        assert not b.wait("t", b.generation("t"), timeout=0.3)  # no echo of its own
        assert b.remote_generation("t") == 1
    finally:
        a.close()
        b.close()
