"""Wake-ups for long-lived streams: "something new for X", never the content.

A streaming RPC reads from the database from its cursor; it only needs to
know *when* to look again. Within one process a condition variable is
enough. Across processes (several gateway replicas, a node and its Celery
workers) the same signal travels over Redis pub/sub. Redis only ever carries
a topic name and a number, so losing Redis delays a wake-up (streams also
re-check on a timer) but never loses or leaks a message: the database stays
the truth.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from typing import Any

log = logging.getLogger(__name__)


class WakeupHub:
    """Per-topic wake-ups, optionally bridged over Redis pub/sub."""

    def __init__(self, redis_url: str | None = None, channel_prefix: str = "intelshare:") -> None:
        self._cond = threading.Condition()
        self._generation: dict[str, int] = defaultdict(int)
        self._prefix = channel_prefix
        self._redis_url = redis_url
        self._redis: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=5, socket_connect_timeout=2
            )
            self._thread = threading.Thread(target=self._listen, name="wakeup-redis", daemon=True)
            self._thread.start()

    # --- local -----------------------------------------------------------

    def _bump(self, topic: str) -> None:
        with self._cond:
            self._generation[topic] += 1
            self._cond.notify_all()

    def generation(self, topic: str) -> int:
        """Current generation of ``topic``; pass it to :meth:`wait`."""
        with self._cond:
            return self._generation[topic]

    def wait(self, topic: str, seen: int, timeout: float) -> bool:
        """Block until ``topic`` moves past generation ``seen`` or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._generation[topic] == seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return False
                self._cond.wait(remaining)
            return True

    # --- across processes ---------------------------------------------

    def notify(self, topic: str) -> None:
        """Wake local waiters and, through Redis, every other process."""
        self._bump(topic)
        if self._redis is not None:
            try:
                self._redis.publish(self._prefix + topic, b"1")
            except Exception as exc:  # a lost wake-up only delays a stream
                log.warning("wake-up publish failed: %s", type(exc).__name__)

    def _listen(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(self._prefix + "*")
                self.connected.set()
                backoff = 0.2
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if msg and msg.get("type") == "pmessage":
                        channel = msg["channel"]
                        if isinstance(channel, bytes):
                            channel = channel.decode()
                        self._bump(channel[len(self._prefix) :])
            except Exception as exc:
                self.connected.clear()
                log.warning("wake-up subscriber lost Redis (%s); retrying", type(exc).__name__)
                # Wake everyone: they re-read the database, so nothing is missed
                # while the subscription was down.
                with self._cond:
                    for topic in list(self._generation):
                        self._generation[topic] += 1
                    self._cond.notify_all()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a dead connection
                        pubsub.close()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=3)
        if self._redis is not None:
            self._redis.close()
