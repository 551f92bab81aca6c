"""Generic record kinds: a kind declares itself, the engine does the rest.

Most record kinds need nothing beyond what every shared record has: a
stored copy, one redacted view per treaty, a delivery per recipient,
updates, withdrawal, receipts, retention and audited reads. Such a kind is
a :class:`RecordKind` — its name (the treaty kind), its resource
collection, its protobuf message, its JSON form both ways, its validation,
its data categories and expiry — registered with :class:`Records`. It
touches no engine module: recordations, detention reports, risk profiles
and risk hits are kinds of this sort, and so is the test suite's toy kind.

On the wire a record travels as ``MESSAGE_KIND_RECORD`` (updates
``MESSAGE_KIND_RECORD_UPDATE``, withdrawals ``MESSAGE_KIND_RECORD_REVOCATION``)
with the kind's name in the signed header's ``record_kind``, which the
gateway checks against the treaty's ``kinds`` like any other kind. The
payload is the record's JSON form with every field the treaty's
allow-list for that kind does not name removed before sealing; the
receiving node checks the fields again, parses the record with the kind's
own parser, and refuses (audited) what does not fit.

Names and ids: a record is ``{collection}/{record_id}``. The issuer's id is
the message id of its first view's envelope; a recipient's id is the
message id of the envelope it received, so with one treaty both sides use
the same id (as for alerts).

Updates are sealed per view with ``reference_id`` = the view's id, so each
recipient applies them to the copy it holds; an update older than what a
recipient applied is kept as evidence, not applied. A withdrawal reaches
every copy; the recipient keeps the record, marked withdrawn.

This module is what the engine does with such records, issuing and
receiving, and their retention. The declaration and the stored form are
:mod:`node.sharing.record_kind`; reading and paging are
:mod:`node.sharing.record_reads`, which :class:`Records` inherits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Row, delete, select, update

from intelshare import errors
from intelshare.treaty import check_fields
from intelshare.v1 import envelope_pb2
from node.schema.alert import field_paths
from node.sharing.engine import Share, Sharing
from node.sharing.incoming import Incoming, Refused, Stored, parse_payload
from node.sharing.record_kind import (
    ACTIVE,
    ISSUED,
    RECEIVED,
    WITHDRAWN,
    M,
    RecordKind,
    StoredRecord,
)
from node.sharing.record_reads import RecordReads
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Store, Writer, dumps, now_ms

log = logging.getLogger(__name__)


class Records(RecordReads):
    """The generic kinds of one node, over the sharing engine."""

    def __init__(self, *, agency_id: str, store: Store, sharing: Sharing) -> None:
        self.agency_id = agency_id
        self.store = store
        self.sharing = sharing
        self.kinds: dict[str, RecordKind[Any]] = {}
        sharing.register(envelope_pb2.MESSAGE_KIND_RECORD, self.on_record)
        sharing.register(envelope_pb2.MESSAGE_KIND_RECORD_UPDATE, self.on_update)
        sharing.register(envelope_pb2.MESSAGE_KIND_RECORD_REVOCATION, self.on_withdrawal)
        sharing.on_receipt(self._on_receipt)
        sharing.on_failed(self._on_send_failed)

    def register(self, kind: RecordKind[Any]) -> None:
        """Run ``kind`` on this engine (its treaty name must be in the federation's vocabulary)."""
        if kind.name in self.kinds:
            raise ValueError(f"record kind {kind.name} is registered already")
        self.kinds[kind.name] = kind

    def kind(self, name: str) -> RecordKind[Any]:
        try:
            return self.kinds[name]
        except KeyError:
            raise errors.FieldInvalid(
                f"this node has no record kind {name!r}", violations={"kind": "unknown"}
            ) from None

    # --- issuing side ---------------------------------------------------------------------

    def _share(
        self, kind: RecordKind[M], message: M, handling: int, tlp: int, *, update: bool
    ) -> Share:
        record = kind.to_record(message)
        return Share(
            record=record,
            treaty_kind=kind.name,
            fields_kind=kind.name,
            message_kind=(
                envelope_pb2.MESSAGE_KIND_RECORD_UPDATE
                if update
                else envelope_pb2.MESSAGE_KIND_RECORD
            ),
            record_kind=kind.name,
            handling=handling,
            tlp=tlp,
            categories=sorted(set(kind.categories(message))),
            expire_ms=kind.expire_ms(message),
            paths=frozenset(field_paths(record)),
        )

    def create(
        self,
        w: Writer,
        officer: Officer,
        kind: RecordKind[M],
        message: M,
        *,
        recipients: Mapping[str, Sequence[str]],
        handling: int,
        tlp: int,
    ) -> StoredRecord[M]:
        """Store ``message`` and share it with ``recipients`` (treaty id -> agencies).

        With no recipients the record is kept here only (an agency's own
        recordation, say) and can be shared later by an update of its
        recipients — not yet: today a record's recipients are fixed at creation.
        """
        kind.validate(message)
        share = self._share(kind, message, handling, tlp, update=False)
        views = self.sharing.views(share, recipients) if recipients else []
        sealed = [v.sealed for v in views if v.sealed is not None]
        record_id = sealed[0].message_id if sealed else _local_id()
        at = now_ms()
        row = {
            "record_id": record_id,
            "kind": kind.name,
            "direction": ISSUED,
            "origin_agency": self.agency_id,
            "treaty_id": views[0].treaty.id if views else "",
            "treaty_version": views[0].treaty.version if views else 0,
            "categories": dumps(list(share.categories)),
            "handling": handling,
            "tlp": tlp,
            "record": dumps(share.record),
            "revision": 1,
            "state": ACTIVE,
            "create_ms": at,
            "update_ms": at,
            "expire_ms": share.expire_ms,
            "created_by": officer.officer_id,
        }
        w.conn.execute(t.records.insert().values(**row))
        for v, s in zip(views, sealed, strict=True):
            w.conn.execute(
                t.record_views.insert().values(
                    view_id=s.message_id,
                    record_id=record_id,
                    treaty_id=v.treaty.id,
                    treaty_version=v.treaty.version,
                    recipients=dumps(v.recipients),
                    payload=s.payload,
                    removed_fields=dumps(v.removed),
                    revision=1,
                )
            )
            w.conn.execute(
                t.record_deliveries.insert(),
                [
                    {
                        "record_id": record_id,
                        "agency_id": a,
                        "view_id": s.message_id,
                        "treaty_id": v.treaty.id,
                        "treaty_version": v.treaty.version,
                    }
                    for a in v.recipients
                ],
            )
        if sealed:
            self.sharing.queue_later(w, sealed, None)
        w.event("record.issued", record_id=record_id)
        w.audit(
            "record_issued",
            {
                "record_id": record_id,
                "kind": kind.name,
                "officer_id": officer.officer_id,
                "treaties": [f"{v.treaty.id}@{v.treaty.version}" for v in views],
                "messages": [s.message_id for s in sealed],
            },
        )
        stored = self._load(w.conn, kind, record_id)
        if kind.on_stored is not None:
            kind.on_stored(w, stored)
        return stored

    def update(
        self, w: Writer, officer: Officer, kind: RecordKind[M], name: str, message: M
    ) -> StoredRecord[M]:
        """Replace an issued record and send the new version to every recipient."""
        record_id = kind.parse_name(name)
        row = self._row(w.conn, kind, record_id)
        self._require_issued_active(kind, row)
        kind.validate(message)
        share = self._share(kind, message, row.handling, row.tlp, update=True)
        view_rows = w.conn.execute(
            select(t.record_views)
            .where(t.record_views.c.record_id == record_id)
            .order_by(t.record_views.c.view_id)
        ).all()
        by_treaty = {vr.treaty_id: vr for vr in view_rows}
        views = self.sharing.views(
            share,
            {vr.treaty_id: json.loads(vr.recipients) for vr in view_rows},
            reference_ids={vr.treaty_id: vr.view_id for vr in view_rows},
        )
        changed = w.conn.execute(
            update(t.records)
            .where(
                t.records.c.record_id == record_id,
                t.records.c.revision == row.revision,
                t.records.c.state == ACTIVE,
            )
            .values(
                record=dumps(share.record),
                categories=dumps(list(share.categories)),
                expire_ms=share.expire_ms,
                revision=row.revision + 1,
                update_ms=now_ms(),
            )
        )
        if not changed.rowcount:
            raise errors.ChangedMeanwhile(
                f"{name} changed while this update was prepared; retry", metadata={"name": name}
            )
        for v in views:
            assert v.sealed is not None
            vr = by_treaty[v.treaty.id]
            w.conn.execute(
                update(t.record_views)
                .where(t.record_views.c.view_id == vr.view_id)
                .values(
                    payload=v.sealed.payload,
                    treaty_version=v.treaty.version,
                    removed_fields=dumps(v.removed),
                    revision=row.revision + 1,
                )
            )
            w.conn.execute(
                update(t.record_deliveries)
                .where(t.record_deliveries.c.view_id == vr.view_id)
                .values(treaty_version=v.treaty.version)
            )
            self.sharing.queue(w, v.sealed)
        w.event("record.updated", record_id=record_id)
        w.audit(
            "record_updated",
            {
                "record_id": record_id,
                "kind": kind.name,
                "officer_id": officer.officer_id,
                "messages": [v.sealed.message_id for v in views if v.sealed],
            },
        )
        stored = self._load(w.conn, kind, record_id)
        if kind.on_stored is not None:
            kind.on_stored(w, stored)
        return stored

    def withdraw(
        self, w: Writer, officer: Officer, kind: RecordKind[M], name: str, reason: str
    ) -> StoredRecord[M]:
        """Withdraw an issued record at every recipient (a recall of every copy)."""
        record_id = kind.parse_name(name)
        if len(reason) > 2000:
            raise errors.FieldInvalid(
                "reason is longer than 2000 characters", violations={"reason": "too long"}
            )
        row = self._row(w.conn, kind, record_id)
        self._require_issued_active(kind, row)
        view_rows = w.conn.execute(
            select(t.record_views)
            .where(t.record_views.c.record_id == record_id)
            .order_by(t.record_views.c.view_id)
        ).all()
        sealed = []
        for vr in view_rows:
            treaty = self.sharing.in_force_or_current(vr.treaty_id, vr.treaty_version)
            agencies = json.loads(vr.recipients)
            self.sharing.check(
                treaty,
                kind="record_revocation",
                recipients=agencies,
                categories=[],
                handling=row.handling,
                tlp=row.tlp,
            )
            sealed.append(
                self.sharing.seal(
                    treaty,
                    kind=envelope_pb2.MESSAGE_KIND_RECORD_REVOCATION,
                    recipients=agencies,
                    handling=row.handling,
                    tlp=row.tlp,
                    categories=[],
                    expire_ms=max(row.expire_ms, self.sharing.control_expire_ms()),
                    payload={"reason": reason} if reason else {},
                    reference_id=vr.view_id,
                )
            )
        at = now_ms()
        changed = w.conn.execute(
            update(t.records)
            .where(t.records.c.record_id == record_id, t.records.c.state == ACTIVE)
            .values(state=WITHDRAWN, revoke_ms=at, revoke_reason=reason or None, update_ms=at)
        )
        if not changed.rowcount:
            raise errors.RecordWithdrawn(
                f"{name} was withdrawn", metadata={"name": name, "state": WITHDRAWN}
            )
        for s in sealed:
            self.sharing.queue(w, s)
        w.event("record.withdrawn", record_id=record_id)
        w.audit(
            "record_withdrawn",
            {
                "record_id": record_id,
                "kind": kind.name,
                "officer_id": officer.officer_id,
                "messages": [s.message_id for s in sealed],
            },
        )
        return self._load(w.conn, kind, record_id)

    def _require_issued_active(self, kind: RecordKind[Any], row: Row[Any]) -> None:
        name = kind.record_name(row.record_id)
        if row.direction != ISSUED:
            raise errors.NotIssuer(
                f"{name} was received from {row.origin_agency}; only the issuing agency can "
                "change it",
                metadata={"name": name},
            )
        if row.state != ACTIVE:
            raise errors.RecordWithdrawn(
                f"{name} was withdrawn", metadata={"name": name, "state": row.state}
            )

    # --- receiving side -------------------------------------------------------------------

    def _received(self, inc: Incoming) -> tuple[RecordKind[Any], dict[str, Any], Message]:
        """The kind, checked fields and parsed message of a received record or update."""
        kind = self.kinds.get(inc.header.record_kind)
        if kind is None:
            raise Refused(
                "KIND_NOT_PERMITTED", f"this node has no record kind {inc.header.record_kind!r}"
            )
        record = parse_payload(inc.payload)
        decision = check_fields(record, inc.treaty, kind.name)
        if not decision:
            raise Refused(decision.reason, decision.detail)
        try:
            message = kind.from_record(record)
        except (errors.Malformed, errors.InvalidArgument) as exc:
            raise Refused("MALFORMED", exc.message) from None
        # The record's own categories must be among what the signed header
        # declared (what the gateway and this node checked the treaty with).
        undeclared = set(kind.categories(message)) - set(inc.header.categories)
        if undeclared:
            raise Refused(
                "CATEGORY_NOT_PERMITTED",
                f"the record is of {', '.join(sorted(undeclared))}, which its header does not "
                "declare",
            )
        return kind, record, message

    def on_record(self, w: Writer, inc: Incoming) -> Stored:
        h = inc.header
        kind, record, _message = self._received(inc)
        w.conn.execute(
            t.records.insert().values(
                record_id=h.message_id,
                kind=kind.name,
                direction=RECEIVED,
                origin_agency=h.sender,
                treaty_id=h.treaty_id,
                treaty_version=h.treaty_version,
                categories=dumps(sorted(h.categories)),
                handling=int(h.handling),
                tlp=int(h.tlp),
                record=dumps(record),
                revision=1,
                state=ACTIVE,
                create_ms=inc.create_ms,
                update_ms=inc.received_ms,
                expire_ms=inc.expire_ms,
                received_ms=inc.received_ms,
                retain_until_ms=inc.retain_until_ms,
                last_change_ms=inc.create_ms,
            )
        )
        w.event("record.received", record_id=h.message_id, agency_id=h.sender)
        self.sharing.receipts.owe(w, inc)
        if kind.on_stored is not None:
            kind.on_stored(w, self._load(w.conn, kind, h.message_id))
        return Stored(record_id=h.message_id)

    def _reference(self, w: Writer, inc: Incoming) -> Row[Any]:
        h = inc.header
        row = w.conn.execute(
            select(t.records).where(
                t.records.c.record_id == h.reference_id, t.records.c.direction == RECEIVED
            )
        ).first()
        if row is None:
            raise Refused("REFERENCE_UNKNOWN", f"no received record {h.reference_id!r}")
        if row.origin_agency != h.sender or row.treaty_id != h.treaty_id:
            raise Refused(
                "REFERENCE_MISMATCH",
                f"record {h.reference_id} came from {row.origin_agency} under {row.treaty_id}, "
                f"not from {h.sender} under {h.treaty_id}",
            )
        return row

    def on_update(self, w: Writer, inc: Incoming) -> Stored:
        h = inc.header
        row = self._reference(w, inc)
        kind, record, _message = self._received(inc)
        if kind.name != row.kind:
            raise Refused(
                "REFERENCE_MISMATCH", f"record {row.record_id} is a {row.kind}, not a {kind.name}"
            )
        if row.state != ACTIVE or (row.last_change_ms or 0) > inc.create_ms:
            # Kept as evidence, not applied: withdrawn, or a newer version is in place.
            return Stored(record_id=row.record_id)
        w.conn.execute(
            update(t.records)
            .where(t.records.c.record_id == row.record_id)
            .values(
                record=dumps(record),
                categories=dumps(sorted(h.categories)),
                handling=int(h.handling),
                tlp=int(h.tlp),
                treaty_version=h.treaty_version,
                expire_ms=inc.expire_ms,
                revision=row.revision + 1,
                update_ms=inc.received_ms,
                last_change_ms=inc.create_ms,
            )
        )
        w.event("record.updated", record_id=row.record_id, agency_id=h.sender)
        if kind.on_stored is not None:
            kind.on_stored(w, self._load(w.conn, kind, row.record_id))
        return Stored(record_id=row.record_id)

    def on_withdrawal(self, w: Writer, inc: Incoming) -> Stored:
        row = self._reference(w, inc)
        if row.state == ACTIVE:
            reason = parse_payload(inc.payload).get("reason", "")
            w.conn.execute(
                update(t.records)
                .where(t.records.c.record_id == row.record_id)
                .values(
                    state=WITHDRAWN,
                    revoke_ms=inc.create_ms,
                    revoke_reason=str(reason)[:2000] or None,
                    update_ms=inc.received_ms,
                )
            )
            w.event("record.withdrawn", record_id=row.record_id, agency_id=inc.header.sender)
            kind = self.kinds.get(row.kind)
            if kind is not None and kind.on_withdrawn is not None:
                kind.on_withdrawn(w, row.record_id, inc.header.sender)
        return Stored(record_id=row.record_id)

    def _on_receipt(self, w: Writer, inc: Incoming, refs: Sequence[str]) -> dict[str, Stored]:
        """Mark delivered the records a receipt names; the views it knows, with their records."""
        h = inc.header
        d = t.record_deliveries
        known: dict[str, Stored] = {}
        for row in w.conn.execute(
            select(d).where(d.c.view_id.in_(list(refs)), d.c.agency_id == h.sender)
        ):
            if row.treaty_id != h.treaty_id:
                raise Refused(
                    "REFERENCE_MISMATCH",
                    f"record {row.view_id} was shared under {row.treaty_id}, not {h.treaty_id}",
                )
            known[row.view_id] = Stored(record_id=row.record_id)
            if row.delivered_ms is None:
                w.conn.execute(
                    update(d)
                    .where(d.c.record_id == row.record_id, d.c.agency_id == h.sender)
                    .values(delivered_ms=inc.received_ms)
                )
                w.event("record.delivered", record_id=row.record_id, agency_id=h.sender)
        return known

    def _on_send_failed(
        self,
        w: Writer,
        message_id: str,
        kind: int,
        record_id: str | None,
        recipients: list[str],
        error: str,
    ) -> None:
        if kind not in (
            envelope_pb2.MESSAGE_KIND_RECORD,
            envelope_pb2.MESSAGE_KIND_RECORD_UPDATE,
            envelope_pb2.MESSAGE_KIND_RECORD_REVOCATION,
        ):
            return
        view_id = message_id
        if kind != envelope_pb2.MESSAGE_KIND_RECORD:
            ref = w.conn.execute(
                select(t.outbound.c.reference_id).where(t.outbound.c.message_id == message_id)
            ).scalar_one_or_none()
            view_id = ref or message_id
        failed = w.conn.execute(
            update(t.record_deliveries)
            .where(t.record_deliveries.c.view_id == view_id)
            .values(failure=error[:1000])
            .returning(t.record_deliveries.c.record_id)
        ).first()
        if failed is not None:
            for agency in recipients:
                w.event("record.delivery_failed", record_id=failed.record_id, agency_id=agency)

    # --- retention ------------------------------------------------------------------------

    def purge_retention(self, limit: int = 500) -> int:
        """Delete received records (and their envelopes) past the treaty's retention."""
        now = now_ms()
        with self.store.engine.connect() as conn:
            due = conn.execute(
                select(t.records.c.record_id, t.records.c.kind, t.records.c.treaty_id)
                .where(t.records.c.direction == RECEIVED, t.records.c.retain_until_ms <= now)
                .limit(limit)
            ).all()
        purged = 0
        for r in due:
            with self.store.write() as w:
                gone = w.conn.execute(
                    delete(t.records).where(
                        t.records.c.record_id == r.record_id, t.records.c.retain_until_ms <= now
                    )
                )
                if not gone.rowcount:
                    continue
                envs = w.conn.execute(
                    delete(t.received)
                    .where(t.received.c.record_id == r.record_id)
                    .returning(t.received.c.message_id)
                ).all()
                w.event("record.purged", record_id=r.record_id)
                w.audit(
                    "purged",
                    {
                        "record_id": r.record_id,
                        "kind": r.kind,
                        "treaty": r.treaty_id,
                        "messages": sorted(e.message_id for e in envs),
                        "rule": "retention_days",
                    },
                )
                purged += 1
        return purged


def _local_id() -> str:
    from intelshare.ids import new_message_id

    return new_message_id()
