"""What every servicer of the officers' API shares.

:class:`KindServicer` authenticates the caller and checks its role before
anything else (nothing about a resource is revealed to a caller who may not
see it), runs mutations once per ``request_id`` (:class:`Idempotent`), and
checks feed cursors the same way for every ``Watch*`` method. The one
exception tree of :mod:`intelshare.errors` is translated into gRPC status
with ``ErrorInfo`` once for every method, by the server's
:class:`~intelshare.grpc_errors.TranslateErrors` interceptor.

Idempotency: a mutation runs in one transaction together with its
idempotency record, so a retry with the same ``request_id`` returns the
stored response, a ``request_id`` reused for a different request is
``REQUEST_ID_REUSED``, and an error leaves neither the change nor a record
behind (the retry runs again, as it should).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy.exc import IntegrityError

from intelshare import errors
from intelshare.wakeup import WakeupHub
from node.api.feeds import FeedLimiter
from node.storage.officers import Officer, OfficerRegistry, Permission
from node.storage.store import Store, Writer, is_unique_violation, request_fingerprint

_M = TypeVar("_M", bound=Message)
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: Events one feed read takes from the log at most.
WATCH_BATCH = 200


class Idempotent:
    """Runs mutations exactly once per request_id (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(
        self,
        officer: Officer,
        method: str,
        request: Message,
        request_id: str,
        response_type: type[_M],
        operation: Callable[[Writer], _M],
    ) -> _M:
        if request_id and not _REQUEST_ID.fullmatch(request_id):
            raise errors.RequestIdInvalid(
                "request_id must be 1-64 letters, digits, '-' or '_' (a UUID is best)",
                violations={"request_id": "1-64 characters of [A-Za-z0-9_-]"},
            )
        if not request_id:
            with self.store.write() as w:
                return operation(w)
        copy = type(request)()
        copy.CopyFrom(request)
        copy.ClearField("request_id")
        fingerprint = request_fingerprint(method, copy.SerializeToString(deterministic=True))
        try:
            # The look-up runs in the mutation's own transaction: one connection
            # and transaction per call, not one to look and another to write.
            with self.store.write() as w:
                stored = self.store.stored_response(
                    request_id,
                    officer_id=officer.officer_id,
                    method=method,
                    fingerprint=fingerprint,
                    conn=w.conn,
                )
                if stored is not None:
                    return response_type.FromString(stored)
                result = operation(w)
                self.store.save_response(
                    w,
                    request_id,
                    officer_id=officer.officer_id,
                    method=method,
                    fingerprint=fingerprint,
                    response=result.SerializeToString(deterministic=True),
                )
        except IntegrityError as exc:
            # A concurrent retry with the same id won the race: answer as it did.
            if not is_unique_violation(exc):
                raise
            stored = self.store.stored_response(
                request_id, officer_id=officer.officer_id, method=method, fingerprint=fingerprint
            )
            if stored is None:
                raise
            return response_type.FromString(stored)
        return result


class KindServicer:
    """Base of the servicers: the officer registry, the store, the wake-up hub."""

    def __init__(
        self,
        *,
        officers: OfficerRegistry,
        store: Store,
        hub: WakeupHub,
        heartbeat_seconds: float,
        feeds: FeedLimiter | None = None,
    ) -> None:
        self.officers = officers
        self.store = store
        self.hub = hub
        self.heartbeat_seconds = heartbeat_seconds
        self.idempotent = Idempotent(store)
        #: shared by every servicer of a node (node.server); a servicer made alone gets its own
        self.feeds = feeds or FeedLimiter(per_officer=8, total=64)

    def mutate(
        self,
        context: grpc.ServicerContext,
        permission: Permission,
        method: str,
        request: Message,
        response_type: type[_M],
        operation: Callable[[Writer, Officer], _M],
    ) -> _M:
        """Authenticate, then run ``operation`` once for the request's ``request_id``."""
        officer = self.officers.require(context, permission)
        request_id: str = getattr(request, "request_id")  # noqa: B009  (every mutation has one)
        return self.idempotent.run(
            officer, method, request, request_id, response_type, lambda w: operation(w, officer)
        )

    def check_cursor(self, after_cursor: int) -> int:
        """A feed's resume cursor: not negative, not beyond the newest event."""
        if after_cursor < 0:
            raise errors.EventCursorInvalid(
                "after_cursor must not be negative", violations={"after_cursor": ">= 0"}
            )
        head = self.store.head_seq()
        if after_cursor > head:
            raise errors.EventCursorInvalid(
                f"after_cursor {after_cursor} is beyond the newest event {head}",
                violations={"after_cursor": f"must be at most {head}"},
            )
        return int(after_cursor)
