"""Export: records as STIX 2.1 objects (see the package docstring for the design).

``alert_objects`` is the alert kind's export; other record kinds add their
own ``*_objects`` function returning the same :class:`RecordObjects`, and
``bundle_of`` and the TAXII server work with any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from stix2.base import _STIXBase
from stix2.v21 import Bundle, Identity, Report

from intelshare.errors import InvalidArgument
from intelshare.interop import extension as ext
from intelshare.interop import markings, vocab
from intelshare.interop.ids import agency_identity_id, stix_id
from intelshare.v1 import alert_pb2


@dataclass(frozen=True)
class ExportContext:
    """Who exports, and what the treaties they hold say about onward sharing."""

    #: The agency whose node holds the records (the exporting officer's).
    holder_agency: str
    #: treaty id -> its ``onward_sharing`` rule, for the statement on received
    #: records (a treaty not listed gets a statement that says to look it up).
    onward_rules: Mapping[str, str] = field(default_factory=dict)


class RecordObjects(NamedTuple):
    """The STIX objects of one record.

    ``shared`` are objects other records reference too (identities of
    agencies, marking and extension definitions): a bundle or a TAXII page
    carries each once. ``own`` belong to this record alone, report last.
    """

    shared: list[_STIXBase]
    own: list[_STIXBase]


#: When agency identities are said to be created (a constant: one id, one object).
AGENCY_IDENTITY_CREATED = "2026-12-01T00:00:00.000Z"


@lru_cache(maxsize=256)
def agency_identity(agency_id: str) -> Identity:
    """The identity of an agency, as every export names it."""
    return Identity(
        id=agency_identity_id(agency_id),
        created=AGENCY_IDENTITY_CREATED,
        modified=AGENCY_IDENTITY_CREATED,
        name=agency_id,
        description=f"Agency {agency_id} of the intelshare federation.",
        identity_class="organization",
        sectors=["government-national"],
    )


def _stix_time(ts: Timestamp) -> str:
    at = datetime.fromtimestamp(ts.seconds, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.nanos // 1_000_000:03d}Z"


def _fields(msg: Message) -> dict[str, Any]:
    """Non-empty fields of a subject message, by STIX name."""
    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        value = getattr(msg, fd.name)
        if fd.is_repeated:
            items = [str(v) for v in value if str(v)]
            if items:
                out[ext.stix_field_name(fd.name)] = items
        elif value:
            out[ext.stix_field_name(fd.name)] = str(value)
    return out


def _report_extension(alert: alert_pb2.Alert, ctx: ExportContext) -> dict[str, Any]:
    props: dict[str, Any] = {"extension_type": "property-extension", "record_kind": "alert"}
    optional: dict[str, Any] = {
        "alert_kind": vocab.KINDS.get(alert.kind),
        "urgency": vocab.URGENCIES.get(alert.urgency),
        "handling": vocab.HANDLINGS.get(alert.handling),
        "source_reliability": vocab.RELIABILITIES.get(alert.evaluation.source_reliability),
        "information_credibility": vocab.CREDIBILITIES.get(
            alert.evaluation.information_credibility
        ),
        "categories": sorted(set(alert.categories)) or None,
        "expire_time": _stix_time(alert.expire_time) if alert.HasField("expire_time") else None,
        "state": vocab.STATES.get(alert.state),
        "direction": vocab.DIRECTIONS.get(alert.direction),
        "origin_agency": alert.origin_agency or None,
        "holder_agency": ctx.holder_agency,
        "treaty_id": alert.treaty_id or None,
        "treaty_version": alert.received.treaty_version or None,
        "revision": alert.revision or None,
    }
    props.update({k: v for k, v in optional.items() if v is not None})
    return props


def _identity_subject(
    alert_id: str,
    subject_list: str,
    n: int,
    msg: Message,
    common: dict[str, Any],
) -> Identity:
    values = _fields(msg)
    kind = "person" if subject_list == "persons" else "company"
    props: dict[str, Any] = {
        "id": stix_id("identity", f"{alert_id}/subjects/{subject_list}/{n}"),
        "identity_class": ext.IDENTITY_CLASSES[subject_list],
        # identity.name is required; a treaty may have removed the name.
        "name": values.pop("name", f"{kind} {n + 1} of {alert_id} (name not shared)"),
        **common,
    }
    if "role" in values:
        props["roles"] = [values.pop("role")]
    if "address" in values:
        props["contact_information"] = values.pop("address")
    if values:
        props["extensions"] = {ext.EXTENSION_ID: {"extension_type": "property-extension", **values}}
    return Identity(**props)


def _new_sdo_subject(
    alert_id: str, subject_list: str, n: int, msg: Message, common: dict[str, Any]
) -> _STIXBase:
    stix_type = ext.NEW_SDO_TYPES[subject_list]
    cls = ext.SDO_CLASSES[stix_type]
    obj: _STIXBase = cls(
        id=stix_id(stix_type, f"{alert_id}/subjects/{subject_list}/{n}"),
        extensions={ext.EXTENSION_ID: {"extension_type": "new-sdo"}},
        **common,
        **_fields(msg),
    )
    return obj


def alert_objects(alert: alert_pb2.Alert, ctx: ExportContext) -> RecordObjects:
    """The STIX objects of one alert as the exporting officer reads it."""
    if not alert.name or not alert.HasField("create_time"):
        raise InvalidArgument(
            "only a stored alert can be exported (it has no name or create_time)",
            violations={"alert": "read it from the node first"},
        )
    issuer = alert.origin_agency or ctx.holder_agency
    created = _stix_time(alert.create_time)
    modified = created
    if alert.HasField("update_time") and alert.update_time.ToNanoseconds() >= (
        alert.create_time.ToNanoseconds()
    ):
        modified = _stix_time(alert.update_time)

    shared: list[_STIXBase] = [ext.publisher(), ext.definition(), agency_identity(issuer)]
    marking_refs: list[str] = []
    tlp = vocab.TLPS.get(alert.tlp)
    if tlp is not None:
        tlp_obj = markings.tlp_marking(tlp)
        shared.append(tlp_obj)
        marking_refs.append(tlp_obj.id)
    if alert.direction == alert_pb2.ALERT_DIRECTION_RECEIVED:
        statement = markings.statement_marking(
            markings.onward_statement(
                holder=ctx.holder_agency,
                origin=issuer,
                treaty=alert.treaty_id,
                version=alert.received.treaty_version,
                rule=ctx.onward_rules.get(alert.treaty_id),
            )
        )
        shared.append(statement)
        marking_refs.append(statement.id)

    common: dict[str, Any] = {
        "created_by_ref": agency_identity_id(issuer),
        "created": created,
        "modified": modified,
    }
    if marking_refs:
        common["object_marking_refs"] = marking_refs
    if alert.state == alert_pb2.ALERT_STATE_REVOKED:
        common["revoked"] = True

    own: list[_STIXBase] = []
    for subject_list in vocab.SUBJECT_LISTS:
        for n, msg in enumerate(getattr(alert.subjects, subject_list)):
            if subject_list in ext.IDENTITY_CLASSES:
                own.append(_identity_subject(alert.name, subject_list, n, msg, common))
            elif subject_list in ext.NEW_SDO_TYPES:
                own.append(_new_sdo_subject(alert.name, subject_list, n, msg, common))

    alert_id = alert.name.removeprefix("alerts/")
    kind = vocab.KINDS.get(alert.kind)
    report_props: dict[str, Any] = {
        "id": stix_id("report", alert.name),
        "name": f"{kind.replace('_', ' ')} alert {alert_id}" if kind else f"alert {alert_id}",
        "published": created,
        "report_types": ["threat-report"],
        # object_refs may not be empty: an alert with no subjects shared
        # still refers to the agency that issued it.
        "object_refs": [o.id for o in own] or [agency_identity_id(issuer)],
        "external_references": [{"source_name": "intelshare", "external_id": alert.name}],
        "extensions": {ext.EXTENSION_ID: _report_extension(alert, ctx)},
        **common,
    }
    if alert.description:
        report_props["description"] = alert.description
    if alert.categories:
        report_props["labels"] = sorted(set(alert.categories))
    own.append(Report(**report_props))
    return RecordObjects(shared=shared, own=own)


def bundle_of(records: Iterable[RecordObjects]) -> Bundle:
    """One bundle with every object of ``records``, shared objects once."""
    seen: set[str] = set()
    objects: list[_STIXBase] = []
    for rec in records:
        for obj in rec.shared:
            if obj.id not in seen:
                seen.add(obj.id)
                objects.append(obj)
        objects.extend(rec.own)
    return Bundle(objects=objects, allow_custom=True)


def export_alerts(alerts: Iterable[alert_pb2.Alert], ctx: ExportContext) -> Bundle:
    """A STIX 2.1 bundle of ``alerts``."""
    return bundle_of(alert_objects(a, ctx) for a in alerts)
