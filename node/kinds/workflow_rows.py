"""Rows of the treaty workflows (reviews, forwards, consent requests) in ``node_records``.

The workflows keep a small state per item: an alert held for review under
one treaty, a forward asked for, a partner's consent request. They live in
the generic records table (:data:`node.storage.tables.records`) under kinds
of their own, with the direction ``local``: they are never shared, never
listed by a record kind (those filter on their own kind names) and never
purged by the retention job (which takes received rows only). The JSON
``record`` column holds the item; ``state`` where it stands.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, select, tuple_, update

from intelshare import errors
from intelshare.pagetokens import PageTokens
from node.storage import tables as t
from node.storage.store import Writer, dumps, now_ms

LOCAL = "local"
DEFAULT_PAGE = 50
MAX_PAGE = 500


def insert(
    w: Writer,
    *,
    row_id: str,
    kind: str,
    state: str,
    agency: str,
    treaty_id: str,
    treaty_version: int,
    item: Mapping[str, Any],
    expire_ms: int,
    officer_id: str | None,
    handling: int = 0,
    tlp: int = 0,
) -> None:
    at = now_ms()
    w.conn.execute(
        t.records.insert().values(
            record_id=row_id,
            kind=kind,
            direction=LOCAL,
            origin_agency=agency,
            treaty_id=treaty_id,
            treaty_version=treaty_version,
            categories="[]",
            handling=handling,
            tlp=tlp,
            record=dumps(dict(item)),
            revision=1,
            state=state,
            create_ms=at,
            update_ms=at,
            expire_ms=expire_ms,
            created_by=officer_id,
        )
    )


def get(conn: Connection, kind: str, row_id: str) -> Row[Any] | None:
    return conn.execute(
        select(t.records).where(
            t.records.c.record_id == row_id,
            t.records.c.kind == kind,
            t.records.c.direction == LOCAL,
        )
    ).first()


def item(row: Row[Any]) -> dict[str, Any]:
    value = json.loads(row.record)
    return value if isinstance(value, dict) else {}


def where(conn: Connection, kind: str, states: Sequence[str] = ()) -> list[Row[Any]]:
    query = select(t.records).where(t.records.c.kind == kind, t.records.c.direction == LOCAL)
    if states:
        query = query.where(t.records.c.state.in_(list(states)))
    return list(conn.execute(query.order_by(t.records.c.create_ms, t.records.c.record_id)))


def move(
    w: Writer, row: Row[Any], state: str, item_update: Mapping[str, Any] | None = None
) -> bool:
    """Set ``state`` (and merge ``item_update``) if the row is still as read; False otherwise."""
    values: dict[str, Any] = {"state": state, "update_ms": now_ms(), "revision": row.revision + 1}
    if item_update:
        values["record"] = dumps({**item(row), **item_update})
    done = w.conn.execute(
        update(t.records)
        .where(t.records.c.record_id == row.record_id, t.records.c.revision == row.revision)
        .values(**values)
    )
    return bool(done.rowcount)


def page(
    conn: Connection,
    tokens: PageTokens,
    kind: str,
    *,
    caller: str,
    states: Sequence[str],
    page_size: int,
    page_token: str,
    newest_first: bool,
    filters: str = "",
    extra: Any = None,
) -> tuple[list[Row[Any]], str]:
    """One page of a workflow's rows, keyset-paged on (create time, id).

    Tokens are the node's authenticated page tokens (:mod:`intelshare.pagetokens`),
    bound to the listing (``kind``), the filters and the officer.
    """
    if page_size < 0:
        raise errors.PageSizeInvalid(
            "page_size must not be negative", violations={"page_size": ">= 0"}
        )
    size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    listing = f"workflow/{kind}"
    after = tokens.read(page_token, listing=listing, filters=filters, caller=caller, size=2)
    r = t.records
    query = select(r).where(r.c.kind == kind, r.c.direction == LOCAL)
    if states:
        query = query.where(r.c.state.in_(list(states)))
    if extra is not None:
        query = query.where(extra)
    key = tuple_(r.c.create_ms, r.c.record_id)
    if after is not None:
        position = tuple_(int(after[0]), str(after[1]))
        query = query.where(key < position if newest_first else key > position)
    order = (
        (r.c.create_ms.desc(), r.c.record_id.desc())
        if newest_first
        else (r.c.create_ms, r.c.record_id)
    )
    found = list(conn.execute(query.order_by(*order).limit(size + 1)))
    more = len(found) > size
    found = found[:size]
    token = ""
    if more and found:
        token = tokens.issue(
            listing=listing,
            filters=filters,
            caller=caller,
            position=[found[-1].create_ms, found[-1].record_id],
        )
    return found, token
