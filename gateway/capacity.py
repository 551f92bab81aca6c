"""What one agency may hold of the gateway: inbox streams, threads, request bytes.

gRPC's synchronous server runs every call on a worker thread, and a
server-streaming call holds its thread for as long as the stream is open.
With one pool for everything, an agency that opens streams (its certificate
is all it needs) takes every thread, and submissions of every other agency
wait behind them. So:

* **Separate pools.** Inbox streams run on a pool of their own
  (``max_inbox_streams`` threads and :data:`STREAM_SPARE_THREADS` spare), the
  long-lived health watches and reflection streams on a small one
  (:data:`AUX_STREAM_THREADS`); unary calls (submissions, acknowledgements,
  directory and treaties) keep ``max_workers`` threads that no stream ever
  takes. A flood of stream calls queues in the stream pool, never in front
  of a submission.
* **Streams per agency** (:class:`StreamLimiter`): at most
  ``max_inbox_streams_per_agency`` at once. A new stream replaces the
  agency's oldest, which ends with ``RESOURCE_EXHAUSTED`` / ``STREAM_REPLACED``:
  a node that reconnects after a network cut must not wait for its stale
  stream to time out. The gateway as a whole holds at most
  ``max_inbox_streams``; beyond that a stream of an agency that holds none
  is refused with ``RESOURCE_EXHAUSTED`` / ``TOO_MANY_STREAMS``.
* **Request sizes** are checked by the method handlers, not by the gRPC
  runtime: the server accepts messages up to ``max_request_bytes`` and a
  request above its method's limit is answered ``PAYLOAD_TOO_LARGE`` with
  ErrorInfo, before it is even parsed
  (:func:`intelshare.grpc_server.size_checked`, shared with the node).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc

from intelshare import errors

log = logging.getLogger(__name__)

#: Threads of the inbox stream pool beyond ``max_inbox_streams``: a new call
#: always finds a thread to be refused or to replace a stream on, while the
#: streams it replaced are still on their way out.
STREAM_SPARE_THREADS = 16
#: Threads for health watches and reflection streams (diagnostics only).
AUX_STREAM_THREADS = 4
#: How long a replaced stream may take to end by itself (it is woken at once)
#: before its call is cancelled: one blocked in a send to a client that does
#: not read never sees the wake-up.
REPLACED_CANCEL_SECONDS = 1.0
#: The largest sequence number a queue can allocate (a signed 64-bit column).
MAX_SEQUENCE = (1 << 63) - 1


@dataclass(eq=False)
class StreamSlot:
    """One open inbox stream, as the limiter counts it."""

    agency: str
    number: int
    #: cancels the call (used when a replaced stream does not end by itself)
    cancel: Callable[[], None]
    #: wakes the stream if it waits for new entries
    wake: Callable[[], None]
    replaced: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)


class StreamLimiter:
    """Counts open inbox streams per agency and in total; see the module docstring.

    A slot counts until its stream has ended (:meth:`close`), replaced or
    not, since until then it holds a thread. An agency's replaced streams
    still on their way out count against its limit too: an agency that
    reconnects in a tight loop, never reading, cannot pile them up.
    """

    def __init__(
        self,
        *,
        per_agency: int,
        total: int,
        later: Callable[[float, Callable[[], None]], bool],
        on_replaced: Callable[[str], None] | None = None,
    ) -> None:
        self.per_agency = per_agency
        self.total = total
        self._later = later
        self._on_replaced = on_replaced
        self._lock = threading.Lock()
        self._open: dict[str, list[StreamSlot]] = {}
        self._count = 0
        self._numbers = itertools.count(1)

    def count(self, agency: str | None = None) -> int:
        """Open slots (replaced ones still ending included), of ``agency`` or all."""
        with self._lock:
            if agency is None:
                return self._count
            return len(self._open.get(agency, ()))

    def precheck(self, agency: str) -> None:
        """Refuse at once, before any database work, what :meth:`open` would refuse."""
        with self._lock:
            self._refusal(agency)

    def _refusal(self, agency: str) -> None:
        mine = self._open.get(agency, [])
        live = [s for s in mine if not s.replaced.is_set()]
        if len(mine) - len(live) >= self.per_agency:
            raise errors.TooManyStreams(
                f"agency {agency} has {len(mine) - len(live)} replaced inbox streams still "
                "ending; retry in a moment",
                metadata={"scope": "agency", "limit": str(self.per_agency)},
            )
        if not live and self._count >= self.total:
            raise errors.TooManyStreams(
                f"the gateway holds its limit of {self.total} inbox streams; retry later",
                metadata={"scope": "gateway", "limit": str(self.total)},
            )

    def open(
        self, agency: str, *, cancel: Callable[[], None], wake: Callable[[], None]
    ) -> StreamSlot:
        """A slot for a new stream of ``agency``, replacing its oldest if need be.

        An agency at its limit, or holding a stream while the gateway is at
        its total, has its oldest stream replaced, so a reconnect always gets
        through; an agency that holds none is refused when the gateway is full.
        """
        replaced: StreamSlot | None = None
        with self._lock:
            self._refusal(agency)
            mine = self._open.setdefault(agency, [])
            live = [s for s in mine if not s.replaced.is_set()]
            if len(live) >= self.per_agency or (live and self._count >= self.total):
                replaced = live[0]
                replaced.replaced.set()
            slot = StreamSlot(agency, next(self._numbers), cancel, wake)
            mine.append(slot)
            self._count += 1
        if replaced is not None:
            self._replace(replaced)
        return slot

    def _replace(self, slot: StreamSlot) -> None:
        log.info("inbox stream %d of %s replaced by a newer one", slot.number, slot.agency)
        if self._on_replaced is not None:
            self._on_replaced(slot.agency)
        slot.wake()

        def cancel_if_open() -> None:
            if not slot.closed.is_set():
                log.warning(
                    "replaced inbox stream %d of %s did not end; cancelling it",
                    slot.number,
                    slot.agency,
                )
                slot.cancel()

        if not self._later(REPLACED_CANCEL_SECONDS, cancel_if_open):
            slot.cancel()

    def close(self, slot: StreamSlot) -> None:
        """The stream of ``slot`` ended (however): its thread is free again."""
        with self._lock:
            if slot.closed.is_set():
                return
            slot.closed.set()
            mine = self._open.get(slot.agency, [])
            if slot in mine:
                mine.remove(slot)
                self._count -= 1
            if not mine:
                self._open.pop(slot.agency, None)


def stream_replaced(slot: StreamSlot, limit: int) -> errors.StreamReplaced:
    return errors.StreamReplaced(
        f"a newer inbox stream of {slot.agency} replaced this one "
        f"(at most {limit} per agency); the newer one carries on",
        metadata={"limit": str(limit)},
    )


def check_sequence(value: int, name: str) -> None:
    """Refuse (``SEQUENCE_OUT_OF_RANGE``) a sequence no queue can ever allocate."""
    if value > MAX_SEQUENCE:
        raise errors.SequenceOutOfRange(
            f"{name} {value} is above {MAX_SEQUENCE}, the largest sequence a queue allocates",
            violations={name: f"must be at most {MAX_SEQUENCE}"},
            metadata={"max_sequence": str(MAX_SEQUENCE)},
        )


# --- request sizes and thread pools ----------------------------------------------


def on_pool(
    handler: grpc.RpcMethodHandler[Any, Any], pool: ThreadPoolExecutor
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` run on ``pool`` instead of the server's threads (any arity)."""
    if handler.request_streaming and handler.response_streaming:
        inner_ss = handler.stream_stream
        assert inner_ss is not None

        def ss(requests: Any, context: grpc.ServicerContext) -> Any:
            return inner_ss(requests, context)

        ss.experimental_thread_pool = pool  # type: ignore[attr-defined]
        return grpc.stream_stream_rpc_method_handler(
            ss,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.response_streaming:
        inner_us = handler.unary_stream
        assert inner_us is not None

        def us(request: Any, context: grpc.ServicerContext) -> Any:
            return inner_us(request, context)

        us.experimental_thread_pool = pool  # type: ignore[attr-defined]
        return grpc.unary_stream_rpc_method_handler(
            us,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    raise ValueError("on_pool is for streaming methods")


__all__ = [
    "AUX_STREAM_THREADS",
    "MAX_SEQUENCE",
    "STREAM_SPARE_THREADS",
    "StreamLimiter",
    "StreamSlot",
    "check_sequence",
    "on_pool",
    "stream_replaced",
]
