"""Recordations: rights holders' applications for action, granted here or received.

The kind ``recordation`` runs on the generic record engine
(:mod:`node.sharing.records`): the engine stores the record, redacts it per
treaty, seals it, queues it, receipts it, sends each update to every copy
and withdraws it everywhere. This module declares the kind and adds what
the engine does not know:

* **Two forms.** The generic record holds the *shareable* recordation
  (:func:`node.ipr.views.shareable_recordation`: no internal notes, no
  officers' names), because what it holds is what the engine seals; the
  treaty's allow-list for ``recordation`` then removes more. The grantor's
  complete recordation lives beside it in ``node_recordations.full_record``.
  So the notes cannot leave the node whatever a treaty says.
* **The lifecycle** (:mod:`node.ipr.lifecycle`): extend, suspend, resume,
  withdraw, and the node's own expiry. Every move is an update of the
  generic record (a withdrawal is the engine's withdrawal), so it reaches
  every partner holding a copy.
* **The product search.** The kind's ``on_stored`` hook, called for every
  recordation stored or changed here (granted or received), writes its
  facts (name, holder key, state, validity) and one index row per GTIN-14,
  HS subheading and right name (:func:`node.ipr.views.index_keys`);
  ``SearchRecordations`` is then a few index look-ups, whatever the number
  of recordations.

What the engine fixes today and this kind therefore refuses: a
recordation's partner agencies, handling code and TLP are those of the
grant (the engine sends updates to the views it created).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import delete, exists, insert, select, update

from intelshare import errors
from intelshare.v1 import envelope_pb2, ipr_service_pb2, recordation_pb2
from node.ipr import lifecycle, validate, views
from node.ipr.lifecycle import Actor
from node.kinds import ipr_common as ipr
from node.schema.alert import ts_to_ms
from node.sharing.record_kind import RecordKind, StoredRecord
from node.sharing.records import Records
from node.storage import identifiers as related
from node.storage import tables as t
from node.storage.officers import RIGHTS_HOLDER, Officer
from node.storage.store import Store, Writer, now_ms

R = recordation_pb2

#: How long the envelope of a recordation (or of a change to it) may wait at the gateway.
_ENVELOPE_DAYS: Final = 30


def _to_record(recordation: R.Recordation) -> dict[str, Any]:
    return ipr.to_json(views.shareable_recordation(recordation))


def _from_record(record: Mapping[str, Any]) -> R.Recordation:
    return ipr.from_json(record, R.Recordation, "recordation")


def _validate(recordation: R.Recordation) -> None:
    # The engine calls this for every grant and change; the rules of a new
    # grant (node.ipr.validate) are checked before, by Recordations.
    if not recordation.name or not recordation.HasField("holder"):
        raise errors.FieldInvalid(
            "a recordation needs its name and holder", violations={"recordation": "incomplete"}
        )


def _expire_ms(recordation: R.Recordation) -> int:
    """The envelope's expiry: when customs stop acting, capped to what a gateway accepts."""
    at = now_ms()
    floor = at + _ENVELOPE_DAYS * 86_400_000
    end = ts_to_ms(recordation.expire_time)
    if recordation.state not in (R.RECORDATION_STATE_GRANTED, R.RECORDATION_STATE_EXTENDED):
        return floor
    return max(floor, min(end, at + 365 * 86_400_000))


