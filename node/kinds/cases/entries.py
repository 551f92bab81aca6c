"""Writing entries into a case, and officers' reads of cases and entries.

An entry is sealed once by its author's node for every other active member
it knows of; reads of received cases and entries are audited.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from sqlalchemy import insert, select, tuple_, update

from intelshare import errors
from intelshare.ids import new_message_id
from intelshare.treaty import redact
from intelshare.v1 import case_pb2, envelope_pb2
from node.kinds.cases import db
from node.kinds.cases.core import CaseCore
from node.kinds.cases.db import (
    DEFAULT_PAGE,
    MAX_PAGE,
    OWNER,
    RECEIVED,
    REMOVED,
    SIG_SEALED_HERE,
    WRITTEN,
)
from node.schema import alert as rec
from node.schema import case as cr
from node.sharing.sealing import Sealed
from node.storage import tables as t
from node.storage.officers import Officer, Permission
from node.storage.store import Writer, dumps, now_ms

log = logging.getLogger(__name__)


class CaseEntries(CaseCore):
    """Entries written here and officers' reads."""

    def add_entry(
        self, w: Writer, officer: Officer, parent: str, entry: case_pb2.CaseEntry
    ) -> case_pb2.CaseEntry:
        case_id = cr.parse_case_name(parent, "parent")
        record = cr.entry_record(entry, datetime.now(UTC).date())
        db.lock(w.conn, case_id)
        row = self.require_case(w.conn, officer, case_id)
        name = cr.case_name(case_id)
        if row.standing == REMOVED:
            raise errors.MemberRemoved(
                f"this agency was removed from case {name}; it can add nothing",
                metadata={"name": name},
            )
        if row.status != cr.OPEN:
            raise errors.CaseClosed(
                f"case {name} is closed", metadata={"name": name, "state": "closed"}
            )
        treaty = self.sharing.current(row.treaty_id)
        others = [a for a in db.active_members(w.conn, case_id) if a != self.agency_id]
        self.sharing.check(
            treaty,
            kind="case_entry",
            recipients=others,
            categories=json.loads(row.categories),
            handling=row.handling,
            tlp=row.tlp,
        )
        view = redact(record, treaty, "case_entry")
        removed = sorted(set(rec.field_paths(record)) - set(rec.field_paths(view)))
        sealed: Sealed | None = None
        if others:
            if not view:
                raise errors.FieldNotPermitted(
                    f"treaty {treaty.label} allows none of this entry's fields in a case_entry "
                    f"(allowed: {', '.join(treaty.fields.get('case_entry', ())) or 'nothing'})",
                    metadata={
                        "treaty_id": treaty.id,
                        "treaty_version": str(treaty.version),
                        "rule": "fields.case_entry",
                    },
                )
            sealed = self._seal(
                treaty,
                dict(row._mapping),
                kind=envelope_pb2.MESSAGE_KIND_CASE_ENTRY,
                recipients=others,
                payload=view,
            )
        entry_id = sealed.message_id if sealed is not None else new_message_id()
        # The header's own create time (whole milliseconds, as receivers read it).
        at = _sealed_ms(sealed) if sealed is not None else now_ms()
        w.conn.execute(
            insert(t.case_entries).values(
                entry_id=entry_id,
                case_id=case_id,
                author_agency=self.agency_id,
                direction=WRITTEN,
                record=dumps(record),
                removed_fields=dumps(removed),
                written_by=officer.officer_id,
                create_ms=at,
                signature=SIG_SEALED_HERE,
                evidence_message_id=entry_id,
                envelope_sha256=sealed.envelope_sha256 if sealed is not None else b"",
                treaty_version=treaty.version,
            )
        )
        w.conn.execute(
            update(t.cases)
            .where(t.cases.c.case_id == case_id)
            .values(update_ms=now_ms(), treaty_version=treaty.version)
        )
        if sealed is not None:
            self.sharing.queue(w, sealed)
        w.event("case.entry_added", case_id=case_id, entry_id=entry_id, agency_id=self.agency_id)
        w.audit(
            "case_entry_added",
            {
                "case_id": case_id,
                "entry_id": entry_id,
                "officer_id": officer.officer_id,
                "recipients": others,
                "fields_removed": removed,
            },
        )
        return db.build_entries(w.conn, [db.entry_row(w.conn, entry_id)])[0]

    def get(self, officer: Officer, name: str) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        with self.store.write() as w:
            row = self.require_case(w.conn, officer, case_id)
            case = db.build_cases(w.conn, [row])[0]
            if row.standing != OWNER:
                w.audit_reads(officer.officer_id, "case_ids", [case_id], method="GetCase")
        return case

    def list_page(
        self, officer: Officer, *, page_size: int, page_token: str, state: int, treaty_id: str
    ) -> tuple[list[case_pb2.Case], str]:
        v: dict[str, str] = {}
        if page_size < 0:
            v["page_size"] = "must not be negative"
        if state not in (0, case_pb2.CASE_STATE_OPEN, case_pb2.CASE_STATE_CLOSED):
            v["state"] = "unknown state"
        if treaty_id and not cr.ID_RE.fullmatch(treaty_id):
            v["treaty_id"] = "not a treaty id"
        if v:
            raise errors.invalid_fields(rec.summary(v), violations=v)
        fingerprint = f"{state}:{treaty_id}"
        after = self.store.page_tokens.read(
            page_token, listing="cases", filters=fingerprint, caller=officer.officer_id, size=2
        )
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        c = t.cases.c
        query = select(t.cases)
        if not officer.can(Permission.ISSUE):
            query = query.where(
                c.case_id.in_(
                    select(t.case_officers.c.case_id).where(
                        t.case_officers.c.officer_id == officer.officer_id
                    )
                )
            )
        if state == case_pb2.CASE_STATE_OPEN:
            query = query.where(c.status == cr.OPEN)
        elif state == case_pb2.CASE_STATE_CLOSED:
            query = query.where(c.status == cr.CLOSED)
        if treaty_id:
            query = query.where(c.treaty_id == treaty_id)
        if after is not None:
            query = query.where(tuple_(c.create_ms, c.case_id) < tuple_(*after))
        query = query.order_by(c.create_ms.desc(), c.case_id.desc()).limit(size + 1)
        with self.store.write() as w:
            rows = w.conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            cases = db.build_cases(w.conn, rows)
            received = [r.case_id for r in rows if r.standing != OWNER]
            w.audit_reads(officer.officer_id, "case_ids", received, method="ListCases")
        token = (
            self.store.page_tokens.issue(
                listing="cases",
                filters=fingerprint,
                caller=officer.officer_id,
                position=[rows[-1].create_ms, rows[-1].case_id],
            )
            if more and rows
            else ""
        )
        return cases, token

    def list_entries(
        self, officer: Officer, parent: str, *, page_size: int, page_token: str
    ) -> tuple[list[case_pb2.CaseEntry], str]:
        case_id = cr.parse_case_name(parent, "parent")
        v: dict[str, str] = {}
        if page_size < 0:
            v["page_size"] = "must not be negative"
        if v:
            raise errors.invalid_fields(rec.summary(v), violations=v)
        after = self.store.page_tokens.read(
            page_token,
            listing=f"cases/{case_id}/entries",
            filters="",
            caller=officer.officer_id,
            size=2,
        )
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        e = t.case_entries.c
        query = select(t.case_entries).where(e.case_id == case_id)
        if after is not None:
            query = query.where(tuple_(e.create_ms, e.entry_id) > tuple_(*after))
        query = query.order_by(e.create_ms, e.entry_id).limit(size + 1)
        with self.store.write() as w:
            self.require_case(w.conn, officer, case_id)
            rows = w.conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            entries = db.build_entries(w.conn, rows)
            received = [r.entry_id for r in rows if r.direction == RECEIVED]
            w.audit_reads(
                officer.officer_id,
                "entry_ids",
                received,
                case_ids=[case_id],
                method="ListCaseEntries",
            )
        token = (
            self.store.page_tokens.issue(
                listing=f"cases/{case_id}/entries",
                filters="",
                caller=officer.officer_id,
                position=[rows[-1].create_ms, rows[-1].entry_id],
            )
            if more and rows
            else ""
        )
        return entries, token


def _sealed_ms(sealed: Sealed) -> int:
    header = envelope_pb2.Header.FromString(
        envelope_pb2.Envelope.FromString(sealed.envelope).header_bytes
    )
    return rec.ts_to_ms(header.create_time)
