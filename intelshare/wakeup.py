"""Wake-ups for long-lived streams: "something new for X", never the content.

A streaming RPC reads from the database from its cursor; it only needs to
know *when* to look again. Within one process a condition variable is
enough. Across processes (several gateway replicas, a node and its Celery
workers) the same signal travels over Redis pub/sub. Redis only ever carries
a topic name and a number, so losing Redis delays a wake-up (streams also
re-check on a timer) but never loses or leaks a message: the database stays
the truth.

Publishing is off the committing thread and coalesced: a request that
commits only marks its topic dirty, and one publisher thread sends each
dirty topic once per round trip to Redis, so a burst of commits costs a few
publications instead of one round trip each on the request path. Each hub
tags what it publishes with a random token and ignores its own echoes: its
local waiters were already woken, and a second wake-up would make every
stream read the database again for nothing.

A hub alone on Redis publishes nothing: ``PUBLISH`` answers how many
subscribers got the message, and when the only one is the hub's own
listener (a single node process, its workers only publish) the hub stops
publishing for :data:`ALONE_SECONDS`, after which it asks again. A hub whose
listener (re)subscribes announces itself on :data:`HELLO_TOPIC`; every other
hub then forgets that it was alone and publishes each topic it skipped,
so a wake-up skipped just before the newcomer subscribed still reaches it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import defaultdict
from typing import Any

log = logging.getLogger(__name__)

#: How long a hub that found no other subscriber publishes nothing.
ALONE_SECONDS = 1.0

#: The topic on which a hub announces that its listener (re)subscribed.
HELLO_TOPIC = "\x00hub-hello"


class WakeupHub:
    """Per-topic wake-ups, optionally bridged over Redis pub/sub."""

    def __init__(self, redis_url: str | None = None, channel_prefix: str = "intelshare:") -> None:
        self._cond = threading.Condition()
        self._generation: dict[str, int] = defaultdict(int)
        # the part of each generation that came from outside this process
        self._remote: dict[str, int] = defaultdict(int)
        self._prefix = channel_prefix
        self._redis_url = redis_url
        self._redis: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publisher: threading.Thread | None = None
        self._token = os.urandom(8).hex().encode()
        self._dirty: set[str] = set()
        self._dirty_cond = threading.Condition()
        # Until then (monotonic) no other hub listens: publishing is skipped.
        self._alone_until = 0.0
        self._skipped: set[str] = set()  # topics not published while alone
        self._hellos = 0  # hellos heard from other hubs
        self.connected = threading.Event()
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=5, socket_connect_timeout=2
            )
            self._thread = threading.Thread(target=self._listen, name="wakeup-redis", daemon=True)
            self._thread.start()
            self._publisher = threading.Thread(
                target=self._publish_loop, name="wakeup-publish", daemon=True
            )
            self._publisher.start()

    # --- local -----------------------------------------------------------

    def _bump(self, topic: str, *, remote: bool = False) -> None:
        with self._cond:
            self._generation[topic] += 1
            if remote:
                self._remote[topic] += 1
            self._cond.notify_all()

    def wake_local(self, topic: str) -> None:
        """Wake this process's waiters on ``topic`` only (e.g. a stream whose call ended)."""
        self._bump(topic)

    def generation(self, topic: str) -> int:
        """Current generation of ``topic``; pass it to :meth:`wait`."""
        with self._cond:
            return self._generation[topic]

    def remote_generation(self, topic: str) -> int:
        """How many of ``topic``'s wake-ups came from other processes (or a lost link).

        A reader that knows what this process committed (its own wake-ups)
        needs to read what others committed only when this has moved since
        it last read: see ``WatchAlerts``.
        """
        with self._cond:
            return self._remote[topic]

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
        """Wake local waiters now and, through Redis, every other process soon."""
        self._bump(topic)
        if self._redis is not None:
            with self._dirty_cond:
                if time.monotonic() < self._alone_until:
                    self._skipped.add(topic)  # published if a hello comes
                    return
                self._dirty.add(topic)
                self._dirty_cond.notify()

    def _publish_loop(self) -> None:
        while True:
            with self._dirty_cond:
                while not self._dirty and not self._stop.is_set():
                    self._dirty_cond.wait()
                topics, self._dirty = self._dirty, set()
            if topics:
                self._publish(topics)
            if self._stop.is_set():
                return

    def _publish(self, topics: set[str]) -> None:
        try:
            own = 1 if self.connected.is_set() else 0  # our listener counts as a receiver
            with self._dirty_cond:
                hellos = self._hellos
            if len(topics) == 1:
                received = self._redis.publish(self._prefix + next(iter(topics)), self._token)
            else:
                pipe = self._redis.pipeline(transaction=False)
                for topic in topics:
                    pipe.publish(self._prefix + topic, self._token)
                received = max(pipe.execute())
            if int(received) <= own:
                # Nobody else listens; a newcomer's hello ends this at once
                # (one heard during this publication too).
                with self._dirty_cond:
                    if self._hellos == hellos:
                        self._alone_until = time.monotonic() + ALONE_SECONDS
        except Exception as exc:  # a lost wake-up only delays a stream
            log.warning("wake-up publish failed: %s", type(exc).__name__)

    def _heard_hello(self) -> None:
        """Another hub (re)subscribed: publish again, starting with what was skipped."""
        with self._dirty_cond:
            self._hellos += 1
            self._alone_until = 0.0
            if self._skipped:
                self._dirty |= self._skipped
                self._skipped = set()
                self._dirty_cond.notify()

    def _listen(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(self._prefix + "*")
                self.connected.set()
                # Hubs that thought themselves alone publish again from now on.
                self._redis.publish(self._prefix + HELLO_TOPIC, self._token)
                backoff = 0.2
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if msg and msg.get("type") == "pmessage" and msg.get("data") != self._token:
                        channel = msg["channel"]
                        if isinstance(channel, bytes):
                            channel = channel.decode()
                        topic = channel[len(self._prefix) :]
                        if topic == HELLO_TOPIC:
                            self._heard_hello()
                        else:
                            self._bump(topic, remote=True)
            except Exception as exc:
                self.connected.clear()
                log.warning("wake-up subscriber lost Redis (%s); retrying", type(exc).__name__)
                # Wake everyone: they re-read the database, so nothing is missed
                # while the subscription was down.
                with self._cond:
                    for topic in list(self._generation):
                        self._generation[topic] += 1
                        self._remote[topic] += 1
                    self._cond.notify_all()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a dead connection
                        pubsub.close()

    def close(self) -> None:
        """Stop, after sending the wake-ups still pending (other processes wait for them)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        with self._dirty_cond:
            self._dirty_cond.notify_all()
        if self._publisher is not None:
            self._publisher.join(timeout=3)
        if self._thread is not None:
            self._thread.join(timeout=3)
        if self._redis is not None:
            self._redis.close()
