"""The issue form: what an officer types, as an ``Alert`` draft and back.

Field names are flat and predictable so that plain HTML forms carry them:
``kind``, ``urgency``, ``expire`` ..., recipients as ``recipients-0-agency_id``,
subjects as ``containers-0-number``. Repeatable rows are added and removed by
submit buttons (``action=add:containers``, ``action=remove:containers:1``)
that re-render the form server-side, so the form works with the keyboard and
without JavaScript.

The console checks what it can check locally (container check digits with
python-stdnum's ISO 6346, IMO numbers, dates, country codes) to say so next
to the field while the officer types; the node's own validation stays the
authority, and its violations (``alert.subjects.containers[0].number``) are
mapped back onto the same fields (:func:`field_for_path`).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from stdnum import imo, iso6346
from stdnum.exceptions import ValidationError

from console.display import ENUMS, enum_value, timestamp
from intelshare.v1 import alert_pb2

#: Subject lists: (form group, heading, [(field, label, hint)]).
SUBJECTS: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "persons": (
        "Person",
        [
            ("name", "Full name", "as in the travel document"),
            ("date_of_birth", "Date of birth", "YYYY-MM-DD"),
            ("nationality", "Nationality", "two letters, e.g. NL"),
            ("passport_number", "Passport number", ""),
            ("id_card_number", "Identity card number", ""),
            ("role", "Role", "e.g. consignee, driver"),
        ],
    ),
    "containers": (
        "Container",
        [
            ("number", "Container number", "ISO 6346, e.g. MSCU1234566"),
            ("bill_of_lading", "Bill of lading", ""),
            ("hs_codes", "HS codes", "6 to 10 digits, separated by commas"),
            ("seal_number", "Seal number", ""),
            ("description", "Contents", "declared or suspected"),
        ],
    ),
    "vessels": (
        "Vessel",
        [
            ("name", "Name", ""),
            ("imo_number", "IMO number", "7 digits, e.g. 9074729"),
            ("mmsi", "MMSI", "9 digits"),
            ("flag", "Flag state", "two letters, e.g. PA"),
        ],
    ),
    "vehicles": (
        "Vehicle",
        [
            ("plate", "Registration plate", ""),
            ("registration_country", "Country of registration", "two letters"),
            ("vin", "VIN", "17 characters"),
            ("make", "Make", ""),
            ("model", "Model", ""),
            ("colour", "Colour", ""),
        ],
    ),
    "companies": (
        "Company",
        [
            ("name", "Registered name", ""),
            ("country", "Country", "two letters"),
            ("registration_number", "Trade register number", ""),
            ("vat_number", "VAT or EORI number", ""),
            ("address", "Address", ""),
            ("role", "Role", "e.g. consignee, shipper"),
        ],
    ),
    "documents": (
        "Document",
        [
            ("type", "Type", "e.g. passport, bill_of_lading, invoice"),
            ("number", "Number", ""),
            ("issuing_country", "Issuing country", "two letters"),
            ("description", "Description", ""),
        ],
    ),
}
MAX_ROWS = 20
_ROW = re.compile(r"^(?P<group>[a-z_]+)-(?P<n>\d{1,2})-(?P<field>[a-z_]+)$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_HS = re.compile(r"^\d{6,10}$")
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
_COUNTRY_FIELDS = {"nationality", "flag", "registration_country", "country", "issuing_country"}


def check_field(name: str, value: str) -> str:
    """What is wrong with one subject field as typed ('' when nothing is)."""
    m = _ROW.match(name)
    fname = m.group("field") if m else name
    value = value.strip()
    if not value:
        return ""
    if fname == "number" and m and m.group("group") == "containers":
        return _container_problem(value)
    elif fname == "imo_number":
        try:
            imo.validate(value)
        except ValidationError:
            return "not an IMO number: 7 digits with a valid check digit"
    elif fname == "date_of_birth":
        try:
            born = date.fromisoformat(value)
        except ValueError:
            return "expected a calendar date YYYY-MM-DD"
        if not date(1900, 1, 1) <= born <= datetime.now(UTC).date():
            return "must be between 1900-01-01 and today"
    elif fname in _COUNTRY_FIELDS:
        if not _COUNTRY.match(value.upper()):
            return "two letters (ISO 3166-1 alpha-2), e.g. NL"
    elif fname == "hs_codes":
        bad = [c for c in _split(value) if not _HS.match(c)]
        if bad:
            return f"not an HS code (6 to 10 digits): {', '.join(bad)}"
    elif fname == "mmsi":
        if not (value.isdigit() and len(value) == 9):
            return "9 digits"
    elif fname == "vin" and not _VIN.match(value.upper()):
        return "17 letters and digits (no I, O or Q)"
    return ""


_ISO6346 = "ISO 6346: four letters (owner, category U, J or Z), six digits, a check digit"
_CONTAINER = re.compile(r"^[A-Z]{3}[UJZ]\d{6}\d$")


def _container_problem(value: str) -> str:
    """python-stdnum's ISO 6346 check, with the right check digit when only it is wrong."""
    try:
        iso6346.validate(value)
    except ValidationError:
        compact = iso6346.compact(value)
        if not _CONTAINER.match(compact):
            return _ISO6346
        digit = iso6346.calc_check_digit(compact[:10])
        return f"wrong check digit: the check digit of {compact[:10]} is {digit} (ISO 6346)"
    return ""


