"""Risk profiles and risk hits: two record kinds, and the profiles in force.

``risk_profile`` and ``risk_hit`` run on the generic record engine
(:mod:`node.sharing.records`): it stores them, redacts them per treaty,
seals, queues, receipts, updates and withdraws them at every copy. This
module declares the two kinds and adds what the engine does not know.

* **Profiles.** The JSON form is ``title``, ``rationale``, ``action``,
  ``valid_from``, ``valid_until`` and ``criteria`` (the declarative language
  of :mod:`node.targeting.criteria`, stored in canonical form). An officer's
  profile is validated strictly (:class:`~intelshare.errors.CriteriaInvalid`
  naming every bad path, ``risk_profile.criteria.all_of[2].hs_prefix``); a
  received copy is parsed as strictly (a partner's broken criteria are
  refused, audited, rather than matched wrongly); a copy whose treaty keeps
  the criteria back is held but never matches.
* **What is in force.** :class:`InForce` keeps one
  :class:`~node.targeting.matcher.IndexedMatcher` over every profile in
  force (own and received, not withdrawn, within its validity) and the
  watch list (the identifier keys of alerts in force, from the identifier
  index, and the GTINs of recordations in force, from the IPR search
  keys). It is immutable and swapped: before each batch of declarations
  the node compares a fingerprint of what it was built from (the profiles'
  and recordations' rows, the identifier index's change counter, the next
  validity boundary) and builds a new one when anything moved. The
  engine's withdrawal of a received copy changes its row, so a withdrawn
  profile stops matching with the next batch at every partner.
* **Hits.** A risk hit keeps only the declaration's identifying fields
  (reference and identifier keys) with the reasons. One hit per matching
  profile: on a partner's profile it is shared back with the profile's
  author under the treaty the profile came under (redacted by that treaty's
  ``risk_hit`` allow-list), and its outcome (inspection, finding) follows
  as updates; on a watched identifier, one local hit per declaration. The
  facts the statistics sum live in ``node_risk_hits``; hits screened here
  are purged at the end of the profile's treaty retention
  (:meth:`RiskProfiles.purge_retention`), received ones by the engine.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Connection, case, delete, func, insert, select, tuple_, update

from intelshare import errors
from intelshare.v1 import envelope_pb2, risk_profile_pb2
from node.schema.alert import ms_to_ts, ts_to_ms
from node.sharing.inbound import Refused
from node.sharing.records import (
    ACTIVE,
    ISSUED,
    RECEIVED,
    WITHDRAWN,
    RecordKind,
    Records,
    StoredRecord,
)
from node.storage import identifiers as index
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Store, Writer, now_ms
from node.targeting.criteria import parse_criteria, to_data
from node.targeting.matcher import IndexedMatcher, Profile

P = risk_profile_pb2

PROFILE_KIND: Final = "risk_profile"
HIT_KIND: Final = "risk_hit"
PROFILES: Final = "riskProfiles"
HITS: Final = "riskHits"
DEFAULT_CATEGORY: Final = "suspect_shipment"
#: Longest validity of a profile (the gateway accepts envelopes of at most 366 days).
MAX_VALIDITY_DAYS: Final = 365
#: Retention of a hit on a profile shared with no treaty (own, kept here only).
LOCAL_RETENTION_DAYS: Final = 365
DAY_MS: Final = 86_400_000

ACTIONS: Final[dict[int, str]] = {
    P.RISK_ACTION_DOCUMENTARY_CHECK: "documentary_check",
    P.RISK_ACTION_SCAN: "scan",
    P.RISK_ACTION_PHYSICAL_INSPECTION: "physical_inspection",
}
ACTION_BY_NAME: Final = {v: k for k, v in ACTIONS.items()}
INSPECTIONS: Final[dict[int, str]] = {
    P.INSPECTION_STATE_PENDING: "pending",
    P.INSPECTION_STATE_INSPECTED: "inspected",
    P.INSPECTION_STATE_NOT_INSPECTED: "not_inspected",
}
INSPECTION_BY_NAME: Final = {v: k for k, v in INSPECTIONS.items()}
FINDINGS: Final[dict[int, str]] = {
    P.FINDING_CONFIRMED: "confirmed",
    P.FINDING_NOTHING_FOUND: "nothing_found",
}
FINDING_BY_NAME: Final = {v: k for k, v in FINDINGS.items()}
DIRECTIONS: Final = {
    ISSUED: P.RISK_PROFILE_DIRECTION_ISSUED,
    RECEIVED: P.RISK_PROFILE_DIRECTION_RECEIVED,
}
DIRECTION_NAMES: Final = {v: k for k, v in DIRECTIONS.items()}
PROFILE_FIELDS: Final = frozenset(
    {"title", "rationale", "action", "valid_from", "valid_until", "criteria"}
)
HIT_FIELDS: Final = frozenset(
    {
        "profile",
        "reference",
        "reasons",
        "subjects",
        "identifiers",
        "screen_time",
        "inspection",
        "finding",
        "note",
    }
)
UPDATABLE_PROFILE: Final = ("title", "rationale", "action", "start_time", "end_time", "criteria")
UPDATABLE_HIT: Final = ("inspection", "finding", "note")


def profile_name(record_id: str) -> str:
    return f"{PROFILES}/{record_id}"


def hit_name(record_id: str) -> str:
    return f"{HITS}/{record_id}"


def _ts(text: object, what: str) -> Timestamp:
    ts = Timestamp()
    try:
        ts.FromJsonString(str(text))
    except ValueError:
        raise errors.Malformed(f"{what} is not an RFC 3339 time: {text!r}") from None
    return ts


def _criteria_data(struct: Any) -> dict[str, Any]:
    return MessageToDict(struct)


# --- risk_profile: JSON form both ways, validation ----------------------------------------


def profile_to_record(p: P.RiskProfile) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if p.title:
        record["title"] = p.title
    if p.rationale:
        record["rationale"] = p.rationale
    if p.action in ACTIONS:
        record["action"] = ACTIONS[p.action]
    if p.HasField("start_time"):
        record["valid_from"] = p.start_time.ToJsonString()
    if p.HasField("end_time"):
        record["valid_until"] = p.end_time.ToJsonString()
    if p.HasField("criteria"):
        data = _criteria_data(p.criteria)
        # when they do not parse, validation says what is wrong; the form stays as given
        with contextlib.suppress(errors.InvalidArgument):
            data = to_data(parse_criteria(data))
        record["criteria"] = data
    return record


def profile_from_record(record: Mapping[str, Any]) -> P.RiskProfile:
    unknown = set(record) - PROFILE_FIELDS
    if unknown:
        raise errors.Malformed(f"a risk profile has no field {sorted(unknown)[0]!r}")
    p = P.RiskProfile()
    for key in ("title", "rationale"):
        value = record.get(key, "")
        if not isinstance(value, str):
            raise errors.Malformed(f"risk profile {key} must be a string")
        setattr(p, key, value)
    action = record.get("action")
    if action is not None:
        if action not in ACTION_BY_NAME:
            raise errors.Malformed(f"risk profile action {action!r} is unknown")
        p.action = ACTION_BY_NAME[action]  # type: ignore[assignment]
    if "valid_from" in record:
        p.start_time.CopyFrom(_ts(record["valid_from"], "valid_from"))
    if "valid_until" in record:
        p.end_time.CopyFrom(_ts(record["valid_until"], "valid_until"))
    if "criteria" in record:
        data = record["criteria"]
        try:
            canonical = to_data(parse_criteria(data))
        except errors.InvalidArgument as exc:
            raise errors.Malformed(exc.message) from None
        try:
            ParseDict(canonical, p.criteria)
        except (ParseError, TypeError, ValueError) as exc:
            raise errors.Malformed(f"risk profile criteria: {exc}") from None
    return p


def validate_profile(p: P.RiskProfile, prefix: str = "risk_profile") -> None:
    """An officer's new or changed profile: every problem at once, by request path."""
    v: dict[str, str] = {}
    if not p.title.strip():
        v[f"{prefix}.title"] = "required"
    elif len(p.title) > 200:
        v[f"{prefix}.title"] = "at most 200 characters"
    if len(p.rationale) > 10_000:
        v[f"{prefix}.rationale"] = "at most 10000 characters"
    if p.action not in ACTIONS:
        v[f"{prefix}.action"] = "one of " + ", ".join(a.upper() for a in ACTION_BY_NAME)
    now = now_ms()
    if not p.HasField("end_time"):
        v[f"{prefix}.end_time"] = "required"
    else:
        end = ts_to_ms(p.end_time)
        if end <= now:
            v[f"{prefix}.end_time"] = "must be in the future"
        elif end > now + MAX_VALIDITY_DAYS * DAY_MS:
            v[f"{prefix}.end_time"] = f"at most {MAX_VALIDITY_DAYS} days ahead"
        elif p.HasField("start_time") and ts_to_ms(p.start_time) >= end:
            v[f"{prefix}.start_time"] = "must be before end_time"
    criteria_problems: dict[str, str] = {}
    if not p.HasField("criteria") or not p.criteria.fields:
        criteria_problems[f"{prefix}.criteria"] = "required: an object with all_of or any_of"
    else:
        try:
            parse_criteria(_criteria_data(p.criteria), f"{prefix}.criteria")
        except errors.InvalidArgument as exc:
            criteria_problems = exc.violations
    v.update(criteria_problems)
    if v:
        first, what = next(iter(v.items()))
        more = f" (and {len(v) - 1} more)" if len(v) > 1 else ""
        cls = errors.CriteriaInvalid if criteria_problems else errors.FieldInvalid
        raise cls(f"{first}: {what}{more}", violations=v)


