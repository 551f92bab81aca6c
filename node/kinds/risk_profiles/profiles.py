"""An officer's profiles: create, update, withdraw, read, and how each performs."""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import case, func, select

from intelshare import errors
from intelshare.v1 import envelope_pb2
from node.kinds.risk_profiles.core import RiskCore
from node.kinds.risk_profiles.forms import (
    DIRECTION_NAMES,
    DIRECTIONS,
    UPDATABLE_PROFILE,
    P,
    validate_profile,
)
from node.schema.alert import ms_to_ts, ts_to_ms
from node.sharing.record_kind import (
    ISSUED,
    WITHDRAWN,
    StoredRecord,
)
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer, now_ms


class ProfileOperations(RiskCore):
    """Profiles as officers see them, and their authors' statistics."""

    # --- profiles ------------------------------------------------------------------------

    def create_profile(self, w: Writer, officer: Officer, p: P.RiskProfile) -> P.RiskProfile:
        validate_profile(p)
        recipients: dict[str, list[str]] = {}
        v: dict[str, str] = {}
        for n, r in enumerate(p.recipients):
            if not r.agency_id or not r.treaty_id:
                v[f"risk_profile.recipients[{n}]"] = "agency_id and treaty_id are required"
            elif r.agency_id == self.agency_id:
                v[f"risk_profile.recipients[{n}].agency_id"] = "this agency holds it already"
            else:
                recipients.setdefault(r.treaty_id, []).append(r.agency_id)
        if v:
            raise errors.FieldInvalid(next(iter(v.values())), violations=v)
        clean = P.RiskProfile()
        clean.CopyFrom(p)
        clean.ClearField("recipients")
        if not clean.HasField("start_time"):
            clean.start_time.CopyFrom(ms_to_ts(now_ms()))
        stored = self.records.create(
            w,
            officer,
            self.profile_kind,
            clean,
            recipients={k: sorted(set(a)) for k, a in recipients.items()},
            handling=int(p.handling) or envelope_pb2.HANDLING_CODE_H1,
            tlp=int(p.tlp) or envelope_pb2.TLP_AMBER,
        )
        return self.profile_proto(stored)

    def update_profile(
        self, w: Writer, officer: Officer, p: P.RiskProfile, mask: FieldMask
    ) -> P.RiskProfile:
        paths = list(mask.paths)
        bad = [x for x in paths if x not in UPDATABLE_PROFILE]
        if not paths or bad:
            raise errors.UpdateMaskInvalid(
                "update_mask must name some of " + ", ".join(UPDATABLE_PROFILE),
                violations={"update_mask": f"unknown or not updatable: {', '.join(bad)}"},
            )
        current = self.records.get(officer, self.profile_kind, p.name).message
        for path in paths:
            if path in ("start_time", "end_time", "criteria"):
                current.ClearField(path)  # type: ignore[arg-type]
                if p.HasField(path):  # type: ignore[arg-type]
                    getattr(current, path).CopyFrom(getattr(p, path))
            else:
                setattr(current, path, getattr(p, path))
        stored = self.records.update(w, officer, self.profile_kind, p.name, current)
        return self.profile_proto(stored)

    def withdraw_profile(
        self, w: Writer, officer: Officer, name: str, reason: str
    ) -> P.RiskProfile:
        stored = self.records.withdraw(w, officer, self.profile_kind, name, reason)
        w.after_commit(self.in_force.invalidate)
        return self.profile_proto(stored)

    def get_profile(self, officer: Officer, name: str) -> P.RiskProfile:
        return self.profile_proto(self.records.get(officer, self.profile_kind, name))

    def list_profiles(
        self, officer: Officer, *, direction: int, page_size: int, page_token: str
    ) -> tuple[list[P.RiskProfile], str]:
        items, token = self.records.list_page(
            officer,
            self.profile_kind,
            direction=DIRECTION_NAMES.get(direction, ""),  # type: ignore[call-overload]
            page_size=page_size,
            page_token=page_token,
        )
        return [self.profile_proto(s) for s in items], token

    def profile_proto(self, stored: StoredRecord[P.RiskProfile]) -> P.RiskProfile:
        p = P.RiskProfile()
        p.CopyFrom(stored.message)
        p.name = stored.name
        p.origin_agency = stored.origin_agency
        p.direction = DIRECTIONS[stored.direction]
        p.treaty_id = stored.treaty_id
        p.handling = stored.handling  # type: ignore[assignment]
        p.tlp = stored.tlp  # type: ignore[assignment]
        p.categories[:] = stored.categories
        p.revision = stored.revision
        p.create_time.CopyFrom(ms_to_ts(stored.create_ms))
        p.update_time.CopyFrom(ms_to_ts(stored.update_ms))
        p.withdraw_reason = stored.revoke_reason
        at = now_ms()
        if stored.state == WITHDRAWN:
            p.state = P.RISK_PROFILE_STATE_WITHDRAWN
        elif p.HasField("end_time") and ts_to_ms(p.end_time) <= at:
            p.state = P.RISK_PROFILE_STATE_EXPIRED
        elif p.HasField("start_time") and ts_to_ms(p.start_time) > at:
            p.state = P.RISK_PROFILE_STATE_SCHEDULED
        else:
            p.state = P.RISK_PROFILE_STATE_ACTIVE
        for d in stored.deliveries:
            r = p.recipients.add(agency_id=d.agency_id, treaty_id=d.treaty_id)
            if d.delivered_ms is not None:
                r.deliver_time.CopyFrom(ms_to_ts(d.delivered_ms))
            if d.failure:
                r.failure = d.failure
        return p

    # --- statistics ------------------------------------------------------------------------

    def statistics(self, officer: Officer, name: str) -> P.RiskProfileStatistics:
        stored = self.records.get(officer, self.profile_kind, name)
        if stored.direction != ISSUED:
            raise errors.NotIssuer(
                f"{name} was written by {stored.origin_agency}: only its author sees how it "
                "performs",
                metadata={"name": name},
            )
        h = t.risk_hits
        out = P.RiskProfileStatistics(profile=stored.name)
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(
                    h.c.screening_agency,
                    func.count(),
                    func.sum(case((h.c.inspection == "inspected", 1), else_=0)),
                    func.sum(case((h.c.finding == "confirmed", 1), else_=0)),
                    func.sum(case((h.c.finding == "nothing_found", 1), else_=0)),
                    func.min(h.c.screen_ms),
                    func.max(h.c.screen_ms),
                )
                .where(h.c.profile_record_id == stored.record_id)
                .group_by(h.c.screening_agency)
                .order_by(h.c.screening_agency)
            ).all()
        first: int | None = None
        last: int | None = None
        for agency, hits, inspected, confirmed, nothing, low, high in rows:
            out.hits += int(hits)
            out.inspections += int(inspected or 0)
            out.confirmed_findings += int(confirmed or 0)
            out.nothing_found += int(nothing or 0)
            out.agencies.add(
                agency_id=agency,
                hits=int(hits),
                inspections=int(inspected or 0),
                confirmed_findings=int(confirmed or 0),
            )
            first = int(low) if first is None else min(first, int(low))
            last = int(high) if last is None else max(last, int(high))
        if first is not None and last is not None:
            out.first_hit_time.CopyFrom(ms_to_ts(first))
            out.last_hit_time.CopyFrom(ms_to_ts(last))
        return out
