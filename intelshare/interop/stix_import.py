"""Import: a STIX 2.1 bundle becomes a draft alert (see :mod:`intelshare.interop.draft`).

The bundle's ``report`` (the first, if there are several) is the alert: its
description, its TLP marking and, when the bundle came from intelshare, our
extension's kind, urgency, handling code, evaluation and categories. Its
``object_refs`` are the candidates for subjects; a bundle with no report
offers all its objects. Each STIX type has one small mapper in
:data:`STIX_MAPPERS`; a type without one is reported as skipped, with the
reason, as is any object the mapper cannot use. Every object of the bundle
appears once in the summary, mapped or skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import stix2
from stix2.exceptions import STIXError

from intelshare.errors import Malformed
from intelshare.interop import extension as ext
from intelshare.interop import markings, vocab
from intelshare.interop._parse import load_json
from intelshare.interop.draft import Draft
from intelshare.v1 import alert_pb2

#: At most this many subjects of one list per alert (the node's own limit).
MAX_SUBJECTS_PER_LIST = 100
_CATEGORY_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Skip(Exception):
    """Raised by a mapper: the object is left out, for the reason given."""


Mapper = Callable[[Mapping[str, Any], Draft, "_Context"], str]


class _Context:
    def __init__(self, objects: Mapping[str, Mapping[str, Any]], report: Mapping[str, Any] | None):
        self.objects = objects
        self.report = report
        self.issuer = str(report.get("created_by_ref", "")) if report else ""


def _add_subject(draft: Draft, subject_list: str) -> tuple[Any, str]:
    items = getattr(draft.alert.subjects, subject_list)
    if len(items) >= MAX_SUBJECTS_PER_LIST:
        raise Skip(f"an alert holds at most {MAX_SUBJECTS_PER_LIST} {subject_list}")
    path = f"subjects.{subject_list}[{len(items)}]"
    return items.add(), path


def _set_fields(msg: Any, values: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
    for stix_name, fd in fields.items():
        value = values.get(stix_name)
        if value is None:
            continue
        if fd.is_repeated:
            if isinstance(value, list):
                getattr(msg, fd.name).extend(str(v) for v in value)
        elif isinstance(value, str):
            setattr(msg, fd.name, value)


def _our_extension(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    found = (obj.get("extensions") or {}).get(ext.EXTENSION_ID)
    return found if isinstance(found, Mapping) else {}


def map_identity(obj: Mapping[str, Any], draft: Draft, ctx: _Context) -> str:
    if obj["id"] == ctx.issuer:
        raise Skip("the agency that issued the report: your agency issues the draft")
    identity_class = obj.get("identity_class")
    subject_list = {v: k for k, v in ext.IDENTITY_CLASSES.items()}.get(str(identity_class))
    if subject_list is None:
        raise Skip(
            f"identity_class {identity_class!r}: only individuals (persons) and organizations "
            "(companies) are alert subjects"
        )
    msg, path = _add_subject(draft, subject_list)
    msg.name = str(obj.get("name", ""))
    roles = obj.get("roles") or []
    if roles:
        msg.role = str(roles[0])
    if subject_list == "companies" and obj.get("contact_information"):
        msg.address = str(obj["contact_information"])
    _set_fields(msg, _our_extension(obj), ext.identity_extension_fields(subject_list))
    return path


def _new_sdo_mapper(subject_list: str) -> Mapper:
    def map_new_sdo(obj: Mapping[str, Any], draft: Draft, ctx: _Context) -> str:
        msg, path = _add_subject(draft, subject_list)
        _set_fields(msg, obj, ext.new_sdo_fields(subject_list))
        return path

    return map_new_sdo


def _skipper(reason: str) -> Mapper:
    def skip(obj: Mapping[str, Any], draft: Draft, ctx: _Context) -> str:
        raise Skip(reason)

    return skip


def map_marking(obj: Mapping[str, Any], draft: Draft, ctx: _Context) -> str:
    if obj["id"] in markings.TLP_BY_MARKING_ID:
        return "tlp (when the report is marked with it)"
    statement = (obj.get("definition") or {}).get("statement")
    if statement:
        raise Skip(
            f"a statement marking is the sender's terms and is not carried into a new alert; "
            f"it says: {statement}"
        )
    raise Skip("not a TLP marking")


#: STIX type -> mapper. A record kind with other subjects adds its own entries.
STIX_MAPPERS: dict[str, Mapper] = {
    "identity": map_identity,
    **{stix_type: _new_sdo_mapper(lst) for lst, stix_type in ext.NEW_SDO_TYPES.items()},
    "marking-definition": map_marking,
    "extension-definition": _skipper("defines an extension; read, nothing to import"),
    "relationship": _skipper("relationships are not carried by alerts"),
    "location": _skipper("places are not alert subjects; give them in the description"),
    "indicator": _skipper(
        "indicators (detection patterns) are not alert subjects; "
        "copy what matters into the description"
    ),
}


def _apply_report(report: Mapping[str, Any], draft: Draft) -> None:
    a = draft.alert
    rid = str(report["id"])
    description = report.get("description") or report.get("name")
    if isinstance(description, str) and description.strip():
        a.description = description.strip()
        draft.map(rid, "description")
    tlp, _others = markings.tlp_of_marking_refs(list(report.get("object_marking_refs") or []))
    if tlp is not None:
        a.tlp = vocab.TLP_BY_NAME[tlp]  # type: ignore[assignment]
        draft.map(rid, "tlp")
    props = _our_extension(report)
    if props.get("record_kind", "alert") != "alert":
        raise Malformed(
            f"the report {rid} is an intelshare {props.get('record_kind')!r}, not an alert"
        )
    simple: list[tuple[str, Mapping[Any, int], str]] = [
        ("alert_kind", vocab.KIND_BY_NAME, "kind"),
        ("urgency", vocab.URGENCY_BY_NAME, "urgency"),
        ("handling", vocab.HANDLING_BY_NAME, "handling"),
    ]
    for key, table, field in simple:
        value = props.get(key)
        if value in table:
            setattr(a, field, table[value])
            draft.map(rid, field)
        elif value is not None:
            draft.skip(f"{rid} {key}", f"{value!r} is not a known {field}")
    rel = props.get("source_reliability")
    if rel in vocab.RELIABILITY_BY_NAME:
        a.evaluation.source_reliability = vocab.RELIABILITY_BY_NAME[rel]  # type: ignore[assignment]
        draft.map(rid, "evaluation.source_reliability")
    cred = props.get("information_credibility")
    if cred in vocab.CREDIBILITY_BY_NUMBER:
        a.evaluation.information_credibility = vocab.CREDIBILITY_BY_NUMBER[cred]  # type: ignore[assignment]
        draft.map(rid, "evaluation.information_credibility")
    categories = props.get("categories") or report.get("labels") or []
    for c in categories:
        if isinstance(c, str) and _CATEGORY_RE.fullmatch(c) and c not in a.categories:
            a.categories.append(c)
            draft.map(f"{rid} {c}", "categories")
        else:
            draft.skip(f"{rid} label {c!r}", "not a data category (lower snake case)")


def draft_from_stix(data: bytes | str | Mapping[str, Any]) -> Draft:
    """A draft alert from a STIX 2.1 bundle; :class:`Malformed` if it is not one."""
    doc = load_json(data, "STIX document")
    if doc.get("type") != "bundle":
        raise Malformed("not a STIX bundle: the top-level object's type must be 'bundle'")
    if doc.get("spec_version") not in (None, "2.1"):
        raise Malformed(
            f"a STIX {doc.get('spec_version')} bundle: only STIX 2.1 is read "
            "(convert it first, e.g. with the stix2-elevator)"
        )
    raw = doc.get("objects")
    if not isinstance(raw, list):
        raise Malformed("not a STIX bundle: 'objects' must be a list")
    draft = Draft(alert=alert_pb2.Alert(), source_format="stix-2.1")
    objects: dict[str, Mapping[str, Any]] = {}
    for n, obj in enumerate(raw):
        where = f"objects[{n}]"
        if not isinstance(obj, Mapping) or not isinstance(obj.get("id"), str):
            draft.skip(where, "not a STIX object (no id)")
            continue
        where = str(obj["id"])
        if obj.get("spec_version", "2.1") != "2.1":
            draft.skip(where, f"spec_version {obj.get('spec_version')!r}: only 2.1 is read")
            continue
        try:
            stix2.parse(dict(obj), allow_custom=True, version="2.1")
        except (STIXError, ValueError, TypeError, KeyError) as exc:
            draft.skip(where, f"not valid STIX 2.1: {exc}")
            continue
        if where in objects:
            draft.skip(where, "listed twice in the bundle")
            continue
        objects[where] = obj

    for grouping in (o for o in objects.values() if o.get("type") == "grouping"):
        kind = _our_extension(grouping).get("record_kind")
        if kind is not None and kind != "alert":
            # An intelshare recordation: its holder and supply chain are no subjects.
            raise Malformed(
                f"the grouping {grouping['id']} is an intelshare {kind!r}, not an alert"
            )
    reports = [o for o in objects.values() if o.get("type") == "report"]
    report = reports[0] if reports else None
    for extra in reports[1:]:
        draft.skip(str(extra["id"]), "one report becomes one draft; import the others separately")
    ctx = _Context(objects, report)
    if report is not None:
        _apply_report(report, draft)
        in_scope = {str(r) for r in report.get("object_refs") or []}
    else:
        in_scope = set(objects)

    for oid, obj in objects.items():
        stix_type = str(obj.get("type"))
        if stix_type == "report":
            continue
        # Markings and the extension's definition are read wherever they are.
        if (
            oid not in in_scope
            and oid != ctx.issuer
            and stix_type not in ("marking-definition", "extension-definition")
        ):
            draft.skip(oid, "not one of the report's objects")
            continue
        mapper = STIX_MAPPERS.get(stix_type)
        if mapper is None:
            draft.skip(oid, f"no alert field for STIX type {stix_type!r}")
            continue
        try:
            draft.map(oid, mapper(obj, draft, ctx))
        except Skip as why:
            draft.skip(oid, str(why))
    if report is None and not draft.mapped:
        raise Malformed("the bundle has no report and no object an alert can carry")
    return draft.finish()
