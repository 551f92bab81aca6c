"""The console's only way to the node: its gRPC API, with the officer's token.

Unary calls go through :class:`console.node_client.ConsoleClient` (one TLS
channel per signed-in session, bearer token in every call, failures raised as
the project's exceptions) on Starlette's worker threads, so a slow node never
blocks the event loop.

Watch streams (``WatchAlerts`` / ``WatchCase`` / ``WatchDetentions``) are read by a thread of their
own each (a long-lived stream must not hold one of the shared workers) and
handed to the event loop through a queue; cancelling the call from the loop
ends the thread. See :mod:`console.live` for how they become Server-Sent
Events.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from console.config import ConsoleConfig
from console.node_client import ConsoleClient
from intelshare.errors import ConfigError, IntelshareError
from intelshare.grpc_errors import follow
from intelshare.v1 import alert_service_pb2, case_service_pb2, ipr_service_pb2

_R = TypeVar("_R")


def open_client(config: ConsoleConfig, token: str) -> ConsoleClient:
    """A connection to the node that authenticates as the officer holding ``token``."""
    try:
        ca_pem = Path(config.node_ca).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read console.node_ca {config.node_ca}: {exc.strerror}") from None
    return ConsoleClient(
        config.node,
        ca_pem=ca_pem,
        server_name=config.node_server_name,
        token=token,
        timeout=config.node_timeout_seconds,
    )


async def call(fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
    """Run one blocking client call on a worker thread."""
    return await run_in_threadpool(fn, *args, **kwargs)


@dataclass
class StreamEnd:
    """The upstream stream ended; ``error`` says why when it failed."""

    error: IntelshareError | None = None


class Upstream:
    """One watch stream on a thread of its own, feeding ``(tag, item)`` into ``queue``."""

    def __init__(self, call: Any, queue: asyncio.Queue[tuple[str, Any]], tag: str = "") -> None:
        self._call = call
        self._loop = asyncio.get_running_loop()
        self.queue = queue
        self.tag = tag
        self._thread = threading.Thread(target=self._pump, name="console-watch", daemon=True)
        self._thread.start()

    @classmethod
    def alerts(
        cls,
        client: ConsoleClient,
        after: int,
        queue: asyncio.Queue[tuple[str, Any]],
        tag: str = "a",
        *,
        links: bool = False,
    ) -> Upstream:
        """``WatchAlerts``; with ``links``, also the ``link.found`` events naming an alert."""
        request = alert_service_pb2.WatchAlertsRequest(after_cursor=after, include_links=links)
        return cls(client.stub.WatchAlerts(request, metadata=client.metadata), queue, tag)

    @classmethod
    def cases(
        cls,
        client: ConsoleClient,
        after: int,
        queue: asyncio.Queue[tuple[str, Any]],
        tag: str = "c",
        case: str = "",
    ) -> Upstream:
        request = case_service_pb2.WatchCaseRequest(name=case, after_cursor=after)
        return cls(client.cases.WatchCase(request, metadata=client.metadata), queue, tag)

    @classmethod
    def detentions(
        cls,
        client: ConsoleClient,
        after: int,
        queue: asyncio.Queue[tuple[str, Any]],
        tag: str = "d",
    ) -> Upstream:
        request = ipr_service_pb2.WatchDetentionsRequest(after_cursor=after)
        return cls(client.ipr.WatchDetentions(request, metadata=client.metadata), queue, tag)

    def _put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, (self.tag, item))
        except RuntimeError:  # the loop is gone (shutdown): nobody is listening
            self._call.cancel()

    def _pump(self) -> None:
        end = StreamEnd()
        try:
            # follow: a cancelled call (cancel(), or _put once the loop is gone) ends quietly.
            for item in follow(self._call):
                self._put(item)
        except IntelshareError as exc:
            end = StreamEnd(exc)
        self._put(end)

    def cancel(self) -> None:
        self._call.cancel()