def _profile_expire_ms(p: P.RiskProfile) -> int:
    if p.HasField("end_time"):
        return min(ts_to_ms(p.end_time), now_ms() + MAX_VALIDITY_DAYS * DAY_MS)
    return now_ms() + 30 * DAY_MS


# --- risk_hit: JSON form both ways ---------------------------------------------------------


def hit_to_record(h: P.RiskHit) -> dict[str, Any]:
    record: dict[str, Any] = {"reference": h.reference}
    if h.profile:
        record["profile"] = h.profile
    if h.reasons:
        record["reasons"] = [
            {"path": r.path, "field": r.field, "matched": list(r.matched)} for r in h.reasons
        ]
    if h.subjects:
        record["subjects"] = [
            {"role": s.role, "key": s.key, "records": list(s.records)} for s in h.subjects
        ]
    if h.identifiers:
        record["identifiers"] = list(h.identifiers)
    if h.HasField("screen_time"):
        record["screen_time"] = h.screen_time.ToJsonString()
    record["inspection"] = INSPECTIONS.get(h.inspection, "pending")
    if h.finding in FINDINGS:
        record["finding"] = FINDINGS[h.finding]
    if h.note:
        record["note"] = h.note
    return record


def _strings(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise errors.Malformed(f"risk hit {what} must be a list of strings")
    return value


def hit_from_record(record: Mapping[str, Any]) -> P.RiskHit:
    unknown = set(record) - HIT_FIELDS
    if unknown:
        raise errors.Malformed(f"a risk hit has no field {sorted(unknown)[0]!r}")
    h = P.RiskHit()
    for key in ("profile", "reference", "note"):
        value = record.get(key, "")
        if not isinstance(value, str):
            raise errors.Malformed(f"risk hit {key} must be a string")
        setattr(h, key, value)
    try:
        for r in record.get("reasons", []):
            h.reasons.add(
                path=str(r["path"]),
                field=str(r["field"]),
                matched=_strings(r.get("matched", []), "matched"),
            )
        for s in record.get("subjects", []):
            h.subjects.add(
                role=str(s["role"]),
                key=str(s["key"]),
                records=_strings(s.get("records", []), "records"),
            )
    except (KeyError, TypeError, AttributeError):
        raise errors.Malformed("risk hit reasons or subjects are not objects of the form") from None
    h.identifiers.extend(_strings(record.get("identifiers", []), "identifiers"))
    if "screen_time" in record:
        h.screen_time.CopyFrom(_ts(record["screen_time"], "screen_time"))
    inspection = record.get("inspection", "pending")
    finding = record.get("finding", "")
    if inspection not in INSPECTION_BY_NAME or (finding and finding not in FINDING_BY_NAME):
        raise errors.Malformed("risk hit inspection or finding is unknown")
    h.inspection = INSPECTION_BY_NAME[inspection]  # type: ignore[assignment]
    h.finding = FINDING_BY_NAME.get(finding, P.FINDING_UNSPECIFIED)  # type: ignore[assignment]
    return h


def validate_hit(h: P.RiskHit) -> None:
    v: dict[str, str] = {}
    if not h.reference:
        v["risk_hit.reference"] = "required"
    if h.inspection not in INSPECTIONS:
        v["risk_hit.inspection"] = "one of PENDING, INSPECTED, NOT_INSPECTED"
    if h.finding and h.inspection != P.INSPECTION_STATE_INSPECTED:
        v["risk_hit.finding"] = "only after an inspection (inspection INSPECTED)"
    if len(h.note) > 2000:
        v["risk_hit.note"] = "at most 2000 characters"
    if v:
        first, what = next(iter(v.items()))
        raise errors.FieldInvalid(f"{first}: {what}", violations=v)


# --- what is in force ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileInfo:
    """What a screening answer says about a profile that matched."""

    record_id: str
    name: str
    title: str
    action: int
    origin_agency: str
    direction: str
    treaty_id: str
    treaty_version: int


@dataclass(frozen=True)
class Snapshot:
    """One immutable matcher with what it was built from."""

    matcher: IndexedMatcher
    profiles: dict[str, ProfileInfo]
    fingerprint: tuple[Any, ...]
    #: the next validity boundary (a profile starts or ends, a watched record expires)
    valid_until_ms: int
    built_ms: int
    watched_keys: int = 0


_IN_FORCE_RECORDATION = ("granted", "extended")


@dataclass
class InForce:
    """The matcher over every profile in force and the watch list; rebuilt when they change."""

    store: Store
    _snapshot: Snapshot | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: parsed criteria by (record id, revision): a rebuild parses only what changed
    _parsed: dict[tuple[str, int], Profile | None] = field(default_factory=dict)
    builds: int = 0

    def _fingerprint(self, conn: Connection) -> tuple[Any, ...]:
        r = t.records
        rows = conn.execute(
            select(
                r.c.kind,
                func.count(),
                func.max(r.c.update_ms),
                func.sum(r.c.revision),
                func.sum(case((r.c.state == ACTIVE, 1), else_=0)),
            )
            .where(r.c.kind.in_([PROFILE_KIND, "recordation"]))
            .group_by(r.c.kind)
            .order_by(r.c.kind)
        ).all()
        return (tuple(tuple(row) for row in rows), index.changes(conn))

    def current(self) -> Snapshot:
        """The snapshot for now: the cached one if nothing moved, else a new one."""
        at = now_ms()
        with self.store.engine.connect() as conn:
            fingerprint = self._fingerprint(conn)
            snap = self._snapshot
            if snap is not None and snap.fingerprint == fingerprint and at < snap.valid_until_ms:
                return snap
            with self._lock:
                snap = self._snapshot
                if (
                    snap is not None
                    and snap.fingerprint == fingerprint
                    and at < snap.valid_until_ms
                ):
                    return snap
                snap = self._build(conn, fingerprint, at)
                self._snapshot = snap
                self.builds += 1
                return snap

    def invalidate(self) -> None:
        self._snapshot = None

    def _build(self, conn: Connection, fingerprint: tuple[Any, ...], at: int) -> Snapshot:
        r = t.records
        boundary = at + DAY_MS
        profiles: list[Profile] = []
        infos: dict[str, ProfileInfo] = {}
        parsed: dict[tuple[str, int], Profile | None] = {}
        for row in conn.execute(
            select(
                r.c.record_id,
                r.c.revision,
                r.c.record,
                r.c.origin_agency,
                r.c.direction,
                r.c.treaty_id,
                r.c.treaty_version,
            ).where(r.c.kind == PROFILE_KIND, r.c.state == ACTIVE)
        ):
            record = json.loads(row.record)
            start = _ms(record.get("valid_from"))
            end = _ms(record.get("valid_until"))
            if end is not None and end <= at:
                continue
            if start is not None and start > at:
                boundary = min(boundary, start)
                continue
            if end is not None:
                boundary = min(boundary, end)
            key = (row.record_id, row.revision)
            profile = self._parsed.get(key) if key in self._parsed else _profile(row, record)
            parsed[key] = profile
            if profile is None:
                continue  # the treaty kept the criteria back, or they do not parse
            profiles.append(profile)
            infos[row.record_id] = ProfileInfo(
                record_id=row.record_id,
                name=profile_name(row.record_id),
                title=str(record.get("title", "")),
                action=ACTION_BY_NAME.get(str(record.get("action", "")), 0),
                origin_agency=row.origin_agency,
                direction=row.direction,
                treaty_id=row.treaty_id,
                treaty_version=row.treaty_version,
            )
        self._parsed = parsed
        watch: dict[str, list[str]] = {}
        a, i = t.alerts, t.identifiers
        for key, alert_id, expire in conn.execute(
            select(i.c.key, a.c.alert_id, a.c.expire_ms)
            .join(a, a.c.alert_id == i.c.record_id)
            .where(i.c.record_kind == "alert", a.c.state == "active", a.c.expire_ms > at)
        ):
            watch.setdefault(key, []).append(f"alerts/{alert_id}")
            boundary = min(boundary, int(expire))
        rc, rk = t.recordations, t.recordation_keys
        for gtin, recordation_id, expire in conn.execute(
            select(rk.c.key, rc.c.recordation_id, rc.c.expire_ms)
            .join(rc, rc.c.record_id == rk.c.record_id)
            .where(
                rk.c.key_type == "gtin",
                rc.c.state.in_(_IN_FORCE_RECORDATION),
                rc.c.expire_ms > at,
            )
        ):
            watch.setdefault(f"gtin:{gtin}", []).append(f"recordations/{recordation_id}")
            boundary = min(boundary, int(expire))
        return Snapshot(
            matcher=IndexedMatcher(profiles, {k: sorted(set(v)) for k, v in watch.items()}),
            profiles=infos,
            fingerprint=fingerprint,
            valid_until_ms=boundary,
            built_ms=at,
            watched_keys=len(watch),
        )


def _ms(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return ts_to_ms(_ts(value, "time"))
    except errors.Malformed:
        return None


def _profile(row: Any, record: Mapping[str, Any]) -> Profile | None:
    data = record.get("criteria")
    if not isinstance(data, Mapping):
        return None
    try:
        return Profile(row.record_id, parse_criteria(data))
    except errors.InvalidArgument:
        return None


# --- the kinds and their operations ---------------------------------------------------------


class RiskProfiles:
    """Risk profiles and hits of one node: the kinds, the profiles in force, statistics."""

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
            expire_ms=_profile_expire_ms,
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
            keys = index.keys_of(w.conn, HIT_KIND, record_id)
            for rel in index.related(w.conn, keys, exclude=(HIT_KIND, record_id), limit=50):
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
        if page_size < 0:
            raise errors.PageSizeInvalid(
                "page_size must not be negative", violations={"page_size": ">= 0"}
            )
        size = min(page_size or 50, 500)
        r, h = t.records, t.risk_hits
        query = select(r, h.c.profile_record_id).join(h, h.c.record_id == r.c.record_id)
        shape = f"{direction}|{profile}"
        if direction:
            query = query.where(r.c.direction == DIRECTION_NAMES.get(direction, "?"))  # type: ignore[call-overload]
        if profile:
            query = query.where(
                h.c.profile_record_id == self.profile_kind.parse_name(profile, "profile")
            )
        after = self.store.page_tokens.read(
            page_token, listing=HITS, filters=shape, caller=officer.officer_id, size=2
        )
        if after is not None:
            query = query.where(tuple_(r.c.create_ms, r.c.record_id) < tuple_(*after))
        query = query.order_by(r.c.create_ms.desc(), r.c.record_id.desc()).limit(size + 1)
        with self.store.write() as w:
            rows = w.conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            out = [self.hit_proto(w.conn, row, row) for row in rows]
            received = [row.record_id for row in rows if row.direction == RECEIVED]
            if received:
                w.audit(
                    "read",
                    {"officer_id": officer.officer_id, "record_ids": received, "kind": HIT_KIND},
                )
        token = (
            self.store.page_tokens.issue(
                listing=HITS,
                filters=shape,
                caller=officer.officer_id,
                position=[rows[-1].create_ms, rows[-1].record_id],
            )
            if more
            else ""
        )
        return out, token

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


def related_proto(row: Any) -> P.RelatedRecord:
    return P.RelatedRecord(
        name=row.record_name,
        kind=row.record_kind,
        key=row.key,
        role=row.role,
        direction=DIRECTIONS.get(row.direction, 0),  # type: ignore[arg-type]
        origin_agency=row.origin_agency,
        create_time=ms_to_ts(row.create_ms),
    )


def validity_now(days: int = 30) -> tuple[Timestamp, Timestamp]:
    """(now, now + days) as timestamps: a profile's validity for examples and tests."""
    start = datetime.now(UTC)
    return ms_to_ts(int(start.timestamp() * 1000)), ms_to_ts(
        int((start + timedelta(days=days)).timestamp() * 1000)
    )


__all__ = [
    "HITS",
    "HIT_KIND",
    "PROFILES",
    "PROFILE_KIND",
    "InForce",
    "ProfileInfo",
    "RiskProfiles",
    "Snapshot",
    "hit_from_record",
    "hit_to_record",
    "profile_from_record",
    "profile_to_record",
    "related_proto",
    "validate_profile",
]
