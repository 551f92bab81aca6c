"""Case records: what crosses agencies about a case, and its validation.

Two kinds of envelope carry a case (see :mod:`node.kinds.cases` for who sends
what and when):

``CASE_ENTRY`` — sent by the entry's author to every other active member.
Its payload is the entry *record*, canonical JSON whose paths are the
vocabulary of the treaty's ``case_entry`` allow-list::

    {"text": "...", "subjects": {"persons": [...], "containers": [...]},
     "attachments_digest": "sha256:<64 hex>"}

Subjects use the alert record's subject model (:mod:`node.schema.alert`), so a
treaty can allow ``subjects`` whole or ``subjects.persons.name`` alone.
The case id travels in the signed header (``case_id``), the author is the
header's sender and the entry id is the envelope's message id.

``CASE_MEMBERSHIP`` — sent by the owner only. Its payload is the case's
current state, plus entries when the recipient needs them::

    {"op": "state", "revision": 3, "owner": "nl-customs", "status": "open",
     "created_ms": ..., "members": ["be-police", "de-customs", "nl-customs"],
     "case": {"title": "..."},
     "entries": [<forwarded entry>, ...]}

``case`` is the only part that is a *record* in the treaty's sense: it is
redacted with the ``case_membership`` allow-list (a treaty that does not
list ``title`` there shares cases without their titles). The other keys are
the protocol itself — who the members are, which revision this is — which
a member needs to take part at all and which carry nothing about persons
or goods. A forwarded entry is either the author's envelope with its
content key (``envelope``, ``content_key``: base64; see
:mod:`node.sharing.evidence`) or, when that cannot be used, a record vouched
for by the owner alone (``record``), always with ``entry_id``, ``author``
and ``created_ms``.

Officers' input is validated strictly (every problem at once, keyed by the
request path); what partners send is checked for shape only, like alerts.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from intelshare import errors
from intelshare.v1 import alert_pb2, case_pb2
from node.schema import alert as rec
from node.schema import names

ENTRY_KEYS: Final = ("text", "subjects", "attachments_digest")
MAX_TEXT = 10_000
MAX_TITLE = 200
MAX_MEMBERS = 64
MAX_CATEGORIES = 16

OPEN = "open"
CLOSED = "closed"
STATUSES: Final = (OPEN, CLOSED)

ID_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?")
CATEGORY_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
DIGEST_RE: Final = re.compile(r"sha256:[0-9a-f]{64}")


class Malformed(Exception):
    """A partner's case payload does not have the expected shape."""


# --- names -------------------------------------------------------------------------


def case_name(case_id: str) -> str:
    return f"cases/{case_id}"


def entry_name(case_id: str, entry_id: str) -> str:
    return f"cases/{case_id}/entries/{entry_id}"


def parse_case_name(name: str, field: str = "name") -> str:
    """``cases/{case_id}`` to the id (a UUIDv7, see :mod:`node.schema.names`)."""
    return names.assigned_id(name, "cases", field)


# --- officers' input -----------------------------------------------------------------


def entry_record(entry: case_pb2.CaseEntry, today: date, prefix: str = "entry") -> dict[str, Any]:
    """Validate an officer's entry and return its record; INVALID_ARGUMENT lists every problem."""
    v: dict[str, str] = {}
    rec._text(v, f"{prefix}.text", entry.text, max_len=MAX_TEXT, required=True, multiline=True)
    rec.validate_subjects(v, f"{prefix}.subjects", entry.subjects, today)
    if entry.attachments_digest and not DIGEST_RE.fullmatch(entry.attachments_digest):
        v[f"{prefix}.attachments_digest"] = "expected sha256: and 64 lower-case hex digits"
    if v:
        raise errors.invalid_fields(rec.summary(v, "invalid case entry"), violations=v)
    record: dict[str, Any] = {"text": entry.text}
    subjects = rec.subjects_to_record(entry.subjects)
    if subjects:
        record["subjects"] = subjects
    if entry.attachments_digest:
        record["attachments_digest"] = entry.attachments_digest
    return record


