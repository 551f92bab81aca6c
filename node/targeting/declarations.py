"""Customs declarations to screen: the model, and readers for CSV and JSON Lines files.

A :class:`Declaration` is one goods item of a consignment, with the fields
that criteria test and the identifiers that the watch list is matched
against, every one in canonical form (see :mod:`intelshare.identifiers`).
A declaration of several goods items is screened as one record per item,
each under the same reference.

The files have one declaration per line: CSV with a header row naming the
columns of :data:`COLUMNS`, or JSON Lines with one object per line whose
keys are the same names (lists as JSON arrays or ``;``-separated strings,
numbers as JSON numbers or strings). ``docs/screening.md`` documents the
mapping. Readers yield a :class:`Parsed` for each good line and a
:class:`ReadError` (line number, column, what is wrong) for each problem; a
line with any problem is not screened, the rest of the file still is. A
line longer than ``max_line_bytes`` is refused without being held in
memory whole. A CSV record is one line: fields cannot contain line breaks.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from intelshare import identifiers
from intelshare.errors import FieldInvalid, InvalidArgument
from node.targeting.criteria import TRANSPORT_MODES

#: Longest line accepted (bytes, line break included).
MAX_LINE_BYTES = 64 * 1024
#: Most values in one list column.
MAX_CONTAINERS = 100
MAX_GTINS = 1000
MAX_IDENTIFIERS = 100
MAX_REFERENCE = 64

REQUIRED = ("reference", "hs_code")

#: Every column, with what it holds (the documented mapping; ``docs/screening.md``).
COLUMNS: dict[str, str] = {
    "reference": "the declaration's reference (MRN or own number), 1 to 64 printable characters",
    "hs_code": "the goods item's commodity code, 6 to 10 digits (dots and spaces ignored)",
    "origin_country": "country of origin, ISO 3166-1 alpha-2",
    "dispatch_country": "country of dispatch, ISO 3166-1 alpha-2",
    "loading_port": "port or place of loading, UN/LOCODE (NLRTM or NL RTM)",
    "discharge_port": "port or place of discharge, UN/LOCODE",
    "transport_mode": "mode at the border: a name (sea, rail, road, air, post, "
    "fixed_installation, inland_waterway, own_propulsion) or its EU code (1-5, 7-9)",
    "consignor_eori": "the consignor's EORI number",
    "consignor_vat": "the consignor's EU VAT number",
    "consignor_name": "the consignor's name",
    "consignee_eori": "the consignee's EORI number",
    "consignee_vat": "the consignee's EU VAT number",
    "consignee_name": "the consignee's name",
    "containers": "ISO 6346 container numbers, separated by ';'",
    "gtins": "GTINs of the goods (8, 12, 13 or 14 digits), separated by ';'",
    "vessel_imo": "the IMO number of the vessel",
    "vehicle_plate": "the registration plate of the vehicle crossing the border",
    "vehicle_country": "the country of that registration, ISO 3166-1 alpha-2",
    "identifiers": "further identifier keys (e.g. passport:NL:X1234567), separated by ';'",
    "value": "the statistical value, a number (no thousands separators)",
    "net_mass_kg": "net mass in kilograms, a number",
    "quantity": "quantity in supplementary units, a number",
}

_HS_IGNORED = re.compile(r"[\s.]+")
_HS_CODE = re.compile(r"[0-9]{6,10}")
_LOCODE = re.compile(r"([A-Z]{2})[A-Z2-9]{3}")
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Declaration:
    """One goods item of a consignment, every field canonical ("" or () when absent)."""

    reference: str
    hs_code: str
    origin_country: str = ""
    dispatch_country: str = ""
    loading_port: str = ""
    discharge_port: str = ""
    transport_mode: str = ""
    #: identifier keys of the consignor (eori:, vat:, company:)
    consignor: tuple[str, ...] = ()
    consignee: tuple[str, ...] = ()
    #: ISO 6346 numbers, compact (the keys are ``iso6346:`` + number)
    containers: tuple[str, ...] = ()
    #: GTIN-14s (the keys are ``gtin:`` + number)
    gtins: tuple[str, ...] = ()
    vessel_imo: str = ""
    #: the vehicle's plate key (``plate:NL:AB123C``)
    vehicle: str = ""
    #: further identifier keys (persons, passports, ...)
    identifiers: tuple[str, ...] = ()
    value: float | None = None
    net_mass_kg: float | None = None
    quantity: float | None = None

    @property
    def value_per_kg(self) -> float | None:
        """Statistical value per kg of net mass, when both are known and the mass is not 0."""
        if self.value is None or not self.net_mass_kg:
            return None
        return self.value / self.net_mass_kg

    def identifier_keys(self) -> list[tuple[str, str]]:
        """(role, identifier key) of everything in the declaration a watch list may name."""
        keys = [("container", f"iso6346:{c}") for c in self.containers]
        if self.vessel_imo:
            keys.append(("vessel", f"imo:{self.vessel_imo}"))
        if self.vehicle:
            keys.append(("vehicle", self.vehicle))
        keys += [("consignor", k) for k in self.consignor]
        keys += [("consignee", k) for k in self.consignee]
        keys += [("gtin", f"gtin:{g}") for g in self.gtins]
        keys += [("identifier", k) for k in self.identifiers]
        return keys


@dataclass(frozen=True, slots=True)
class Parsed:
    """A declaration read from ``line`` of its file."""

    line: int
    declaration: Declaration


@dataclass(frozen=True, slots=True)
class ReadError:
    """What is wrong on ``line`` (1-based), in ``column`` ("" for the whole line)."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


