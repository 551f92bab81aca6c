"""Reading generic records: one record, a kind's list, the paging rule.

Every read of a record received from a partner is audited (the ids read,
in entries of bounded size). Lists are newest first, keyset-paged on
(create_ms, record_id) with page tokens bound to the listing, its filters
and the caller; :meth:`RecordReads.page` is that one rule for every record
kind's list, whatever the query joins. :class:`RecordReads` is the reading
part of :class:`~node.sharing.records.Records`, which inherits it; it reads
the store, nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Select, select, tuple_

from intelshare import errors
from node.sharing.record_kind import RECEIVED, Delivery, M, RecordKind, StoredRecord
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Store

DEFAULT_PAGE = 50
MAX_PAGE = 500

T = TypeVar("T")


class RecordReads:
    """Reads of the generic kinds' records (``store`` is set by ``Records``)."""

    store: Store

    def get(self, officer: Officer, kind: RecordKind[M], name: str) -> StoredRecord[M]:
        """One record; reading a received one is audited."""
        record_id = kind.parse_name(name)
        with self.store.write() as w:
            stored = self._load(w.conn, kind, record_id)
            if stored.direction == RECEIVED:
                w.audit_reads(officer.officer_id, "record_ids", [record_id], kind=kind.name)
        return stored

    def list_page(
        self,
        officer: Officer,
        kind: RecordKind[M],
        *,
        direction: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[StoredRecord[M]], str]:
        """A page of ``kind``'s records, newest first; received ones read are audited."""
        query = select(t.records).where(t.records.c.kind == kind.name)
        if direction:
            query = query.where(t.records.c.direction == direction)
        return self.page(
            officer,
            query,
            listing=kind.collection,
            kind_name=kind.name,
            filters=direction,
            page_size=page_size,
            page_token=page_token,
            build=lambda conn, row: self._build(conn, kind, row),
        )

    def page(
        self,
        officer: Officer,
        query: Select[Any],
        *,
        listing: str,
        kind_name: str,
        filters: str,
        page_size: int,
        page_token: str,
        build: Callable[[Connection, Row[Any]], T],
    ) -> tuple[list[T], str]:
        """A page of ``query`` (a select over ``records``, perhaps joined), newest first.

        The one paging rule of every record kind's list: keyset on
        (create_ms, record_id) from an authenticated page token bound to
        ``listing``, ``filters`` and the caller, one row more than the page to
        know whether another follows, each row built by ``build`` in the read's
        transaction, and the received records read audited in entries of
        bounded size (a page of 500 ids would not fit in one audit leaf).
        """
        if page_size < 0:
            raise errors.PageSizeInvalid(
                "page_size must not be negative", violations={"page_size": ">= 0"}
            )
        after = self.store.page_tokens.read(
            page_token, listing=listing, filters=filters, caller=officer.officer_id, size=2
        )
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        r = t.records
        if after is not None:
            query = query.where(tuple_(r.c.create_ms, r.c.record_id) < tuple_(*after))
        query = query.order_by(r.c.create_ms.desc(), r.c.record_id.desc()).limit(size + 1)
        with self.store.write() as w:
            rows = w.conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            out = [build(w.conn, row) for row in rows]
            received = [row.record_id for row in rows if row.direction == RECEIVED]
            w.audit_reads(officer.officer_id, "record_ids", received, kind=kind_name)
        token = (
            self.store.page_tokens.issue(
                listing=listing,
                filters=filters,
                caller=officer.officer_id,
                position=[rows[-1].create_ms, rows[-1].record_id],
            )
            if more and rows
            else ""
        )
        return out, token

    def _row(self, conn: Connection, kind: RecordKind[Any], record_id: str) -> Row[Any]:
        row = conn.execute(
            select(t.records).where(
                t.records.c.record_id == record_id, t.records.c.kind == kind.name
            )
        ).first()
        if row is None:
            name = kind.record_name(record_id)
            raise errors.RecordNotFound(f"{name} does not exist", metadata={"name": name})
        return row

    def _load(self, conn: Connection, kind: RecordKind[M], record_id: str) -> StoredRecord[M]:
        return self._build(conn, kind, self._row(conn, kind, record_id))

    def _build(self, conn: Connection, kind: RecordKind[M], row: Row[Any]) -> StoredRecord[M]:
        deliveries = [
            Delivery(
                agency_id=d.agency_id,
                treaty_id=d.treaty_id,
                treaty_version=d.treaty_version,
                view_id=d.view_id,
                delivered_ms=d.delivered_ms,
                failure=d.failure,
            )
            for d in conn.execute(
                select(t.record_deliveries)
                .where(t.record_deliveries.c.record_id == row.record_id)
                .order_by(t.record_deliveries.c.agency_id)
            )
        ]
        return StoredRecord(
            name=kind.record_name(row.record_id),
            record_id=row.record_id,
            kind=row.kind,
            message=kind.from_record(json.loads(row.record)),
            direction=row.direction,
            origin_agency=row.origin_agency,
            treaty_id=row.treaty_id,
            treaty_version=row.treaty_version,
            categories=json.loads(row.categories),
            handling=row.handling,
            tlp=row.tlp,
            state=row.state,
            revision=row.revision,
            create_ms=row.create_ms,
            update_ms=row.update_ms,
            expire_ms=row.expire_ms,
            revoke_reason=row.revoke_reason or "",
            deliveries=deliveries,
        )
