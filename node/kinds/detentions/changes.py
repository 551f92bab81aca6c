"""Creating and changing detentions: each change with its reason, event and audit entry.

Every move goes through :func:`node.ipr.lifecycle.move_detention` (who may
move from where to where, the deadlines it starts or closes); a holder
acts only on detentions naming its own recordations. A move to a
confirmed state sends the automatic report (:mod:`.reports`).
"""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import exists, insert, select

from intelshare import errors
from intelshare.v1 import detention_pb2
from node.ipr import deadlines as dl
from node.ipr import lifecycle, validate
from node.kinds import ipr_common as ipr
from node.kinds import ipr_stats
from node.kinds.detentions.core import CONFIRMED, UPDATABLE, DetentionCore, state_label
from node.schema.alert import ms_to_ts, ts_to_ms
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer, now_ms

D = detention_pb2


class DetentionChanges(DetentionCore):
    """CreateDetention, UpdateDetention, MoveDetention, deadlines, parties and samples."""

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
            raise errors.IdInUse(
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
                state=state_label(created.state),
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
            raise errors.UpdateMaskInvalid(
                "update_mask names no field", violations={"update_mask": "required"}
            )
        unknown = sorted(set(paths) - UPDATABLE)
        if unknown:
            raise errors.UpdateMaskInvalid(
                f"update_mask names fields that cannot be changed: {', '.join(unknown)}",
                violations={"update_mask": "one of " + ", ".join(sorted(UPDATABLE))},
            )
        if current.state in lifecycle.FINAL_DETENTION_STATES:
            raise errors.DetentionClosed(
                f"{current.name} is {state_label(current.state)}: it no longer changes",
                metadata={"state": state_label(current.state)},
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
                "from_state": state_label(current.state),
                "to_state": state_label(moved.state),
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
            raise errors.FieldInvalid(
                "a reason (the holder's duly justified request) is required",
                violations={"reason": f"1 to {lifecycle.MAX_REASON_CHARS} characters"},
            )
        if not kind:
            raise errors.FieldInvalid(
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
            raise errors.FieldInvalid(
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
            raise errors.FieldInvalid(
                "say what the samples are for and how many",
                violations={"reason": f"1 to {lifecycle.MAX_REASON_CHARS} characters"},
            )
        if current.state in lifecycle.FINAL_DETENTION_STATES:
            raise errors.DetentionClosed(
                f"the goods were {state_label(current.state)}: no samples can be taken",
                metadata={"state": state_label(current.state)},
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
