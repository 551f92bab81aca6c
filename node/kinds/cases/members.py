"""What the owner of a case does: open it, add and remove members, close it.

Every change sends the whole new state (``CASE_MEMBERSHIP``) to the members
that must know it, in the order "Who sends what" in :mod:`node.kinds.cases`
describes; a new member gets the case's history with the authors' own
envelopes. The local team of officers who may see a case (never shared)
is kept here too.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from intelshare import errors
from intelshare.ids import new_case_id
from intelshare.treaty import Treaty, check_fields, redact
from intelshare.v1 import case_pb2, envelope_pb2
from node.kinds.cases import db
from node.kinds.cases.core import CaseCore
from node.kinds.cases.db import (
    ACTIVE,
    HISTORY_MARGIN,
    OWNER,
    REMOVED,
    SIG_AUTHOR,
)
from node.schema import case as cr
from node.sharing.evidence import disclose_content_key
from node.sharing.sealing import Sealed
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer, dumps, now_ms

log = logging.getLogger(__name__)


class CaseMembers(CaseCore):
    """The owner's operations and the local case team."""

    def create(self, w: Writer, officer: Officer, case: case_pb2.Case) -> case_pb2.Case:
        partners = cr.validate_new_case(case, self.agency_id)
        treaty = self.sharing.current(case.treaty_id)
        categories = sorted(set(case.categories))
        self.sharing.check(
            treaty,
            kind="case_membership",
            recipients=partners,
            categories=categories,
            handling=case.handling,
            tlp=case.tlp,
        )
        if "case_entry" not in treaty.kinds:
            self.sharing.check(
                treaty,
                kind="case_entry",
                recipients=(),
                categories=categories,
                handling=case.handling,
                tlp=case.tlp,
            )
        if not treaty.fields.get("case_entry"):
            raise errors.FieldNotPermitted(
                f"treaty {treaty.label} allows no field of a case_entry (no fields.case_entry "
                "allow-list): entries could carry nothing",
                metadata={
                    "treaty_id": treaty.id,
                    "treaty_version": str(treaty.version),
                    "rule": "fields.case_entry",
                },
            )
        case_id = new_case_id(self.agency_id)
        at = now_ms()
        values: dict[str, Any] = {
            "case_id": case_id,
            "owner_agency": self.agency_id,
            "standing": OWNER,
            "title": case.title,
            "status": cr.OPEN,
            "treaty_id": treaty.id,
            "treaty_version": treaty.version,
            "categories": dumps(categories),
            "handling": int(case.handling),
            "tlp": int(case.tlp),
            "revision": 1,
            "create_ms": at,
            "update_ms": at,
            "created_by": officer.officer_id,
        }
        members = sorted([self.agency_id, *partners])
        sealed = self._seal(
            treaty,
            values,
            kind=envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP,
            recipients=partners,
            payload=self._state(values, treaty, members),
        )
        w.conn.execute(insert(t.cases).values(**values))
        w.conn.execute(
            insert(t.case_members),
            [
                {"case_id": case_id, "agency_id": a, "state": ACTIVE, "added_ms": at}
                for a in members
            ],
        )
        w.conn.execute(
            insert(t.case_officers).values(
                case_id=case_id, officer_id=officer.officer_id, added_ms=at, added_by=None
            )
        )
        self.sharing.queue(w, sealed)
        w.event("case.created", case_id=case_id, agency_id=self.agency_id)
        w.audit(
            "case_created",
            {
                "case_id": case_id,
                "officer_id": officer.officer_id,
                "treaty": f"{treaty.id}@{treaty.version}",
                "members": partners,
                "message_id": sealed.message_id,
            },
        )
        return db.load(w.conn, case_id)

    def add_member(self, w: Writer, officer: Officer, name: str, agency_id: str) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        cr.validate_agency(agency_id)
        db.lock(w.conn, case_id)
        row = self.require_case(w.conn, officer, case_id)
        self._require_owner_open(row, "add members")
        if agency_id == self.agency_id:
            raise errors.FieldInvalid(
                "the owner is a member already", violations={"agency_id": "not the owner"}
            )
        before = db.active_members(w.conn, case_id)
        if agency_id in before:
            raise errors.AlreadyMember(
                f"{agency_id} is a member of case {cr.case_name(case_id)} already",
                metadata={"name": cr.case_name(case_id), "agency_id": agency_id},
            )
        treaty = self.sharing.current(row.treaty_id)
        others = [a for a in before if a != self.agency_id]
        categories = json.loads(row.categories)
        self.sharing.check(
            treaty,
            kind="case_membership",
            recipients=[*others, agency_id],
            categories=categories,
            handling=row.handling,
            tlp=row.tlp,
        )
        at = now_ms()
        state = {**row._mapping, "revision": row.revision + 1, "update_ms": at}
        members = sorted([*before, agency_id])
        sealed_all: list[Sealed] = []
        if others:
            # The existing members first: they must know of the new member
            # before it can write to them (see "Who sends what").
            sealed_all.append(
                self._seal(
                    treaty,
                    state,
                    kind=envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP,
                    recipients=others,
                    payload=self._state(state, treaty, members),
                )
            )
        for chunk in self._history_chunks(w.conn, case_id, treaty):
            sealed_all.append(
                self._seal(
                    treaty,
                    state,
                    kind=envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP,
                    recipients=[agency_id],
                    payload=self._state(state, treaty, members, chunk),
                )
            )
        self._bump(w, row, treaty, at)
        existing = w.conn.execute(
            select(t.case_members.c.agency_id).where(
                t.case_members.c.case_id == case_id, t.case_members.c.agency_id == agency_id
            )
        ).first()
        if existing is None:
            w.conn.execute(
                insert(t.case_members).values(
                    case_id=case_id, agency_id=agency_id, state=ACTIVE, added_ms=at
                )
            )
        else:
            w.conn.execute(
                update(t.case_members)
                .where(t.case_members.c.case_id == case_id, t.case_members.c.agency_id == agency_id)
                .values(state=ACTIVE, added_ms=at, removed_ms=None)
            )
        for sealed in sealed_all:
            self.sharing.queue(w, sealed)
        w.event("case.member_added", case_id=case_id, agency_id=agency_id)
        w.audit(
            "case_member_added",
            {
                "case_id": case_id,
                "agency_id": agency_id,
                "officer_id": officer.officer_id,
                "treaty": f"{treaty.id}@{treaty.version}",
                "messages": [s.message_id for s in sealed_all],
            },
        )
        return db.load(w.conn, case_id)

    def _bump(self, w: Writer, row: Row[Any], treaty: Treaty, at: int, **values: Any) -> None:
        """Next membership revision, guarded against a concurrent change of the same case."""
        changed = w.conn.execute(
            update(t.cases)
            .where(t.cases.c.case_id == row.case_id, t.cases.c.revision == row.revision)
            .values(
                revision=row.revision + 1, update_ms=at, treaty_version=treaty.version, **values
            )
        )
        if not changed.rowcount:
            raise errors.ChangedMeanwhile(
                f"case {cr.case_name(row.case_id)} changed while this change was prepared; retry",
                metadata={"name": cr.case_name(row.case_id)},
            )

    def _history_chunks(
        self, conn: Connection, case_id: str, treaty: Treaty
    ) -> list[list[dict[str, Any]]]:
        """Every entry held, as forwarded entries, in chunks that fit one envelope each."""
        items = [
            item
            for r in conn.execute(
                select(t.case_entries)
                .where(t.case_entries.c.case_id == case_id)
                .order_by(t.case_entries.c.create_ms, t.case_entries.c.entry_id)
            )
            if (item := self._forwardable(conn, r, treaty)) is not None
        ]
        budget = max(self.max_payload_bytes - HISTORY_MARGIN, self.max_payload_bytes // 2)
        chunks: list[list[dict[str, Any]]] = [[]]
        size = 0
        for item in items:
            n = len(dumps(item)) + 1
            if chunks[-1] and size + n > budget:
                chunks.append([])
                size = 0
            chunks[-1].append(item)
            size += n
        return chunks

    def _forwardable(self, conn: Connection, r: Row[Any], treaty: Treaty) -> dict[str, Any] | None:
        """One entry as the owner forwards it (see "Attribution of entries written by others")."""
        record = json.loads(r.record)
        base = {"entry_id": r.entry_id, "author": r.author_agency, "created_ms": int(r.create_ms)}
        if r.author_agency != self.agency_id and check_fields(record, treaty, "case_entry"):
            envelope: bytes | None = None
            key: bytes | None = None
            if r.author_envelope is not None and r.content_key is not None:
                envelope, key = bytes(r.author_envelope), bytes(r.content_key)
            elif r.signature == SIG_AUTHOR:
                kept = conn.execute(
                    select(t.received.c.envelope).where(t.received.c.message_id == r.entry_id)
                ).scalar_one_or_none()
                if kept is not None:
                    envelope = bytes(kept)
                    try:
                        key = disclose_content_key(
                            envelope,
                            recipient=self.agency_id,
                            encryption_keys={self.keys.encryption_key_id: self.keys.encryption},
                        )
                    except errors.EnvelopeInvalid as exc:
                        log.warning(
                            "entry %s cannot be forwarded with its author's signature: %s",
                            r.entry_id,
                            exc.audit_detail,
                        )
                        key = None
            if envelope is not None and key is not None:
                return {**base, "envelope": cr.b64(envelope), "content_key": cr.b64(key)}
        view = redact(record, treaty, "case_entry")
        return {**base, "record": view} if view else None

    def remove_member(
        self, w: Writer, officer: Officer, name: str, agency_id: str
    ) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        cr.validate_agency(agency_id)
        db.lock(w.conn, case_id)
        row = self.require_case(w.conn, officer, case_id)
        self._require_owner_open(row, "remove members")
        if agency_id == self.agency_id:
            raise errors.FieldInvalid(
                "the owner cannot leave its own case (close it instead)",
                violations={"agency_id": "not the owner"},
            )
        before = db.active_members(w.conn, case_id)
        if agency_id not in before:
            raise errors.NotAMember(
                f"{agency_id} is not a member of case {cr.case_name(case_id)}",
                metadata={"name": cr.case_name(case_id), "agency_id": agency_id},
            )
        treaty = self.sharing.current(row.treaty_id)
        members = [a for a in before if a != agency_id]
        # The removed member gets this last state (so its node stops taking
        # part) unless the treaty no longer has it as a party at all.
        told = [a for a in before if a != self.agency_id and treaty.is_party(a)]
        at = now_ms()
        state = {**row._mapping, "revision": row.revision + 1, "update_ms": at}
        sealed: Sealed | None = None
        if told:
            self.sharing.check(
                treaty,
                kind="case_membership",
                recipients=told,
                categories=json.loads(row.categories),
                handling=row.handling,
                tlp=row.tlp,
            )
            sealed = self._seal(
                treaty,
                state,
                kind=envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP,
                recipients=told,
                payload=self._state(state, treaty, members),
            )
        self._bump(w, row, treaty, at)
        w.conn.execute(
            update(t.case_members)
            .where(t.case_members.c.case_id == case_id, t.case_members.c.agency_id == agency_id)
            .values(state=REMOVED, removed_ms=at)
        )
        if sealed is not None:
            self.sharing.queue(w, sealed)
        w.event("case.member_removed", case_id=case_id, agency_id=agency_id)
        w.audit(
            "case_member_removed",
            {
                "case_id": case_id,
                "agency_id": agency_id,
                "officer_id": officer.officer_id,
                "message_id": sealed.message_id if sealed is not None else None,
            },
        )
        return db.load(w.conn, case_id)

    def close(self, w: Writer, officer: Officer, name: str) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        db.lock(w.conn, case_id)
        row = self.require_case(w.conn, officer, case_id)
        self._require_owner_open(row, "close it")
        treaty = self.sharing.current(row.treaty_id)
        members = db.active_members(w.conn, case_id)
        others = [a for a in members if a != self.agency_id]
        at = now_ms()
        state = {**row._mapping, "revision": row.revision + 1, "status": cr.CLOSED}
        sealed: Sealed | None = None
        if others:
            self.sharing.check(
                treaty,
                kind="case_membership",
                recipients=others,
                categories=json.loads(row.categories),
                handling=row.handling,
                tlp=row.tlp,
            )
            sealed = self._seal(
                treaty,
                state,
                kind=envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP,
                recipients=others,
                payload=self._state(state, treaty, members),
            )
        self._bump(w, row, treaty, at, status=cr.CLOSED, close_ms=at)
        if sealed is not None:
            self.sharing.queue(w, sealed)
        w.event("case.closed", case_id=case_id, agency_id=self.agency_id)
        w.audit(
            "case_closed",
            {
                "case_id": case_id,
                "officer_id": officer.officer_id,
                "message_id": sealed.message_id if sealed is not None else None,
            },
        )
        return db.load(w.conn, case_id)

    def add_officer(
        self, w: Writer, officer: Officer, name: str, officer_name: str
    ) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        row = self.require_case(w.conn, officer, case_id)
        target = db.officer_by_name(w.conn, officer_name)
        if target.disabled:
            raise errors.OfficerDisabled(
                f"officer {officer_name!r} is disabled", metadata={"officer": officer_name}
            )
        already = w.conn.execute(
            select(t.case_officers.c.officer_id).where(
                t.case_officers.c.case_id == case_id,
                t.case_officers.c.officer_id == target.officer_id,
            )
        ).first()
        if already is None:
            w.conn.execute(
                insert(t.case_officers).values(
                    case_id=case_id,
                    officer_id=target.officer_id,
                    added_ms=now_ms(),
                    added_by=officer.officer_id,
                )
            )
            w.event("case.officer_added", case_id=row.case_id)
            w.audit(
                "case_officer_added",
                {
                    "case_id": case_id,
                    "officer_id": target.officer_id,
                    "by_officer_id": officer.officer_id,
                },
            )
        return db.load(w.conn, case_id)

    def remove_officer(
        self, w: Writer, officer: Officer, name: str, officer_name: str
    ) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        self.require_case(w.conn, officer, case_id)
        target = db.officer_by_name(w.conn, officer_name)
        gone = w.conn.execute(
            delete(t.case_officers).where(
                t.case_officers.c.case_id == case_id,
                t.case_officers.c.officer_id == target.officer_id,
            )
        )
        if gone.rowcount:
            w.event("case.officer_removed", case_id=case_id)
            w.audit(
                "case_officer_removed",
                {
                    "case_id": case_id,
                    "officer_id": target.officer_id,
                    "by_officer_id": officer.officer_id,
                },
            )
        return db.load(w.conn, case_id)