def _index(w: Writer, stored: StoredRecord[R.Recordation]) -> None:
    """The kind's ``on_stored`` hook: facts and search keys of a recordation stored here."""
    message = stored.message
    r = t.recordations
    previous = w.conn.execute(
        select(r.c.recordation_id, r.c.state).where(r.c.record_id == stored.record_id)
    ).first()
    try:
        origin_name = ipr.parse_name(message.name, ipr.RECORDATIONS)
    except errors.InvalidArgument:
        origin_name = stored.record_id  # a copy whose treaty keeps its name back
    try:
        holder: str | None = views.holder_key(message.holder)
    except errors.InvalidArgument:
        holder = None
    state = lifecycle.recordation_state_label(message.state) if message.state else "granted"
    grant_ms = ts_to_ms(message.grant_time)
    if message.HasField("expire_time"):
        expire_ms = ts_to_ms(message.expire_time)
    else:
        expire_ms = stored.expire_ms  # the copy's envelope said until when
    facts = {
        "holder_key": holder,
        "state": state,
        "grant_ms": grant_ms,
        "expire_ms": expire_ms,
    }
    if previous is None:
        local = origin_name
        taken = w.conn.execute(select(exists().where(r.c.recordation_id == local))).scalar_one()
        if taken:
            local = stored.record_id
        w.conn.execute(
            insert(r).values(
                record_id=stored.record_id,
                recordation_id=local,
                origin_name=origin_name,
                direction=stored.direction,
                origin_agency=stored.origin_agency,
                create_ms=stored.create_ms,
                **facts,
            )
        )
    else:
        w.conn.execute(update(r).where(r.c.record_id == stored.record_id).values(**facts))
    k = t.recordation_keys
    w.conn.execute(delete(k).where(k.c.record_id == stored.record_id))
    keys = sorted(views.index_keys(message))
    if keys:
        w.conn.execute(
            insert(k),
            [{"record_id": stored.record_id, "key_type": a, "key": b[:200]} for a, b in keys],
        )
    if stored.direction == ipr.RECEIVED:
        if previous is None:
            change = "received"
        elif previous.state != state:
            change = {
                "suspended": "suspended",
                "expired": "expired",
                "withdrawn": "withdrawn",
            }.get(state, "resumed" if previous.state == "suspended" else "extended")
        else:
            change = "updated"
        ipr.event(w, f"recordation.{change}", stored.record_id, stored.origin_agency)


def _withdrawn(w: Writer, record_id: str, issuer: str) -> None:
    """A received copy withdrawn by its grantor: its state here, and the IPR event."""
    w.conn.execute(
        update(t.recordations)
        .where(t.recordations.c.record_id == record_id)
        .values(state="withdrawn")
    )
    ipr.event(w, "recordation.withdrawn", record_id, issuer)


RECORDATION: Final[RecordKind[R.Recordation]] = RecordKind(
    name=ipr.RECORDATION_KIND,
    collection=ipr.RECORDATIONS,
    message=R.Recordation,
    to_record=_to_record,
    from_record=_from_record,
    validate=_validate,
    categories=lambda _r: [ipr.IPR_CATEGORY],
    expire_ms=_expire_ms,
    on_stored=_index,
    on_withdrawn=_withdrawn,
)

#: Fields UpdateRecordation may change, and the engine-fixed ones it refuses.
UPDATABLE: Final = frozenset(
    {
        "holder.contact",
        "holder.address",
        "rights",
        "goods",
        "authenticity_features",
        "supply_chain",
        "internal_notes",
    }
)
FIXED_AT_GRANT: Final = frozenset({"agencies", "handling", "tlp"})