def validate_new_case(case: case_pb2.Case, own_agency: str) -> list[str]:
    """Validate a case to open; return the partner agencies (sorted)."""
    v: dict[str, str] = {}
    rec._text(v, "case.title", case.title, max_len=MAX_TITLE, required=True)
    if not case.treaty_id:
        v["case.treaty_id"] = "required: the treaty the case is shared under"
    elif not ID_RE.fullmatch(case.treaty_id):
        v["case.treaty_id"] = "not a treaty id"
    categories = list(case.categories)
    if not categories:
        v["case.categories"] = "at least one data category, e.g. counterfeit_goods"
    elif len(categories) > MAX_CATEGORIES:
        v["case.categories"] = f"at most {MAX_CATEGORIES}"
    seen: set[str] = set()
    for n, c in enumerate(categories):
        if not CATEGORY_RE.fullmatch(c):
            v[f"case.categories[{n}]"] = "lower snake case, e.g. counterfeit_goods"
        elif c in seen:
            v[f"case.categories[{n}]"] = "listed twice"
        seen.add(c)
    if case.handling not in rec.HANDLINGS:
        v["case.handling"] = "required: H0, H1, H2 or H3"
    if case.tlp not in rec.TLPS:
        v["case.tlp"] = "required: CLEAR, GREEN, AMBER, AMBER_STRICT or RED"
    members: list[str] = []
    if not case.members:
        v["case.members"] = "at least one partner agency"
    elif len(case.members) > MAX_MEMBERS:
        v["case.members"] = f"at most {MAX_MEMBERS}"
    for n, m in enumerate(case.members):
        path = f"case.members[{n}].agency_id"
        if not ID_RE.fullmatch(m.agency_id):
            v[path] = "required: an agency id, e.g. de-customs"
        elif m.agency_id == own_agency:
            v[path] = "this agency opens the case and is its owner; list the partners"
        elif m.agency_id in members:
            v[path] = "listed twice"
        else:
            members.append(m.agency_id)
    if v:
        raise errors.invalid_fields(rec.summary(v, "invalid case"), violations=v)
    return sorted(members)


def validate_agency(agency_id: str, field: str = "agency_id") -> None:
    if not ID_RE.fullmatch(agency_id):
        raise errors.FieldInvalid(
            f"{field} {agency_id[:100]!r} is not an agency id",
            violations={field: "required: an agency id, e.g. be-police"},
        )


# --- partners' payloads ----------------------------------------------------------------


def parse_json(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Malformed("payload is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise Malformed("payload is not a JSON object")
    return data


def check_entry_shape(record: Any) -> dict[str, Any]:
    """A received entry record, shape-checked (known keys, right types)."""
    if not isinstance(record, dict):
        raise Malformed("entry record is not an object")
    unknown = sorted(set(record) - set(ENTRY_KEYS))
    if unknown:
        raise Malformed(f"entry record has unknown fields {', '.join(unknown)[:200]}")
    if "text" in record and not isinstance(record["text"], str):
        raise Malformed("entry text is not a string")
    digest = record.get("attachments_digest")
    if digest is not None and (not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest)):
        raise Malformed("attachments_digest is not sha256:<hex>")
    if "subjects" in record:
        try:
            rec.record_to_alert({"subjects": record["subjects"]})
        except errors.Malformed as exc:
            raise Malformed(exc.message) from None
    return record


def entry_to_proto(record: Mapping[str, Any], out: case_pb2.CaseEntry) -> None:
    """Fill the content fields of ``out`` from a (shape-checked) record."""
    if isinstance(record.get("text"), str):
        out.text = record["text"]
    if isinstance(record.get("attachments_digest"), str):
        out.attachments_digest = record["attachments_digest"]
    if "subjects" in record:
        try:
            alert = rec.record_to_alert({"subjects": record["subjects"]})
        except errors.Malformed:  # stored records passed the same check
            alert = alert_pb2.Alert()
        out.subjects.CopyFrom(alert.subjects)


def int_field(data: Mapping[str, Any], key: str, *, minimum: int = 0) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise Malformed(f"{key} is not an integer >= {minimum}")
    return value


def str_list(data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise Malformed(f"{key} is not a list of strings")
    if len(value) > MAX_MEMBERS + 1 or len(set(value)) != len(value):
        raise Malformed(f"{key} is too long or has duplicates")
    for item in value:
        if not ID_RE.fullmatch(item):
            raise Malformed(f"{key} holds {item[:64]!r}, not an agency id")
    return list(value)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(data: Mapping[str, Any], key: str, limit: int) -> bytes:
    value = data.get(key)
    if not isinstance(value, str) or len(value) > limit * 4 // 3 + 4:
        raise Malformed(f"{key} is not base64 text within the size limit")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise Malformed(f"{key} is not base64") from None


# --- page tokens ----------------------------------------------------------------------
