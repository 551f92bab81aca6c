"""How many feeds an officer, and the node, may hold open at once.

gRPC's synchronous server runs each call on a worker thread, and a feed
(``WatchAlerts``, ``WatchCase``, ...) holds its thread for as long as it is
open. Without a limit one officer's token could open feeds until every
thread was taken, and every other officer's calls would wait. So:

* an officer may hold ``max_feeds_per_officer`` feeds at once (a browser
  console with a few live pages, a script, a dashboard); one more is
  refused with ``RESOURCE_EXHAUSTED`` / ``TOO_MANY_STREAMS`` (scope
  ``officer``);
* the node holds at most ``max_feeds`` in all (scope ``node``);
* the server has ``max_workers`` threads for everything else *plus*
  ``max_feeds`` and a few spare (:data:`SPARE_THREADS`) to refuse with, so
  feeds, however many are asked for, never take a thread a unary call needs.

A feed's slot is given back when its stream ends: the client went away
(seen within a heartbeat), the officer's token was revoked, or the node stops.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from intelshare import errors
from node.storage.officers import Officer

#: Threads beyond the feeds' own, on which a feed over a limit is refused.
SPARE_THREADS = 4


class FeedLimiter:
    """Counts open feeds per officer and in total; see the module docstring."""

    def __init__(self, *, per_officer: int, total: int) -> None:
        self.per_officer = per_officer
        self.total = total
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}
        self._count = 0

    def count(self, officer_id: str | None = None) -> int:
        with self._lock:
            return self._count if officer_id is None else self._open.get(officer_id, 0)

    @contextmanager
    def slot(self, officer: Officer) -> Iterator[None]:
        """Hold one feed for ``officer`` while the block runs; refuse one too many."""
        with self._lock:
            mine = self._open.get(officer.officer_id, 0)
            if mine >= self.per_officer:
                raise errors.TooManyStreams(
                    f"you have {mine} feeds open, the most one officer may hold; "
                    "close one (a closed page's feed ends within a heartbeat) and retry",
                    metadata={"scope": "officer", "limit": str(self.per_officer)},
                )
            if self._count >= self.total:
                raise errors.TooManyStreams(
                    f"this node holds its limit of {self.total} feeds; retry later",
                    metadata={"scope": "node", "limit": str(self.total)},
                )
            self._open[officer.officer_id] = mine + 1
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                left = self._open[officer.officer_id] - 1
                if left:
                    self._open[officer.officer_id] = left
                else:
                    del self._open[officer.officer_id]
                self._count -= 1