class Recordations:
    """The recordations of one node: grant, change, lifecycle, reads and the product search."""

    def __init__(self, *, agency_id: str, store: Store, records: Records) -> None:
        self.agency_id = agency_id
        self.store = store
        self.records = records
        records.register(RECORDATION)

    # --- granting and changing ------------------------------------------------------------

    def grant(
        self, w: Writer, officer: Officer, recordation: R.Recordation, recordation_id: str = ""
    ) -> R.Recordation:
        """Grant ``recordation`` and share it with the agencies it is valid for."""
        at = ipr.now()
        validate.validate_new_recordation(recordation, at)
        missing = {
            f"recordation.agencies[{i}].treaty_id": "name the treaty the copy is shared under"
            for i, a in enumerate(recordation.agencies)
            if not a.treaty_id
        }
        if missing:
            raise errors.FieldInvalid(
                "every agency a recordation is valid for needs a treaty", violations=missing
            )
        if recordation_id:
            ipr.check_new_id(recordation_id, "recordation_id")
        else:
            from intelshare.ids import new_message_id

            recordation_id = new_message_id().lower()[:32]
        taken = w.conn.execute(
            select(exists().where(t.recordations.c.recordation_id == recordation_id))
        ).scalar_one()
        if taken:
            raise errors.IdInUse(
                f"recordations/{recordation_id} exists already",
                violations={"recordation_id": "already in use on this node"},
            )
        clean = R.Recordation()
        clean.CopyFrom(recordation)
        for output in ("state", "history", "extensions", "direction", "create_time", "related"):
            clean.ClearField(output)
        for output in ("update_time", "revision"):
            clean.ClearField(output)  # type: ignore[arg-type]
        clean.name = f"{ipr.RECORDATIONS}/{recordation_id}"
        clean.origin_agency = self.agency_id
        granted = lifecycle.recordation_granted(clean, officer=officer.name, now=at)
        recipients: dict[str, list[str]] = {}
        for a in granted.agencies:
            recipients.setdefault(a.treaty_id, []).append(a.agency_id)
        stored = self.records.create(
            w,
            officer,
            RECORDATION,
            granted,
            recipients=recipients,
            handling=granted.handling or envelope_pb2.HANDLING_CODE_H0,
            tlp=granted.tlp or envelope_pb2.TLP_AMBER,
        )
        self._keep_full(w, stored.record_id, granted)
        ipr.event(w, "recordation.granted", stored.record_id)
        w.audit(
            "recordation_granted",
            {
                "recordation": granted.name,
                "record_id": stored.record_id,
                "officer_id": officer.officer_id,
                "agencies": sorted(a.agency_id for a in granted.agencies),
            },
        )
        return self._held(w, recordation_id).message

    def update(
        self, w: Writer, officer: Officer, recordation: R.Recordation, mask: FieldMask
    ) -> R.Recordation:
        """Change a granted recordation; the new version reaches every copy."""
        held = self._issued(w, recordation.name)
        paths = list(mask.paths)
        if not paths:
            raise errors.UpdateMaskInvalid(
                "update_mask names no field", violations={"update_mask": "required"}
            )
        fixed = sorted(set(paths) & FIXED_AT_GRANT)
        if fixed:
            raise errors.FieldImmutable(
                f"{', '.join(fixed)} of a recordation are fixed when it is granted; withdraw it "
                "and grant a new one",
                metadata={"fields": ",".join(fixed)},
            )
        unknown = sorted(set(paths) - UPDATABLE)
        if unknown:
            raise errors.UpdateMaskInvalid(
                f"update_mask names fields that cannot be changed: {', '.join(unknown)}",
                violations={"update_mask": "one of " + ", ".join(sorted(UPDATABLE))},
            )
        ipr.require_in_force_now(held)
        changed = R.Recordation()
        changed.CopyFrom(held.message)
        for path in paths:
            if path == "holder.contact":
                changed.holder.contact.CopyFrom(recordation.holder.contact)
            elif path == "holder.address":
                changed.holder.address = recordation.holder.address
            elif path == "internal_notes":
                changed.internal_notes = recordation.internal_notes
            else:
                target = getattr(changed, path)
                if hasattr(target, "extend"):
                    del target[:]
                    target.extend(getattr(recordation, path))
                else:
                    target.CopyFrom(getattr(recordation, path))
        validate.validate_new_recordation(changed, ipr.now())
        return self._change(w, officer, held, changed, "updated", {"fields": ",".join(paths)})

    def extend(
        self,
        w: Writer,
        officer: Officer,
        name: str,
        expire_ms: int,
        reason: str,
    ) -> R.Recordation:
        """Extend the validity by at most a year (608/2013 art. 12)."""
        held = self._issued(w, name)
        from datetime import UTC, datetime

        if expire_ms <= 0:
            raise errors.FieldInvalid(
                "expire_time is required", violations={"expire_time": "the new end of validity"}
            )
        extended = lifecycle.extend_recordation(
            held.message,
            datetime.fromtimestamp(expire_ms / 1000, UTC),
            officer=officer.name,
            reason=reason,
            now=ipr.now(),
        )
        return self._change(w, officer, held, extended, "extended", {})

    def move(
        self, w: Writer, officer: Officer, name: str, state: int, reason: str
    ) -> R.Recordation:
        """Suspend, resume or withdraw (a withdrawal recalls every copy)."""
        held = self._issued(w, name)
        target = state
        if state == 0:  # resume: back to what it was before the suspension
            target = (
                R.RECORDATION_STATE_EXTENDED
                if held.message.extensions
                else R.RECORDATION_STATE_GRANTED
            )
            if held.message.state != R.RECORDATION_STATE_SUSPENDED:
                raise errors.RecordationMoveInvalid(
                    f"{held.name} is {held.state}, not suspended: nothing to resume",
                    metadata={"from_state": held.state, "to_state": "resumed"},
                )
        actor = Actor.SYSTEM if officer is ipr.SYSTEM_OFFICER else Actor.CUSTOMS
        moved = lifecycle.move_recordation(
            held.message,
            target,  # type: ignore[arg-type]
            actor=actor,
            officer=officer.name,
            reason=reason,
            now=ipr.now(),
        )
        labels: dict[int, str] = {
            R.RECORDATION_STATE_SUSPENDED: "suspended",
            R.RECORDATION_STATE_WITHDRAWN: "withdrawn",
            R.RECORDATION_STATE_EXPIRED: "expired",
        }
        label = labels.get(target, "resumed")
        if target == R.RECORDATION_STATE_WITHDRAWN:
            self.records.withdraw(
                w, officer, RECORDATION, f"{ipr.RECORDATIONS}/{held.record_id}", reason.strip()
            )
            w.conn.execute(
                update(t.recordations)
                .where(t.recordations.c.record_id == held.record_id)
                .values(state="withdrawn")
            )
            self._keep_full(w, held.record_id, moved)
            self._noted(w, officer, held, label, {})
            return self._held(w, held.recordation_id).message
        return self._change(w, officer, held, moved, label, {})

    def expire_due(self, limit: int = 200) -> int:
        """Move granted recordations past their validity to EXPIRED (every copy told)."""
        at = now_ms()
        r = t.recordations
        with self.store.engine.connect() as conn:
            due = (
                conn.execute(
                    select(r.c.recordation_id)
                    .where(
                        r.c.direction == ipr.ISSUED,
                        r.c.state.in_(("granted", "extended", "suspended")),
                        r.c.expire_ms <= at,
                    )
                    .limit(limit)
                )
                .scalars()
                .all()
            )
        done = 0
        for ident in due:
            try:
                with self.store.write() as w:
                    self.move(
                        w,
                        ipr.SYSTEM_OFFICER,
                        f"{ipr.RECORDATIONS}/{ident}",
                        R.RECORDATION_STATE_EXPIRED,
                        "the validity ended",
                    )
                done += 1
            except errors.IntelshareError as exc:
                # e.g. the treaty of a copy is no longer in force: tried again next time
                import logging

                logging.getLogger(__name__).warning(
                    "recordations/%s could not be expired: %s", ident, exc.reason
                )
        return done

    def _change(
        self,
        w: Writer,
        officer: Officer,
        held: ipr.Held,
        changed: R.Recordation,
        label: str,
        extra: dict[str, str],
    ) -> R.Recordation:
        self.records.update(
            w, officer, RECORDATION, f"{ipr.RECORDATIONS}/{held.record_id}", changed
        )
        self._keep_full(w, held.record_id, changed)
        self._noted(w, officer, held, label, extra)
        return self._held(w, held.recordation_id).message

    def _noted(
        self, w: Writer, officer: Officer, held: ipr.Held, label: str, extra: dict[str, str]
    ) -> None:
        ipr.event(w, f"recordation.{label}", held.record_id)
        w.audit(
            f"recordation_{label}",
            {"recordation": held.name, "officer_id": officer.officer_id, **extra},
        )

    def _keep_full(self, w: Writer, record_id: str, full: R.Recordation) -> None:
        kept = R.Recordation()
        kept.CopyFrom(full)
        for output in ("direction", "create_time", "update_time", "revision"):
            kept.ClearField(output)
        w.conn.execute(
            update(t.recordations)
            .where(t.recordations.c.record_id == record_id)
            .values(full_record=ipr.dumps_message(kept))
        )

    def _held(self, w: Writer, recordation_id: str) -> ipr.Held:
        found = ipr.held_by_names(w.conn, [recordation_id])
        if recordation_id not in found:
            name = f"{ipr.RECORDATIONS}/{recordation_id}"
            raise errors.RecordNotFound(f"{name} does not exist", metadata={"name": name})
        return found[recordation_id]

    def _issued(self, w: Writer, name: str) -> ipr.Held:
        held = self._held(w, ipr.parse_name(name, ipr.RECORDATIONS))
        if held.direction != ipr.ISSUED:
            raise errors.RecordationMoveInvalid(
                f"{held.name} was granted by {held.origin_agency}; only the granting agency "
                "changes it",
                metadata={"recordation": held.name, "origin_agency": held.origin_agency},
            )
        return held

    # --- reading --------------------------------------------------------------------------

    def get(self, officer: Officer, name: str) -> R.Recordation:
        """One recordation (to a rights holder: only its own, without notes and officers)."""
        ident = ipr.parse_name(name, ipr.RECORDATIONS)
        with self.store.write() as w:
            held = self._held(w, ident)
            shown = R.Recordation()
            shown.CopyFrom(self._shown(officer, held))  # the held message stays as stored
            related.add_related(w.conn, officer, "recordation", held.record_id, shown.related)
            if held.direction == ipr.RECEIVED or officer.role == RIGHTS_HOLDER:
                w.audit(
                    "read",
                    {
                        "officer_id": officer.officer_id,
                        "record_ids": [held.record_id],
                        "kind": ipr.RECORDATION_KIND,
                    },
                )
        return shown

    def _shown(self, officer: Officer, held: ipr.Held) -> R.Recordation:
        if officer.role == RIGHTS_HOLDER:
            if held.holder_key != officer.holder_key:
                raise errors.HolderMismatch(
                    f"{held.name} is not one of your recordations",
                    metadata={"recordation": held.name},
                )
            return views.holder_recordation_view(held.message, officer.holder_key)
        return held.message

    def list_page(
        self, officer: Officer, request: ipr_service_pb2.ListRecordationsRequest
    ) -> tuple[list[R.Recordation], str]:
        """A page of recordations, newest first (a rights holder: its own only)."""
        size = ipr.page_size(request.page_size)
        holder = request.holder.strip()
        if holder and ":" not in holder:
            holder = f"eori:{holder.upper()}"  # an EORI number as the officer types it
        listing = json.dumps(
            [request.state, request.direction, holder, officer.holder_key], separators=(",", ":")
        )
        after = ipr.decode_token(self.store, officer, request.page_token, listing)
        r = t.recordations
        query = ipr.held_query()
        if officer.role == RIGHTS_HOLDER:
            query = query.where(r.c.holder_key == officer.holder_key)
        if holder:
            query = query.where(r.c.holder_key == holder)
        if request.direction:
            query = query.where(
                r.c.direction
                == (
                    ipr.ISSUED
                    if request.direction == R.RECORDATION_DIRECTION_ISSUED
                    else ipr.RECEIVED
                )
            )
        if request.state:
            label = lifecycle.recordation_state_label(request.state)
            if label == "withdrawn":
                query = query.where((r.c.state == "withdrawn") | (t.records.c.state == "withdrawn"))
            else:
                query = query.where(r.c.state == label, t.records.c.state == "active")
        if after is not None:
            from sqlalchemy import tuple_

            query = query.where(tuple_(r.c.create_ms, r.c.record_id) < tuple_(*after))
        query = query.order_by(r.c.create_ms.desc(), r.c.record_id.desc()).limit(size + 1)
        with self.store.write() as w:
            rows = w.conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            helds = [ipr.held_from_row(row) for row in rows]
            received = [h.record_id for h in helds if h.direction == ipr.RECEIVED]
            if received or (officer.role == RIGHTS_HOLDER and helds):
                # Every recordation of the page (a holder's own ones too), however many.
                w.audit_reads(
                    officer.officer_id,
                    "record_ids",
                    [h.record_id for h in helds],
                    kind=ipr.RECORDATION_KIND,
                )
        token = (
            ipr.encode_token(self.store, officer, [rows[-1].create_ms, rows[-1].record_id], listing)
            if more and rows
            else ""
        )
        return [self._shown(officer, h) for h in helds], token

    def search(
        self, officer: Officer, request: ipr_service_pb2.SearchRecordationsRequest
    ) -> ipr_service_pb2.SearchRecordationsResponse:
        """The recordations (in force, unless asked) that every criterion given matches."""
        wanted: list[tuple[str, str]] = []
        try:
            if request.gtin.strip():
                wanted.append((views.GTIN, views.gtin_key(request.gtin.strip())))
        except errors.InvalidArgument as exc:
            raise errors.GtinInvalid(exc.message, violations={"gtin": exc.message}) from None
        try:
            if request.hs_code.strip():
                wanted.append((views.HS_CODE, views.hs_key(request.hs_code)))
        except errors.InvalidArgument as exc:
            raise errors.HsCodeInvalid(exc.message, violations={"hs_code": exc.message}) from None
        if request.right_name.strip():
            key = views.right_name_key(request.right_name)
            if not key:
                raise errors.FieldInvalid(
                    "right_name has no letters or digits", violations={"right_name": "e.g. ACME"}
                )
            wanted.append((views.RIGHT_NAME, key))
        if not wanted:
            raise errors.FieldInvalid(
                "give a GTIN, an HS code or a right name to search by",
                violations={"gtin": "at least one of gtin, hs_code, right_name is required"},
            )
        size = ipr.page_size(request.page_size)
        listing = json.dumps(
            [wanted, request.include_inactive, officer.holder_key], separators=(",", ":")
        )
        after = ipr.decode_token(self.store, officer, request.page_token, listing)
        r = t.recordations
        k = t.recordation_keys
        query = ipr.held_query()
        for key_type, key in wanted:
            query = query.where(
                r.c.record_id.in_(
                    select(k.c.record_id).where(k.c.key_type == key_type, k.c.key == key)
                )
            )
        at = now_ms()
        if not request.include_inactive:
            query = query.where(
                r.c.state.in_(ipr.IN_FORCE_STATES),
                r.c.grant_ms <= at,
                r.c.expire_ms > at,
                t.records.c.state == "active",
            )
        if officer.role == RIGHTS_HOLDER:
            query = query.where(r.c.holder_key == officer.holder_key)
        if after is not None:
            query = query.where(r.c.recordation_id > str(after[0]))
        query = query.order_by(r.c.recordation_id).limit(size + 1)
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        more = len(rows) > size
        rows = rows[:size]
        matched_by = [kind for kind, _ in sorted(wanted, key=lambda x: _RANK[x[0]])]
        out = ipr_service_pb2.SearchRecordationsResponse(
            matches=[
                ipr_service_pb2.RecordationMatch(
                    recordation=self._shown(officer, ipr.held_from_row(row)),
                    matched_by=matched_by,
                )
                for row in rows
            ],
            next_page_token=(
                ipr.encode_token(self.store, officer, [rows[-1].recordation_id], listing)
                if more and rows
                else ""
            ),
        )
        return out


_RANK: Final[Mapping[str, int]] = {views.GTIN: 0, views.RIGHT_NAME: 1, views.HS_CODE: 2}
