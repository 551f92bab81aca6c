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

The package, module by module
-----------------------------
``db``
    constants, the reads every part shares, and the protos built from rows;
``core``
    collaborators, sealing with the case's header facts, access;
``members``
    the owner's operations and the local case team;
``entries``
    writing entries and officers' reads;
``inbound``
    received entries and membership states;
this module
    :class:`Cases`, all of them together, and retention.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select

from intelshare.keys import AgencyKeys
from intelshare.v1 import envelope_pb2
from node.kinds.cases.db import AUDIT_IDS, OWNER, RECEIVED
from node.kinds.cases.entries import CaseEntries
from node.kinds.cases.inbound import CaseInbound
from node.kinds.cases.members import CaseMembers
from node.sharing.engine import Sharing
from node.storage import tables as t
from node.storage.store import Store, now_ms

log = logging.getLogger(__name__)


class Cases(CaseMembers, CaseEntries, CaseInbound):
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
        super().__init__(
            agency_id=agency_id,
            store=store,
            sharing=sharing,
            keys=keys,
            max_payload_bytes=max_payload_bytes,
        )
        sharing.register(envelope_pb2.MESSAGE_KIND_CASE_ENTRY, self.on_entry)
        sharing.register(envelope_pb2.MESSAGE_KIND_CASE_MEMBERSHIP, self.on_membership)

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
                for start in range(0, len(gone_ids), AUDIT_IDS):
                    w.audit(
                        "purged",
                        {
                            "case_id": case_id,
                            "entry_ids": gone_ids[start : start + AUDIT_IDS],
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


__all__ = ["Cases"]
