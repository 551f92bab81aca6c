"""A case's rows: constants, locks, reads, and the protos built from them.

The functions every part of :mod:`node.kinds.cases` reads a case through
(its row, its active members, its entries, the officer a name names) and the
one place a case's rows become ``Case`` and ``CaseEntry`` protos.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from intelshare import errors
from intelshare.v1 import case_pb2
from node.schema import alert as rec
from node.schema import case as cr
from node.storage import tables as t
from node.storage.store import rows_by

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

SIGNATURES = {
    SIG_SEALED_HERE: case_pb2.ENTRY_SIGNATURE_SEALED_HERE,
    SIG_AUTHOR: case_pb2.ENTRY_SIGNATURE_AUTHOR_ENVELOPE,
    SIG_FORWARDED: case_pb2.ENTRY_SIGNATURE_FORWARDED_AUTHOR_ENVELOPE,
    SIG_OWNER: case_pb2.ENTRY_SIGNATURE_OWNER_ATTESTED,
}
STANDINGS = {
    OWNER: case_pb2.CASE_STANDING_OWNER,
    MEMBER: case_pb2.CASE_STANDING_MEMBER,
    REMOVED: case_pb2.CASE_STANDING_REMOVED,
}

DEFAULT_PAGE = 50
MAX_PAGE = 500
#: Audit entries list at most this many ids each (leaves are capped at 16 KiB).
AUDIT_IDS = 200
#: Room left in a history envelope for the state and the JSON framing.
HISTORY_MARGIN = 64 * 1024
#: Longest time an envelope about a case waits at the gateway for an offline member.
MAX_WAIT_DAYS = 366


def lock(conn: Connection, case_id: str) -> None:
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


def case_row(conn: Connection, case_id: str) -> Row[Any] | None:
    return conn.execute(select(t.cases).where(t.cases.c.case_id == case_id)).first()


def active_members(conn: Connection, case_id: str) -> list[str]:
    return sorted(
        r.agency_id
        for r in conn.execute(
            select(t.case_members.c.agency_id).where(
                t.case_members.c.case_id == case_id, t.case_members.c.state == ACTIVE
            )
        )
    )


def entry_row(conn: Connection, entry_id: str) -> Row[Any]:
    return conn.execute(select(t.case_entries).where(t.case_entries.c.entry_id == entry_id)).one()


def officer_by_name(conn: Connection, officer_name: str) -> Row[Any]:
    if not officer_name or len(officer_name) > 200:
        raise errors.FieldInvalid(
            "officer must be the name of an officer of this node",
            violations={"officer": "required: an officer's name"},
        )
    row = conn.execute(select(t.officers).where(t.officers.c.name == officer_name)).first()
    if row is None:
        raise errors.OfficerNotFound(
            f"no officer named {officer_name!r} on this node",
            metadata={"officer": officer_name},
        )
    return row


def load(conn: Connection, case_id: str) -> case_pb2.Case:
    row = case_row(conn, case_id)
    assert row is not None
    return build_cases(conn, [row])[0]


def build_cases(conn: Connection, rows: Sequence[Row[Any]]) -> list[case_pb2.Case]:
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
            state=case_pb2.CASE_STATE_CLOSED if r.status == cr.CLOSED else case_pb2.CASE_STATE_OPEN,
            owner_agency=r.owner_agency,
            treaty_id=r.treaty_id,
            treaty_version=r.treaty_version,
            categories=json.loads(r.categories),
            handling=r.handling,
            tlp=r.tlp,
            standing=STANDINGS[r.standing],
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


def build_entries(conn: Connection, rows: Sequence[Row[Any]]) -> list[case_pb2.CaseEntry]:
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
                signature=SIGNATURES[r.signature],
                message_id=r.evidence_message_id,
                # An envelope resealed after a long outage has a new digest.
                envelope_sha256=bytes(
                    sent[r.entry_id].envelope_sha256 if r.entry_id in sent else r.envelope_sha256
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
