"""Group commit: concurrent calls share one run of a batch function.

The gateway's store accepts concurrent submissions in shared transactions
(see :meth:`gateway.store.GatewayStore.accept`): every transaction takes the
audit log's state lock, so submissions that would queue for it one by one go
in together instead, under one lock and one signed tree head. The machinery
here knows nothing of databases: it batches calls and hands each caller its
own outcome.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Waiter(Generic[T, R]):
    __slots__ = ("done", "item", "lead", "outcome")

    #: set when the caller may go on; only a caller that queued has one
    done: threading.Event

    def __init__(self, item: T) -> None:
        self.item = item
        self.lead = False
        self.outcome: R | Exception | None = None


class GroupCommit(Generic[T, R]):
    """Run concurrent calls of ``run`` through ``run_many``, one batch at a time.

    A caller that finds no batch running runs one at once, made of what is
    queued (itself first): a lone caller never waits for company. Callers
    arriving meanwhile queue up; when the batch ends, the first of them runs
    the next batch, of everything queued by then (at most ``max_group``), and
    so on. Each caller gets its own outcome, or its own exception raised.
    """

    def __init__(
        self, run_many: Callable[[list[T]], Sequence[R | Exception]], *, max_group: int
    ) -> None:
        self._run_many = run_many
        self._max = max(1, max_group)
        self._lock = threading.Lock()
        self._queue: deque[_Waiter[T, R]] = deque()
        self._running = False

    def __call__(self, item: T) -> R:
        me: _Waiter[T, R] = _Waiter(item)
        with self._lock:
            alone = not self._running
            if alone:  # nothing running, so nothing queued: a batch of one
                self._running = True
            else:
                me.done = threading.Event()
                self._queue.append(me)
        if alone:
            batch = [me]
        else:
            me.done.wait()
            if not me.lead:
                return self._result(me)
            with self._lock:  # ``me`` is at the head of the queue
                batch = [self._queue.popleft() for _ in range(min(self._max, len(self._queue)))]
        try:
            outcomes: Sequence[R | Exception] = self._run_many([w.item for w in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError("a batch returned the wrong number of outcomes")
        except Exception as exc:
            outcomes = [exc] * len(batch)
        except BaseException:
            for waiter in batch:
                if waiter is not me:
                    waiter.outcome = RuntimeError("the batch was interrupted")
                    waiter.done.set()
            raise
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].lead = True
                    self._queue[0].done.set()
                else:
                    self._running = False
        for waiter, outcome in zip(batch, outcomes, strict=True):
            waiter.outcome = outcome
            if waiter is not me:
                waiter.done.set()
        return self._result(me)

    @staticmethod
    def _result(waiter: _Waiter[T, R]) -> R:
        outcome = waiter.outcome
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[return-value]
