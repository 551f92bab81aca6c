"""How API values read on a page: enum labels, times, resource ids.

Enum labels come from the generated descriptors (``ALERT_KIND_COUNTERFEIT_GOODS``
reads "Counterfeit goods"), so a value added to a proto shows up without a
table to keep in step. Form fields carry the short lower-case suffix
(``counterfeit_goods``), which :func:`enum_value` maps back.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.v1 import (
    alert_pb2,
    case_pb2,
    detention_pb2,
    envelope_pb2,
    recordation_pb2,
    risk_profile_pb2,
)

#: Labels that do not read well when derived from the enum name.
_SPECIAL = {
    "TLP_AMBER_STRICT": "AMBER+STRICT",
    "TLP_CLEAR": "CLEAR",
    "TLP_GREEN": "GREEN",
    "TLP_AMBER": "AMBER",
    "TLP_RED": "RED",
}

#: A generated enum class (``Name``, ``Value``, ``values``); typed loosely, as
#: mypy-protobuf gives every enum a class of its own.
ProtoEnum = Any

ENUMS: dict[str, ProtoEnum] = {
    "kind": alert_pb2.AlertKind,
    "urgency": alert_pb2.Urgency,
    "state": alert_pb2.AlertState,
    "handling": envelope_pb2.HandlingCode,
    "tlp": envelope_pb2.Tlp,
    "reliability": alert_pb2.SourceReliability,
    "credibility": alert_pb2.InformationCredibility,
    "delivery": alert_pb2.DeliveryState,
    "case_state": case_pb2.CaseState,
    "standing": case_pb2.CaseStanding,
    "member_state": case_pb2.CaseMemberState,
    "entry_delivery": case_pb2.EntryDeliveryState,
    "signature": case_pb2.EntrySignature,
    "message_kind": envelope_pb2.MessageKind,
    "recordation_state": recordation_pb2.RecordationState,
    "recordation_direction": recordation_pb2.RecordationDirection,
    "right_type": recordation_pb2.RightType,
    "detention_state": detention_pb2.DetentionState,
    "procedure": detention_pb2.DetentionProcedure,
    "deadline_kind": detention_pb2.DeadlineKind,
    "deadline_state": detention_pb2.DeadlineState,
    "goods_category": detention_pb2.GoodsCategory,
    "unit": detention_pb2.QuantityUnit,
    "transport_mode": detention_pb2.TransportMode,
    "risk_action": risk_profile_pb2.RiskAction,
    "profile_state": risk_profile_pb2.RiskProfileState,
    "profile_direction": risk_profile_pb2.RiskProfileDirection,
    "inspection": risk_profile_pb2.InspectionState,
    "finding": risk_profile_pb2.Finding,
}


def _prefix(enum: ProtoEnum) -> str:
    unspecified = str(enum.Name(0))
    return unspecified[: -len("UNSPECIFIED")]


def enum_key(enum: ProtoEnum, value: int) -> str:
    """``counterfeit_goods`` for ALERT_KIND_COUNTERFEIT_GOODS; '' when unset or unknown."""
    if not value:
        return ""
    try:
        return str(enum.Name(value))[len(_prefix(enum)) :].lower()
    except ValueError:
        return ""


def enum_label(enum: ProtoEnum, value: int) -> str:
    """A human label, e.g. "Counterfeit goods", "H1", "AMBER+STRICT"."""
    if not value:
        return ""
    try:
        name = str(enum.Name(value))
    except ValueError:
        return f"unknown ({value})"
    if name in _SPECIAL:
        return _SPECIAL[name]
    suffix = name[len(_prefix(enum)) :]
    if len(suffix) <= 2:  # H0-H3, A-C/X, 1-4
        return suffix
    return suffix.replace("_", " ").capitalize()


def enum_value(enum: ProtoEnum, key: str) -> int:
    """The number for a form value such as ``counterfeit_goods``; 0 for '' or unknown."""
    if not key:
        return 0
    try:
        return int(enum.Value(_prefix(enum) + key.strip().upper()))
    except ValueError:
        return 0


def choices(enum: ProtoEnum) -> list[tuple[str, str]]:
    """(form value, label) of every set value, in declaration order."""
    return [
        (enum_key(enum, number), enum_label(enum, number)) for number in enum.values() if number
    ]


def is_set(ts: Timestamp | None) -> bool:
    return ts is not None and bool(ts.seconds or ts.nanos)


def when(ts: Timestamp | None) -> str:
    """``2026-12-05 10:22 UTC``, or '' for an unset time."""
    if ts is None or not is_set(ts):
        return ""
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(ts: Timestamp | None) -> str:
    if ts is None or not is_set(ts):
        return ""
    return ts.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")


def ts_ms(ts: Timestamp | None) -> int:
    if ts is None or not is_set(ts):
        return 0
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


def timestamp(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment.astimezone(UTC))
    return out


def resource_id(name: str) -> str:
    """The last segment of a resource name: ``alerts/01AB`` -> ``01AB``."""
    return name.rsplit("/", 1)[-1]


def dom_id(prefix: str, name: str) -> str:
    """An element id for a resource (ids are ULID-like; anything else is replaced)."""
    return prefix + "-" + "".join(c if c.isalnum() else "-" for c in resource_id(name))


#: The console's page of each kind of record a ``related`` list may name, by the first
#: segment of the record's resource name.
_RECORD_PAGES = {
    "alerts": "/alerts/",
    "recordations": "/recordations/",
    "detentions": "/detentions/",
    "riskHits": "/hits/",
    "riskProfiles": "/profiles/",
}


def record_link(name: str) -> str:
    """The console page of a record named by the node ('' when the console has none).

    A case entry (``cases/{case}/entries/{entry}``) has no page of its own:
    it leads to its case.
    """
    parts = name.split("/")
    if len(parts) == 2 and parts[0] in _RECORD_PAGES:
        return _RECORD_PAGES[parts[0]] + parts[1]
    if len(parts) >= 2 and parts[0] == "cases":
        return f"/cases/{parts[1]}"
    return ""


def unread(alert: alert_pb2.Alert) -> bool:
    """Received and not acknowledged yet by this agency (the inbox's "New")."""
    return alert.direction == alert_pb2.ALERT_DIRECTION_RECEIVED and not is_set(
        alert.received.acknowledge_time
    )


def money(value: detention_pb2.MonetaryValue) -> str:
    """``EUR 96,000`` (cents only when there are any); '' when unset."""
    if not value.currency_code and not value.units and not value.nanos:
        return ""
    amount = value.units + value.nanos / 1e9
    text = f"{amount:,.2f}" if value.nanos else f"{value.units:,}"
    return f"{value.currency_code} {text}".strip()


def jinja_globals() -> dict[str, Any]:
    return {
        "label": lambda enum, value: enum_label(ENUMS[enum], value),
        "key": lambda enum, value: enum_key(ENUMS[enum], value),
        "choices": lambda enum: choices(ENUMS[enum]),
        "when": when,
        "iso": iso,
        "is_set": is_set,
        "rid": resource_id,
        "dom_id": dom_id,
        "record_link": record_link,
        "unread": unread,
        "money": money,
        "new_request_id": lambda: str(uuid.uuid4()),
    }
