"""What the inbox hands a kind's handler, and what the handler answers.

The contract between the inbox stream (:mod:`node.sharing.inbound`) and the
record kinds: a handler registered for a message kind is given an
:class:`Incoming` (an envelope opened, verified and found permitted by its
treaty, see :mod:`node.sharing.inbound_checks`) and a writer in the inbox's
transaction; it stores the record and answers what it stored
(:class:`Stored`, for the ``node_received`` row), or raises
:class:`Refused` with the precise reason, which the inbox audits and
acknowledges. Kinds import this module, not the stream's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from intelshare.treaty import Treaty, kind_name
from intelshare.v1 import envelope_pb2
from node.storage.store import Writer


class Refused(Exception):
    """A handler's verdict that an envelope must not be stored."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Incoming:
    """An opened envelope that passed the generic checks, as handlers see it."""

    sequence: int
    header: envelope_pb2.Header
    payload: bytes
    envelope: bytes
    envelope_sha256: bytes
    gateway_receipt: bytes
    treaty: Treaty
    received_ms: int
    retain_until_ms: int

    @property
    def kind(self) -> str:
        return kind_name(self.header.kind, self.header.record_kind)

    @property
    def create_ms(self) -> int:
        ts = self.header.create_time
        return ts.seconds * 1000 + ts.nanos // 1_000_000

    @property
    def create_us(self) -> int:
        """When the sender sealed it, in microseconds (its own clock)."""
        ts = self.header.create_time
        return ts.seconds * 1_000_000 + ts.nanos // 1000

    @property
    def expire_ms(self) -> int:
        ts = self.header.expire_time
        return ts.seconds * 1000 + ts.nanos // 1_000_000


@dataclass(frozen=True)
class Stored:
    """What a handler stored, for the ``node_received`` row."""

    alert_id: str | None = None
    case_id: str | None = None
    #: a record of a generic kind (node.sharing.records)
    record_id: str | None = None


Handler = Callable[[Writer, Incoming], Stored]


def parse_payload(payload: bytes) -> dict[str, Any]:
    """A handler's JSON payload as an object; :class:`Refused` (``MALFORMED``) otherwise."""
    try:
        record = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused("MALFORMED", "payload is not UTF-8 JSON") from None
    if not isinstance(record, dict):
        raise Refused("MALFORMED", "payload is not a JSON object")
    return record
