"""Wake-ups within a process and across processes through a real Redis."""

from __future__ import annotations

import threading

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
