"""Detentions (kept here) and detention reports (a record kind shared under treaties).

Detentions
----------
A detention never leaves the detaining node: its parties are personal data
and its deadlines are this agency's. It lives in ``node_detentions`` (the
full record as JSON), with the recordations the officer confirmed
(``node_detention_recordations``, which is how a rights holder's
detentions are found) and one row per deadline (``node_detention_deadlines``,
what the periodic job reads). Every rule is :mod:`node.ipr`'s: validation,
the deadlines in working days of this agency's country (the directory
names it), the state machine with who may move, the holder's view. Each
move is written with its reason in the history, an event and an audit
entry, in one transaction with the change.

The node suggests the recordations a detention may fall under from the
search index of :mod:`node.kinds.recordations` (GTIN, HS code, brand),
ranked by :func:`node.ipr.views.match_detention`; the officer confirms.
A confirmed recordation must be one this node holds and in force.

Detention reports
-----------------
The kind ``detention_report`` runs on the generic record engine: a report
(:func:`node.ipr.views.detention_report`: goods, transport, origin and
destination, rights, the recordations by their grantor's names, the
summary; never deadlines, history or notes) is redacted by the treaty's
allow-list, sealed and queued like any record. One goes out on an
officer's request (``ShareDetentionReport``) and automatically when a
detention is confirmed (the holder confirms the infringement or agrees to
destruction): to the agency that granted each confirmed recordation this
node received, under the treaty its copy came under, when that treaty
lets a ``detention_report`` through (else nothing is sent, and the audit
says why). A received report is linked to the recordations it names that
this node holds, and counted in the statistics as the partner's.

The periodic job
----------------
:meth:`Detentions.check_deadlines` (the node's maintenance loop, or Celery
beat's ``intelshare.periodic.ipr_deadlines``) reminds once when a deadline
is due within :data:`REMIND_BEFORE_MS` (event ``detention.deadline_due``,
which the notification workers fan out to webhooks and feeds), and when
one has passed records it (``detention.deadline_passed``) and moves the
detention to ``deadline_passed`` where the state machine lets the node do
so. It is idempotent: a row changes state once, in a conditional update.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final

from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import delete, exists, insert, select, tuple_, update

from intelshare import errors
from intelshare.v1 import detention_pb2, envelope_pb2, ipr_service_pb2
from node.ipr import deadlines as dl
from node.ipr import lifecycle, validate, views
from node.ipr.lifecycle import Actor
from node.kinds import ipr_common as ipr
from node.kinds import ipr_stats
from node.schema.alert import ms_to_ts, ts_to_ms
from node.sharing.engine import Sharing
from node.sharing.records import RecordKind, Records, StoredRecord
from node.storage import tables as t
from node.storage.officers import RIGHTS_HOLDER, Officer
from node.storage.store import Store, Writer, now_ms

log = logging.getLogger(__name__)

D = detention_pb2
S = ipr_service_pb2

#: A reminder goes out when a deadline ends within this time (and once only).
REMIND_BEFORE_MS: Final = 24 * 3600 * 1000
#: Envelope lifetime of a report at the gateway.
_REPORT_ENVELOPE_DAYS: Final = 30
#: Moves after which a report goes to the grantors of the recordations concerned.
CONFIRMED: Final = frozenset(
    {D.DETENTION_STATE_INFRINGEMENT_CONFIRMED, D.DETENTION_STATE_DESTRUCTION_AGREED}
)
#: Fields UpdateDetention may change.
UPDATABLE: Final = frozenset(
    {
        "goods",
        "transport",
        "parties",
        "origin_country",
        "destination_country",
        "recordations",
        "customs_office",
        "internal_notes",
    }
)


def _state_label(state: int) -> str:
    return lifecycle.detention_state_label(state)  # type: ignore[arg-type]


# --- the detention_report kind ---------------------------------------------------------


def _report_to_record(report: D.DetentionReport) -> dict[str, Any]:
    shared = D.DetentionReport()
    shared.CopyFrom(report)
    # per node: the name is the record's, links and time are the holder's own
    for field in ("name", "linked_recordations", "create_time"):
        shared.ClearField(field)
    return ipr.to_json(shared)


def _report_from_record(record: Mapping[str, Any]) -> D.DetentionReport:
    return ipr.from_json(record, D.DetentionReport, "detention report")


def _report_validate(report: D.DetentionReport) -> None:
    if not report.goods:
        raise errors.InvalidArgument(
            "a detention report names the goods", violations={"goods": "required"}
        )


def _report_stored(w: Writer, stored: StoredRecord[D.DetentionReport]) -> None:
    """The kind's ``on_stored`` hook: bookkeeping, links and statistics of a report."""
    rep = t.ipr_reports
    known = w.conn.execute(select(exists().where(rep.c.record_id == stored.record_id))).scalar_one()
    if not known:
        w.conn.execute(
            insert(rep).values(
                record_id=stored.record_id,
                direction=stored.direction,
                detention_id=None,
                create_ms=stored.create_ms,
            )
        )
    if stored.direction != ipr.RECEIVED:
        return
    report = stored.message
    links = t.ipr_report_links
    w.conn.execute(delete(links).where(links.c.record_id == stored.record_id))
    wanted = set()
    for ref in report.recordations:
        try:
            wanted.add((ref.agency_id, ipr.parse_name(ref.recordation, ipr.RECORDATIONS)))
        except errors.InvalidArgument:
            continue
    linked: list[str] = []
    if wanted:
        r = t.recordations
        linked = sorted(
            w.conn.execute(
                select(r.c.recordation_id).where(
                    tuple_(r.c.origin_agency, r.c.origin_name).in_(sorted(wanted))
                )
            ).scalars()
        )
    if linked:
        w.conn.execute(
            insert(links), [{"record_id": stored.record_id, "recordation_id": i} for i in linked]
        )
    detain_ms = ts_to_ms(report.detain_time) if report.HasField("detain_time") else 0
    ipr_stats.replace(
        w.conn,
        ipr_stats.Source(
            source=ipr_stats.REPORTED,
            source_id=stored.record_id,
            partner=stored.origin_agency,
            detain_ms=detain_ms or stored.create_ms,
            country=report.origin_country,
            procedure=ipr_stats.procedure_label(report.procedure),
            rights=[ipr_stats.right_label(r.type) for r in report.rights],
            goods=list(report.goods),
        ),
    )
    change = "received" if not known else "updated"
    ipr.event(w, f"detention_report.{change}", stored.record_id, stored.origin_agency)


