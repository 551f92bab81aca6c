"""Delayed callbacks of the gateway, run in due order on one thread.

The gateway puts off two kinds of work: a stream's short batch of delivery
records (:class:`gateway.state.Deliveries`; the recipient's acknowledgement
usually makes it unnecessary) and the cancellation of a replaced inbox
stream that did not end by itself (:class:`gateway.capacity.StreamLimiter`).
Both are rare and short beside the calls that schedule them, so one thread
runs them all rather than a thread per timer. Closing runs what is still
pending at once and refuses anything new, which a caller then does itself:
a delivery record is never dropped because the gateway stops.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress

log = logging.getLogger(__name__)


class Later:
    """Callbacks run after a delay, all on one thread (not a thread per timer)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._count = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> bool:
        """Run ``callback`` in ``delay`` seconds; False (not scheduled) once closed."""
        with self._cond:
            if self._stopped:
                return False
            self._count += 1
            heapq.heappush(self._due, (time.monotonic() + delay, self._count, callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gateway-later", daemon=True)
                self._thread.start()
            self._cond.notify()
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._due or self._due[0][0] > time.monotonic()):
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._due)
            try:
                callback()
            except Exception:
                log.exception("a delayed gateway task failed")

    def close(self) -> None:
        """Run what is still due now, here, and take nothing more."""
        with self._cond:
            self._stopped = True
            due, self._due = self._due, []
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for _, _, callback in sorted(due):
            with suppress(Exception):
                callback()