# --- one declaration from its fields -----------------------------------------------------------


class _Fields:
    """Reads the typed fields of one row, filing every problem under its column."""

    def __init__(self, row: Mapping[str, object]) -> None:
        self.row = row
        self.violations: dict[str, str] = {}

    def get(self, column: str) -> object:
        value = self.row.get(column)
        return None if value is None or value == "" else value

    def _run(self, column: str, fn: Callable[[object], str], default: str = "") -> str:
        value = self.get(column)
        if value is None:
            return default
        try:
            return fn(value)
        except InvalidArgument as exc:
            self.violations[column] = "; ".join(exc.violations.values()) or exc.message
        except ValueError as exc:
            self.violations[column] = str(exc)
        return default

    def text(self, column: str, fn: Callable[[str], str]) -> str:
        def typed(value: object) -> str:
            if not isinstance(value, str):
                raise ValueError(f"must be a string, not {type(value).__name__}")
            return fn(value.strip())

        return self._run(column, typed)

    def items(self, column: str, fn: Callable[[str], str], most: int) -> tuple[str, ...]:
        value = self.get(column)
        if value is None:
            return ()
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(";")]
            parts = [p for p in parts if p]
        elif isinstance(value, list):
            parts = value
        else:
            self.violations[column] = (
                f"must be a list or a ';'-separated string, not {_kind(value)}"
            )
            return ()
        if len(parts) > most:
            self.violations[column] = f"lists more than {most} values"
            return ()
        out: list[str] = []
        for i, part in enumerate(parts):
            if not isinstance(part, str):
                self.violations[column] = f"value {i + 1} must be a string, not {_kind(part)}"
                return ()
            try:
                canonical = fn(part)
            except InvalidArgument as exc:
                problem = "; ".join(exc.violations.values()) or exc.message
                self.violations[column] = f"value {i + 1}: {problem}"
                return ()
            if canonical not in out:
                out.append(canonical)
        return tuple(out)

    def number(self, column: str) -> float | None:
        value = self.get(column)
        if value is None:
            return None
        typed = isinstance(value, int | float) and not isinstance(value, bool)
        if typed or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
            number = float(value)  # type: ignore[arg-type]  # a number or a checked string
        else:
            self.violations[column] = f"{value!r} is not a number (digits and a decimal point)"
            return None
        if not math.isfinite(number) or number < 0:
            self.violations[column] = f"{value!r} must be a finite number, at least 0"
            return None
        return number