def _split(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,;\s]+", text) if p.strip()]


def default_expiry() -> str:
    moment = datetime.now(UTC) + timedelta(days=7)
    return moment.strftime("%Y-%m-%dT%H:%M")


@dataclass
class Draft:
    """The issue form's values, exactly as typed (re-shown after a round trip)."""

    values: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    recipients: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def blank(cls) -> Draft:
        return cls(
            values={
                "kind": "",
                "urgency": "normal",
                "handling": "h1",
                "tlp": "amber",
                "expire": default_expiry(),
                "request_id": str(uuid.uuid4()),
            },
            rows={group: [] for group in SUBJECTS},
            recipients=[{"agency_id": "", "treaty_id": ""}],
        )

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> Draft:
        draft = cls(rows={group: [] for group in SUBJECTS})
        rows: dict[str, dict[int, dict[str, str]]] = {g: {} for g in [*SUBJECTS, "recipients"]}
        for key, raw in form.items():
            value = str(raw)
            m = _ROW.match(key)
            if m and m.group("group") in rows:
                n = int(m.group("n"))
                if n < MAX_ROWS:
                    rows[m.group("group")].setdefault(n, {})[m.group("field")] = value
            elif key in _SCALARS:
                draft.values[key] = value
        for group in SUBJECTS:
            known = {f for f, _l, _h in SUBJECTS[group][1]}
            draft.rows[group] = [
                {k: v for k, v in row.items() if k in known}
                for _n, row in sorted(rows[group].items())
            ]
        draft.recipients = [
            {"agency_id": r.get("agency_id", ""), "treaty_id": r.get("treaty_id", "")}
            for _n, r in sorted(rows["recipients"].items())
        ] or [{"agency_id": "", "treaty_id": ""}]
        draft.values.setdefault("request_id", str(uuid.uuid4()))
        return draft

    def apply(self, action: str) -> bool:
        """Add or remove a row for ``add:GROUP`` / ``remove:GROUP:N``; True if it was one."""
        verb, _, rest = action.partition(":")
        group, _, index = rest.partition(":")
        target = self.recipients if group == "recipients" else self.rows.get(group)
        if target is None or verb not in ("add", "remove"):
            return False
        if verb == "add" and len(target) < MAX_ROWS:
            target.append({"agency_id": "", "treaty_id": ""} if group == "recipients" else {})
        elif verb == "remove" and index.isdigit() and int(index) < len(target):
            del target[int(index)]
            if group == "recipients" and not target:
                target.append({"agency_id": "", "treaty_id": ""})
        return True

    def local_errors(self) -> dict[str, str]:
        """Field name -> problem, for what the console can check itself."""
        out: dict[str, str] = {}
        for group, rows in self.rows.items():
            for n, row in enumerate(rows):
                for fname, value in row.items():
                    problem = check_field(f"{group}-{n}-{fname}", value)
                    if problem:
                        out[f"{group}-{n}-{fname}"] = problem
        if self.values.get("expire"):
            try:
                _parse_expiry(self.values["expire"])
            except ValueError:
                out["expire"] = "a date and time (UTC), e.g. 2026-12-31T18:00"
        return out

    def to_alert(self) -> alert_pb2.Alert:
        v = self.values
        alert = alert_pb2.Alert(
            kind=enum_value(ENUMS["kind"], v.get("kind", "")),  # type: ignore[arg-type]
            urgency=enum_value(ENUMS["urgency"], v.get("urgency", "")),  # type: ignore[arg-type]
            description=v.get("description", "").strip(),
            handling=enum_value(ENUMS["handling"], v.get("handling", "")),  # type: ignore[arg-type]
            tlp=enum_value(ENUMS["tlp"], v.get("tlp", "")),  # type: ignore[arg-type]
            evaluation=alert_pb2.Evaluation(
                source_reliability=enum_value(ENUMS["reliability"], v.get("reliability", "")),  # type: ignore[arg-type]
                information_credibility=enum_value(ENUMS["credibility"], v.get("credibility", "")),  # type: ignore[arg-type]
            ),
            categories=_split(v.get("categories", "")),
        )
        if v.get("expire"):
            # A bad value is reported by local_errors (and the node says "required").
            with contextlib.suppress(ValueError):
                alert.expire_time.CopyFrom(timestamp(_parse_expiry(v["expire"])))
        for r in self.recipients:
            if r["agency_id"].strip() or r["treaty_id"].strip():
                alert.recipients.add(
                    agency_id=r["agency_id"].strip(), treaty_id=r["treaty_id"].strip()
                )
        for group, rows in self.rows.items():
            for row in rows:
                if not any(str(x).strip() for x in row.values()):
                    continue  # an empty row left on the form is not a subject
                item = getattr(alert.subjects, group).add()
                for fname, value in row.items():
                    value = value.strip()
                    if fname == "hs_codes":
                        item.hs_codes.extend(_split(value))
                    elif fname in _COUNTRY_FIELDS or (
                        fname in ("vin", "number")
                        and group
                        in (
                            "containers",
                            "vehicles",
                        )
                    ):
                        setattr(item, fname, value.upper())
                    else:
                        setattr(item, fname, value)
        return alert


_SCALARS = {
    "kind",
    "urgency",
    "description",
    "handling",
    "tlp",
    "reliability",
    "credibility",
    "expire",
    "categories",
    "request_id",
}


def _parse_expiry(text: str) -> datetime:
    """``YYYY-MM-DDTHH:MM`` from a datetime-local field, read as UTC."""
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def field_for_path(path: str) -> str:
    """The form field for a node violation path, or '' for the summary only.

    ``alert.subjects.containers[0].number`` -> ``containers-0-number``;
    ``alert.recipients[1].treaty_id`` -> ``recipients-1-treaty_id``.
    """
    p = path.removeprefix("alert.").removeprefix("subjects.")
    special = {
        "evaluation.source_reliability": "reliability",
        "evaluation.information_credibility": "credibility",
        "expire_time": "expire",
        "treaty_id": "recipients-0-treaty_id",
    }
    if p in special:
        return special[p]
    if p.startswith("categories"):
        return "categories"
    m = re.fullmatch(r"([a-z_]+)\[(\d+)\]\.([a-z_]+)", p)
    if m:
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    return p if p in _SCALARS else ""
