"""The alert kind's export: a ``report`` (``threat-report``) and its subjects.

Persons and companies are ``identity`` objects (STIX's type for people and
organisations) with what ``identity`` has no property for in our
extension; vehicles, vessels, containers and documents are our new object
types, their properties the subject messages' fields (read from
alert.proto's descriptors, so a field added there is exported as is).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from stix2.base import _STIXBase

from intelshare.interop import extension as ext
from intelshare.interop import vocab
from intelshare.interop.stix import (
    ExportContext,
    Frame,
    RecordObjects,
    fields_of,
    frame,
    identity_object,
    new_sdo,
    record_object,
    time_or_none,
)
from intelshare.v1 import alert_pb2


def subject_objects(fr: Frame, subjects: alert_pb2.Subjects) -> list[_STIXBase]:
    """The STIX objects of an alert's subjects (also used for other kinds' transport)."""
    out: list[_STIXBase] = []
    for subject_list in vocab.SUBJECT_LISTS:
        for n, msg in enumerate(getattr(subjects, subject_list)):
            path = f"subjects/{subject_list}/{n}"
            if subject_list in ext.IDENTITY_CLASSES:
                out.append(_identity_subject(fr, path, subject_list, n, msg))
            elif subject_list in ext.NEW_SDO_TYPES:
                out.append(new_sdo(fr, ext.NEW_SDO_TYPES[subject_list], path, fields_of(msg)))
    return out


def _identity_subject(fr: Frame, path: str, subject_list: str, n: int, msg: Message) -> Any:
    values = fields_of(msg)
    kind = "person" if subject_list == "persons" else "company"
    return identity_object(
        fr,
        path,
        identity_class=ext.IDENTITY_CLASSES[subject_list],
        # identity.name is required; a treaty may have removed the name.
        name=values.pop("name", f"{kind} {n + 1} of {fr.name} (name not shared)"),
        roles=[values.pop("role")] if "role" in values else [],
        contact=values.pop("address", ""),
        extra=values,
    )


def alert_objects(alert: alert_pb2.Alert, ctx: ExportContext) -> RecordObjects:
    """The STIX objects of one alert as the exporting officer reads it."""
    received = alert.direction == alert_pb2.ALERT_DIRECTION_RECEIVED
    fr = frame(
        ctx,
        name=alert.name,
        issuer=alert.origin_agency or ctx.holder_agency,
        create_time=alert.create_time,
        update_time=alert.update_time if alert.HasField("update_time") else None,
        tlp=vocab.TLPS.get(alert.tlp),
        received=received,
        treaty=alert.treaty_id,
        treaty_version=alert.received.treaty_version,
        revoked=alert.state == alert_pb2.ALERT_STATE_REVOKED,
    )
    alert_id = alert.name.removeprefix("alerts/")
    kind = vocab.KINDS.get(alert.kind)
    return record_object(
        fr,
        subject_objects(fr, alert.subjects),
        title=f"{kind.replace('_', ' ')} alert {alert_id}" if kind else f"alert {alert_id}",
        description=alert.description,
        report_types=["threat-report"],
        labels=alert.categories,
        properties={
            "record_kind": "alert",
            "alert_kind": kind,
            "urgency": vocab.URGENCIES.get(alert.urgency),
            "handling": vocab.HANDLINGS.get(alert.handling),
            "source_reliability": vocab.RELIABILITIES.get(alert.evaluation.source_reliability),
            "information_credibility": vocab.CREDIBILITIES.get(
                alert.evaluation.information_credibility
            ),
            "categories": sorted(set(alert.categories)),
            "expire_time": time_or_none(alert, "expire_time"),
            "state": vocab.STATES.get(alert.state),
            "direction": vocab.DIRECTIONS.get(alert.direction),
            "origin_agency": alert.origin_agency,
            "holder_agency": ctx.holder_agency,
            "treaty_id": alert.treaty_id,
            "treaty_version": alert.received.treaty_version,
            "revision": alert.revision,
        },
    )
