"""Alert records: the JSON form that crosses agencies, and its validation.

The payload of an alert envelope is the *record*: canonical JSON (sorted
keys, compact, UTF-8) of a plain mapping whose paths are the vocabulary of
treaty field allow-lists::

    {"kind": "counterfeit_goods", "urgency": "high", "description": "...",
     "subjects": {"persons": [{"name": ..., "date_of_birth": "1980-02-29",
                               "nationality": "NL", "passport_number": ...}],
                  "containers": [{"number": "MSCU1234566", "hs_codes": [...]}],
                  "vehicles": [...], "vessels": [...], "companies": [...],
                  "documents": [...]},
     "handling": "H1", "tlp": "AMBER",
     "evaluation": {"source_reliability": "B", "information_credibility": 2},
     "expires_at": "2026-07-01T12:00:00Z"}

so that :func:`intelshare.treaty.redact` can remove exactly what a treaty
does not allow (``subjects.persons.passport_number``) and the receiving
node can check it again with :func:`intelshare.treaty.check_fields`. Empty
values are left out rather than sent as ``""``: an empty field would still
tell the partner that the field exists for this subject.

Subject messages in ``alert.proto`` use the record's key names, so the
conversion is mechanical (protobuf reflection), and adding a field to a
subject message makes it flow, subject to treaties, without code changes.

Validation of officers' input is strict and reports every problem at once,
keyed by the request field path (``alert.subjects.containers[0].number``),
because an alert with a mistyped container number is worse than no alert:
it sends partners looking for the wrong box. Identifiers with check digits
(ISO 6346 container numbers, IMO numbers) are verified. Records received
from partners are checked for *shape* only (known keys, right types): the
sender's node validated the content, and refusing a partner's alert because
of a local formatting preference would lose intelligence.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.errors import FieldInvalid, Malformed
from intelshare.v1 import alert_pb2, envelope_pb2

# --- vocabularies ------------------------------------------------------------------

KINDS: Final[dict[int, str]] = {
    alert_pb2.ALERT_KIND_WANTED_PERSON: "wanted_person",
    alert_pb2.ALERT_KIND_MISSING_PERSON: "missing_person",
    alert_pb2.ALERT_KIND_SUSPECT_SHIPMENT: "suspect_shipment",
    alert_pb2.ALERT_KIND_COUNTERFEIT_GOODS: "counterfeit_goods",
    alert_pb2.ALERT_KIND_NARCOTICS: "narcotics",
    alert_pb2.ALERT_KIND_FIREARMS: "firearms",
    alert_pb2.ALERT_KIND_STOLEN_VEHICLE: "stolen_vehicle",
    alert_pb2.ALERT_KIND_TRADE_SECRET_THEFT: "trade_secret_theft",
    alert_pb2.ALERT_KIND_OTHER: "other",
}
KIND_BY_NAME: Final = {v: k for k, v in KINDS.items()}

URGENCIES: Final[dict[int, str]] = {
    alert_pb2.URGENCY_LOW: "low",
    alert_pb2.URGENCY_NORMAL: "normal",
    alert_pb2.URGENCY_HIGH: "high",
    alert_pb2.URGENCY_CRITICAL: "critical",
}
URGENCY_BY_NAME: Final = {v: k for k, v in URGENCIES.items()}

HANDLINGS: Final[dict[int, str]] = {
    envelope_pb2.HANDLING_CODE_H0: "H0",
    envelope_pb2.HANDLING_CODE_H1: "H1",
    envelope_pb2.HANDLING_CODE_H2: "H2",
    envelope_pb2.HANDLING_CODE_H3: "H3",
}
HANDLING_BY_NAME: Final = {v: k for k, v in HANDLINGS.items()}

TLPS: Final[dict[int, str]] = {
    envelope_pb2.TLP_CLEAR: "CLEAR",
    envelope_pb2.TLP_GREEN: "GREEN",
    envelope_pb2.TLP_AMBER: "AMBER",
    envelope_pb2.TLP_AMBER_STRICT: "AMBER_STRICT",
    envelope_pb2.TLP_RED: "RED",
}
TLP_BY_NAME: Final = {v: k for k, v in TLPS.items()}

RELIABILITIES: Final[dict[int, str]] = {
    alert_pb2.SOURCE_RELIABILITY_A: "A",
    alert_pb2.SOURCE_RELIABILITY_B: "B",
    alert_pb2.SOURCE_RELIABILITY_C: "C",
    alert_pb2.SOURCE_RELIABILITY_X: "X",
}
RELIABILITY_BY_NAME: Final = {v: k for k, v in RELIABILITIES.items()}

CREDIBILITIES: Final[dict[int, int]] = {
    alert_pb2.INFORMATION_CREDIBILITY_1: 1,
    alert_pb2.INFORMATION_CREDIBILITY_2: 2,
    alert_pb2.INFORMATION_CREDIBILITY_3: 3,
    alert_pb2.INFORMATION_CREDIBILITY_4: 4,
}
CREDIBILITY_BY_NUMBER: Final = {v: k for k, v in CREDIBILITIES.items()}

SUBJECT_LISTS: Final = ("persons", "vehicles", "containers", "vessels", "companies", "documents")

#: Fields the record carries, in the order people read them.
RECORD_KEYS: Final = (
    "kind",
    "urgency",
    "description",
    "subjects",
    "handling",
    "tlp",
    "evaluation",
    "expires_at",
)

MAX_DESCRIPTION = 10_000
MAX_SUBJECTS_PER_LIST = 100
MAX_RECIPIENTS = 64
MAX_CATEGORIES = 16

_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?")
_CATEGORY_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")
_VIN_RE = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
_HS_RE = re.compile(r"\d{6,10}")
_MMSI_RE = re.compile(r"\d{9}")
_IMO_RE = re.compile(r"\d{7}")
_CONTAINER_RE = re.compile(r"[A-Z]{3}[UJZR]\d{7}")
_PLATE_RE = re.compile(r"[A-Z0-9][A-Z0-9 -]{0,19}")
_DOC_NUMBER_RE = re.compile(r"[A-Z0-9][A-Z0-9/ -]{0,39}")
_DOC_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def kind_category(kind: int) -> str | None:
    """The data category an alert kind implies (None for OTHER)."""
    name = KINDS.get(kind)
    return None if name in (None, "other") else name


# --- time helpers ---------------------------------------------------------------------


def ts_to_ms(ts: Timestamp) -> int:
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def ms_to_ts(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def ms_to_rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_to_ms(text: str) -> int:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError("naive time")
    return int(at.timestamp() * 1000)


# Times an officer gives or that cross to a partner (an alert's expiry, a
# hit's found time, an acknowledgement) keep microseconds, the precision of
# the databases and of Python's datetime: in integer columns (``*_us``), in
# the JSON records (RFC 3339 with six fractional digits when there is a
# fraction) and in the protos. Integer arithmetic only: a float of seconds
# since 1970 cannot hold every microsecond of today.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1000


def ts_to_us(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def us_to_ts(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def us_to_rfc3339(us: int) -> str:
    """``2026-07-01T12:00:00Z``, or ``2026-07-01T12:00:00.250000Z`` with a fraction."""
    at = _EPOCH + timedelta(microseconds=us)
    fraction = f".{at.microsecond:06d}" if at.microsecond else ""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def rfc3339_to_us(text: str) -> int:
    """Microseconds since 1970 of an RFC 3339 time with an offset (fractions below a µs dropped)."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError("naive time")
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# --- proto <-> record ---------------------------------------------------------------