def _kind(value: object) -> str:
    return "a list" if isinstance(value, list) else type(value).__name__


def _reference(value: str) -> str:
    if not (0 < len(value) <= MAX_REFERENCE and value.isprintable()):
        raise ValueError(f"must be 1 to {MAX_REFERENCE} printable characters")
    return value


def _hs_code(value: str) -> str:
    code = _HS_IGNORED.sub("", value)
    if not _HS_CODE.fullmatch(code):
        raise ValueError(f"{value!r} is not an HS / CN / TARIC code (6 to 10 digits)")
    return code


def _port(value: str) -> str:
    code = value.replace(" ", "").upper()
    found = _LOCODE.fullmatch(code)
    if found is None or found.group(1) not in identifiers.countries():
        raise ValueError(f"{value!r} is not a UN/LOCODE (e.g. NLRTM)")
    return code


def _mode(value: str) -> str:
    mode = value.lower()
    mode = TRANSPORT_MODES.get(mode, mode)
    if mode not in TRANSPORT_MODES.values():
        raise ValueError(f"{value!r} is not a transport mode name or code")
    return mode


def _party(fields: _Fields, role: str) -> tuple[str, ...]:
    keys = [
        fields.text(f"{role}_eori", lambda v: identifiers.key("eori", v)),
        fields.text(f"{role}_vat", lambda v: identifiers.key("vat", v)),
        fields.text(f"{role}_name", lambda v: identifiers.key("company", v)),
    ]
    return tuple(k for k in keys if k)


def declaration_from_fields(row: Mapping[str, object]) -> Declaration:
    """A declaration from its columns (names of :data:`COLUMNS`); InvalidArgument per column."""
    fields = _Fields(row)
    for column in REQUIRED:
        if fields.get(column) is None:
            fields.violations[column] = "is required"
    plate = fields.text("vehicle_plate", identifiers.plate_number)
    plate_country = fields.text("vehicle_country", identifiers.country_code)
    vehicle = ""
    if plate and plate_country:
        vehicle = f"plate:{plate_country}:{plate}"
    elif plate and "vehicle_plate" not in fields.violations:
        fields.violations.setdefault("vehicle_country", "is required with vehicle_plate")
    declaration = Declaration(
        reference=fields.text("reference", _reference),
        hs_code=fields.text("hs_code", _hs_code),
        origin_country=fields.text("origin_country", identifiers.country_code),
        dispatch_country=fields.text("dispatch_country", identifiers.country_code),
        loading_port=fields.text("loading_port", _port),
        discharge_port=fields.text("discharge_port", _port),
        transport_mode=fields.text("transport_mode", _mode),
        consignor=_party(fields, "consignor"),
        consignee=_party(fields, "consignee"),
        containers=fields.items("containers", identifiers.container_number, MAX_CONTAINERS),
        gtins=fields.items("gtins", identifiers.gtin, MAX_GTINS),
        vessel_imo=fields.text("vessel_imo", identifiers.imo_number),
        vehicle=vehicle,
        identifiers=fields.items("identifiers", identifiers.parse_key, MAX_IDENTIFIERS),
        value=fields.number("value"),
        net_mass_kg=fields.number("net_mass_kg"),
        quantity=fields.number("quantity"),
    )
    if fields.violations:
        first, what = next(iter(fields.violations.items()))
        raise FieldInvalid(f"{first}: {what}", violations=fields.violations)
    return declaration


# --- files --------------------------------------------------------------------------------------


