"""Cases and joint task forces: one case, several agencies, one treaty.

A case has an owner agency (the node where it was opened), a title, a
state (open/closed), one treaty, member agencies that are all parties of
that treaty, and an append-only list of entries. Every member's node holds
its own copy; there is no central case server (the gateway only routes
sealed envelopes), so the design is about keeping those copies in step.

Who sends what
--------------
* **Entries** (``CASE_ENTRY``). The author's node seals the entry once,
  signed by the author agency, for every *other* active member it knows
  of, with the fields the treaty's ``case_entry`` allow-list does not
  permit removed before sealing (a case has one treaty, so all members get
  the same view). The entry id is that envelope's message id — the same
  on every node — and ids are UUIDv7, so ordering by (author time, id)
  gives every node the same order.
* **Membership** (``CASE_MEMBERSHIP``), from the owner only. Every such
  message carries the whole current state (members, state, a revision
  number the owner increments with each change), so a receiver applies a
  newer revision and ignores an older one, whatever happened in between.
  Opening a case sends the state to the first members; adding a member
  sends the new state to the existing members *first* and then, to the new
  member, the state with the case's **history**; removing a member sends
  the new state to the remaining members and a last one to the removed
  member, whose node marks itself removed and refuses (audited) anything
  about the case after that; closing sends the closed state.
* **Relay.** An author that had not yet learnt of a new member (its entry
  crossed the owner's membership message) leaves that member out. The
  owner receives every entry (it is always a member), sees which active
  members the author's envelope missed, and forwards the entry to them
  the same way as history. So every member ends up with every entry
  written while it was a member, without trusting authors to know the
  membership at every instant.

Ordering makes this work without a central sequencer: the owner's sender
submits its messages in order (:mod:`node.sharing.outbound`) and the gateway keeps
each recipient's queue in acceptance order, so an existing member learns
of a new member before that member can possibly write, and a new member
receives its history before any entry addressed to it.

Attribution of entries written by others
----------------------------------------
An entry must stay attributable to its author on every node, including a
member that joined later and never received the author's envelope. The
owner therefore forwards each entry written by another agency as **the
author's original envelope, byte for byte, together with its content
key** (unwrapped from the owner's own key block), inside the owner's
signed ``CASE_MEMBERSHIP`` envelope. The new member verifies the author's
signature against the directory, checks the disclosed key against the
content-key commitment in the signed header, decrypts, and keeps both:
the entry is then bound to the author's signature exactly as if it had
been addressed to it (:mod:`node.sharing.evidence`). The owner's own entries
travel as records in the owner's envelope, which the owner — their author
— signs. Only when an author's envelope cannot be forwarded as it is (it
holds a field the current treaty version no longer allows, or the owner no
longer holds it) does the owner send a re-redacted record vouched for by
its own signature, and the entry says so (``ENTRY_SIGNATURE_OWNER_ATTESTED``).
Each entry exposes its author, the message id and SHA-256 of the envelope
that proves it, and which of these cases applies.

Onward sharing: forwarding history to a new member is not onward sharing
in the treaty's sense. An agency that writes into a case shares with the
case — its members now and later, all parties of the case's treaty, under
that treaty — and the owner's membership changes are part of the case.
Nothing ever leaves the treaty: every member, added or not, must be a
party, and history is re-checked against the treaty version in force.

Treaty rules
------------
Opening a case needs a treaty in force that lists ``case_membership`` (the
kind of the owner's messages) and ``case_entry``, with a non-empty
``case_entry`` allow-list, the case's categories, and handling/TLP within
its maximum; every member must be a party. Each refusal is the precise
:class:`~intelshare.errors.PolicyRefused` subclass with the treaty, its
version and the rule (``kinds``, ``parties``, ``fields.case_entry``, ...)
in the error metadata. Receiving nodes check every message again.

Access on a node
----------------
Roles (see :mod:`node.storage.officers`): liaison officers and admins (``issue``) open
cases, manage members, close cases, assign officers to a case's local team,
add entries, and see every case the node holds. Analysts see, follow and
add entries to the cases they are assigned to — a joint task force is a
named team, not everyone with a login — and get ``PERMISSION_DENIED`` for
any other case, whether it exists or not (no existence oracle). The check
runs on every read and for every event a feed delivers.

Every change writes its events (ids only: ``case.created``,
``case.received``, ``case.entry_added``, ``case.member_added``,
``case.member_removed``, ``case.closed``, ``case.officer_added``,
``case.officer_removed``, ``case.purged``) and its audit entry in the same
unit of work; every officer read of a received case or entry is audited.
Received entries are purged when the treaty's retention ends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, tuple_, update

from intelshare import errors
from intelshare.ids import is_message_id, new_message_id
from intelshare.keys import AgencyKeys
from intelshare.treaty import Treaty, check_fields, redact
from intelshare.v1 import case_pb2, envelope_pb2
from node.schema import alert as rec
from node.schema import case as cr
from node.sharing.engine import Sharing
from node.sharing.evidence import disclose_content_key, open_disclosed
from node.sharing.inbound import Incoming, Refused, Stored
from node.sharing.outbound import Sealed
from node.storage import tables as t
from node.storage.officers import Officer, Permission
from node.storage.store import Store, Writer, dumps, now_ms, rows_by

log = logging.getLogger(__name__)

OWNER = "owner"
MEMBER = "member"
REMOVED = "removed"
ACTIVE = "active"

WRITTEN = "written"
RECEIVED = "received"

#: How an entry is bound to its author (``node_case_entries.signature``).
SIG_SEALED_HERE = "sealed_here"
SIG_AUTHOR = "author"
SIG_FORWARDED = "forwarded"
SIG_OWNER = "owner"

_SIGNATURES = {
    SIG_SEALED_HERE: case_pb2.ENTRY_SIGNATURE_SEALED_HERE,
    SIG_AUTHOR: case_pb2.ENTRY_SIGNATURE_AUTHOR_ENVELOPE,
    SIG_FORWARDED: case_pb2.ENTRY_SIGNATURE_FORWARDED_AUTHOR_ENVELOPE,
    SIG_OWNER: case_pb2.ENTRY_SIGNATURE_OWNER_ATTESTED,
}
_STANDINGS = {
    OWNER: case_pb2.CASE_STANDING_OWNER,
    MEMBER: case_pb2.CASE_STANDING_MEMBER,
    REMOVED: case_pb2.CASE_STANDING_REMOVED,
}

DEFAULT_PAGE = 50
MAX_PAGE = 500
#: Audit entries list at most this many ids each (leaves are capped at 16 KiB).
_AUDIT_IDS = 200
#: Room left in a history envelope for the state and the JSON framing.
_HISTORY_MARGIN = 64 * 1024
#: Longest time an envelope about a case waits at the gateway for an offline member.
_MAX_WAIT_DAYS = 366


class Cases:
    """Case operations of one node: officers' side and inbound handlers."""

    def __init__(
        self,
        *,
        agency_id: str,
        store: Store,
        sharing: Sharing,
        keys: AgencyKeys,
        max_payload_bytes: int,
    ) -> None:
        self.agency_id = agency_id
        self.store = store
        self.sharing = sharing
        self.trust = sharing.trust
        self.keys = keys
        self.max_payload_bytes = max_payload_bytes
        sharing.register(envelope_pb2.MESSAGE_KIND_CASE_ENTRY, self.on_entry)
        sharing.register(envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP, self.on_membership)

    def _seal(
        self,
        treaty: Treaty,
        case: Mapping[str, Any],
        *,
        kind: envelope_pb2.MessageKind.ValueType,
        recipients: Iterable[str],
        payload: Mapping[str, Any],
    ) -> Sealed:
        """A message about ``case``: its header facts, waiting at most the treaty's retention."""
        return self.sharing.seal(
            treaty,
            kind=kind,
            recipients=sorted(recipients),
            handling=int(case["handling"]),
            tlp=int(case["tlp"]),
            categories=json.loads(case["categories"]),
            expire_ms=now_ms() + min(treaty.retention_days, _MAX_WAIT_DAYS) * 86_400_000,
            payload=payload,
            case_id=str(case["case_id"]),
        )

    # --- rows and access --------------------------------------------------------------

    @staticmethod
    def _lock(conn: Connection, case_id: str) -> None:
        """Serialize changes to one case: the first statement of its unit of work.

        An officer's change and an inbound message about the same case must
        not interleave: adding a member reads the entries (for the history)
        while an inbound entry reads the members (to relay to those its
        author missed); interleaved, each would miss the other's write and
        the new member would never get that entry. A no-op UPDATE of the
        case row takes the row lock on PostgreSQL and the write lock on
        SQLite before anything is read, so whichever comes second sees what
        the first committed. Taken before the event counter (which every
        unit of work takes last), so the lock order is always the same.
        """
        conn.execute(
            update(t.cases).where(t.cases.c.case_id == case_id).values(revision=t.cases.c.revision)
        )

    @staticmethod
    def _case_row(conn: Connection, case_id: str) -> Row[Any] | None:
        return conn.execute(select(t.cases).where(t.cases.c.case_id == case_id)).first()

    @staticmethod
    def _active_members(conn: Connection, case_id: str) -> list[str]:
        return sorted(
            r.agency_id
            for r in conn.execute(
                select(t.case_members.c.agency_id).where(
                    t.case_members.c.case_id == case_id, t.case_members.c.state == ACTIVE
                )
            )
        )

    def require_case(self, conn: Connection, officer: Officer, case_id: str) -> Row[Any]:
        """The case, if ``officer`` may see it (see "Access on a node")."""
        name = cr.case_name(case_id)
        if not officer.can(Permission.ISSUE):
            assigned = conn.execute(
                select(t.case_officers.c.case_id).where(
                    t.case_officers.c.case_id == case_id,
                    t.case_officers.c.officer_id == officer.officer_id,
                )
            ).first()
            if assigned is None:
                raise errors.PermissionDenied(
                    f"you are not on the team of case {name}; a liaison officer can add you",
                    metadata={"name": name, "role": officer.role},
                )
        row = self._case_row(conn, case_id)
        if row is None:
            raise errors.NotFound(f"case {name} does not exist", metadata={"name": name})
        return row

    def _require_owner_open(self, row: Row[Any], what: str) -> None:
        name = cr.case_name(row.case_id)
        if row.standing != OWNER:
            raise errors.FailedPrecondition(
                f"case {name} is owned by {row.owner_agency}; only the owner can {what}",
                metadata={"name": name, "owner_agency": row.owner_agency},
            )
        if row.status != cr.OPEN:
            raise errors.FailedPrecondition(
                f"case {name} is closed", metadata={"name": name, "state": "closed"}
            )

    def visible_case_ids(self, conn: Connection, officer: Officer) -> set[str] | None:
        """Case ids ``officer`` may see, or None for "every case" (liaison, admin)."""
        if officer.can(Permission.ISSUE):
            return None
        return {
            r.case_id
            for r in conn.execute(
                select(t.case_officers.c.case_id).where(
                    t.case_officers.c.officer_id == officer.officer_id
                )
            )
        }

    def _state(
        self,
        case: Mapping[str, Any],
        treaty: Treaty,
        members: Sequence[str],
        entries: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """The owner's CASE_MEMBERSHIP payload (see :mod:`node.schema.case`)."""
        title = case.get("title")
        return {
            "op": "state",
            "revision": int(case["revision"]),
            "owner": self.agency_id,
            "status": case["status"],
            "created_ms": int(case["create_ms"]),
            "members": sorted(members),
            "case": redact({"title": title} if title else {}, treaty, "case_membership"),
            "entries": list(entries),
        }

    # --- open a case ------------------------------------------------------------------

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
        case_id = new_message_id()
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
        return self._load(w.conn, case_id)

    # --- entries ----------------------------------------------------------------------

    def add_entry(
        self, w: Writer, officer: Officer, parent: str, entry: case_pb2.CaseEntry
    ) -> case_pb2.CaseEntry:
        case_id = cr.parse_case_name(parent, "parent")
        record = cr.entry_record(entry, datetime.now(UTC).date())
        self._lock(w.conn, case_id)
        row = self.require_case(w.conn, officer, case_id)
        name = cr.case_name(case_id)
        if row.standing == REMOVED:
            raise errors.FailedPrecondition(
                f"this agency was removed from case {name}; it can add nothing",
                metadata={"name": name},
            )
        if row.status != cr.OPEN:
            raise errors.FailedPrecondition(
                f"case {name} is closed", metadata={"name": name, "state": "closed"}
            )
        treaty = self.sharing.current(row.treaty_id)
        others = [a for a in self._active_members(w.conn, case_id) if a != self.agency_id]
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
        return self._entries(w.conn, [self._entry_row(w.conn, entry_id)])[0]

    @staticmethod
    def _entry_row(conn: Connection, entry_id: str) -> Row[Any]:
        return conn.execute(
            select(t.case_entries).where(t.case_entries.c.entry_id == entry_id)
        ).one()

    # --- membership ---------------------------------------------------------------------

    def add_member(self, w: Writer, officer: Officer, name: str, agency_id: str) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        cr.validate_agency(agency_id)
        self._lock(w.conn, case_id)
        row = self.require_case(w.conn, officer, case_id)
        self._require_owner_open(row, "add members")
        if agency_id == self.agency_id:
            raise errors.InvalidArgument(
                "the owner is a member already", violations={"agency_id": "not the owner"}
            )
        before = self._active_members(w.conn, case_id)
        if agency_id in before:
            raise errors.FailedPrecondition(
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
        return self._load(w.conn, case_id)

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
            raise errors.FailedPrecondition(
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
        budget = max(self.max_payload_bytes - _HISTORY_MARGIN, self.max_payload_bytes // 2)
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
        self._lock(w.conn, case_id)
        row = self.require_case(w.conn, officer, case_id)
        self._require_owner_open(row, "remove members")
        if agency_id == self.agency_id:
            raise errors.InvalidArgument(
                "the owner cannot leave its own case (close it instead)",
                violations={"agency_id": "not the owner"},
            )
        before = self._active_members(w.conn, case_id)
        if agency_id not in before:
            raise errors.FailedPrecondition(
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
        return self._load(w.conn, case_id)

    def close(self, w: Writer, officer: Officer, name: str) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        self._lock(w.conn, case_id)
        row = self.require_case(w.conn, officer, case_id)
        self._require_owner_open(row, "close it")
        treaty = self.sharing.current(row.treaty_id)
        members = self._active_members(w.conn, case_id)
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
        return self._load(w.conn, case_id)

    # --- the local team -------------------------------------------------------------------

    def _officer_by_name(self, conn: Connection, officer_name: str) -> Row[Any]:
        if not officer_name or len(officer_name) > 200:
            raise errors.InvalidArgument(
                "officer must be the name of an officer of this node",
                violations={"officer": "required: an officer's name"},
            )
        row = conn.execute(select(t.officers).where(t.officers.c.name == officer_name)).first()
        if row is None:
            raise errors.NotFound(
                f"no officer named {officer_name!r} on this node",
                metadata={"officer": officer_name},
            )
        return row

    def add_officer(
        self, w: Writer, officer: Officer, name: str, officer_name: str
    ) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        row = self.require_case(w.conn, officer, case_id)
        target = self._officer_by_name(w.conn, officer_name)
        if target.disabled:
            raise errors.FailedPrecondition(
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
        return self._load(w.conn, case_id)

    def remove_officer(
        self, w: Writer, officer: Officer, name: str, officer_name: str
    ) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        self.require_case(w.conn, officer, case_id)
        target = self._officer_by_name(w.conn, officer_name)
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
        return self._load(w.conn, case_id)

    # --- reading -------------------------------------------------------------------------

    def get(self, officer: Officer, name: str) -> case_pb2.Case:
        case_id = cr.parse_case_name(name)
        with self.store.write() as w:
            row = self.require_case(w.conn, officer, case_id)
            case = self._build(w.conn, [row])[0]
            if row.standing != OWNER:
                w.audit(
                    "read",
                    {"officer_id": officer.officer_id, "case_ids": [case_id], "method": "GetCase"},
                )
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
            raise errors.InvalidArgument(rec.summary(v), violations=v)
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
            cases = self._build(w.conn, rows)
            received = [r.case_id for r in rows if r.standing != OWNER]
            for start in range(0, len(received), _AUDIT_IDS):
                w.audit(
                    "read",
                    {
                        "officer_id": officer.officer_id,
                        "case_ids": received[start : start + _AUDIT_IDS],
                        "method": "ListCases",
                    },
                )
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
            raise errors.InvalidArgument(rec.summary(v), violations=v)
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
            entries = self._entries(w.conn, rows)
            received = [r.entry_id for r in rows if r.direction == RECEIVED]
            for start in range(0, len(received), _AUDIT_IDS):
                w.audit(
                    "read",
                    {
                        "officer_id": officer.officer_id,
                        "case_ids": [case_id],
                        "entry_ids": received[start : start + _AUDIT_IDS],
                        "method": "ListCaseEntries",
                    },
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

    def _load(self, conn: Connection, case_id: str) -> case_pb2.Case:
        row = self._case_row(conn, case_id)
        assert row is not None
        return self._build(conn, [row])[0]

    def _build(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[case_pb2.Case]:
        ids = [r.case_id for r in rows]
        if not ids:
            return []
        members = rows_by(
            conn,
            select(t.case_members)
            .where(t.case_members.c.case_id.in_(ids))
            .order_by(t.case_members.c.agency_id),
            "case_id",
        )
        officers = {
            case_id: [o.name for o in rows]
            for case_id, rows in rows_by(
                conn,
                select(t.case_officers.c.case_id, t.officers.c.name)
                .join(t.officers, t.officers.c.officer_id == t.case_officers.c.officer_id)
                .where(t.case_officers.c.case_id.in_(ids))
                .order_by(t.officers.c.name),
                "case_id",
            ).items()
        }
        counts = {
            r.case_id: int(r.n)
            for r in conn.execute(
                select(t.case_entries.c.case_id, func.count().label("n"))
                .where(t.case_entries.c.case_id.in_(ids))
                .group_by(t.case_entries.c.case_id)
            )
        }
        out = []
        for r in rows:
            case = case_pb2.Case(
                name=cr.case_name(r.case_id),
                title=r.title or "",
                state=case_pb2.CASE_STATE_CLOSED
                if r.status == cr.CLOSED
                else case_pb2.CASE_STATE_OPEN,
                owner_agency=r.owner_agency,
                treaty_id=r.treaty_id,
                treaty_version=r.treaty_version,
                categories=json.loads(r.categories),
                handling=r.handling,
                tlp=r.tlp,
                standing=_STANDINGS[r.standing],
                entry_count=counts.get(r.case_id, 0),
                revision=r.revision,
                create_time=rec.ms_to_ts(r.create_ms),
                update_time=rec.ms_to_ts(r.update_ms),
                officers=officers.get(r.case_id, []),
            )
            for m in members.get(r.case_id, []):
                member = case_pb2.CaseMember(
                    agency_id=m.agency_id,
                    state=case_pb2.CASE_MEMBER_STATE_ACTIVE
                    if m.state == ACTIVE
                    else case_pb2.CASE_MEMBER_STATE_REMOVED,
                    add_time=rec.ms_to_ts(m.added_ms),
                )
                if m.removed_ms is not None:
                    member.remove_time.CopyFrom(rec.ms_to_ts(m.removed_ms))
                case.members.append(member)
            if r.close_ms is not None:
                case.close_time.CopyFrom(rec.ms_to_ts(r.close_ms))
            if r.retain_until_ms is not None:
                case.retain_until.CopyFrom(rec.ms_to_ts(r.retain_until_ms))
            out.append(case)
        return out

    def _entries(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[case_pb2.CaseEntry]:
        writers = {r.written_by for r in rows if r.written_by}
        names = (
            {
                o.officer_id: o.name
                for o in conn.execute(
                    select(t.officers.c.officer_id, t.officers.c.name).where(
                        t.officers.c.officer_id.in_(writers)
                    )
                )
            }
            if writers
            else {}
        )
        written = [r.entry_id for r in rows if r.direction == WRITTEN]
        sent = (
            {
                o.message_id: o
                for o in conn.execute(
                    select(
                        t.outbound.c.message_id, t.outbound.c.state, t.outbound.c.envelope_sha256
                    ).where(t.outbound.c.message_id.in_(written))
                )
            }
            if written
            else {}
        )
        out = []
        for r in rows:
            record = json.loads(r.record)
            entry = case_pb2.CaseEntry(
                name=cr.entry_name(r.case_id, r.entry_id),
                author_agency=r.author_agency,
                create_time=rec.ms_to_ts(r.create_ms),
                evidence=case_pb2.EntryEvidence(
                    signature=_SIGNATURES[r.signature],
                    message_id=r.evidence_message_id,
                    # An envelope resealed after a long outage has a new digest.
                    envelope_sha256=bytes(
                        sent[r.entry_id].envelope_sha256
                        if r.entry_id in sent
                        else r.envelope_sha256
                    ),
                    signer_agency=r.forwarded_by if r.signature == SIG_OWNER else r.author_agency,
                    forwarded_by=r.forwarded_by or "",
                    treaty_version=r.treaty_version,
                ),
            )
            cr.entry_to_proto(record, entry)
            if r.direction == WRITTEN:
                entry.written_by = names.get(r.written_by, "")
                entry.removed_fields.extend(json.loads(r.removed_fields or "[]"))
                entry.delivery_state = {
                    "pending": case_pb2.ENTRY_DELIVERY_STATE_QUEUED,
                    "accepted": case_pb2.ENTRY_DELIVERY_STATE_SENT,
                    "failed": case_pb2.ENTRY_DELIVERY_STATE_FAILED,
                }.get(
                    sent[r.entry_id].state if r.entry_id in sent else "",
                    case_pb2.ENTRY_DELIVERY_STATE_NOT_SHARED,
                )
            else:
                entry.fields.extend(rec.field_paths(record))
            if r.received_ms is not None:
                entry.receive_time.CopyFrom(rec.ms_to_ts(r.received_ms))
            if r.retain_until_ms is not None:
                entry.retain_until.CopyFrom(rec.ms_to_ts(r.retain_until_ms))
            out.append(entry)
        return out

    # --- inbound: entries -------------------------------------------------------------------

    def _known_case(self, w: Writer, inc: Incoming) -> tuple[str, Row[Any] | None]:
        h = inc.header
        if not is_message_id(h.case_id):
            raise Refused("MALFORMED", "case_id in the header is not a case id")
        self._lock(w.conn, h.case_id)
        row = self._case_row(w.conn, h.case_id)
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
        members = self._active_members(w.conn, case_id)
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

    # --- inbound: membership ----------------------------------------------------------------

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
        standing = self._case_row(w.conn, case_id)
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

    # --- retention ---------------------------------------------------------------------------

    def purge_retention(self, limit: int = 500) -> int:
        """Delete received entries (and then emptied received cases) past the treaty's retention."""
        now = now_ms()
        purged = 0
        with self.store.engine.connect() as conn:
            due = conn.execute(
                select(t.case_entries.c.entry_id, t.case_entries.c.case_id)
                .where(
                    t.case_entries.c.direction == RECEIVED,
                    t.case_entries.c.retain_until_ms <= now,
                )
                .limit(limit)
            ).all()
        by_case: dict[str, list[str]] = {}
        for d in due:
            by_case.setdefault(d.case_id, []).append(d.entry_id)
        for case_id, entry_ids in sorted(by_case.items()):
            with self.store.write() as w:
                gone = w.conn.execute(
                    delete(t.case_entries)
                    .where(
                        t.case_entries.c.entry_id.in_(entry_ids),
                        t.case_entries.c.retain_until_ms <= now,
                    )
                    .returning(t.case_entries.c.entry_id)
                ).all()
                gone_ids = sorted(g.entry_id for g in gone)
                for start in range(0, len(gone_ids), _AUDIT_IDS):
                    w.audit(
                        "purged",
                        {
                            "case_id": case_id,
                            "entry_ids": gone_ids[start : start + _AUDIT_IDS],
                            "rule": "retention_days",
                        },
                    )
                purged += len(gone_ids)
        with self.store.engine.connect() as conn:
            cases = conn.execute(
                select(t.cases.c.case_id, t.cases.c.treaty_id)
                .where(
                    t.cases.c.standing != OWNER,
                    t.cases.c.retain_until_ms <= now,
                    ~select(t.case_entries.c.entry_id)
                    .where(t.case_entries.c.case_id == t.cases.c.case_id)
                    .exists(),
                )
                .limit(limit)
            ).all()
        for c in cases:
            with self.store.write() as w:
                for table in (t.case_officers, t.case_members):
                    w.conn.execute(delete(table).where(table.c.case_id == c.case_id))
                gone_case = w.conn.execute(
                    delete(t.cases).where(
                        t.cases.c.case_id == c.case_id, t.cases.c.retain_until_ms <= now
                    )
                )
                if gone_case.rowcount:
                    w.event("case.purged", case_id=c.case_id)
                    w.audit(
                        "purged",
                        {"case_id": c.case_id, "treaty": c.treaty_id, "rule": "retention_days"},
                    )
                    purged += 1
        return purged


def _sealed_ms(sealed: Sealed) -> int:
    header = envelope_pb2.Header.FromString(
        envelope_pb2.Envelope.FromString(sealed.envelope).header_bytes
    )
    return rec.ts_to_ms(header.create_time)
