"""Import: a MISP event (MISP's JSON export) becomes a draft alert.

What maps, and why the rest does not:

* ``info`` is the description; ``text`` and ``comment`` attributes are
  added to it as paragraphs (MISP keeps narrative there).
* ``threat_level_id`` 1/2/3 (high, medium, low) becomes urgency high,
  normal, low; 4 (undefined) sets nothing.
* Tags ``tlp:clear`` (or TLP 1.0's ``tlp:white``), ``tlp:green``,
  ``tlp:amber``, ``tlp:amber+strict``, ``tlp:red`` give the TLP marking.
  The admiralty scale (``admiralty-scale:source-reliability``, six grades
  A-F, and ``admiralty-scale:information-credibility``, 1-6) is not the
  4x4 grading alerts carry: only the grades that mean the same map (A, and
  F "cannot be judged" as X; credibility 1, and 6 as 4); the others are
  reported for the officer to grade.
* Objects ``person``, ``legal-entity`` and ``vehicle`` (MISP's object
  templates) become persons, companies and vehicles; loose
  ``passport-number`` and ``identity-card-number`` attributes become
  documents. Network indicators (IP addresses, domains, hashes...) have no
  place in a customs or police alert and are skipped with that reason.

Each MISP object template has one mapper in :data:`MISP_OBJECT_MAPPERS`,
each loose attribute type one in :data:`MISP_ATTRIBUTE_MAPPERS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from intelshare.errors import Malformed
from intelshare.interop import vocab
from intelshare.interop._parse import load_json
from intelshare.interop.draft import Draft
from intelshare.interop.stix_import import MAX_SUBJECTS_PER_LIST, Skip
from intelshare.v1 import alert_pb2

_COUNTRY_RE = re.compile(r"[A-Z]{2}")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")

_TLP_TAGS = {
    "tlp:clear": "CLEAR",
    "tlp:white": "CLEAR",
    "tlp:green": "GREEN",
    "tlp:amber": "AMBER",
    "tlp:amber+strict": "AMBER_STRICT",
    "tlp:red": "RED",
}
_THREAT_LEVELS = {"1": "high", "2": "normal", "3": "low"}
_RELIABILITY_TAGS = {"a": "A", "f": "X"}
_CREDIBILITY_TAGS = {"1": 1, "6": 4}
_TAG_RE = re.compile(r'admiralty-scale:(source-reliability|information-credibility)="?([a-z0-9])"?')


def _values(obj: Mapping[str, Any]) -> dict[str, list[str]]:
    """A MISP object's attributes: object_relation -> values."""
    out: dict[str, list[str]] = {}
    for attr in obj.get("Attribute") or []:
        if isinstance(attr, Mapping) and attr.get("object_relation") and "value" in attr:
            out.setdefault(str(attr["object_relation"]), []).append(str(attr["value"]).strip())
    return out


def _first(values: Mapping[str, list[str]], key: str) -> str:
    found = values.get(key) or [""]
    return found[0]


def _add(draft: Draft, subject_list: str) -> tuple[Any, str]:
    items = getattr(draft.alert.subjects, subject_list)
    if len(items) >= MAX_SUBJECTS_PER_LIST:
        raise Skip(f"an alert holds at most {MAX_SUBJECTS_PER_LIST} {subject_list}")
    path = f"subjects.{subject_list}[{len(items)}]"
    return items.add(), path


def map_person(obj: Mapping[str, Any], draft: Draft) -> str:
    v = _values(obj)
    name = " ".join(
        part
        for part in (_first(v, "first-name"), _first(v, "middle-name"), _first(v, "last-name"))
        if part
    ) or _first(v, "alias")
    if not name:
        raise Skip("a person needs a name (first-name, last-name or alias)")
    person, path = _add(draft, "persons")
    person.name = name
    dob = _first(v, "date-of-birth")
    if _DATE_RE.fullmatch(dob):
        person.date_of_birth = dob
    elif dob:
        draft.skip(f"{_label(obj)} date-of-birth", f"{dob!r} is not YYYY-MM-DD")
    nationality = _first(v, "nationality")
    if _COUNTRY_RE.fullmatch(nationality):
        person.nationality = nationality
    elif nationality:
        draft.skip(
            f"{_label(obj)} nationality",
            f"{nationality!r} is not an ISO 3166-1 alpha-2 code; set it by hand",
        )
    person.passport_number = _first(v, "passport-number")
    person.id_card_number = _first(v, "identity-card-number")
    person.role = _first(v, "role").lower()
    return path


def map_legal_entity(obj: Mapping[str, Any], draft: Draft) -> str:
    v = _values(obj)
    name = _first(v, "name") or _first(v, "commercial-name")
    if not name:
        raise Skip("a legal entity needs a name")
    company, path = _add(draft, "companies")
    company.name = name
    company.registration_number = _first(v, "registration-number")
    return path


def map_vehicle(obj: Mapping[str, Any], draft: Draft) -> str:
    v = _values(obj)
    plate, vin = _first(v, "license-plate-number"), _first(v, "vin")
    if not plate and not vin:
        raise Skip("a vehicle needs a license-plate-number or a vin")
    vehicle, path = _add(draft, "vehicles")
    vehicle.plate = plate.upper()
    vehicle.vin = vin.upper()
    vehicle.make = _first(v, "make")
    vehicle.model = _first(v, "model")
    vehicle.colour = _first(v, "exterior-color")
    return path


