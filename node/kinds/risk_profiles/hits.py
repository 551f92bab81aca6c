"""Risk hits: stored from a screening, shared back with a partner's profile's author, purged."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import Connection, delete, select, update

from intelshare import errors
from intelshare.v1 import envelope_pb2
from node.kinds.risk_profiles.core import RiskCore
from node.kinds.risk_profiles.forms import (
    DAY_MS,
    DIRECTION_NAMES,
    DIRECTIONS,
    HIT_KIND,
    HITS,
    LOCAL_RETENTION_DAYS,
    PROFILE_KIND,
    UPDATABLE_HIT,
    P,
    hit_from_record,
    hit_name,
    profile_name,
    related_proto,
)
from node.kinds.risk_profiles.in_force import ProfileInfo
from node.schema.alert import ms_to_ts
from node.sharing.record_kind import (
    ISSUED,
    RECEIVED,
    StoredRecord,
)
from node.storage import identifiers as index
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer, now_ms


class HitOperations(RiskCore):
    """Hits as the screening stores them and officers read and update them."""

    # --- hits ----------------------------------------------------------------------------

    def retention_ms(self, info: ProfileInfo | None, at: int) -> int:
        """When a hit screened at ``at`` is purged: the profile's treaty retention."""
        days = LOCAL_RETENTION_DAYS
        if info is not None and info.treaty_id:
            doc = self.records.sharing.trust.treaty(info.treaty_id, info.treaty_version)
            if doc is not None:
                days = doc.treaty.retention_days
        return at + days * DAY_MS

    def store_hit(
        self,
        w: Writer,
        officer: Officer,
        hit: P.RiskHit,
        info: ProfileInfo | None,
    ) -> str:
        """Store one hit; a hit on a partner's profile is shared back with its author."""
        recipients: dict[str, list[str]] = {}
        if info is not None and info.direction == RECEIVED:
            recipients = {info.treaty_id: [info.origin_agency]}
        try:
            stored = self._create_hit(w, officer, hit, recipients)
        except errors.PolicyRefused:
            # The treaty does not carry hit reports (or is no longer in force):
            # the hit is kept here all the same.
            stored = self._create_hit(w, officer, hit, {})
        w.conn.execute(
            update(t.risk_hits)
            .where(t.risk_hits.c.record_id == stored.record_id)
            .values(retain_until_ms=self.retention_ms(info, now_ms()))
        )
        return stored.name

    def _create_hit(
        self, w: Writer, officer: Officer, hit: P.RiskHit, recipients: dict[str, list[str]]
    ) -> StoredRecord[P.RiskHit]:
        return self.records.create(
            w,
            officer,
            self.hit_kind,
            hit,
            recipients=recipients,
            handling=envelope_pb2.HANDLING_CODE_H1,
            tlp=envelope_pb2.TLP_AMBER,
        )

    def hit_proto(self, conn: Connection, row: Any, facts: Any) -> P.RiskHit:
        h = hit_from_record(json.loads(row.record))
        h.name = hit_name(row.record_id)
        if facts is not None and facts.profile_record_id:
            h.profile = profile_name(facts.profile_record_id)
            title = conn.execute(
                select(t.records.c.record).where(
                    t.records.c.record_id == facts.profile_record_id,
                    t.records.c.kind == PROFILE_KIND,
                )
            ).scalar_one_or_none()
            if title is not None:
                h.profile_title = str(json.loads(title).get("title", ""))
        h.screening_agency = row.origin_agency
        h.direction = DIRECTIONS[row.direction]
        h.create_time.CopyFrom(ms_to_ts(row.create_ms))
        h.update_time.CopyFrom(ms_to_ts(row.update_ms))
        return h

    def get_hit(self, officer: Officer, name: str) -> P.RiskHit:
        record_id = self.hit_kind.parse_name(name)
        with self.store.write() as w:
            row = self.records._row(w.conn, self.hit_kind, record_id)
            facts = w.conn.execute(
                select(t.risk_hits).where(t.risk_hits.c.record_id == record_id)
            ).first()
            h = self.hit_proto(w.conn, row, facts)
            for rel in index.related_for_read(
                w.conn, officer.officer_id, officer.role, HIT_KIND, record_id
            ):
                h.related.append(related_proto(rel))
            if row.direction == RECEIVED:
                w.audit(
                    "read",
                    {"officer_id": officer.officer_id, "record_ids": [record_id], "kind": HIT_KIND},
                )
        return h

    def list_hits(
        self,
        officer: Officer,
        *,
        direction: int,
        profile: str,
        page_size: int,
        page_token: str,
    ) -> tuple[list[P.RiskHit], str]:
        r, h = t.records, t.risk_hits
        query = select(r, h.c.profile_record_id).join(h, h.c.record_id == r.c.record_id)
        if direction:
            query = query.where(r.c.direction == DIRECTION_NAMES.get(direction, "?"))  # type: ignore[call-overload]
        if profile:
            query = query.where(
                h.c.profile_record_id == self.profile_kind.parse_name(profile, "profile")
            )
        return self.records.page(
            officer,
            query,
            listing=HITS,
            kind_name=HIT_KIND,
            filters=f"{direction}|{profile}",
            page_size=page_size,
            page_token=page_token,
            build=lambda conn, row: self.hit_proto(conn, row, row),
        )

    def update_hit(self, w: Writer, officer: Officer, hit: P.RiskHit, mask: FieldMask) -> P.RiskHit:
        paths = list(mask.paths)
        bad = [x for x in paths if x not in UPDATABLE_HIT]
        if not paths or bad:
            raise errors.UpdateMaskInvalid(
                "update_mask must name some of " + ", ".join(UPDATABLE_HIT),
                violations={"update_mask": f"unknown or not updatable: {', '.join(bad)}"},
            )
        record_id = self.hit_kind.parse_name(hit.name)
        row = self.records._row(w.conn, self.hit_kind, record_id)
        current = hit_from_record(json.loads(row.record))
        for path in paths:
            setattr(current, path, getattr(hit, path))
        self.records.update(w, officer, self.hit_kind, hit.name, current)
        row = self.records._row(w.conn, self.hit_kind, record_id)
        facts = w.conn.execute(
            select(t.risk_hits).where(t.risk_hits.c.record_id == record_id)
        ).first()
        return self.hit_proto(w.conn, row, facts)

    # --- retention -----------------------------------------------------------------------

    def purge_retention(self, limit: int = 500) -> int:
        """Hits screened here past their profile's treaty retention (received: the engine's)."""
        at = now_ms()
        h = t.risk_hits
        with self.store.engine.connect() as conn:
            due = list(
                conn.execute(
                    select(h.c.record_id)
                    .where(h.c.direction == ISSUED, h.c.retain_until_ms <= at)
                    .limit(limit)
                ).scalars()
            )
        if not due:
            return 0
        with self.store.write() as w:
            for record_id in due:
                w.conn.execute(
                    delete(t.record_views).where(t.record_views.c.record_id == record_id)
                )
                w.conn.execute(
                    delete(t.record_deliveries).where(t.record_deliveries.c.record_id == record_id)
                )
                w.conn.execute(delete(h).where(h.c.record_id == record_id))
                w.conn.execute(delete(t.records).where(t.records.c.record_id == record_id))
                w.event("record.purged", record_id=record_id)
            index.remove(w, HIT_KIND, due)
            w.audit(
                "purged",
                {"kind": HIT_KIND, "record_ids": due[:200], "rule": "retention_days"},
            )
        return len(due)
