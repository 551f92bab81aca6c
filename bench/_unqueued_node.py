"""``intelshare ...`` with SQLite writers not queued: the path before the writer queue.

For bench/concurrency.py only, which compares the two paths in one run:
``python -m bench._unqueued_node node serve --config FILE``. No engine of
this process gets a :class:`intelshare.db.WriterQueue`, so the node's
units of work and its outbox relay open their transactions as they did
before: every writer goes straight to SQLite and, finding it locked,
sleeps in SQLite's busy handler and tries again. This is not an option of
the node; it exists only here.
"""

from __future__ import annotations

from typing import Any

from intelshare import db


class _NoQueues(dict[Any, Any]):
    """Where make_engine keeps each SQLite engine's queue: here, nowhere."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


db._WRITER_QUEUES = _NoQueues()  # type: ignore[assignment]

if __name__ == "__main__":
    from intelshare.cli import main

    main()