ObjectMapper = Callable[[Mapping[str, Any], Draft], str]
AttributeMapper = Callable[[str, Draft], str]

#: MISP object template name -> mapper.
MISP_OBJECT_MAPPERS: dict[str, ObjectMapper] = {
    "person": map_person,
    "legal-entity": map_legal_entity,
    "vehicle": map_vehicle,
}


def _document(doc_type: str) -> AttributeMapper:
    def map_document(value: str, draft: Draft) -> str:
        doc, path = _add(draft, "documents")
        doc.type = doc_type
        doc.number = value.upper()
        return path

    return map_document


def _narrative(value: str, draft: Draft) -> str:
    a = draft.alert
    a.description = f"{a.description}\n\n{value}" if a.description else value
    return "description"


#: Loose MISP attribute type -> mapper.
MISP_ATTRIBUTE_MAPPERS: dict[str, AttributeMapper] = {
    "passport-number": _document("passport"),
    "identity-card-number": _document("identity_card"),
    "text": _narrative,
    "comment": _narrative,
}


def _label(obj: Mapping[str, Any]) -> str:
    return f"MISP object {obj.get('name', '?')} {obj.get('uuid', '')}".strip()


def _tags(event: Mapping[str, Any], draft: Draft) -> None:
    a = draft.alert
    for tag in event.get("Tag") or []:
        name = str(tag.get("name", "")) if isinstance(tag, Mapping) else str(tag)
        low = name.strip().lower()
        if low in _TLP_TAGS:
            a.tlp = vocab.TLP_BY_NAME[_TLP_TAGS[low]]  # type: ignore[assignment]
            draft.map(f"tag {name}", "tlp")
            continue
        m = _TAG_RE.fullmatch(low)
        if m and m.group(1) == "source-reliability" and m.group(2) in _RELIABILITY_TAGS:
            grade = _RELIABILITY_TAGS[m.group(2)]
            a.evaluation.source_reliability = vocab.RELIABILITY_BY_NAME[grade]  # type: ignore[assignment]
            draft.map(f"tag {name}", "evaluation.source_reliability")
        elif m and m.group(1) == "information-credibility" and m.group(2) in _CREDIBILITY_TAGS:
            grade_n = _CREDIBILITY_TAGS[m.group(2)]
            a.evaluation.information_credibility = vocab.CREDIBILITY_BY_NUMBER[grade_n]  # type: ignore[assignment]
            draft.map(f"tag {name}", "evaluation.information_credibility")
        elif m:
            draft.skip(
                f"tag {name}",
                "the admiralty grade has no equal in the alert's A/B/C/X and 1-4 grading; "
                "grade it with --reliability / --credibility",
            )
        else:
            draft.skip(f"tag {name}", "no alert field for this tag")


def draft_from_misp(data: bytes | str | Mapping[str, Any]) -> Draft:
    """A draft alert from a MISP event; :class:`Malformed` if it is not one."""
    doc = load_json(data, "MISP event")
    event = doc.get("Event", doc)
    if not isinstance(event, Mapping) or not (
        "info" in event or "Attribute" in event or "Object" in event
    ):
        raise Malformed(
            'not a MISP event: expected {"Event": {"info": ..., "Attribute": [...], '
            '"Object": [...]}} as MISP exports it'
        )
    draft = Draft(alert=alert_pb2.Alert(), source_format="misp")
    a = draft.alert
    info = event.get("info")
    if isinstance(info, str) and info.strip():
        a.description = info.strip()
        draft.map("event info", "description")
    level = str(event.get("threat_level_id", ""))
    if level in _THREAT_LEVELS:
        a.urgency = vocab.URGENCY_BY_NAME[_THREAT_LEVELS[level]]  # type: ignore[assignment]
        draft.map(f"threat_level_id {level}", "urgency")
    _tags(event, draft)
    for attr in event.get("Attribute") or []:
        if not isinstance(attr, Mapping):
            draft.skip("Attribute", "not a JSON object")
            continue
        label = f"MISP attribute {attr.get('type', '?')} {attr.get('uuid', '')}".strip()
        value = str(attr.get("value", "")).strip()
        mapper = MISP_ATTRIBUTE_MAPPERS.get(str(attr.get("type")))
        if mapper is None:
            draft.skip(label, f"no alert field for MISP attribute type {attr.get('type')!r}")
        elif not value:
            draft.skip(label, "empty value")
        else:
            try:
                draft.map(label, mapper(value, draft))
            except Skip as why:
                draft.skip(label, str(why))
    for obj in event.get("Object") or []:
        if not isinstance(obj, Mapping):
            draft.skip("Object", "not a JSON object")
            continue
        object_mapper = MISP_OBJECT_MAPPERS.get(str(obj.get("name")))
        if object_mapper is None:
            draft.skip(_label(obj), f"no alert subject for MISP object {obj.get('name')!r}")
            continue
        try:
            draft.map(_label(obj), object_mapper(obj, draft))
        except Skip as why:
            draft.skip(_label(obj), str(why))
    return draft.finish()
