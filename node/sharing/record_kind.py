"""A generic record kind's declaration, and a record as this node holds it.

A :class:`RecordKind` is what a kind declares: its name (the treaty kind),
its resource collection, its protobuf message, its JSON form both ways, its
validation, its data categories and expiry, and optionally what it does
when a record is stored or withdrawn. The engine
(:class:`~node.sharing.records.Records`) does everything else and answers
with a :class:`StoredRecord`: the message with what the engine knows of it
(direction, origin, treaty, marking, state, revision, deliveries).

A record's name is ``{collection}/{record_id}`` (:meth:`RecordKind.record_name`,
:meth:`RecordKind.parse_name`). A record is ``ISSUED`` here or ``RECEIVED``
from a partner; it is ``ACTIVE``, or ``WITHDRAWN`` once its issuer withdrew it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from intelshare import errors
from node.storage.store import Writer

ISSUED = "issued"
RECEIVED = "received"
ACTIVE = "active"
WITHDRAWN = "withdrawn"

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class RecordKind(Generic[M]):
    """What a kind declares: everything else is the engine's.

    ``to_record`` gives the full JSON form (what the issuer keeps and
    redaction works on); ``from_record`` parses a stored or received JSON
    form back into the message and raises
    :class:`~intelshare.errors.Malformed` for what is not one; ``validate``
    checks an officer's new or changed record (``InvalidArgument`` with
    violations named by field path); ``categories`` and ``expire_ms`` give
    the header's data categories and the record's end of validity.
    """

    name: str
    collection: str
    message: type[M]
    to_record: Callable[[M], dict[str, Any]]
    from_record: Callable[[Mapping[str, Any]], M]
    validate: Callable[[M], None]
    categories: Callable[[M], list[str]]
    expire_ms: Callable[[M], int]
    #: told of every record stored or changed here, issued or received
    on_stored: Callable[[Writer, StoredRecord[M]], None] | None = None
    #: told when the issuer withdraws a record received here: (writer, record id, issuer)
    on_withdrawn: Callable[[Writer, str, str], None] | None = None

    def record_name(self, record_id: str) -> str:
        return f"{self.collection}/{record_id}"

    def parse_name(self, name: str, field: str = "name") -> str:
        prefix = f"{self.collection}/"
        record_id = name[len(prefix) :] if name.startswith(prefix) else ""
        if not record_id or "/" in record_id or len(record_id) > 64:
            raise errors.NameInvalid(
                f"{field} must look like {prefix}{{id}}, got {name!r}",
                violations={field: f"expected {prefix}{{id}}"},
            )
        return record_id


@dataclass(frozen=True)
class Delivery:
    """What the issuer knows of one recipient of a record."""

    agency_id: str
    treaty_id: str
    treaty_version: int
    view_id: str
    delivered_ms: int | None
    failure: str | None


@dataclass(frozen=True)
class StoredRecord(Generic[M]):
    """A record as this node holds it, with what the engine knows about it."""

    name: str
    record_id: str
    kind: str
    message: M
    direction: str
    origin_agency: str
    treaty_id: str
    treaty_version: int
    categories: list[str]
    handling: int
    tlp: int
    state: str
    revision: int
    create_ms: int
    update_ms: int
    expire_ms: int
    revoke_reason: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
