"""The export engine: what every record's STIX objects share (see the package docstring).

A record kind's mapping module (:mod:`intelshare.interop.kinds`) turns one
record into subject objects and one *record object* (a ``report``, or a
``grouping`` for a recordation) with our extension's properties; the
engine gives it everything else, the same for every kind:

* the issuing agency's ``identity`` as ``created_by_ref`` of every object;
* ``created`` (the record's creation), ``modified`` (its last change on the
  node, so a re-export after a change is a new version of the same ids);
* the TLP 2.0 marking and, for a record this node received, the statement
  of the treaty's onward-sharing rule, on every object;
* ``revoked`` when the record was revoked or withdrawn;
* deterministic ids (:func:`intelshare.interop.ids.stix_id` over resource names);
* :func:`bundle_of`, which puts several records in one bundle with the
  shared objects (identities, marking and extension definitions) once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from stix2.base import _STIXBase
from stix2.v21 import Bundle, Grouping, Identity, Report

from intelshare.errors import InvalidArgument
from intelshare.interop import extension as ext
from intelshare.interop import markings
from intelshare.interop.ids import agency_identity_id, stix_id


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
    carries each once. ``own`` belong to this record alone, the record
    object last.
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


def stix_time(ts: Timestamp) -> str:
    """A protobuf timestamp as STIX writes times (millisecond precision, UTC)."""
    at = datetime.fromtimestamp(ts.seconds, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.nanos // 1_000_000:03d}Z"


def time_or_none(msg: Message, name: str) -> str | None:
    """A message's timestamp field as our extension writes times (seconds), None when unset."""
    if not msg.HasField(name):
        return None
    at = datetime.fromtimestamp(getattr(msg, name).seconds, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def fields_of(msg: Message) -> dict[str, Any]:
    """Non-empty scalar and repeated scalar fields of a message, by STIX name, as text."""
    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        if fd.message_type is not None:
            continue
        value = getattr(msg, fd.name)
        if fd.is_repeated:
            items = [str(v) for v in value if str(v)]
            if items:
                out[ext.stix_field_name(fd.name)] = items
        elif value:
            out[ext.stix_field_name(fd.name)] = str(value)
    return out


def present(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the empty ones (None, "", [], 0 stays out too; False as well)."""
    return {k: v for k, v in values.items() if v not in (None, "", [], (), 0, False)}


@dataclass(frozen=True)
class Frame:
    """What every object of one record carries, and the shared objects it needs."""

    name: str
    issuer: str
    created: str
    shared: list[_STIXBase]
    common: dict[str, Any]


def frame(
    ctx: ExportContext,
    *,
    name: str,
    issuer: str,
    create_time: Timestamp,
    update_time: Timestamp | None,
    tlp: str | None,
    received: bool,
    treaty: str = "",
    treaty_version: int = 0,
    revoked: bool = False,
) -> Frame:
    """The frame of record ``name`` (``tlp``: ``CLEAR``..``RED``, or None for no marking)."""
    if not name or not create_time.ToNanoseconds():
        raise InvalidArgument(
            "only a stored record can be exported (it has no name or create_time)",
            violations={"record": "read it from the node first"},
        )
    created = stix_time(create_time)
    modified = created
    if update_time is not None and update_time.ToNanoseconds() >= create_time.ToNanoseconds():
        modified = stix_time(update_time)
    shared: list[_STIXBase] = [ext.publisher(), ext.definition(), agency_identity(issuer)]
    marking_refs: list[str] = []
    if tlp is not None:
        tlp_obj = markings.tlp_marking(tlp)
        shared.append(tlp_obj)
        marking_refs.append(tlp_obj.id)
    if received:
        statement = markings.statement_marking(
            markings.onward_statement(
                holder=ctx.holder_agency,
                origin=issuer,
                treaty=treaty,
                version=treaty_version,
                rule=ctx.onward_rules.get(treaty),
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
    if revoked:
        common["revoked"] = True
    return Frame(name=name, issuer=issuer, created=created, shared=shared, common=common)


def identity_object(
    fr: Frame,
    path: str,
    *,
    identity_class: str,
    name: str,
    roles: Sequence[str] = (),
    contact: str = "",
    extra: Mapping[str, Any] | None = None,
) -> Identity:
    """A person, company or party of the record, ``{record}/{path}`` naming its id."""
    props: dict[str, Any] = {
        "id": stix_id("identity", f"{fr.name}/{path}"),
        "identity_class": identity_class,
        "name": name,
        **fr.common,
    }
    if roles:
        props["roles"] = list(roles)
    if contact:
        props["contact_information"] = contact
    values = present(extra or {})
    if values:
        props["extensions"] = {ext.EXTENSION_ID: {"extension_type": "property-extension", **values}}
    return Identity(allow_custom=True, **props)


def new_sdo(fr: Frame, stix_type: str, path: str, values: Mapping[str, Any]) -> _STIXBase:
    """One of our extension's object types, ``{record}/{path}`` naming its id."""
    cls = ext.SDO_CLASSES[stix_type]
    obj: _STIXBase = cls(
        allow_custom=True,
        id=stix_id(stix_type, f"{fr.name}/{path}"),
        extensions={ext.EXTENSION_ID: {"extension_type": "new-sdo"}},
        **fr.common,
        **present(values),
    )
    return obj


def record_object(
    fr: Frame,
    own: list[_STIXBase],
    *,
    title: str,
    description: str,
    properties: Mapping[str, Any],
    report_types: Sequence[str] = (),
    labels: Sequence[str] = (),
) -> RecordObjects:
    """The record's ``report`` (or ``grouping``, without ``report_types``) after ``own``.

    ``properties`` are our extension's (``record_kind`` first); empty ones
    are left out. ``object_refs`` may not be empty: a record without
    subjects still refers to the agency that made it.
    """
    props: dict[str, Any] = {
        "id": stix_id("report" if report_types else "grouping", fr.name),
        "name": title,
        "object_refs": [o.id for o in own] or [agency_identity_id(fr.issuer)],
        "external_references": [{"source_name": "intelshare", "external_id": fr.name}],
        "extensions": {
            ext.EXTENSION_ID: {"extension_type": "property-extension", **present(properties)}
        },
        **fr.common,
    }
    if description:
        props["description"] = description
    if labels:
        props["labels"] = sorted(set(labels))
    if report_types:
        container: _STIXBase = Report(
            allow_custom=True, published=fr.created, report_types=list(report_types), **props
        )
    else:
        # A grouping is STIX's "set of content related to a shared context,
        # with no conclusion": what a recordation is to an analyst.
        container = Grouping(allow_custom=True, context="unspecified", **props)
    return RecordObjects(shared=fr.shared, own=[*own, container])


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
