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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    delete,
    insert,
    select,
    tuple_,
    update,
)

from intelshare.db import Statement
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
    return replace_many(w, [(holder, entries)], count=count)


#: (create_ms, record_kind, record_id, scope) of a record holding a key; newest is greatest
_Sharer = tuple[int, str, str, str | None]


def replace_many(
    w: Writer,
    items: Sequence[tuple[Holder, Iterable[tuple[str, str]]]],
    *,
    count: bool = True,
) -> bool:
    """:func:`replace` for several records, in a few statements whatever their number.

    The records are indexed in order (a later one is linked to an earlier
    one that shares a key, as if each had been replaced on its own); a
    record given twice is indexed under its last entries. True if any
    record's rows changed.
    """
    i = t.identifiers
    wanted: dict[tuple[str, str], tuple[Holder, set[tuple[str, str]]]] = {}
    for holder, entries in items:
        ident = (holder.record_kind, holder.record_id)
        wanted.pop(ident, None)  # the last entries, in the last place
        wanted[ident] = (holder, {(role, key[:200]) for role, key in entries if key})
    if not wanted:
        return False
    old: dict[tuple[str, str], set[tuple[str, str]]] = {}
    old_ms: dict[tuple[str, str], int] = {}
    for kind, record_ids in _by_kind(wanted).items():
        for row in w.conn.execute(
            select(i.c.record_id, i.c.role, i.c.key, i.c.create_ms).where(
                i.c.record_kind == kind, i.c.record_id.in_(record_ids)
            )
        ):
            old.setdefault((kind, row.record_id), set()).add((row.role, row.key))
            old_ms[(kind, row.record_id)] = row.create_ms
    changed = [
        (holder, rows, old.get(ident, set()))
        for ident, (holder, rows) in wanted.items()
        if rows != old.get(ident, set())
    ]
    if not changed:
        return False
    gone = {(h.record_kind, h.record_id): True for h, _rows, before in changed if before}
    for kind, record_ids in _by_kind(gone).items():
        w.conn.execute(delete(i).where(i.c.record_kind == kind, i.c.record_id.in_(record_ids)))
    # The holders already indexed of every key given anew, read once the changed records'
    # own rows are gone (so none of them is its own neighbour) and before any is written.
    new_keys = {key for _h, rows, before in changed for key in _keys(rows) - _keys(before)}
    sharers = _sharers(w.conn, sorted(new_keys))
    for holder, _rows, before in changed:  # until its turn, a record holds what it held
        ident = (holder.record_kind, holder.record_id)
        for key in _keys(before) & new_keys:
            sharers[key].append((old_ms[ident], *ident, holder.scope))
    at = now_ms()
    inserts = []
    for holder, rows, before in changed:
        ident = (holder.record_kind, holder.record_id)
        for key in _keys(before) & new_keys:
            sharers[key] = [s for s in sharers[key] if s[1:3] != ident]
        mine: _Sharer = (at, *ident, holder.scope)
        for older in _newest(sharers, _keys(rows) - _keys(before), ident):
            _link_event(w, older, holder)
        for key in _keys(rows) & new_keys:  # the next records of the batch see this one
            sharers[key].append(mine)
        inserts += [
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
            for role, key in sorted(rows)
        ]
    if inserts:
        w.conn.execute(insert(i), inserts)
    if count:
        bump(w)
    return True


def _by_kind(idents: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind, record_id in idents:
        out.setdefault(kind, []).append(record_id)
    return out


def _keys(rows: Iterable[tuple[str, str]]) -> set[str]:
    return {key for _role, key in rows}


def _sharers(conn: Connection, keys: Sequence[str]) -> dict[str, list[_Sharer]]:
    """Per key, the newest records holding it (MAX_LINK_EVENTS at most), in any order.

    Per key, the newest distinct records are read backwards along
    ``ix_node_identifiers_key_time`` and the read stops after
    MAX_LINK_EVENTS (a record's rows share one ``create_ms``), so a key
    held by a thousand records costs what one held by twenty does. On
    PostgreSQL every key goes in one statement of fixed text (a lateral
    join over the array of keys: planned once, one round trip); SQLite,
    in process, answers one key at a time.
    """
    out: dict[str, list[_Sharer]] = {key: [] for key in keys}
    if not keys:
        return out
    limit = MAX_LINK_EVENTS
    if conn.dialect.name == "postgresql":
        rows: Iterable[Any] = _SHARERS.execute(conn, {"keys": list(keys), "limit": limit}).rows
    else:
        rows = (
            row for key in keys for row in _SHARERS.execute(conn, {"key": key, "limit": limit}).rows
        )
    for row in rows:
        out[row.key].append((row.create_ms, row.record_kind, row.record_id, row.scope))
    return out


_i = t.identifiers
#: PostgreSQL: every key at once, in text of its own (a lateral join over the array of keys);
#: elsewhere one key per run of the portable form
_SHARERS = Statement(
    select(_i.c.key, _i.c.create_ms, _i.c.record_kind, _i.c.record_id, _i.c.scope)
    .distinct()
    .where(_i.c.key == bindparam("key"))
    .order_by(_i.c.create_ms.desc(), _i.c.record_kind.desc(), _i.c.record_id.desc())
    .limit(bindparam("limit")),
    postgresql=(
        "SELECT k.key, s.create_ms, s.record_kind, s.record_id, s.scope "  # noqa: S608
        "FROM unnest(%(keys)s::varchar[]) AS k(key) CROSS JOIN LATERAL ("
        "SELECT DISTINCT i.create_ms, i.record_kind, i.record_id, i.scope "
        f"FROM {_i.name} AS i WHERE i.key = k.key "
        "ORDER BY i.create_ms DESC, i.record_kind DESC, i.record_id DESC "
        "LIMIT %(limit)s) AS s"
    ),
    named=True,
)


def _newest(
    sharers: Mapping[str, list[_Sharer]], keys: set[str], ident: tuple[str, str]
) -> list[_Sharer]:
    """The newest other records holding one of ``keys`` (MAX_LINK_EVENTS at most), oldest first."""
    found = sorted({s for key in keys for s in sharers.get(key, ())}, reverse=True)
    newest: dict[tuple[str, str], _Sharer] = {}
    for sharer in found:
        if sharer[1:3] != ident:
            newest.setdefault(sharer[1:3], sharer)
            if len(newest) == MAX_LINK_EVENTS:
                break
    return sorted(newest.values())


def _link_event(w: Writer, older: _Sharer, newer: Holder) -> None:
    _at, kind, record_id, scope = older
    fields: dict[str, str | None] = {}
    if kind == "alert":
        fields["alert_id"] = record_id
    elif kind == "case_entry":
        fields["case_id"] = scope
        fields["entry_id"] = record_id
    elif kind in _GENERIC:
        fields["record_id"] = record_id
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
