"""Snapshots of a collection and the pages served from them (see the package docstring).

A :class:`Snapshot` holds the records of one request's traversal, oldest
first by ``date_added``, serialized as the node returned them, and a
position. Records become STIX objects only when a page reaches them,
strictly in order: an agency identity or marking definition is emitted
with the first record that refers to it (``seen_shared``), which makes the
sequence of objects a pure function of the records, whatever the page
sizes. Groups converted but not yet fully served are kept (``pending``),
because converting a record again would leave its shared objects out.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stix2.utils import format_datetime

from intelshare.errors import InvalidArgument
from intelshare.interop.kinds import record_objects
from intelshare.interop.stix import ExportContext
from taxii.nodeclients import TaxiiNodeClient
from taxii.sources import Listed, Source, decode, read_records


@dataclass(frozen=True)
class Item:
    """One STIX object of a page, serialized, with what the manifest says of it."""

    id: str
    type: str
    version: str
    date_added_us: int
    json: str


@dataclass(frozen=True)
class Match:
    """The ``match[...]`` filters of a request (empty: everything)."""

    types: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    versions: frozenset[str] = frozenset()  # timestamps; "last"/"first"/"all" are no filter
    spec_versions: frozenset[str] = frozenset()

    def accepts(self, item: Item) -> bool:
        if self.types and item.type not in self.types:
            return False
        if self.ids and item.id not in self.ids:
            return False
        if self.versions and item.version not in self.versions:
            return False
        return not (self.spec_versions and "2.1" not in self.spec_versions)


def us_to_stix(us: int) -> str:
    at = datetime.fromtimestamp(us // 1_000_000, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(us % 1_000_000) // 1000:03d}Z"


def stix_to_us(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 time; :class:`InvalidArgument` if not one."""
    try:
        at = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"{text!r} is not an RFC 3339 time",
            violations={"added_after": "e.g. 2026-12-01T00:00:00.000Z"},
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _version(obj: Any) -> str:
    return str(format_datetime(obj.get("modified") or obj["created"]))


@dataclass
class Snapshot:
    key: str
    owner: str
    request: tuple[Any, ...]
    records: list[Listed]
    ctx: ExportContext
    match: Match
    pos: tuple[int, int] = (0, 0)
    converted_upto: int = 0
    pending: dict[int, list[Item]] = field(default_factory=dict)
    seen_shared: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    expires: float = 0.0

    def _group(self, i: int) -> list[Item]:
        while self.converted_upto <= i:
            n = self.converted_upto
            listed = self.records[n]
            record = record_objects(decode(listed.kind, listed.data), self.ctx)
            objs = [o for o in record.shared if o.id not in self.seen_shared] + record.own
            self.seen_shared.update(o.id for o in record.shared)
            at = listed.date_added_us
            items = [Item(o.id, o.type, _version(o), at, o.serialize()) for o in objs]
            self.pending[n] = [it for it in items if self.match.accepts(it)]
            self.converted_upto += 1
        return self.pending[i]

    def _skip_empty(self, i: int) -> int:
        while i < len(self.records) and not self._group(i):
            i += 1
        return i

    def page(self, limit: int) -> tuple[list[Item], bool]:
        """The next ``limit`` objects at most, and whether more follow."""
        items: list[tuple[Item, int, int]] = []
        i, off = self.pos
        i = self._skip_empty(i) if off == 0 else i
        while i < len(self.records) and len(items) < limit:
            group = self._group(i)
            room = limit - len(items)
            chunk = group[off : off + room]
            items.extend((it, i, off + k) for k, it in enumerate(chunk))
            if off + len(chunk) < len(group):
                off += len(chunk)
                break
            i, off = self._skip_empty(i + 1), 0
        more = i < len(self.records)
        if (
            more
            and items
            and (off > 0 or self.records[i].date_added_us == items[-1][0].date_added_us)
        ):
            # End the page where date_added changes, when the page has such a
            # place: resuming with added_after = the last date_added then
            # misses nothing. (A single date_added with more objects than
            # the limit is split; 'next' still pages through it exactly.)
            last = items[-1][0].date_added_us
            cut = max(
                (k for k in range(1, len(items)) if items[k - 1][0].date_added_us != last),
                default=0,
            )
            if cut:
                _it, i, off = items[cut]
                items = items[:cut]
        self.pos = (i, off)
        for done in [k for k in self.pending if k < i]:
            del self.pending[done]
        return [it for it, _i, _o in items], more


def take_snapshot(
    client: TaxiiNodeClient,
    sources: tuple[Source, ...],
    added_after_us: int | None,
) -> list[Listed]:
    """Records of the collection added or changed after ``added_after_us``, oldest first."""
    return read_records(client, sources, added_after_us)


class Snapshots:
    """Snapshots by ``next`` key, each usable by the token that made it, expiring."""

    def __init__(self, *, ttl: float, max_count: int, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.max_count = max_count
        self.clock = clock
        self._items: OrderedDict[str, Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    def new(
        self,
        *,
        owner: str,
        request: tuple[Any, ...],
        records: list[Listed],
        ctx: ExportContext,
        match: Match,
    ) -> Snapshot:
        return Snapshot(
            key=secrets.token_urlsafe(18),
            owner=owner,
            request=request,
            records=records,
            ctx=ctx,
            match=match,
        )

    def keep(self, snap: Snapshot) -> None:
        with self._lock:
            snap.expires = self.clock() + self.ttl
            self._items[snap.key] = snap
            self._items.move_to_end(snap.key)
            self._expire()
            while len(self._items) > self.max_count:
                self._items.popitem(last=False)

    def drop(self, snap: Snapshot) -> None:
        with self._lock:
            self._items.pop(snap.key, None)

    def get(self, key: str, *, owner: str, request: tuple[Any, ...]) -> Snapshot:
        with self._lock:
            self._expire()
            snap = self._items.get(key)
        if snap is None or snap.owner != owner or snap.request != request:
            # One answer for unknown, expired and someone else's: a 'next'
            # value says nothing about anybody else's traversal.
            raise InvalidArgument(
                "'next' is not valid for this request (unknown, expired, or from other "
                "parameters): start again without it",
                violations={"next": "from the previous page of the same request"},
            )
        return snap

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._items.items() if s.expires <= now]:
            del self._items[key]

    def __len__(self) -> int:
        return len(self._items)


def envelope_json(items: Iterable[Item], *, more: bool, next_key: str | None) -> str:
    """A TAXII envelope, objects spliced in as serialized (no second encoding)."""
    parts = ['{"more": ', "true" if more else "false"]
    if next_key:
        parts.append(f', "next": "{next_key}"')
    parts.append(', "objects": [')
    parts.append(", ".join(it.json for it in items))
    parts.append("]}")
    return "".join(parts)
