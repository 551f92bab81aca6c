"""The two kinds on the record engine, and what happens when one is stored."""

from __future__ import annotations

from sqlalchemy import insert, select, update

from node.kinds.risk_profiles.forms import (
    DAY_MS,
    DEFAULT_CATEGORY,
    FINDINGS,
    HIT_KIND,
    HITS,
    INSPECTIONS,
    PROFILE_KIND,
    PROFILES,
    P,
    hit_from_record,
    hit_to_record,
    profile_expire_ms,
    profile_from_record,
    profile_to_record,
    validate_hit,
    validate_profile,
)
from node.kinds.risk_profiles.in_force import InForce
from node.schema.alert import ts_to_ms
from node.sharing.incoming import Refused
from node.sharing.record_kind import (
    RECEIVED,
    RecordKind,
    StoredRecord,
)
from node.sharing.records import Records
from node.storage import identifiers as index
from node.storage import tables as t
from node.storage.store import Store, Writer, now_ms


class RiskCore:
    """The kinds registered with the engine, the profiles in force, the hooks on storing."""

    def __init__(self, *, agency_id: str, store: Store, records: Records) -> None:
        self.agency_id = agency_id
        self.store = store
        self.records = records
        self.in_force = InForce(store)
        self.profile_kind: RecordKind[P.RiskProfile] = RecordKind(
            name=PROFILE_KIND,
            collection=PROFILES,
            message=P.RiskProfile,
            to_record=profile_to_record,
            from_record=profile_from_record,
            validate=validate_profile,
            categories=lambda p: list(p.categories) or [DEFAULT_CATEGORY],
            expire_ms=profile_expire_ms,
            on_stored=self._profile_stored,
        )
        self.hit_kind: RecordKind[P.RiskHit] = RecordKind(
            name=HIT_KIND,
            collection=HITS,
            message=P.RiskHit,
            to_record=hit_to_record,
            from_record=hit_from_record,
            validate=validate_hit,
            categories=lambda _h: [DEFAULT_CATEGORY],
            expire_ms=lambda _h: now_ms() + 30 * DAY_MS,
            on_stored=self._hit_stored,
        )
        records.register(self.profile_kind)
        records.register(self.hit_kind)

    # --- hooks -------------------------------------------------------------------------

    def _profile_stored(self, w: Writer, _stored: StoredRecord[P.RiskProfile]) -> None:
        # The fingerprint would notice too; this spares the next batch a look.
        w.after_commit(self.in_force.invalidate)

    def _hit_stored(self, w: Writer, stored: StoredRecord[P.RiskHit]) -> None:
        hit = stored.message
        profile_id: str | None = None
        if hit.profile:
            ref = hit.profile.removeprefix(f"{PROFILES}/")
            if stored.direction == RECEIVED:
                profile_id = self._reported_profile(w, ref, stored)
            else:
                profile_id = ref
        facts = {
            "profile_record_id": profile_id,
            "inspection": INSPECTIONS.get(hit.inspection, "pending"),
            "finding": FINDINGS.get(hit.finding, ""),
            "reference": hit.reference[:64],
            "screen_ms": ts_to_ms(hit.screen_time) if hit.HasField("screen_time") else now_ms(),
        }
        h = t.risk_hits
        changed = w.conn.execute(
            update(h).where(h.c.record_id == stored.record_id).values(**facts)
        ).rowcount
        if not changed:
            w.conn.execute(
                insert(h).values(
                    record_id=stored.record_id,
                    screening_agency=stored.origin_agency,
                    direction=stored.direction,
                    **facts,
                )
            )
        entries = [("declaration", k) for k in hit.identifiers]
        entries += [(s.role, s.key) for s in hit.subjects]
        index.replace(
            w,
            index.Holder(
                record_kind=HIT_KIND,
                record_id=stored.record_id,
                record_name=stored.name,
                direction=stored.direction,
                origin_agency=stored.origin_agency,
            ),
            entries,
        )

    def _reported_profile(self, w: Writer, ref: str, stored: StoredRecord[P.RiskHit]) -> str:
        """The local id of the profile a partner's hit report names; Refused if it is not ours."""
        v, d = t.record_views, t.record_deliveries
        row = w.conn.execute(
            select(v.c.record_id).where(v.c.view_id == ref).limit(1)
        ).scalar_one_or_none()
        shared = (
            row is not None
            and w.conn.execute(
                select(d.c.agency_id).where(
                    d.c.record_id == row, d.c.agency_id == stored.origin_agency
                )
            ).first()
        )
        if row is None or not shared:
            raise Refused(
                "REFERENCE_UNKNOWN",
                f"the hit names {PROFILES}/{ref}, which this agency did not share with "
                f"{stored.origin_agency}",
            )
        return str(row)
