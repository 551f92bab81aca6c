"""Units of work of many threads committed as one transaction (PostgreSQL).

Why: every event-writing transaction of a node holds the event counter row
and the audit state row until its commit is on disk, so the node's writes
take turns, one WAL flush each. Under load (a hundred alerts a second,
several officers at once) each waits for every flush queued before it, and
a slow flush (the disk, a neighbour, a new WAL segment) delays every writer
behind it by the whole queue. Committed together, units that arrive while
one commit is in flight share the next one: one statement for all their
rows and events, one audit append, one flush, whatever the number.

Which units can: those whose changes are all handed to the writer for the
end of the transaction (:meth:`~node.store.Writer.insert_later`,
``event``, ``audit``, ``after_commit``) and that only *read* through
``w.conn``, because the commit runs on another connection, after the unit's
own (read-only) transaction ended. Issuing an alert is such a unit. The
store runs the unit's transaction ``READ ONLY``, so a write slipped into one
fails loudly instead of escaping the group.

How: leader and followers. A thread hands its unit over; if no commit is
in flight it leads: it takes every unit queued, commits them, and wakes
them. Otherwise it waits, and the next leader takes it with the others that
queued meanwhile. Nothing waits on a timer: a unit alone commits at once.
A merged commit that fails (a reused request id, a broken row) is retried
unit by unit, so only the unit at fault sees the error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from node.store import Writer


class GroupCommit:
    """Commits :class:`~node.store.Writer` units of many threads together."""

    def __init__(self, commit: Callable[[list[Writer]], None]) -> None:
        """``commit(units)`` writes ``units`` in one transaction.

        It sets ``seqs`` and ``created_ms`` on each unit, or raises and
        commits nothing.
        """
        self._commit = commit
        self._cond = threading.Condition()
        self._queue: list[Writer] = []
        self._busy = False
        #: merged commits so far, and the units they carried (for tests, metrics)
        self.commits = 0
        self.units = 0

    def commit(self, unit: Writer) -> None:
        """Commit ``unit`` (with whatever else is queued); raise its own error."""
        with self._cond:
            self._queue.append(unit)
            while self._busy and not unit._group_done:
                self._cond.wait()
            if not unit._group_done:
                self._busy = True
                batch, self._queue = self._queue, []
        if not unit._group_done:
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        if unit._group_error is not None:
            raise unit._group_error

    def _run(self, batch: list[Writer]) -> None:
        try:
            self._commit(batch)
            self.commits += 1
            self.units += len(batch)
        except BaseException as exc:
            if len(batch) == 1 or not isinstance(exc, DBAPIError):
                for unit in batch:
                    unit._group_error = exc
            else:  # one unit at fault fails alone
                for unit in batch:
                    try:
                        self._commit([unit])
                        self.commits += 1
                        self.units += 1
                    except BaseException as alone:
                        unit._group_error = alone
        finally:
            for unit in batch:
                unit._group_done = True
