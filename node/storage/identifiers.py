"""The identifier index: every identifier of every record the node holds, one row each.

Several kinds feed one index (alerts, case entries, detentions,
recordations, risk hits), and record kinds must not import each other, so
the index table and its writer live here, below every kind: a kind (or the
correlation follower of :mod:`node.kinds.correlation`, for the kinds whose
modules do not call it themselves) hands over a record's identifier keys
(:mod:`intelshare.identifiers`, canonical, so two spellings of one
container are one key) and this module

* replaces the record's rows in ``node_identifiers`` (one per key and role),
* finds the records already held that share one of the *newly given*
  keys and writes a ``link.found`` event for each, in the same
  transaction: the event names the *older* record (``alert_id``,
  ``case_id``/``entry_id`` or ``record_id``), so the officers who hold it
  see the link in its feed, and the newer record in ``record_id`` when the
  older one is not a generic record. At most :data:`MAX_LINK_EVENTS` per
  record, the most recent ones: a container named in a thousand records is
  linked to the twenty last, the ones officers are working on, and finding
  them reads twenty rows per key through ``ix_node_identifiers_key_time``
  however many records share the key (reading every holder made indexing
  cost grow with the index);
* counts every change (``node_counters.identifiers_changes``), which is how
  screening knows its watch list must be built again; a caller that
  indexes many records in one transaction counts once (``count=False``,
  then :func:`bump`).

Everything here stays on the node: no sharing module reads this table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, insert, select, tuple_, union_all, update

from node.storage import tables as t
from node.storage.store import Writer, now_ms

#: A record's ``link.found`` events at most (a container in a thousand records is one link).
MAX_LINK_EVENTS = 20
CHANGES = "identifiers_changes"
CURSOR = "identifiers_cursor"

#: Generic record kinds whose events carry ``record_id`` (node.sharing.records).
_GENERIC = ("recordation", "risk_hit", "detention_report", "risk_profile")


@dataclass(frozen=True)
class Holder:
    """The record whose identifiers are indexed."""

    record_kind: str
    record_id: str
    record_name: str
    direction: str
    origin_agency: str
    #: a case entry's case id (who may see it is decided per case)
    scope: str | None = None


def bump(w: Writer) -> None:
    """Count a change of the index (screening rebuilds its watch list after one)."""
    w.conn.execute(
        update(t.counters).where(t.counters.c.name == CHANGES).values(value=t.counters.c.value + 1)
    )


def changes(conn: Connection) -> int:
    value = conn.execute(select(t.counters.c.value).where(t.counters.c.name == CHANGES)).scalar()
    return int(value or 0)


def replace(
    w: Writer, holder: Holder, entries: Iterable[tuple[str, str]], *, count: bool = True
) -> bool:
    """Index ``holder`` under ``entries`` ((role, key) pairs) instead of what it had.

    Writes a ``link.found`` event for each other record (the most recent,
    capped) that shares a key *newly* given to this one. True if the
    record's rows changed; with ``count=False`` the caller counts the
    change (:func:`bump`) itself.
    """
    i = t.identifiers
    wanted = {(role, key[:200]) for role, key in entries if key}
    old = {
        (r.role, r.key)
        for r in w.conn.execute(
            select(i.c.role, i.c.key).where(
                i.c.record_kind == holder.record_kind, i.c.record_id == holder.record_id
            )
        )
    }
    if wanted == old:
        return False
    if old:
        w.conn.execute(
            delete(i).where(
                i.c.record_kind == holder.record_kind, i.c.record_id == holder.record_id
            )
        )
    at = now_ms()
    if wanted:
        w.conn.execute(
            insert(i),
            [
                {
                    "key": key,
                    "record_kind": holder.record_kind,
                    "record_id": holder.record_id,
                    "role": role,
                    "record_name": holder.record_name,
                    "direction": holder.direction,
                    "origin_agency": holder.origin_agency,
                    "scope": holder.scope,
                    "create_ms": at,
                }
                for role, key in sorted(wanted)
            ],
        )
    if count:
        bump(w)
    new_keys = sorted({key for _role, key in wanted} - {key for _role, key in old})
    for older in _sharing(w.conn, holder, new_keys):
        _link_event(w, older, holder)
    return True


def _sharing(conn: Connection, holder: Holder, keys: Sequence[str]) -> list[Row[Any]]:
    """The newest other records holding one of ``keys`` (MAX_LINK_EVENTS at most), oldest first.

    One statement: per key, the newest distinct records, read backwards
    along ``ix_node_identifiers_key_time`` and stopped after
    MAX_LINK_EVENTS (a record holds all its rows from one ``create_ms``);
    then merged here.
    """
    if not keys:
        return []
    i = t.identifiers
    columns = (i.c.create_ms, i.c.record_kind, i.c.record_id, i.c.scope)
    per_key = [
        select(*columns)
        .distinct()
        .where(
            i.c.key == key,
            ~and_(i.c.record_kind == holder.record_kind, i.c.record_id == holder.record_id),
        )
        .order_by(*(c.desc() for c in columns[:3]))
        .limit(MAX_LINK_EVENTS)
        .subquery()
        for key in keys
    ]
    parts = [select(*sub.c) for sub in per_key]
    rows = conn.execute(parts[0] if len(parts) == 1 else union_all(*parts)).all()
    newest: dict[tuple[str, str], Row[Any]] = {}
    for row in sorted(rows, key=lambda r: (r.create_ms, r.record_kind, r.record_id), reverse=True):
        newest.setdefault((row.record_kind, row.record_id), row)
        if len(newest) == MAX_LINK_EVENTS:
            break
    return sorted(newest.values(), key=lambda r: (r.create_ms, r.record_kind, r.record_id))


def _link_event(w: Writer, older: Row[Any], newer: Holder) -> None:
    fields: dict[str, str | None] = {}
    if older.record_kind == "alert":
        fields["alert_id"] = older.record_id
    elif older.record_kind == "case_entry":
        fields["case_id"] = older.scope
        fields["entry_id"] = older.record_id
    elif older.record_kind in _GENERIC:
        fields["record_id"] = older.record_id
    if "record_id" not in fields and newer.record_kind in _GENERIC:
        fields["record_id"] = newer.record_id
    w.event("link.found", **fields)


def remove(w: Writer, record_kind: str, record_ids: Sequence[str], *, count: bool = True) -> bool:
    """Forget records (purged, deleted); True if the index held any of them."""
    if not record_ids:
        return False
    i = t.identifiers
    gone = w.conn.execute(
        delete(i).where(i.c.record_kind == record_kind, i.c.record_id.in_(list(record_ids)))
    )
    if gone.rowcount and count:
        bump(w)
    return bool(gone.rowcount)


def remove_scope(w: Writer, record_kind: str, scope: str, *, count: bool = True) -> bool:
    """Forget every record of one scope (a purged case's entries); True if any was held."""
    i = t.identifiers
    gone = w.conn.execute(delete(i).where(i.c.record_kind == record_kind, i.c.scope == scope))
    if gone.rowcount and count:
        bump(w)
    return bool(gone.rowcount)


def keys_of(conn: Connection, record_kind: str, record_id: str) -> list[str]:
    i = t.identifiers
    return sorted(
        set(
            conn.execute(
                select(i.c.key).where(i.c.record_kind == record_kind, i.c.record_id == record_id)
            ).scalars()
        )
    )


def holder_of_name(conn: Connection, record_name: str) -> tuple[str, str] | None:
    """(record_kind, record_id) of an indexed record by its name, if it is indexed."""
    i = t.identifiers
    row = conn.execute(
        select(i.c.record_kind, i.c.record_id).where(i.c.record_name == record_name).limit(1)
    ).first()
    return None if row is None else (row.record_kind, row.record_id)


def related(
    conn: Connection,
    keys: Sequence[str],
    *,
    exclude: tuple[str, str] | None = None,
    after: tuple[int, str, str, str, str] | None = None,
    limit: int = 50,
) -> list[Row[Any]]:
    """Rows of the records holding one of ``keys``, oldest first, keyset-paged."""
    if not keys:
        return []
    i = t.identifiers
    query = select(i).where(i.c.key.in_(list(keys)))
    if exclude is not None:
        query = query.where(~and_(i.c.record_kind == exclude[0], i.c.record_id == exclude[1]))
    order = (i.c.create_ms, i.c.record_kind, i.c.record_id, i.c.key, i.c.role)
    if after is not None:
        query = query.where(tuple_(*order) > tuple_(*after))
    return list(conn.execute(query.order_by(*order).limit(limit)).all())
