"""The two kinds' names and JSON forms: a risk profile and a risk hit, both ways, validated.

The JSON form is what the record engine stores, redacts and seals; the
protobuf message is what officers and the API see. A received form is
parsed as strictly as an officer's request (a partner's broken criteria are
refused rather than matched wrongly).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare import errors
from intelshare.v1 import risk_profile_pb2
from node.schema.alert import ms_to_ts, ts_to_ms
from node.schema.related import related_proto as related_proto
from node.sharing.record_kind import (
    ISSUED,
    RECEIVED,
)
from node.storage.store import now_ms
from node.targeting.criteria import parse_criteria, to_data

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


def timestamp_of(text: object, what: str) -> Timestamp:
    """An RFC 3339 time of a stored form; Malformed naming ``what`` if it is not one."""
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
        p.start_time.CopyFrom(timestamp_of(record["valid_from"], "valid_from"))
    if "valid_until" in record:
        p.end_time.CopyFrom(timestamp_of(record["valid_until"], "valid_until"))
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


def profile_expire_ms(p: P.RiskProfile) -> int:
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
        h.screen_time.CopyFrom(timestamp_of(record["screen_time"], "screen_time"))
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


def validity_now(days: int = 30) -> tuple[Timestamp, Timestamp]:
    """(now, now + days) as timestamps: a profile's validity for examples and tests."""
    start = datetime.now(UTC)
    return ms_to_ts(int(start.timestamp() * 1000)), ms_to_ts(
        int((start + timedelta(days=days)).timestamp() * 1000)
    )
