"""The risk-profile kind's export: a ``report`` (``indicator``) and an ``indicator``.

A risk profile says which consignments deserve a second look: an
``indicator`` in STIX terms, its criteria a STIX pattern over
``intelshare-declaration`` (:mod:`intelshare.interop.patterns`), valid from
the profile's start (or creation) until its end. The record object is a
report of type ``indicator`` carrying what the indicator cannot: the
action asked of officers, the exact criteria (JSON), state and treaty. A
received copy whose treaty withholds the criteria has no indicator, only
the report.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from stix2.base import _STIXBase
from stix2.v21 import Indicator

from intelshare.interop import vocab
from intelshare.interop.ids import stix_id
from intelshare.interop.patterns import criteria_pattern
from intelshare.interop.stix import (
    ExportContext,
    Frame,
    RecordObjects,
    frame,
    record_object,
    stix_time,
    time_or_none,
)
from intelshare.v1 import risk_profile_pb2

P = risk_profile_pb2


def _indicator(fr: Frame, profile: P.RiskProfile, pattern: str) -> _STIXBase:
    start = profile.start_time if profile.HasField("start_time") else profile.create_time
    props: dict[str, Any] = {
        "id": stix_id("indicator", f"{fr.name}/criteria"),
        "name": profile.title or f"risk profile {fr.name}",
        "description": profile.rationale or "Consignments matching this pattern deserve a check.",
        "indicator_types": ["anomalous-activity"],
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": stix_time(start),
        **fr.common,
    }
    if profile.HasField("end_time") and profile.end_time.ToNanoseconds() > start.ToNanoseconds():
        props["valid_until"] = stix_time(profile.end_time)
    return Indicator(**props)


def risk_profile_objects(profile: P.RiskProfile, ctx: ExportContext) -> RecordObjects:
    """The STIX objects of one risk profile as the exporting officer reads it."""
    received = profile.direction == P.RISK_PROFILE_DIRECTION_RECEIVED
    fr = frame(
        ctx,
        name=profile.name,
        issuer=profile.origin_agency or ctx.holder_agency,
        create_time=profile.create_time,
        update_time=profile.update_time if profile.HasField("update_time") else None,
        tlp=vocab.TLPS.get(profile.tlp),
        received=received,
        treaty=profile.treaty_id,
        revoked=profile.state == P.RISK_PROFILE_STATE_WITHDRAWN,
    )
    criteria = MessageToDict(profile.criteria) if profile.HasField("criteria") else {}
    pattern = criteria_pattern(criteria) if criteria else None
    own = [_indicator(fr, profile, pattern)] if pattern else []
    return record_object(
        fr,
        own,
        title=profile.title or f"risk profile {profile.name.removeprefix('riskProfiles/')}",
        description=profile.rationale,
        report_types=["indicator"],
        labels=profile.categories,
        properties={
            "record_kind": "risk_profile",
            "state": vocab.enum_label(P.RiskProfileState.DESCRIPTOR, profile.state),
            "direction": vocab.enum_label(P.RiskProfileDirection.DESCRIPTOR, profile.direction),
            "origin_agency": profile.origin_agency,
            "holder_agency": ctx.holder_agency,
            "treaty_id": profile.treaty_id,
            "handling": vocab.HANDLINGS.get(profile.handling),
            "categories": sorted(set(profile.categories)),
            "revision": profile.revision,
            "action": vocab.enum_label(P.RiskAction.DESCRIPTOR, profile.action),
            "start_time": time_or_none(profile, "start_time"),
            "end_time": time_or_none(profile, "end_time"),
            "criteria": json.dumps(criteria, sort_keys=True, separators=(",", ":"))
            if criteria
            else "",
            "withdraw_reason": profile.withdraw_reason,
        },
    )