def _message_to_dict(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        value = getattr(msg, fd.name)
        if fd.is_repeated:
            items = [str(v) for v in value if str(v)]
            if items:
                out[fd.name] = items
        elif fd.type == FieldDescriptor.TYPE_STRING and value:
            out[fd.name] = str(value)
    return out


def subjects_to_record(subjects: alert_pb2.Subjects) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SUBJECT_LISTS:
        items = [_message_to_dict(m) for m in getattr(subjects, name)]
        items = [i for i in items if i]
        if items:
            out[name] = items
    return out


def alert_to_record(alert: alert_pb2.Alert) -> dict[str, Any]:
    """The record of an alert's content fields (see the module docstring)."""
    record: dict[str, Any] = {}
    if alert.kind in KINDS:
        record["kind"] = KINDS[alert.kind]
    if alert.urgency in URGENCIES:
        record["urgency"] = URGENCIES[alert.urgency]
    if alert.description:
        record["description"] = alert.description
    subjects = subjects_to_record(alert.subjects)
    if subjects:
        record["subjects"] = subjects
    if alert.handling in HANDLINGS:
        record["handling"] = HANDLINGS[alert.handling]
    if alert.tlp in TLPS:
        record["tlp"] = TLPS[alert.tlp]
    evaluation: dict[str, Any] = {}
    if alert.evaluation.source_reliability in RELIABILITIES:
        evaluation["source_reliability"] = RELIABILITIES[alert.evaluation.source_reliability]
    if alert.evaluation.information_credibility in CREDIBILITIES:
        evaluation["information_credibility"] = CREDIBILITIES[
            alert.evaluation.information_credibility
        ]
    if evaluation:
        record["evaluation"] = evaluation
    if alert.HasField("expire_time"):
        record["expires_at"] = us_to_rfc3339(ts_to_us(alert.expire_time))
    return record


def _fill_message(msg: Message, data: Mapping[str, Any], where: str, problems: list[str]) -> None:
    fields = msg.DESCRIPTOR.fields_by_name
    for key, value in data.items():
        fd = fields.get(key) if isinstance(key, str) else None
        if fd is None:
            problems.append(f"{where}.{key}: unknown field")
            continue
        if fd.is_repeated:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{where}.{key}: expected a list of strings")
                continue
            getattr(msg, key).extend(value)
        elif isinstance(value, str):
            setattr(msg, key, value)
        else:
            problems.append(f"{where}.{key}: expected a string")


def record_to_alert(
    record: Mapping[str, Any], alert: alert_pb2.Alert | None = None
) -> alert_pb2.Alert:
    """Fill an Alert's content fields from a record; :class:`Malformed` if the shape is wrong.

    Only shape is checked (see the module docstring). Missing keys stay
    unset, which is how a redacted record reads.
    """
    out = alert if alert is not None else alert_pb2.Alert()
    problems: list[str] = []
    if not isinstance(record, Mapping):
        raise Malformed("the alert record is not a JSON object")
    for key in record:
        if key not in RECORD_KEYS:
            problems.append(f"{key}: unknown field")
    kind = record.get("kind")
    if kind is not None:
        if kind in KIND_BY_NAME:
            out.kind = KIND_BY_NAME[kind]  # type: ignore[assignment]
        else:
            problems.append(f"kind: {kind!r} is not a known kind")
    urgency = record.get("urgency")
    if urgency is not None:
        if urgency in URGENCY_BY_NAME:
            out.urgency = URGENCY_BY_NAME[urgency]  # type: ignore[assignment]
        else:
            problems.append(f"urgency: {urgency!r} is not a known urgency")
    description = record.get("description")
    if description is not None:
        if isinstance(description, str):
            out.description = description
        else:
            problems.append("description: expected a string")
    subjects = record.get("subjects")
    if subjects is not None:
        if not isinstance(subjects, Mapping):
            problems.append("subjects: expected an object")
        else:
            for name, items in subjects.items():
                if name not in SUBJECT_LISTS:
                    problems.append(f"subjects.{name}: unknown subject list")
                    continue
                if not isinstance(items, list):
                    problems.append(f"subjects.{name}: expected a list")
                    continue
                for n, item in enumerate(items):
                    if not isinstance(item, Mapping):
                        problems.append(f"subjects.{name}[{n}]: expected an object")
                        continue
                    _fill_message(
                        getattr(out.subjects, name).add(), item, f"subjects.{name}[{n}]", problems
                    )
    handling = record.get("handling")
    if handling is not None:
        if handling in HANDLING_BY_NAME:
            out.handling = HANDLING_BY_NAME[handling]  # type: ignore[assignment]
        else:
            problems.append(f"handling: {handling!r} is not H0-H3")
    tlp = record.get("tlp")
    if tlp is not None:
        if tlp in TLP_BY_NAME:
            out.tlp = TLP_BY_NAME[tlp]  # type: ignore[assignment]
        else:
            problems.append(f"tlp: {tlp!r} is not a TLP marking")
    evaluation = record.get("evaluation")
    if evaluation is not None:
        if not isinstance(evaluation, Mapping):
            problems.append("evaluation: expected an object")
        else:
            for key, value in evaluation.items():
                if key == "source_reliability" and value in RELIABILITY_BY_NAME:
                    out.evaluation.source_reliability = RELIABILITY_BY_NAME[value]  # type: ignore[assignment]
                elif (
                    key == "information_credibility"
                    and isinstance(value, int)
                    and not isinstance(value, bool)
                    and value in CREDIBILITY_BY_NUMBER
                ):
                    out.evaluation.information_credibility = CREDIBILITY_BY_NUMBER[value]  # type: ignore[assignment]
                else:
                    problems.append(f"evaluation.{key}: unknown field or value")
    expires = record.get("expires_at")
    if expires is not None:
        try:
            if not isinstance(expires, str):
                raise ValueError(expires)
            out.expire_time.CopyFrom(us_to_ts(rfc3339_to_us(expires)))
        except ValueError:
            problems.append("expires_at: expected an RFC 3339 time")
    if problems:
        raise Malformed(
            "the alert record is malformed: " + "; ".join(problems[:5]),
            violations={p.split(":", 1)[0]: p.split(":", 1)[1].strip() for p in problems},
        )
    return out


def field_paths(record: Mapping[str, Any]) -> list[str]:
    """Dotted leaf paths present in a record, list positions folded away (sorted)."""
    paths: set[str] = set()

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(value, list) and value and any(isinstance(v, Mapping) for v in value):
            for item in value:
                walk(item, prefix)
        elif prefix:
            paths.add(prefix)

    walk(record, "")
    return sorted(paths)


# --- validation of officers' input --------------------------------------------------


def _text(
    v: dict[str, str],
    path: str,
    value: str,
    *,
    max_len: int,
    required: bool = False,
    multiline: bool = False,
) -> None:
    if not value:
        if required:
            v[path] = "required"
        return
    if value != value.strip():
        v[path] = "must not start or end with white space"
    elif len(value) > max_len:
        v[path] = f"at most {max_len} characters"
    elif unicodedata.normalize("NFC", value) != value:
        v[path] = "must be in Unicode NFC form"
    elif any(
        unicodedata.category(c) in ("Cc", "Cs", "Co") and not (multiline and c in "\n\t")
        for c in value
    ):
        v[path] = "must not contain control characters"


def _pattern(v: dict[str, str], path: str, value: str, regex: re.Pattern[str], what: str) -> bool:
    if value and not regex.fullmatch(value):
        v[path] = what
        return False
    return bool(value)


def container_check_digit(owner_serial: str) -> int:
    """ISO 6346 check digit of the first 10 characters of a container number."""
    values: dict[str, int] = {}
    n = 10
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if n % 11 == 0:
            n += 1
        values[letter] = n
        n += 1
    total = 0
    for i, ch in enumerate(owner_serial):
        total += (values[ch] if ch.isalpha() else int(ch)) * (2**i)
    return total % 11 % 10


def imo_check_ok(number: str) -> bool:
    digits = [int(c) for c in number]
    return sum(d * (7 - i) for i, d in enumerate(digits[:6])) % 10 == digits[6]


def _validate_person(v: dict[str, str], p: str, m: alert_pb2.Person, today: date) -> None:
    _text(v, f"{p}.name", m.name, max_len=200, required=True)
    if m.date_of_birth:
        ok = bool(_DATE_RE.fullmatch(m.date_of_birth))
        born: date | None = None
        if ok:
            try:
                born = date.fromisoformat(m.date_of_birth)
            except ValueError:
                ok = False
        if not ok or born is None:
            v[f"{p}.date_of_birth"] = "expected a calendar date YYYY-MM-DD"
        elif born > today or born.year < 1900:
            v[f"{p}.date_of_birth"] = "must be between 1900-01-01 and today"
    _pattern(v, f"{p}.nationality", m.nationality, _COUNTRY_RE, "ISO 3166-1 alpha-2 code, e.g. NL")
    _pattern(
        v,
        f"{p}.passport_number",
        m.passport_number,
        _DOC_NUMBER_RE,
        "upper-case letters and digits, at most 40",
    )
    _pattern(
        v,
        f"{p}.id_card_number",
        m.id_card_number,
        _DOC_NUMBER_RE,
        "upper-case letters and digits, at most 40",
    )
    _text(v, f"{p}.role", m.role, max_len=100)


def _validate_vehicle(v: dict[str, str], p: str, m: alert_pb2.Vehicle) -> None:
    if not m.plate and not m.vin:
        v[p] = "a vehicle needs a plate or a VIN"
    _pattern(v, f"{p}.plate", m.plate, _PLATE_RE, "upper-case letters, digits, spaces, dashes")
    _pattern(
        v,
        f"{p}.registration_country",
        m.registration_country,
        _COUNTRY_RE,
        "ISO 3166-1 alpha-2 code",
    )
    _pattern(v, f"{p}.vin", m.vin, _VIN_RE, "17 characters, digits and letters except I, O, Q")
    for name in ("make", "model", "colour"):
        _text(v, f"{p}.{name}", getattr(m, name), max_len=100)


def _validate_container(v: dict[str, str], p: str, m: alert_pb2.Container) -> None:
    if not m.number:
        v[f"{p}.number"] = "required"
    elif not _CONTAINER_RE.fullmatch(m.number):
        v[f"{p}.number"] = "ISO 6346: owner code, category U/J/Z/R, 6 digits, check digit"
    elif container_check_digit(m.number[:10]) != int(m.number[10]):
        v[f"{p}.number"] = (
            f"check digit is wrong (expected {container_check_digit(m.number[:10])}); "
            "check the container number"
        )
    _pattern(
        v,
        f"{p}.bill_of_lading",
        m.bill_of_lading,
        _DOC_NUMBER_RE,
        "upper-case letters and digits, at most 40",
    )
    for n, code in enumerate(m.hs_codes):
        _pattern(v, f"{p}.hs_codes[{n}]", code, _HS_RE, "6 to 10 digits, no dots")
    _text(v, f"{p}.seal_number", m.seal_number, max_len=40)
    _text(v, f"{p}.description", m.description, max_len=2000, multiline=True)


def _validate_vessel(v: dict[str, str], p: str, m: alert_pb2.Vessel) -> None:
    if not m.name and not m.imo_number:
        v[p] = "a vessel needs a name or an IMO number"
    _text(v, f"{p}.name", m.name, max_len=200)
    has_imo = _pattern(v, f"{p}.imo_number", m.imo_number, _IMO_RE, "7 digits (without 'IMO')")
    if has_imo and not imo_check_ok(m.imo_number):
        v[f"{p}.imo_number"] = "check digit is wrong; check the IMO number"
    _pattern(v, f"{p}.mmsi", m.mmsi, _MMSI_RE, "9 digits")
    _pattern(v, f"{p}.flag", m.flag, _COUNTRY_RE, "ISO 3166-1 alpha-2 code")


def _validate_company(v: dict[str, str], p: str, m: alert_pb2.Company) -> None:
    _text(v, f"{p}.name", m.name, max_len=200, required=True)
    _pattern(v, f"{p}.country", m.country, _COUNTRY_RE, "ISO 3166-1 alpha-2 code")
    _text(v, f"{p}.registration_number", m.registration_number, max_len=64)
    _text(v, f"{p}.vat_number", m.vat_number, max_len=64)
    _text(v, f"{p}.address", m.address, max_len=500, multiline=True)
    _text(v, f"{p}.role", m.role, max_len=100)


def _validate_document(v: dict[str, str], p: str, m: alert_pb2.Document) -> None:
    if not m.type:
        v[f"{p}.type"] = "required, e.g. passport, bill_of_lading, invoice"
    _pattern(v, f"{p}.type", m.type, _DOC_TYPE_RE, "lower snake case, e.g. bill_of_lading")
    if not m.number:
        v[f"{p}.number"] = "required"
    _pattern(
        v, f"{p}.number", m.number, _DOC_NUMBER_RE, "upper-case letters and digits, at most 40"
    )
    _pattern(v, f"{p}.issuing_country", m.issuing_country, _COUNTRY_RE, "ISO 3166-1 alpha-2 code")
    _text(v, f"{p}.description", m.description, max_len=2000, multiline=True)


def validate_subjects(v: dict[str, str], prefix: str, s: alert_pb2.Subjects, today: date) -> None:
    for name in SUBJECT_LISTS:
        items = getattr(s, name)
        if len(items) > MAX_SUBJECTS_PER_LIST:
            v[f"{prefix}.{name}"] = f"at most {MAX_SUBJECTS_PER_LIST}"
            continue
        for n, item in enumerate(items):
            p = f"{prefix}.{name}[{n}]"
            if name == "persons":
                _validate_person(v, p, item, today)
            elif name == "vehicles":
                _validate_vehicle(v, p, item)
            elif name == "containers":
                _validate_container(v, p, item)
            elif name == "vessels":
                _validate_vessel(v, p, item)
            elif name == "companies":
                _validate_company(v, p, item)
            else:
                _validate_document(v, p, item)


def validate_content(
    v: dict[str, str],
    alert: alert_pb2.Alert,
    *,
    now: datetime,
    max_days: int,
    paths: frozenset[str] | None = None,
) -> None:
    """Validate the content fields (all, or only ``paths`` for an update)."""

    def want(name: str) -> bool:
        return paths is None or name in paths

    if want("urgency") and alert.urgency not in URGENCIES and alert.urgency != 0:
        v["alert.urgency"] = "unknown urgency"
    if want("description"):
        _text(
            v,
            "alert.description",
            alert.description,
            max_len=MAX_DESCRIPTION,
            required=True,
            multiline=True,
        )
    if want("subjects"):
        validate_subjects(v, "alert.subjects", alert.subjects, now.date())
    if want("handling") and alert.handling not in HANDLINGS:
        v["alert.handling"] = "required: H0, H1, H2 or H3"
    if want("tlp") and alert.tlp not in TLPS:
        v["alert.tlp"] = "required: CLEAR, GREEN, AMBER, AMBER_STRICT or RED"
    if want("evaluation"):
        ev = alert.evaluation
        if ev.source_reliability not in RELIABILITIES and ev.source_reliability != 0:
            v["alert.evaluation.source_reliability"] = "A, B, C or X"
        if ev.information_credibility not in CREDIBILITIES and ev.information_credibility != 0:
            v["alert.evaluation.information_credibility"] = "1, 2, 3 or 4"
    if want("expire_time"):
        if not alert.HasField("expire_time"):
            v["alert.expire_time"] = "required: alerts must expire"
        else:
            try:
                at = alert.expire_time.ToDatetime(tzinfo=UTC)
            except (ValueError, OverflowError):
                v["alert.expire_time"] = "not a valid time"
            else:
                if at <= now:
                    v["alert.expire_time"] = "must be in the future"
                elif at > now + timedelta(days=max_days):
                    v["alert.expire_time"] = f"at most {max_days} days from now"


def validate_new_alert(
    alert: alert_pb2.Alert, *, own_agency: str, now: datetime, max_days: int
) -> None:
    """Raise :class:`InvalidArgument` listing every problem of a new alert."""
    v: dict[str, str] = {}
    if alert.kind not in KINDS:
        v["alert.kind"] = "required: one of " + ", ".join(KINDS.values())
    validate_content(v, alert, now=now, max_days=max_days)
    categories = list(alert.categories)
    if not categories and alert.kind == alert_pb2.ALERT_KIND_OTHER:
        v["alert.categories"] = "required for kind other (e.g. excise_fraud)"
    if len(categories) > MAX_CATEGORIES:
        v["alert.categories"] = f"at most {MAX_CATEGORIES}"
    seen: set[str] = set()
    for n, c in enumerate(categories):
        if not _CATEGORY_RE.fullmatch(c):
            v[f"alert.categories[{n}]"] = "lower snake case, e.g. counterfeit_goods"
        elif c in seen:
            v[f"alert.categories[{n}]"] = "listed twice"
        seen.add(c)
    if alert.treaty_id and not _ID_RE.fullmatch(alert.treaty_id):
        v["alert.treaty_id"] = "not a treaty id"
    if not alert.recipients:
        v["alert.recipients"] = "at least one recipient agency is required"
    elif len(alert.recipients) > MAX_RECIPIENTS:
        v["alert.recipients"] = f"at most {MAX_RECIPIENTS}"
    agencies: set[str] = set()
    for n, r in enumerate(alert.recipients):
        p = f"alert.recipients[{n}]"
        if not _ID_RE.fullmatch(r.agency_id):
            v[f"{p}.agency_id"] = "required: an agency id, e.g. de-customs"
        elif r.agency_id == own_agency:
            v[f"{p}.agency_id"] = "an agency cannot send an alert to itself"
        elif r.agency_id in agencies:
            v[f"{p}.agency_id"] = "listed twice"
        agencies.add(r.agency_id)
        if r.treaty_id and not _ID_RE.fullmatch(r.treaty_id):
            v[f"{p}.treaty_id"] = "not a treaty id"
        elif not r.treaty_id and not alert.treaty_id:
            v[f"{p}.treaty_id"] = "required (or set alert.treaty_id for every recipient)"
    if v:
        raise FieldInvalid(_summary(v), violations=v)


def _summary(v: Mapping[str, str]) -> str:
    items = sorted(v.items())
    shown = "; ".join(f"{k}: {t}" for k, t in items[:3])
    more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
    return f"invalid alert: {shown}{more}"


def summary(v: Mapping[str, str], what: str = "invalid request") -> str:
    items = sorted(v.items())
    shown = "; ".join(f"{k}: {t}" for k, t in items[:3])
    more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
    return f"{what}: {shown}{more}"


def categories_of(alert: alert_pb2.Alert) -> list[str]:
    """The categories an alert is shared under: those given, and always its kind's own.

    The caller may add categories, never leave out the one its kind implies:
    a firearms alert declared as counterfeit goods is still a firearms alert,
    and every treaty check (here, at the gateway, at the recipient) sees so.
    """
    given = set(alert.categories)
    cat = kind_category(alert.kind)
    if cat:
        given.add(cat)
    return sorted(given)


def header_disagreement(record: Mapping[str, Any], header: envelope_pb2.Header) -> str | None:
    """What a received alert record says against its signed header, if anything.

    The treaty was checked with the header (at the gateway and here); a
    record whose kind implies a category the header does not declare, or
    whose handling code or TLP differs from the header's, would slip past
    those checks. ``None`` when they agree (or the record does not say).
    """
    kind = record.get("kind")
    if isinstance(kind, str) and kind in KIND_BY_NAME:
        cat = kind_category(KIND_BY_NAME[kind])
        if cat and cat not in header.categories:
            declared = ", ".join(header.categories) or "no category"
            return f"the record is a {kind} alert; its signed header declares {declared}"
    for field, value in (
        ("handling", HANDLINGS.get(header.handling)),
        ("tlp", TLPS.get(header.tlp)),
    ):
        said = record.get(field)
        if said is not None and said != value:
            return f"the record says {field} {said}; its signed header says {value}"
    return None


def normalise_times(alert: alert_pb2.Alert) -> None:
    """Microseconds for expire_time, as the record carries it (nanoseconds dropped)."""
    if alert.HasField("expire_time"):
        alert.expire_time.nanos -= alert.expire_time.nanos % 1000