def _lines(stream: IO[bytes], max_line_bytes: int) -> Iterator[tuple[int, str | ReadError]]:
    """(line number, text without its line break, or the error) of each non-blank line."""
    number = 0
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes:
            while raw and not raw.endswith(b"\n"):  # skip the rest, a bounded chunk at a time
                raw = stream.readline(max_line_bytes)
            yield number, ReadError(number, "", f"longer than {max_line_bytes} bytes: not read")
            continue
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield number, ReadError(number, "", f"not UTF-8 (byte {exc.start + 1})")
            continue
        if text.strip():
            yield number, text


def _errors(number: int, exc: InvalidArgument) -> Iterator[ReadError]:
    for column, what in exc.violations.items():
        yield ReadError(number, column, what)


def read_csv(
    stream: IO[bytes], *, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Parsed | ReadError]:
    """Declarations from CSV with a header row; see the module's docstring."""
    lines = _lines(stream, max_line_bytes)
    header: list[str] | None = None
    for number, line in lines:
        if isinstance(line, ReadError):
            yield line
            if header is None:
                return
            continue
        try:
            cells = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            yield ReadError(number, "", f"not a CSV record ({exc})")
            if header is None:
                return
            continue
        if header is None:
            header = [c.strip() for c in cells]
            problems = list(_header_problems(number, header))
            yield from problems
            if any(p.message.startswith(("missing", "repeated")) for p in problems):
                return
            continue
        if len(cells) != len(header):
            yield ReadError(number, "", f"has {len(cells)} fields, the header has {len(header)}")
            continue
        row = {name: cell for name, cell in zip(header, cells, strict=True) if name in COLUMNS}
        try:
            yield Parsed(number, declaration_from_fields(row))
        except InvalidArgument as exc:
            yield from _errors(number, exc)
    if header is None:
        yield ReadError(1, "", "the file is empty: a CSV file starts with a header row")


def _header_problems(number: int, header: list[str]) -> Iterator[ReadError]:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            yield ReadError(number, name, "repeated column")
        seen.add(name)
        if name not in COLUMNS:
            yield ReadError(number, name, "unknown column: ignored (columns: docs/screening.md)")
    for name in REQUIRED:
        if name not in seen:
            yield ReadError(number, name, "missing column: every row needs it")


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} repeated")
        out[key] = value
    return out


def read_jsonl(
    stream: IO[bytes], *, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Parsed | ReadError]:
    """Declarations from JSON Lines, one object per line; see the module's docstring."""
    for number, line in _lines(stream, max_line_bytes):
        if isinstance(line, ReadError):
            yield line
            continue
        try:
            row = json.loads(line, object_pairs_hook=_object)
        except ValueError as exc:
            yield ReadError(number, "", f"not a JSON object ({exc})")
            continue
        if not isinstance(row, dict):
            yield ReadError(number, "", f"not a JSON object but {_kind(row)}")
            continue
        unknown = [key for key in row if key not in COLUMNS]
        for key in unknown:
            yield ReadError(number, key, "unknown field (fields: docs/screening.md)")
        if unknown:
            continue
        try:
            yield Parsed(number, declaration_from_fields(row))
        except InvalidArgument as exc:
            yield from _errors(number, exc)


FORMATS: dict[str, Literal["csv", "jsonl"]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def file_format(path: str | Path) -> Literal["csv", "jsonl"]:
    """The format of a declarations file by its suffix (.csv, .jsonl, .ndjson)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise FieldInvalid(
            f"{path}: unknown declarations format {suffix or '(no suffix)'!r}: use .csv or .jsonl",
            violations={"file": "the name must end in .csv, .jsonl or .ndjson"},
        )
    return FORMATS[suffix]


def read_declarations(
    stream: IO[bytes], fmt: Literal["csv", "jsonl"], *, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Parsed | ReadError]:
    """Declarations from ``stream`` in format ``fmt``."""
    reader = read_csv if fmt == "csv" else read_jsonl
    return reader(stream, max_line_bytes=max_line_bytes)
