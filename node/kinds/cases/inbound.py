"""What a node does with the case messages it receives.

Entries from members (stored, and relayed by the owner to the members an
author's envelope missed) and the owner's membership states (applied when
newer, with the history's forwarded author envelopes checked against their
disclosed content keys): see "Who sends what" and "Attribution" in
:mod:`node.kinds.cases`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from intelshare import errors
from intelshare.ids import case_id_owned_by, is_message_id
from intelshare.treaty import check_fields, redact
from intelshare.v1 import envelope_pb2
from node.kinds.cases import db
from node.kinds.cases.core import CaseCore
from node.kinds.cases.db import (
    ACTIVE,
    MEMBER,
    OWNER,
    RECEIVED,
    REMOVED,
    SIG_AUTHOR,
    SIG_FORWARDED,
    SIG_OWNER,
)
from node.schema import case as cr
from node.sharing.evidence import disclose_content_key, open_disclosed
from node.sharing.incoming import Incoming, Refused, Stored
from node.storage import tables as t
from node.storage.store import Writer, dumps, now_ms

log = logging.getLogger(__name__)


class CaseInbound(CaseCore):
    """Inbound handlers of case messages."""

    def _known_case(self, w: Writer, inc: Incoming) -> tuple[str, Row[Any] | None]:
        h = inc.header
        if not is_message_id(h.case_id):
            raise Refused("MALFORMED", "case_id in the header is not a case id")
        db.lock(w.conn, h.case_id)
        row = db.case_row(w.conn, h.case_id)
        if row is not None and row.treaty_id != h.treaty_id:
            raise Refused(
                "REFERENCE_MISMATCH",
                f"case {h.case_id} is shared under {row.treaty_id}, not {h.treaty_id}",
            )
        return h.case_id, row

    def on_entry(self, w: Writer, inc: Incoming) -> Stored:
        """An entry from its author (see "Who sends what")."""
        h = inc.header
        case_id, row = self._known_case(w, inc)
        if row is None:
            raise Refused("REFERENCE_UNKNOWN", f"no case {case_id} on this node")
        if row.standing == REMOVED:
            raise Refused("NOT_A_MEMBER", f"this agency was removed from case {case_id}")
        members = db.active_members(w.conn, case_id)
        if h.sender not in members:
            raise Refused("NOT_A_MEMBER", f"{h.sender} is not a member of case {case_id}")
        try:
            record = cr.check_entry_shape(cr.parse_json(inc.payload))
        except cr.Malformed as exc:
            raise Refused("MALFORMED", str(exc)) from None
        decision = check_fields(record, inc.treaty, "case_entry")
        if not decision:
            raise Refused(decision.reason, decision.detail)
        if self._has_entry(w.conn, h.message_id):
            return Stored(case_id=case_id)
        self._insert_received(
            w,
            case_id=case_id,
            entry_id=h.message_id,
            author=h.sender,
            record=record,
            create_ms=inc.create_ms,
            inc=inc,
            signature=SIG_AUTHOR,
            evidence_message_id=h.message_id,
            envelope_sha256=inc.envelope_sha256,
            treaty_version=h.treaty_version,
        )
        self._touch(w, row, inc)
        if row.standing == OWNER:
            missing = sorted(set(members) - {self.agency_id, h.sender} - set(h.recipients))
            if missing:
                self._relay(w, row, inc, record, missing, members)
        return Stored(case_id=case_id)

    def _relay(
        self,
        w: Writer,
        row: Row[Any],
        inc: Incoming,
        record: Mapping[str, Any],
        missing: list[str],
        members: list[str],
    ) -> None:
        """Forward an entry to members its author did not know of yet (owner only)."""
        h = inc.header
        try:
            treaty = self.sharing.current(row.treaty_id)
            self.sharing.check(
                treaty,
                kind="case_membership",
                recipients=missing,
                categories=json.loads(row.categories),
                handling=row.handling,
                tlp=row.tlp,
            )
            base = {"entry_id": h.message_id, "author": h.sender, "created_ms": inc.create_ms}
            item: dict[str, Any]
            if check_fields(record, treaty, "case_entry"):
                key = disclose_content_key(
                    inc.envelope,
                    recipient=self.agency_id,
                    encryption_keys={self.keys.encryption_key_id: self.keys.encryption},
                )
                item = {**base, "envelope": cr.b64(inc.envelope), "content_key": cr.b64(key)}
            else:
                item = {**base, "record": redact(record, treaty, "case_entry")}
            sealed = self._seal(
                treaty,
                dict(row._mapping),
                kind=envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP,
                recipients=missing,
                payload=self._state(dict(row._mapping), treaty, members, [item]),
            )
        except errors.IntelshareError as exc:
            # The entry itself is stored either way; the audit entry says who misses it.
            log.warning("entry %s not relayed to %s: %s", h.message_id, missing, exc.message)
            w.audit(
                "case_relay_failed",
                {
                    "case_id": row.case_id,
                    "entry_id": h.message_id,
                    "recipients": missing,
                    "reason": exc.reason,
                },
            )
            return
        self.sharing.queue(w, sealed)
        w.audit(
            "case_entry_relayed",
            {
                "case_id": row.case_id,
                "entry_id": h.message_id,
                "recipients": missing,
                "message_id": sealed.message_id,
            },
        )

    @staticmethod
    def _has_entry(conn: Connection, entry_id: str) -> bool:
        return (
            conn.execute(
                select(t.case_entries.c.entry_id).where(t.case_entries.c.entry_id == entry_id)
            ).first()
            is not None
        )

    def _insert_received(
        self,
        w: Writer,
        *,
        case_id: str,
        entry_id: str,
        author: str,
        record: Mapping[str, Any],
        create_ms: int,
        inc: Incoming,
        signature: str,
        evidence_message_id: str,
        envelope_sha256: bytes,
        treaty_version: int,
        forwarded_by: str | None = None,
        author_envelope: bytes | None = None,
        content_key: bytes | None = None,
    ) -> None:
        w.conn.execute(
            insert(t.case_entries).values(
                entry_id=entry_id,
                case_id=case_id,
                author_agency=author,
                direction=RECEIVED,
                record=dumps(dict(record)),
                create_ms=create_ms,
                received_ms=inc.received_ms,
                retain_until_ms=inc.retain_until_ms,
                signature=signature,
                evidence_message_id=evidence_message_id,
                envelope_sha256=envelope_sha256,
                treaty_version=treaty_version,
                forwarded_by=forwarded_by,
                author_envelope=author_envelope,
                content_key=content_key,
            )
        )
        w.event("case.entry_added", case_id=case_id, entry_id=entry_id, agency_id=author)

    @staticmethod
    def _touch(w: Writer, row: Row[Any], inc: Incoming) -> None:
        values: dict[str, Any] = {"update_ms": now_ms()}
        if row.standing != OWNER:
            values["retain_until_ms"] = max(row.retain_until_ms or 0, inc.retain_until_ms)
        w.conn.execute(update(t.cases).where(t.cases.c.case_id == row.case_id).values(**values))

    def on_membership(self, w: Writer, inc: Incoming) -> Stored:
        """The owner's state of a case, with history or relayed entries for us."""
        h = inc.header
        case_id, row = self._known_case(w, inc)
        try:
            data = cr.parse_json(inc.payload)
            if data.get("op") != "state":
                raise cr.Malformed("op is not 'state'")
            revision = cr.int_field(data, "revision", minimum=1)
            created_ms = cr.int_field(data, "created_ms")
            members = cr.str_list(data, "members")
            status = data.get("status")
            if status not in cr.STATUSES:
                raise cr.Malformed("status is not open or closed")
            if data.get("owner") != h.sender or h.sender not in members:
                raise cr.Malformed("the owner must be the sender and a member")
            case_record = data.get("case")
            if not isinstance(case_record, dict) or not all(
                k == "title" and isinstance(val, str) and len(val) <= cr.MAX_TITLE * 4
                for k, val in case_record.items()
            ):
                raise cr.Malformed("case is not an object with a text title")
            items = data.get("entries")
            if not isinstance(items, list):
                raise cr.Malformed("entries is not a list")
        except cr.Malformed as exc:
            raise Refused("MALFORMED", str(exc)) from None
        decision = check_fields(case_record, inc.treaty, "case_membership")
        if not decision:
            raise Refused(decision.reason, decision.detail)
        if row is not None and row.owner_agency != h.sender:
            raise Refused(
                "REFERENCE_MISMATCH",
                f"case {case_id} is owned by {row.owner_agency}, not {h.sender}",
            )
        if row is not None and row.standing == OWNER:
            raise Refused("REFERENCE_MISMATCH", f"case {case_id} is owned by this agency")
        if row is None and not case_id_owned_by(case_id, h.sender):
            # The first membership message opens the case here with its
            # sender as the owner; only the agency that made the id may.
            raise Refused(
                "CASE_OWNER_MISMATCH",
                f"case id {case_id} was not made by {h.sender}: only its owner can open it here",
            )
        if row is None and self.agency_id not in members:
            raise Refused(
                "NOT_A_MEMBER", f"no case {case_id} here, and this agency is not a member"
            )
        state = {
            "title": case_record.get("title"),
            "status": status,
            "revision": revision,
            "treaty_version": h.treaty_version,
            "members": members,
            "created_ms": created_ms,
        }
        if row is None:
            self._join(w, inc, case_id, state)
        elif revision > row.revision:
            self._apply(w, inc, row, state)
        else:
            self._touch(w, row, inc)
        standing = db.case_row(w.conn, case_id)
        assert standing is not None
        if standing.standing == MEMBER:
            for n, item in enumerate(items):
                self._store_forwarded(w, inc, standing, item, n)
        elif items:
            raise Refused("NOT_A_MEMBER", f"entries of case {case_id} after this agency's removal")
        return Stored(case_id=case_id)

    def _join(self, w: Writer, inc: Incoming, case_id: str, state: Mapping[str, Any]) -> None:
        h = inc.header
        w.conn.execute(
            insert(t.cases).values(
                case_id=case_id,
                owner_agency=h.sender,
                standing=MEMBER,
                title=state["title"],
                status=state["status"],
                treaty_id=h.treaty_id,
                treaty_version=h.treaty_version,
                categories=dumps(sorted(h.categories)),
                handling=int(h.handling),
                tlp=int(h.tlp),
                revision=state["revision"],
                create_ms=state["created_ms"],
                update_ms=now_ms(),
                close_ms=inc.create_ms if state["status"] == cr.CLOSED else None,
                message_id=h.message_id,
                received_ms=inc.received_ms,
                retain_until_ms=inc.retain_until_ms,
            )
        )
        w.conn.execute(
            insert(t.case_members),
            [
                {"case_id": case_id, "agency_id": a, "state": ACTIVE, "added_ms": inc.create_ms}
                for a in state["members"]
            ],
        )
        w.event("case.received", case_id=case_id, agency_id=h.sender)

    def _apply(self, w: Writer, inc: Incoming, row: Row[Any], state: Mapping[str, Any]) -> None:
        """A newer revision: members, state and this agency's standing as the owner says."""
        case_id = row.case_id
        known = {
            m.agency_id: m
            for m in w.conn.execute(
                select(t.case_members).where(t.case_members.c.case_id == case_id)
            )
        }
        members = set(state["members"])
        at = inc.create_ms
        for agency in sorted(members):
            m = known.get(agency)
            if m is None:
                w.conn.execute(
                    insert(t.case_members).values(
                        case_id=case_id, agency_id=agency, state=ACTIVE, added_ms=at
                    )
                )
            elif m.state != ACTIVE:
                w.conn.execute(
                    update(t.case_members)
                    .where(
                        t.case_members.c.case_id == case_id, t.case_members.c.agency_id == agency
                    )
                    .values(state=ACTIVE, added_ms=at, removed_ms=None)
                )
            else:
                continue
            w.event("case.member_added", case_id=case_id, agency_id=agency)
        for agency, m in sorted(known.items()):
            if m.state == ACTIVE and agency not in members:
                w.conn.execute(
                    update(t.case_members)
                    .where(
                        t.case_members.c.case_id == case_id, t.case_members.c.agency_id == agency
                    )
                    .values(state=REMOVED, removed_ms=at)
                )
                w.event("case.member_removed", case_id=case_id, agency_id=agency)
        closing = state["status"] == cr.CLOSED and row.status != cr.CLOSED
        w.conn.execute(
            update(t.cases)
            .where(t.cases.c.case_id == case_id)
            .values(
                title=state["title"],
                status=state["status"],
                revision=state["revision"],
                treaty_version=state["treaty_version"],
                standing=MEMBER if self.agency_id in members else REMOVED,
                update_ms=now_ms(),
                close_ms=at if closing else row.close_ms,
                retain_until_ms=max(row.retain_until_ms or 0, inc.retain_until_ms),
            )
        )
        if closing:
            w.event("case.closed", case_id=case_id, agency_id=row.owner_agency)

    def _store_forwarded(self, w: Writer, inc: Incoming, case: Row[Any], item: Any, n: int) -> None:
        """One entry of history or relay; refuses the whole message if any entry is bad."""
        h = inc.header
        where = f"entries[{n}]"
        try:
            if not isinstance(item, dict):
                raise cr.Malformed(f"{where} is not an object")
            entry_id = item.get("entry_id")
            author = item.get("author")
            if not isinstance(entry_id, str) or not is_message_id(entry_id):
                raise cr.Malformed(f"{where}.entry_id is not a message id")
            if not isinstance(author, str) or not inc.treaty.is_party(author):
                raise cr.Malformed(f"{where}.author is not a party of the treaty")
            created_ms = cr.int_field(item, "created_ms")
            if "envelope" in item:
                envelope = cr.unb64(item, "envelope", self.max_payload_bytes + 128 * 1024)
                key = cr.unb64(item, "content_key", 64)
            else:
                record = cr.check_entry_shape(item.get("record"))
        except cr.Malformed as exc:
            raise Refused("MALFORMED", str(exc)) from None
        if self._has_entry(w.conn, entry_id):
            return
        if "envelope" in item:
            try:
                opened = open_disclosed(
                    envelope,
                    key,
                    self.trust.directory,
                    now=datetime.now(UTC),
                    max_payload_bytes=self.max_payload_bytes,
                )
            except (errors.EnvelopeInvalid, errors.PayloadTooLarge) as exc:
                detail = getattr(exc, "audit_detail", "") or exc.message
                raise Refused("SIGNATURE_INVALID", f"{where}: {detail}") from None
            oh = opened.header
            if (
                oh.kind != envelope_pb2.MESSAGE_KIND_CASE_ENTRY
                or oh.case_id != case.case_id
                or oh.sender != author
                or oh.message_id != entry_id
                or oh.treaty_id != case.treaty_id
            ):
                raise Refused(
                    "REFERENCE_MISMATCH",
                    f"{where}: the forwarded envelope is not entry {entry_id} of case "
                    f"{case.case_id} by {author}",
                )
            try:
                record = cr.check_entry_shape(cr.parse_json(opened.payload))
            except cr.Malformed as exc:
                raise Refused("MALFORMED", f"{where}: {exc}") from None
            decision = check_fields(record, inc.treaty, "case_entry")
            if not decision:
                raise Refused(decision.reason, f"{where}: {decision.detail}")
            self._insert_received(
                w,
                case_id=case.case_id,
                entry_id=entry_id,
                author=author,
                record=record,
                create_ms=oh.create_time.seconds * 1000 + oh.create_time.nanos // 1_000_000,
                inc=inc,
                signature=SIG_FORWARDED,
                evidence_message_id=entry_id,
                envelope_sha256=opened.envelope_sha256,
                treaty_version=oh.treaty_version,
                forwarded_by=h.sender,
                author_envelope=envelope,
                content_key=key,
            )
            return
        decision = check_fields(record, inc.treaty, "case_entry")
        if not decision:
            raise Refused(decision.reason, f"{where}: {decision.detail}")
        self._insert_received(
            w,
            case_id=case.case_id,
            entry_id=entry_id,
            author=author,
            record=record,
            create_ms=created_ms,
            inc=inc,
            signature=SIG_AUTHOR if author == h.sender else SIG_OWNER,
            evidence_message_id=h.message_id,
            envelope_sha256=inc.envelope_sha256,
            treaty_version=h.treaty_version,
            forwarded_by=None if author == h.sender else h.sender,
        )
