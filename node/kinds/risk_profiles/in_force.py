"""What is in force: one matcher over every profile in force and the watch list, swapped whole.

:class:`InForce` compares, before each batch of declarations, a
fingerprint of what its snapshot was built from (the profiles' and
recordations' rows, the identifier index's change counter) and the next
validity boundary, and builds a new :class:`Snapshot` when anything moved;
a screening in progress keeps the snapshot it started with.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, case, func, select

from intelshare import errors
from node.ipr import views
from node.kinds.risk_profiles.forms import (
    ACTION_BY_NAME,
    DAY_MS,
    PROFILE_KIND,
    profile_name,
    timestamp_of,
)
from node.schema.alert import ts_to_ms
from node.sharing.record_kind import (
    ACTIVE,
)
from node.storage import identifiers as index
from node.storage import tables as t
from node.storage.store import Store, now_ms
from node.targeting.criteria import parse_criteria
from node.targeting.matcher import IndexedMatcher, Profile


@dataclass(frozen=True)
class ProfileInfo:
    """What a screening answer says about a profile that matched."""

    record_id: str
    name: str
    title: str
    action: int
    origin_agency: str
    direction: str
    treaty_id: str
    treaty_version: int


@dataclass(frozen=True)
class Snapshot:
    """One immutable matcher with what it was built from."""

    matcher: IndexedMatcher
    profiles: dict[str, ProfileInfo]
    fingerprint: tuple[Any, ...]
    #: the next validity boundary (a profile starts or ends, a watched record expires)
    valid_until_ms: int
    built_ms: int
    watched_keys: int = 0


_IN_FORCE_RECORDATION = ("granted", "extended")
#: a recordation's search keys watched (node_recordation_keys.key_type), and the prefix of
#: their watch key: a declaration's GTINs, HS subheading and brand are looked up under these
#: (node.targeting.declarations.Declaration.identifier_keys)
_RECORDATION_WATCH: Final = {views.GTIN: "gtin", views.HS_CODE: "hs", views.RIGHT_NAME: "right"}


@dataclass
class InForce:
    """The matcher over every profile in force and the watch list; rebuilt when they change."""

    store: Store
    _snapshot: Snapshot | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: parsed criteria by (record id, revision): a rebuild parses only what changed
    _parsed: dict[tuple[str, int], Profile | None] = field(default_factory=dict)
    builds: int = 0

    def _fingerprint(self, conn: Connection) -> tuple[Any, ...]:
        r = t.records
        rows = conn.execute(
            select(
                r.c.kind,
                func.count(),
                func.max(r.c.update_ms),
                func.sum(r.c.revision),
                func.sum(case((r.c.state == ACTIVE, 1), else_=0)),
            )
            .where(r.c.kind.in_([PROFILE_KIND, "recordation"]))
            .group_by(r.c.kind)
            .order_by(r.c.kind)
        ).all()
        return (tuple(tuple(row) for row in rows), index.changes(conn))

    def current(self) -> Snapshot:
        """The snapshot for now: the cached one if nothing moved, else a new one."""
        at = now_ms()
        with self.store.engine.connect() as conn:
            fingerprint = self._fingerprint(conn)
            snap = self._snapshot
            if snap is not None and snap.fingerprint == fingerprint and at < snap.valid_until_ms:
                return snap
            with self._lock:
                snap = self._snapshot
                if (
                    snap is not None
                    and snap.fingerprint == fingerprint
                    and at < snap.valid_until_ms
                ):
                    return snap
                snap = self._build(conn, fingerprint, at)
                self._snapshot = snap
                self.builds += 1
                return snap

    def invalidate(self) -> None:
        self._snapshot = None

    def _build(self, conn: Connection, fingerprint: tuple[Any, ...], at: int) -> Snapshot:
        r = t.records
        boundary = at + DAY_MS
        profiles: list[Profile] = []
        infos: dict[str, ProfileInfo] = {}
        parsed: dict[tuple[str, int], Profile | None] = {}
        for row in conn.execute(
            select(
                r.c.record_id,
                r.c.revision,
                r.c.record,
                r.c.origin_agency,
                r.c.direction,
                r.c.treaty_id,
                r.c.treaty_version,
            ).where(r.c.kind == PROFILE_KIND, r.c.state == ACTIVE)
        ):
            record = json.loads(row.record)
            start = _ms(record.get("valid_from"))
            end = _ms(record.get("valid_until"))
            if end is not None and end <= at:
                continue
            if start is not None and start > at:
                boundary = min(boundary, start)
                continue
            if end is not None:
                boundary = min(boundary, end)
            key = (row.record_id, row.revision)
            profile = self._parsed.get(key) if key in self._parsed else _profile(row, record)
            parsed[key] = profile
            if profile is None:
                continue  # the treaty kept the criteria back, or they do not parse
            profiles.append(profile)
            infos[row.record_id] = ProfileInfo(
                record_id=row.record_id,
                name=profile_name(row.record_id),
                title=str(record.get("title", "")),
                action=ACTION_BY_NAME.get(str(record.get("action", "")), 0),
                origin_agency=row.origin_agency,
                direction=row.direction,
                treaty_id=row.treaty_id,
                treaty_version=row.treaty_version,
            )
        self._parsed = parsed
        watch: dict[str, list[str]] = {}
        a, i = t.alerts, t.identifiers
        for key, alert_id, expire in conn.execute(
            select(i.c.key, a.c.alert_id, a.c.expire_ms)
            .join(a, a.c.alert_id == i.c.record_id)
            .where(i.c.record_kind == "alert", a.c.state == "active", a.c.expire_ms > at)
        ):
            watch.setdefault(key, []).append(f"alerts/{alert_id}")
            boundary = min(boundary, int(expire))
        rc, rk = t.recordations, t.recordation_keys
        for key_type, key, recordation_id, expire in conn.execute(
            select(rk.c.key_type, rk.c.key, rc.c.recordation_id, rc.c.expire_ms)
            .join(rc, rc.c.record_id == rk.c.record_id)
            .where(
                rk.c.key_type.in_(_RECORDATION_WATCH),
                rc.c.state.in_(_IN_FORCE_RECORDATION),
                rc.c.expire_ms > at,
            )
        ):
            watch.setdefault(f"{_RECORDATION_WATCH[key_type]}:{key}", []).append(
                f"recordations/{recordation_id}"
            )
            boundary = min(boundary, int(expire))
        return Snapshot(
            matcher=IndexedMatcher(profiles, {k: sorted(set(v)) for k, v in watch.items()}),
            profiles=infos,
            fingerprint=fingerprint,
            valid_until_ms=boundary,
            built_ms=at,
            watched_keys=len(watch),
        )


def _ms(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return ts_to_ms(timestamp_of(value, "time"))
    except errors.Malformed:
        return None


def _profile(row: Any, record: Mapping[str, Any]) -> Profile | None:
    data = record.get("criteria")
    if not isinstance(data, Mapping):
        return None
    try:
        return Profile(row.record_id, parse_criteria(data))
    except errors.InvalidArgument:
        return None