def _report_expire_ms(_report: D.DetentionReport) -> int:
    return now_ms() + _REPORT_ENVELOPE_DAYS * 86_400_000


DETENTION_REPORT: Final[RecordKind[D.DetentionReport]] = RecordKind(
    name=ipr.REPORT_KIND,
    collection=ipr.REPORTS,
    message=D.DetentionReport,
    to_record=_report_to_record,
    from_record=_report_from_record,
    validate=_report_validate,
    categories=lambda _r: [ipr.IPR_CATEGORY],
    expire_ms=_report_expire_ms,
    on_stored=_report_stored,
)


class Detentions:
    """The detentions of one node, its reports, the deadline job and the statistics."""

    def __init__(
        self,
        *,
        agency_id: str,
        store: Store,
        records: Records,
        sharing: Sharing,
        calendar: Callable[[], dl.Calendar],
    ) -> None:
        self.agency_id = agency_id
        self.store = store
        self.records = records
        self.sharing = sharing
        self.calendar = calendar
        records.register(DETENTION_REPORT)

    # --- creating and changing ------------------------------------------------------------

    def create(
        self, w: Writer, officer: Officer, detention: D.Detention, detention_id: str = ""
    ) -> D.Detention:
        """Record a detention; suggest recordations; start the notification deadline."""
        at = ipr.now()
        validate.validate_new_detention(detention, at)
        if detention_id:
            ipr.check_new_id(detention_id, "detention_id")
        else:
            from intelshare.ids import new_message_id

            detention_id = new_message_id().lower()[:32]
        taken = w.conn.execute(
            select(exists().where(t.detentions.c.detention_id == detention_id))
        ).scalar_one()
        if taken:
            raise errors.InvalidArgument(
                f"detentions/{detention_id} exists already",
                violations={"detention_id": "already in use on this node"},
            )
        self._confirmed_in_force(w, detention.recordations)
        clean = D.Detention()
        clean.CopyFrom(detention)
        for output in (
            "suggested_recordations",
            "state",
            "deadlines",
            "history",
            "notify_time",
            "parties_disclosed",
            "create_time",
            "update_time",
            "revision",
            "sample_requests",
        ):
            clean.ClearField(output)
        clean.name = f"{ipr.DETENTIONS}/{detention_id}"
        clean.detaining_agency = self.agency_id
        created = lifecycle.detention_created(
            clean, officer=officer.name, now=at, calendar=self.calendar()
        )
        created.suggested_recordations.extend(self._suggest(w, created))
        stamp = now_ms()
        w.conn.execute(
            insert(t.detentions).values(
                detention_id=detention_id,
                record=ipr.dumps_message(created),
                state=_state_label(created.state),
                procedure=ipr_stats.procedure_label(created.procedure),
                detain_ms=ts_to_ms(created.detain_time),
                create_ms=stamp,
                update_ms=stamp,
                revision=1,
                created_by=officer.officer_id,
            )
        )
        self._facts(w, detention_id, created)
        ipr.event(w, "detention.created", detention_id)
        w.audit(
            "detention_created",
            {
                "detention": created.name,
                "officer_id": officer.officer_id,
                "recordations": list(created.recordations),
                "suggested": list(created.suggested_recordations),
            },
        )
        return self._read(w, detention_id)

    def update(
        self, w: Writer, officer: Officer, detention: D.Detention, mask: FieldMask
    ) -> D.Detention:
        """Change goods, transport, parties, countries, confirmed recordations, office, notes."""
        current, row = self._load(w, ipr.parse_name(detention.name, ipr.DETENTIONS))
        paths = list(mask.paths)
        if not paths:
            raise errors.InvalidArgument(
                "update_mask names no field", violations={"update_mask": "required"}
            )
        unknown = sorted(set(paths) - UPDATABLE)
        if unknown:
            raise errors.InvalidArgument(
                f"update_mask names fields that cannot be changed: {', '.join(unknown)}",
                violations={"update_mask": "one of " + ", ".join(sorted(UPDATABLE))},
            )
        if current.state in lifecycle.FINAL_DETENTION_STATES:
            raise errors.FailedPrecondition(
                f"{current.name} is {_state_label(current.state)}: it no longer changes",
                metadata={"state": _state_label(current.state)},
            )
        changed = D.Detention()
        changed.CopyFrom(current)
        for path in paths:
            target = getattr(changed, path)
            value = getattr(detention, path)
            if isinstance(value, str):
                setattr(changed, path, value)
            elif hasattr(target, "extend"):
                del target[:]
                target.extend(value)
            else:
                target.CopyFrom(value)
        validate.validate_new_detention(changed, ipr.now())
        new_names = set(changed.recordations) - set(current.recordations)
        self._confirmed_in_force(w, sorted(new_names))
        del changed.suggested_recordations[:]
        changed.suggested_recordations.extend(self._suggest(w, changed))
        self._save(w, row, changed)
        ipr.event(w, "detention.updated", row.detention_id)
        w.audit(
            "detention_updated",
            {"detention": changed.name, "officer_id": officer.officer_id, "fields": paths},
        )
        return self._read(w, row.detention_id)

    def move(self, w: Writer, officer: Officer, name: str, state: int, reason: str) -> D.Detention:
        """Move a detention (a holder: only its own answers, within its deadline)."""
        current, row = self._visible(w, officer, name)
        actor = lifecycle.actor_of_role(officer.role)
        moved = lifecycle.move_detention(
            current,
            state,  # type: ignore[arg-type]
            actor=actor,
            officer=officer.name,
            reason=reason,
            now=ipr.now(),
            calendar=self.calendar(),
        )
        self._save(w, row, moved)
        ipr.event(w, "detention.moved", row.detention_id)
        w.audit(
            "detention_moved",
            {
                "detention": moved.name,
                "officer_id": officer.officer_id,
                "role": actor.value,
                "from_state": _state_label(current.state),
                "to_state": _state_label(moved.state),
            },
        )
        if moved.state in CONFIRMED:
            self._report_on_confirmation(w, officer, row.detention_id, moved)
        return self._shown(w, officer, row.detention_id)

    def extend_deadline(
        self, w: Writer, officer: Officer, name: str, kind: int, days: int, reason: str
    ) -> D.Detention:
        """Extend the holder's answer once, by at most 10 working days (art. 23(4))."""
        current, row = self._visible(w, officer, name)
        text = reason.strip()
        if not text or len(text) > lifecycle.MAX_REASON_CHARS:
            raise errors.InvalidArgument(
                "a reason (the holder's duly justified request) is required",
                violations={"reason": f"1 to {lifecycle.MAX_REASON_CHARS} characters"},
            )
        if not kind:
            raise errors.InvalidArgument(
                "kind names the deadline to extend", violations={"kind": "e.g. HOLDER_ANSWER"}
            )
        extended = lifecycle.extend_deadline(current, kind, days, now=ipr.now())  # type: ignore[arg-type]
        self._save(w, row, extended)
        ipr.event(w, "detention.deadline_extended", row.detention_id)
        w.audit(
            "detention_deadline_extended",
            {
                "detention": extended.name,
                "officer_id": officer.officer_id,
                "role": officer.role,
                "deadline": dl.kind_label(kind),  # type: ignore[arg-type]
                "working_days": days,
                "reason": text[:500],
            },
        )
        return self._shown(w, officer, row.detention_id)

    def disclose_parties(self, w: Writer, officer: Officer, name: str, reason: str) -> D.Detention:
        """Let the rights holder see the parties (608/2013 art. 17(4))."""
        current, row = self._load(w, ipr.parse_name(name, ipr.DETENTIONS))
        if not reason.strip():
            raise errors.InvalidArgument(
                "a reason is required", violations={"reason": "must not be empty"}
            )
        if current.parties_disclosed:
            return self._read(w, row.detention_id)
        changed = D.Detention()
        changed.CopyFrom(current)
        changed.parties_disclosed = True
        self._save(w, row, changed)
        ipr.event(w, "detention.parties_disclosed", row.detention_id)
        w.audit(
            "detention_parties_disclosed",
            {"detention": changed.name, "officer_id": officer.officer_id, "reason": reason[:500]},
        )
        return self._read(w, row.detention_id)

    def request_samples(self, w: Writer, officer: Officer, name: str, reason: str) -> D.Detention:
        """A holder's request for samples (art. 19), or an officer recording one."""
        current, row = self._visible(w, officer, name)
        text = reason.strip()
        if not text or len(text) > lifecycle.MAX_REASON_CHARS:
            raise errors.InvalidArgument(
                "say what the samples are for and how many",
                violations={"reason": f"1 to {lifecycle.MAX_REASON_CHARS} characters"},
            )
        if current.state in lifecycle.FINAL_DETENTION_STATES:
            raise errors.FailedPrecondition(
                f"the goods were {_state_label(current.state)}: no samples can be taken",
                metadata={"state": _state_label(current.state)},
            )
        changed = D.Detention()
        changed.CopyFrom(current)
        changed.sample_requests.add(reason=text, request_time=ms_to_ts(now_ms()))
        self._save(w, row, changed)
        ipr.event(w, "detention.samples_requested", row.detention_id)
        w.audit(
            "detention_samples_requested",
            {"detention": changed.name, "officer_id": officer.officer_id, "role": officer.role},
        )
        return self._shown(w, officer, row.detention_id)

    # --- helpers of the changes ---------------------------------------------------------

    def _confirmed_in_force(self, w: Writer, names: Sequence[str]) -> None:
        ids = [ipr.parse_name(n, ipr.RECORDATIONS, "detention.recordations") for n in names]
        found = ipr.held_by_names(w.conn, ids)
        missing = {
            f"detention.recordations[{i}]": f"{n} is not a recordation this node holds"
            for i, (n, ident) in enumerate(zip(names, ids, strict=True))
            if ident not in found
        }
        if missing:
            raise errors.InvalidArgument(
                "the detention names recordations this node does not hold", violations=missing
            )
        for ident in ids:
            ipr.require_in_force_now(found[ident])

    def _suggest(self, w: Writer, detention: D.Detention) -> list[str]:
        keys: set[tuple[str, str]] = set()
        for goods in detention.goods:
            for gtin in goods.gtins:
                try:
                    keys.add((views.GTIN, views.gtin_key(gtin)))
                except errors.InvalidArgument:
                    continue
            if goods.hs_code:
                with contextlib.suppress(errors.InvalidArgument):
                    keys.add((views.HS_CODE, views.hs_key(goods.hs_code)))
            brand = views.right_name_key(goods.brand)
            if brand:
                keys.add((views.RIGHT_NAME, brand))
        candidates = ipr.held_by_keys(w.conn, keys, at_ms=now_ms())
        matches = views.match_detention(detention, [h.message for h in candidates], now=ipr.now())
        return [m.recordation.name for m in matches]

    def _save(self, w: Writer, row: Any, detention: D.Detention) -> None:
        stamp = now_ms()
        changed = w.conn.execute(
            update(t.detentions)
            .where(
                t.detentions.c.detention_id == row.detention_id,
                t.detentions.c.revision == row.revision,
            )
            .values(
                record=ipr.dumps_message(_stored_form(detention)),
                state=_state_label(detention.state),
                update_ms=stamp,
                revision=row.revision + 1,
            )
        )
        if not changed.rowcount:
            raise errors.FailedPrecondition(
                f"{detention.name} changed while this change was prepared; retry",
                metadata={"name": detention.name},
            )
        self._facts(w, row.detention_id, detention)

    def _facts(self, w: Writer, detention_id: str, detention: D.Detention) -> None:
        """Links to recordations, deadline rows and statistics rows of a detention."""
        links = t.detention_recordations
        w.conn.execute(delete(links).where(links.c.detention_id == detention_id))
        ids = sorted({ipr.parse_name(n, ipr.RECORDATIONS) for n in detention.recordations})
        if ids:
            w.conn.execute(
                insert(links), [{"detention_id": detention_id, "recordation_id": i} for i in ids]
            )
        dd = t.detention_deadlines
        existing = {
            r.kind: r for r in w.conn.execute(select(dd).where(dd.c.detention_id == detention_id))
        }
        for deadline in detention.deadlines:
            kind = dl.kind_label(deadline.kind)
            due = ts_to_ms(deadline.due_time)
            state = _deadline_label(deadline.state)
            old = existing.pop(kind, None)
            if old is None:
                w.conn.execute(
                    insert(dd).values(detention_id=detention_id, kind=kind, due_ms=due, state=state)
                )
            elif (old.due_ms, old.state) != (due, state):
                w.conn.execute(
                    update(dd)
                    .where(dd.c.detention_id == detention_id, dd.c.kind == kind)
                    .values(
                        due_ms=due,
                        state=state,
                        # an extended deadline is reminded of again
                        reminded_ms=None if due != old.due_ms else old.reminded_ms,
                    )
                )
        held = ipr.held_by_names(w.conn, ids)
        rights = sorted(
            {ipr_stats.right_label(r.type) for h in held.values() for r in h.message.rights}
        )
        ipr_stats.replace(
            w.conn,
            ipr_stats.Source(
                source=ipr_stats.OWN,
                source_id=detention_id,
                partner=self.agency_id,
                detain_ms=ts_to_ms(detention.detain_time),
                country=detention.origin_country,
                procedure=ipr_stats.procedure_label(detention.procedure),
                rights=rights,
                goods=list(detention.goods),
            ),
        )

    # --- reading ---------------------------------------------------------------------------

    def _load(self, w: Writer, detention_id: str) -> tuple[D.Detention, Any]:
        row = w.conn.execute(
            select(t.detentions).where(t.detentions.c.detention_id == detention_id)
        ).first()
        if row is None:
            name = f"{ipr.DETENTIONS}/{detention_id}"
            raise errors.NotFound(f"{name} does not exist", metadata={"name": name})
        return _build(row, as_of=False), row

    def _read(self, w: Writer, detention_id: str) -> D.Detention:
        """A detention as a read shows it now (ended open deadlines PASSED)."""
        return lifecycle.deadlines_as_of(self._load(w, detention_id)[0], ipr.now())

    def _visible(self, w: Writer, officer: Officer, name: str) -> tuple[D.Detention, Any]:
        """A detention the caller may act on (a holder: only one naming its recordations)."""
        detention, row = self._load(w, ipr.parse_name(name, ipr.DETENTIONS))
        if officer.role == RIGHTS_HOLDER:
            views.check_holder_may_see(detention, ipr.holder_names(w.conn, officer.holder_key))
        return detention, row

    def _shown(self, w: Writer, officer: Officer, detention_id: str) -> D.Detention:
        detention = self._read(w, detention_id)
        if officer.role == RIGHTS_HOLDER:
            return views.holder_view(detention, ipr.holder_names(w.conn, officer.holder_key))
        return detention

    def get(self, officer: Officer, name: str) -> D.Detention:
        """One detention (to a rights holder: its view, HOLDER_MISMATCH if not its own)."""
        with self.store.write() as w:
            shown = self._shown(w, officer, ipr.parse_name(name, ipr.DETENTIONS))
            w.audit(
                "detention_read",
                {"officer_id": officer.officer_id, "detentions": [shown.name]},
            )
        return shown

    def list_page(
        self, officer: Officer, request: S.ListDetentionsRequest
    ) -> tuple[list[D.Detention], str]:
        """A page of detentions, newest first (to a holder: its own, in its view)."""
        size = ipr.page_size(request.page_size)
        due_ms = ts_to_ms(request.due_before) if request.HasField("due_before") else 0
        listing = json.dumps(
            [
                request.state,
                request.procedure,
                request.recordation,
                due_ms,
                officer.holder_key,
            ],
            separators=(",", ":"),
        )
        after = ipr.decode_token(self.store, officer, request.page_token, listing)
        d = t.detentions
        links = t.detention_recordations
        query = select(d)
        with self.store.write() as w:
            if officer.role == RIGHTS_HOLDER:
                own = [
                    ipr.parse_name(n, ipr.RECORDATIONS)
                    for n in ipr.holder_names(w.conn, officer.holder_key)
                ]
                query = query.where(
                    d.c.detention_id.in_(
                        select(links.c.detention_id).where(links.c.recordation_id.in_(own))
                    )
                )
            if request.recordation:
                ident = ipr.parse_name(request.recordation, ipr.RECORDATIONS, "recordation")
                query = query.where(
                    d.c.detention_id.in_(
                        select(links.c.detention_id).where(links.c.recordation_id == ident)
                    )
                )
            if request.state:
                query = query.where(d.c.state == _state_label(request.state))
            if request.procedure:
                query = query.where(d.c.procedure == ipr_stats.procedure_label(request.procedure))
            if due_ms:
                dd = t.detention_deadlines
                query = query.where(
                    d.c.detention_id.in_(
                        select(dd.c.detention_id).where(dd.c.state == "open", dd.c.due_ms < due_ms)
                    )
                )
            if after is not None:
                query = query.where(tuple_(d.c.create_ms, d.c.detention_id) < tuple_(*after))
            query = query.order_by(d.c.create_ms.desc(), d.c.detention_id.desc()).limit(size + 1)
            rows = w.conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            out = [_build(r, as_of=True) for r in rows]
            if officer.role == RIGHTS_HOLDER:
                own_names = ipr.holder_names(w.conn, officer.holder_key)
                out = [views.holder_view(x, own_names) for x in out]
            if out:
                w.audit(
                    "detention_read",
                    {"officer_id": officer.officer_id, "detentions": [x.name for x in out][:200]},
                )
        token = (
            ipr.encode_token(
                self.store, officer, [rows[-1].create_ms, rows[-1].detention_id], listing
            )
            if more and rows
            else ""
        )
        return out, token

    def visible_ids(self, officer: Officer, ids: Collection[str]) -> dict[str, str]:
        """Of ``ids``, the detentions ``officer`` may see, with their state (for feeds)."""
        if not ids:
            return {}
        d = t.detentions
        query = select(d.c.detention_id, d.c.state, d.c.record).where(
            d.c.detention_id.in_(sorted(ids))
        )
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
            own = (
                ipr.holder_names(conn, officer.holder_key)
                if officer.role == RIGHTS_HOLDER
                else None
            )
        out: dict[str, str] = {}
        for r in rows:
            if own is not None:
                names = json.loads(r.record).get("recordations", [])
                if not any(n in own for n in names):
                    continue
            out[r.detention_id] = r.state
        return out

    # --- reports ---------------------------------------------------------------------------

    def share_report(
        self,
        w: Writer,
        officer: Officer,
        name: str,
        recipients: Sequence[S.DetentionReportRecipient],
        summary: str,
    ) -> D.DetentionReport:
        """Share a report of a detention with partners under treaties (ShareDetentionReport)."""
        detention, row = self._load(w, ipr.parse_name(name, ipr.DETENTIONS))
        groups: dict[str, list[str]] = {}
        bad: dict[str, str] = {}
        for i, r in enumerate(recipients):
            if not r.agency_id or not r.treaty_id:
                bad[f"recipients[{i}]"] = "agency_id and treaty_id are required"
            elif r.agency_id == self.agency_id:
                bad[f"recipients[{i}].agency_id"] = "this agency holds the detention itself"
            else:
                groups.setdefault(r.treaty_id, []).append(r.agency_id)
        if not recipients:
            bad["recipients"] = "name at least one agency and its treaty"
        if len(summary) > validate.MAX_TEXT:
            bad["summary"] = f"at most {validate.MAX_TEXT} characters"
        if bad:
            raise errors.InvalidArgument("the report cannot be shared as asked", violations=bad)
        return self._report(w, officer, row.detention_id, detention, groups, summary, False)

    def _report(
        self,
        w: Writer,
        officer: Officer,
        detention_id: str,
        detention: D.Detention,
        groups: Mapping[str, Sequence[str]],
        summary: str,
        automatic: bool,
    ) -> D.DetentionReport:
        ids = [ipr.parse_name(n, ipr.RECORDATIONS) for n in detention.recordations]
        held = ipr.held_by_names(w.conn, ids)
        report = views.detention_report(
            detention, [h.message for h in held.values()], summary=summary
        )
        by_local = {h.name: h for h in held.values()}
        for ref in report.recordations:
            h = by_local.get(ref.recordation)
            if h is not None:  # partners know it by its grantor's name
                ref.recordation = f"{ipr.RECORDATIONS}/{h.origin_name}"
                ref.agency_id = h.origin_agency
        report.handling = envelope_pb2.HANDLING_CODE_H1
        report.tlp = envelope_pb2.TLP_AMBER
        stored = self.records.create(
            w,
            officer,
            DETENTION_REPORT,
            report,
            recipients={k: list(v) for k, v in groups.items()},
            handling=report.handling,
            tlp=report.tlp,
        )
        w.conn.execute(
            update(t.ipr_reports)
            .where(t.ipr_reports.c.record_id == stored.record_id)
            .values(detention_id=detention_id)
        )
        ipr.event(w, "detention_report.shared", stored.record_id)
        w.audit(
            "detention_report_shared",
            {
                "detention": detention.name,
                "record_id": stored.record_id,
                "officer_id": officer.officer_id,
                "automatic": automatic,
                "recipients": sorted(a for v in groups.values() for a in v),
            },
        )
        return self._report_message(w, stored.record_id)

    def _report_on_confirmation(
        self, w: Writer, officer: Officer, detention_id: str, detention: D.Detention
    ) -> None:
        """The automatic report to the grantors of the received recordations concerned."""
        done = w.conn.execute(
            select(exists().where(t.ipr_reports.c.detention_id == detention_id))
        ).scalar_one()
        if done:
            return
        ids = [ipr.parse_name(n, ipr.RECORDATIONS) for n in detention.recordations]
        groups: dict[str, list[str]] = {}
        for h in ipr.held_by_names(w.conn, ids).values():
            if h.direction != ipr.RECEIVED:
                continue
            treaty_id = w.conn.execute(
                select(t.records.c.treaty_id).where(t.records.c.record_id == h.record_id)
            ).scalar_one()
            refusal = self._refusal(treaty_id, h.origin_agency)
            if refusal:
                w.audit(
                    "detention_report_not_sent",
                    {
                        "detention": detention.name,
                        "agency_id": h.origin_agency,
                        "treaty": treaty_id,
                        "reason": refusal,
                    },
                )
                continue
            if h.origin_agency not in groups.setdefault(treaty_id, []):
                groups[treaty_id].append(h.origin_agency)
        if groups:
            self._report(
                w,
                officer,
                detention_id,
                detention,
                groups,
                "reported on confirmation of the infringement",
                True,
            )

    def _refusal(self, treaty_id: str, agency_id: str) -> str:
        """Why a report may not go to ``agency_id`` under ``treaty_id`` ("" when it may)."""
        try:
            treaty = self.sharing.current(treaty_id)
        except errors.IntelshareError as exc:
            return exc.reason
        decision = self.sharing.decision(
            treaty,
            kind=ipr.REPORT_KIND,
            recipients=[agency_id],
            categories=[ipr.IPR_CATEGORY],
            handling=envelope_pb2.HANDLING_CODE_H1,
            tlp=envelope_pb2.TLP_AMBER,
        )
        return "" if decision else decision.reason

    def _report_message(self, w: Writer, record_id: str) -> D.DetentionReport:
        rec = w.conn.execute(select(t.records).where(t.records.c.record_id == record_id)).one()
        report = _report_from_record(json.loads(rec.record))
        report.name = f"{ipr.REPORTS}/{record_id}"
        report.create_time.CopyFrom(ms_to_ts(rec.create_ms))
        if rec.direction == ipr.RECEIVED:
            report.reporting_agency = rec.origin_agency
            report.treaty_id = rec.treaty_id
        links = t.ipr_report_links
        report.linked_recordations.extend(
            f"{ipr.RECORDATIONS}/{i}"
            for i in w.conn.execute(
                select(links.c.recordation_id)
                .where(links.c.record_id == record_id)
                .order_by(links.c.recordation_id)
            ).scalars()
        )
        return report

    def get_report(self, officer: Officer, name: str) -> D.DetentionReport:
        record_id = ipr.parse_name(name, ipr.REPORTS)
        with self.store.write() as w:
            known = w.conn.execute(
                select(t.ipr_reports.c.direction).where(t.ipr_reports.c.record_id == record_id)
            ).scalar_one_or_none()
            if known is None:
                raise errors.NotFound(f"{name} does not exist", metadata={"name": name})
            report = self._report_message(w, record_id)
            if known == ipr.RECEIVED:
                w.audit(
                    "read",
                    {
                        "officer_id": officer.officer_id,
                        "record_ids": [record_id],
                        "kind": ipr.REPORT_KIND,
                    },
                )
        return report

    def list_reports(
        self, officer: Officer, request: S.ListDetentionReportsRequest
    ) -> tuple[list[D.DetentionReport], str]:
        size = ipr.page_size(request.page_size)
        listing = json.dumps([request.recordation], separators=(",", ":"))
        after = ipr.decode_token(self.store, officer, request.page_token, listing)
        rep = t.ipr_reports
        query = select(rep.c.record_id, rep.c.create_ms, rep.c.direction)
        if request.recordation:
            ident = ipr.parse_name(request.recordation, ipr.RECORDATIONS, "recordation")
            links = t.ipr_report_links
            query = query.where(
                rep.c.record_id.in_(
                    select(links.c.record_id).where(links.c.recordation_id == ident)
                )
            )
        if after is not None:
            query = query.where(tuple_(rep.c.create_ms, rep.c.record_id) < tuple_(*after))
        query = query.order_by(rep.c.create_ms.desc(), rep.c.record_id.desc()).limit(size + 1)
        with self.store.write() as w:
            rows = w.conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            out = [self._report_message(w, r.record_id) for r in rows]
            received = [r.record_id for r in rows if r.direction == ipr.RECEIVED]
            if received:
                w.audit(
                    "read",
                    {
                        "officer_id": officer.officer_id,
                        "record_ids": received[:200],
                        "kind": ipr.REPORT_KIND,
                    },
                )
        token = (
            ipr.encode_token(self.store, officer, [rows[-1].create_ms, rows[-1].record_id], listing)
            if more and rows
            else ""
        )
        return out, token

    # --- statistics ----------------------------------------------------------------------

    def statistics(self, request: S.GetEnforcementStatisticsRequest) -> S.EnforcementStatistics:
        with self.store.engine.connect() as conn:
            return ipr_stats.statistics(conn, request)

    # --- the periodic job -------------------------------------------------------------------

    def check_deadlines(self, limit: int = 500) -> int:
        """Reminders and passed deadlines (see the module docstring); how many rows it handled."""
        at = now_ms()
        dd = t.detention_deadlines
        with self.store.engine.connect() as conn:
            due = conn.execute(
                select(dd.c.detention_id, dd.c.kind, dd.c.due_ms, dd.c.reminded_ms)
                .where(dd.c.state == "open", dd.c.due_ms <= at + REMIND_BEFORE_MS)
                .order_by(dd.c.due_ms)
                .limit(limit)
            ).all()
        handled = 0
        for r in due:
            try:
                with self.store.write() as w:
                    if r.due_ms <= at:
                        handled += self._passed(w, r.detention_id, r.kind, r.due_ms)
                    elif r.reminded_ms is None:
                        handled += self._remind(w, r.detention_id, r.kind, r.due_ms)
            except errors.IntelshareError as exc:
                log.warning("deadline of detentions/%s not handled: %s", r.detention_id, exc.reason)
        return handled

    def _remind(self, w: Writer, detention_id: str, kind: str, due_ms: int) -> int:
        dd = t.detention_deadlines
        claimed = w.conn.execute(
            update(dd)
            .where(
                dd.c.detention_id == detention_id,
                dd.c.kind == kind,
                dd.c.due_ms == due_ms,
                dd.c.state == "open",
                dd.c.reminded_ms.is_(None),
            )
            .values(reminded_ms=now_ms())
        )
        if not claimed.rowcount:
            return 0
        ipr.event(w, "detention.deadline_due", detention_id)
        w.audit(
            "detention_deadline_reminder",
            {"detention": f"{ipr.DETENTIONS}/{detention_id}", "deadline": kind, "due_ms": due_ms},
        )
        return 1

    def _passed(self, w: Writer, detention_id: str, kind: str, due_ms: int) -> int:
        dd = t.detention_deadlines
        claimed = w.conn.execute(
            update(dd)
            .where(
                dd.c.detention_id == detention_id,
                dd.c.kind == kind,
                dd.c.due_ms == due_ms,
                dd.c.state == "open",
            )
            .values(state="passed")
        )
        if not claimed.rowcount:
            return 0
        detention, row = self._load(w, detention_id)
        at = ipr.now()
        target = D.DETENTION_STATE_DEADLINE_PASSED
        allowed = Actor.SYSTEM in lifecycle.DETENTION_MOVES.get(
            (detention.state, target), frozenset()
        )
        if allowed and kind != "notification":
            changed = lifecycle.move_detention(
                detention,
                target,
                actor=Actor.SYSTEM,
                officer="",
                reason=f"the {kind} deadline passed at the end of its last day",
                now=at,
                calendar=self.calendar(),
            )
        else:
            changed = lifecycle.deadlines_as_of(detention, at)
        self._save(w, row, changed)
        ipr.event(w, "detention.deadline_passed", detention_id)
        w.audit(
            "detention_deadline_passed",
            {
                "detention": detention.name,
                "deadline": kind,
                "moved": _state_label(changed.state) if allowed else "",
            },
        )
        if allowed and kind != "notification":
            ipr.event(w, "detention.moved", detention_id)
        return 1


def _deadline_label(state: int) -> str:
    try:
        return str(D.DeadlineState.Name(state)).removeprefix("DEADLINE_STATE_").lower()  # type: ignore[arg-type]
    except ValueError:
        return "open"


def _stored_form(detention: D.Detention) -> D.Detention:
    kept = D.Detention()
    kept.CopyFrom(detention)
    for output in ("create_time", "update_time", "revision"):
        kept.ClearField(output)
    return kept


def _build(row: Any, *, as_of: bool) -> D.Detention:
    """A stored detention; ``as_of``: as a read shows it now (ended open deadlines PASSED).

    Changes start from the stored form, so that a deadline that ended is
    still open for the periodic job, which moves the detention.
    """
    detention = ipr.loads_message(row.record, D.Detention, "detention")
    detention.create_time.CopyFrom(ms_to_ts(row.create_ms))
    detention.update_time.CopyFrom(ms_to_ts(row.update_ms))
    detention.revision = row.revision
    return lifecycle.deadlines_as_of(detention, ipr.now()) if as_of else detention
