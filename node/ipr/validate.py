"""Validation of new recordations and detentions, as officers enter them.

Every problem is reported at once, keyed by the proto path of the request
field (``recordation.goods[0].gtins[1]``, ``detention.transport.container_number``),
because an officer fixing a form wants the whole list, not one error per
try. The exception's class (and so its ErrorInfo reason) is the specific
one when every problem is of one kind: only bad GTINs is
:class:`~intelshare.errors.GtinInvalid` (``GTIN_INVALID``), only bad HS
codes ``HS_CODE_INVALID``, only bad container numbers
``CONTAINER_NUMBER_INVALID``; anything else or a mix is ``FIELD_INVALID``, and the
BadRequest field violations still say what is wrong with each field.

Identifiers are checked by :mod:`intelshare.identifiers` (python-stdnum
where a scheme has a check digit): GTINs (EAN/UPC, -8/-12/-13/-14), ISO 6346
container numbers, IMO numbers, EORI numbers and ISO 3166 country codes.
HS codes: a recordation names 6-digit subheadings (the level the Harmonized
System is the same in every country); a detention names the code of the
declaration, 6 digits or the 8-digit CN / 10-digit TARIC code. Air waybill
numbers have the IATA form: a 3-digit airline prefix and an 8-digit serial
whose last digit is the first seven modulo 7.

Validity (608/2013 arts. 11-12): a recordation runs from its grant for at
most one year; "one year" is the same calendar day a year later (29
February to 28 February), compared in UTC. Only the fields an officer
enters are checked; output-only fields (state, history, origin, ...) are
ignored here and overwritten by the node.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

from intelshare import identifiers
from intelshare.errors import (
    ContainerNumberInvalid,
    FieldInvalid,
    GtinInvalid,
    HsCodeInvalid,
    InvalidArgument,
)
from intelshare.v1 import detention_pb2, recordation_pb2

MAX_NAME: Final = 200
MAX_TEXT: Final = 10_000
MAX_ITEMS: Final = 1000
#: How far a detention's detain_time may lie ahead of the node's clock.
CLOCK_SKEW: Final = timedelta(minutes=5)

_HS6 = re.compile(r"\d{6}")
_HS_DECLARED = re.compile(r"\d{6}(?:\d{2}){0,2}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_AGENCY = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?")
_RECORDATION_NAME = re.compile(r"recordations/[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_CUSTOMS_OFFICE = re.compile(r"[A-Z]{2}[A-Z0-9]{6}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TELEPHONE = re.compile(r"\+?[0-9 ()./-]{6,30}")
_AWB = re.compile(r"(\d{3})[- ]?(\d{7})(\d)")

#: Rights that exist only by registration: their number is required.
REGISTERED_RIGHTS: Final = frozenset(
    {
        recordation_pb2.RIGHT_TYPE_TRADE_MARK,
        recordation_pb2.RIGHT_TYPE_PATENT,
        recordation_pb2.RIGHT_TYPE_UTILITY_MODEL,
        recordation_pb2.RIGHT_TYPE_SUPPLEMENTARY_PROTECTION_CERTIFICATE,
        recordation_pb2.RIGHT_TYPE_PLANT_VARIETY,
    }
)


class Violations:
    """Problems found so far: field path -> what is wrong, and the reason of each."""

    def __init__(self) -> None:
        self.messages: dict[str, str] = {}
        self.reasons: set[type[InvalidArgument]] = set()

    def add(self, path: str, message: str, kind: type[InvalidArgument] = FieldInvalid) -> None:
        self.messages.setdefault(path, message)
        self.reasons.add(kind)

    def raise_if_any(self, what: str) -> None:
        if not self.messages:
            return
        kind = next(iter(self.reasons)) if len(self.reasons) == 1 else FieldInvalid
        count = len(self.messages)
        first = next(iter(self.messages.items()))
        summary = f"{first[0]}: {first[1]}" + (f" (and {count - 1} more)" if count > 1 else "")
        raise kind(f"the {what} is not valid: {summary}", violations=self.messages)


# --- checks of single fields ---------------------------------------------------------


def _text(v: Violations, path: str, value: str, *, required: bool, max_len: int) -> None:
    if required and not value.strip():
        v.add(path, "is required")
    elif len(value) > max_len:
        v.add(path, f"at most {max_len} characters")


def _via(
    v: Violations,
    path: str,
    value: str,
    check: Callable[[object, str], str],
    kind: type[InvalidArgument] = FieldInvalid,
) -> None:
    if not value:
        return
    try:
        check(value, path)
    except InvalidArgument as exc:
        v.add(path, exc.violations.get(path) or exc.message, kind)


def _country(v: Violations, path: str, value: str, *, required: bool = False) -> None:
    if not value:
        if required:
            v.add(path, "is required (ISO 3166-1 alpha-2, e.g. NL)")
        return
    if value != value.upper():
        v.add(path, f"{value!r} must be upper case, e.g. {value.upper()}")
        return
    _via(v, path, value, identifiers.country_code)


def _gtins(v: Violations, path: str, values: Sequence[str]) -> None:
    _count(v, path, values)
    for i, value in enumerate(values):
        at = f"{path}[{i}]"
        if not value.strip():
            v.add(at, "must not be empty", GtinInvalid)
        else:
            _via(v, at, value, identifiers.gtin, GtinInvalid)


def _digests(v: Violations, path: str, values: Sequence[str]) -> None:
    _count(v, path, values)
    for i, value in enumerate(values):
        if not _DIGEST.fullmatch(value):
            v.add(f"{path}[{i}]", "must be 'sha256:' and 64 lower-case hex digits")


def _count(v: Violations, path: str, values: Sequence[object]) -> None:
    if len(values) > MAX_ITEMS:
        v.add(path, f"at most {MAX_ITEMS} entries")


def hs_code_ok(code: str, *, declared: bool) -> bool:
    """Whether ``code`` has the digits an HS code needs (6; or 8/10 on a declaration)."""
    return bool((_HS_DECLARED if declared else _HS6).fullmatch(code))


def air_waybill_ok(number: str) -> bool:
    """Whether ``number`` is an IATA air waybill number with a right check digit."""
    found = _AWB.fullmatch(number.strip())
    if found is None:
        return False
    return int(found.group(2)) % 7 == int(found.group(3))


def add_one_year(instant: datetime) -> datetime:
    """The same instant a calendar year later (29 February becomes 28 February)."""
    try:
        return instant.replace(year=instant.year + 1)
    except ValueError:
        return instant.replace(year=instant.year + 1, day=28)


def _time(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


# --- recordations ---------------------------------------------------------------------


def validate_new_recordation(
    recordation: recordation_pb2.Recordation, now: datetime, *, path: str = "recordation"
) -> None:
    """Raise an InvalidArgument (FieldInvalid or more precise) unless ``recordation`` is valid."""
    v = Violations()
    _holder(v, f"{path}.holder", recordation.holder, present=recordation.HasField("holder"))
    if not recordation.rights:
        v.add(f"{path}.rights", "at least one right is required")
    _count(v, f"{path}.rights", recordation.rights)
    for i, right in enumerate(recordation.rights):
        _right(v, f"{path}.rights[{i}]", right)
    if not recordation.goods:
        v.add(f"{path}.goods", "at least one line of goods is required")
    _count(v, f"{path}.goods", recordation.goods)
    right_names = {r.name for r in recordation.rights}
    for i, goods in enumerate(recordation.goods):
        _covered_goods(v, f"{path}.goods[{i}]", goods, right_names)
    _count(v, f"{path}.authenticity_features", recordation.authenticity_features)
    for i, feature in enumerate(recordation.authenticity_features):
        at = f"{path}.authenticity_features[{i}]"
        _text(v, f"{at}.description", feature.description, required=True, max_len=MAX_TEXT)
        _digests(v, f"{at}.attachment_digests", feature.attachment_digests)
    _supply_chain(v, f"{path}.supply_chain", recordation.supply_chain)
    _validity(v, path, recordation, now)
    _agencies(v, f"{path}.agencies", recordation.agencies)
    _text(v, f"{path}.internal_notes", recordation.internal_notes, required=False, max_len=MAX_TEXT)
    v.raise_if_any("recordation")


def _holder(
    v: Violations, path: str, holder: recordation_pb2.RightsHolder, *, present: bool
) -> None:
    if not present:
        v.add(path, "is required")
        return
    _text(v, f"{path}.name", holder.name, required=True, max_len=MAX_NAME)
    if not holder.eori and not holder.registration_number:
        v.add(f"{path}.eori", "an EORI number or a registration_number is required")
    _via(v, f"{path}.eori", holder.eori, identifiers.eori_number)
    _text(v, f"{path}.registration_number", holder.registration_number, required=False, max_len=64)
    _country(v, f"{path}.country", holder.country, required=True)
    _text(v, f"{path}.address", holder.address, required=False, max_len=MAX_TEXT)
    contact = holder.contact
    at = f"{path}.contact"
    if not (contact.email or contact.telephone):
        v.add(at, "an e-mail address or a telephone number is required")
    _text(v, f"{at}.name", contact.name, required=False, max_len=MAX_NAME)
    if contact.email and not _EMAIL.fullmatch(contact.email):
        v.add(f"{at}.email", f"{contact.email!r} is not an e-mail address")
    if contact.telephone and not _TELEPHONE.fullmatch(contact.telephone):
        v.add(f"{at}.telephone", f"{contact.telephone!r} is not a telephone number")


def _right(v: Violations, path: str, right: recordation_pb2.IntellectualPropertyRight) -> None:
    if right.type == recordation_pb2.RIGHT_TYPE_UNSPECIFIED or (
        right.type not in recordation_pb2.RightType.values()
    ):
        v.add(f"{path}.type", "is required (trade mark, design, patent, ...)")
    _text(v, f"{path}.name", right.name, required=True, max_len=MAX_NAME)
    _text(
        v,
        f"{path}.registration_number",
        right.registration_number,
        required=right.type in REGISTERED_RIGHTS,
        max_len=64,
    )
    _text(v, f"{path}.office", right.office, required=False, max_len=MAX_NAME)


def _covered_goods(
    v: Violations, path: str, goods: recordation_pb2.CoveredGoods, right_names: set[str]
) -> None:
    _text(v, f"{path}.description", goods.description, required=True, max_len=MAX_TEXT)
    _count(v, f"{path}.hs_codes", goods.hs_codes)
    for i, code in enumerate(goods.hs_codes):
        if not hs_code_ok(code, declared=False):
            v.add(
                f"{path}.hs_codes[{i}]",
                f"{code!r} is not a 6-digit HS subheading (e.g. 640411)",
                HsCodeInvalid,
            )
    _gtins(v, f"{path}.gtins", goods.gtins)
    for i, name in enumerate(goods.right_names):
        if name not in right_names:
            v.add(f"{path}.right_names[{i}]", f"{name!r} is not the name of a right listed")


def _supply_chain(v: Violations, path: str, chain: recordation_pb2.GenuineSupplyChain) -> None:
    for group in ("manufacturers", "importers", "distributors"):
        parties: Sequence[recordation_pb2.SupplyChainParty] = getattr(chain, group)
        _count(v, f"{path}.{group}", parties)
        for i, party in enumerate(parties):
            at = f"{path}.{group}[{i}]"
            _text(v, f"{at}.name", party.name, required=True, max_len=MAX_NAME)
            _country(v, f"{at}.country", party.country)
            _via(v, f"{at}.eori", party.eori, identifiers.eori_number)
            _text(v, f"{at}.address", party.address, required=False, max_len=MAX_TEXT)
    _count(v, f"{path}.usual_routes", chain.usual_routes)
    for i, route in enumerate(chain.usual_routes):
        at = f"{path}.usual_routes[{i}]"
        _country(v, f"{at}.origin_country", route.origin_country)
        _country(v, f"{at}.destination_country", route.destination_country)
        for j, transit in enumerate(route.transit_countries):
            _country(v, f"{at}.transit_countries[{j}]", transit)
        _text(v, f"{at}.description", route.description, required=False, max_len=MAX_TEXT)


def _validity(
    v: Violations, path: str, recordation: recordation_pb2.Recordation, now: datetime
) -> None:
    has_grant = recordation.HasField("grant_time")
    has_expire = recordation.HasField("expire_time")
    if not has_grant:
        v.add(f"{path}.grant_time", "is required")
    if not has_expire:
        v.add(f"{path}.expire_time", "is required (at most one year after grant_time)")
    if not (has_grant and has_expire):
        return
    grant = _time(recordation.grant_time)
    expire = _time(recordation.expire_time)
    if expire <= grant:
        v.add(f"{path}.expire_time", "must be after grant_time")
    elif expire > add_one_year(grant):
        v.add(
            f"{path}.expire_time",
            "at most one year after grant_time (608/2013 art. 11): "
            f"by {add_one_year(grant):%Y-%m-%d}",
        )
    if expire <= now:
        v.add(f"{path}.expire_time", "is in the past: the recordation would never be in force")
    if grant > now + CLOCK_SKEW:
        v.add(f"{path}.grant_time", "must not be in the future")


def _agencies(
    v: Violations, path: str, agencies: Sequence[recordation_pb2.RecordationAgency]
) -> None:
    _count(v, path, agencies)
    seen: set[str] = set()
    for i, agency in enumerate(agencies):
        at = f"{path}[{i}]"
        if not _AGENCY.fullmatch(agency.agency_id):
            v.add(f"{at}.agency_id", "must be an agency id, e.g. de-customs")
        elif agency.agency_id in seen:
            v.add(f"{at}.agency_id", f"{agency.agency_id} is listed twice")
        seen.add(agency.agency_id)
        if agency.treaty_id and not _AGENCY.fullmatch(agency.treaty_id):
            v.add(f"{at}.treaty_id", "must be a treaty id")


# --- detentions ------------------------------------------------------------------------


def validate_new_detention(
    detention: detention_pb2.Detention, now: datetime, *, path: str = "detention"
) -> None:
    """Raise an InvalidArgument (FieldInvalid or one more precise) unless ``detention`` is valid."""
    v = Violations()
    if not detention.goods:
        v.add(f"{path}.goods", "at least one line of goods is required")
    _count(v, f"{path}.goods", detention.goods)
    for i, goods in enumerate(detention.goods):
        _detained_goods(v, f"{path}.goods[{i}]", goods)
    _transport(v, f"{path}.transport", detention.transport)
    for role in ("consignor", "consignee", "declarant"):
        party: detention_pb2.DetentionParty = getattr(detention.parties, role)
        at = f"{path}.parties.{role}"
        _text(v, f"{at}.name", party.name, required=False, max_len=MAX_NAME)
        _text(v, f"{at}.address", party.address, required=False, max_len=MAX_TEXT)
        _country(v, f"{at}.country", party.country)
        _via(v, f"{at}.eori", party.eori, identifiers.eori_number)
        _text(v, f"{at}.registration_number", party.registration_number, required=False, max_len=64)
    _country(v, f"{path}.origin_country", detention.origin_country)
    _country(v, f"{path}.destination_country", detention.destination_country)
    procedure = detention.procedure
    if procedure == detention_pb2.DETENTION_PROCEDURE_UNSPECIFIED or (
        procedure not in detention_pb2.DetentionProcedure.values()
    ):
        v.add(f"{path}.procedure", "is required (standard, ex_officio or small_consignment)")
    _recordation_names(v, f"{path}.recordations", detention)
    if detention.customs_office and not _CUSTOMS_OFFICE.fullmatch(detention.customs_office):
        v.add(f"{path}.customs_office", "must be a customs office code, e.g. NL000396")
    if detention.HasField("detain_time") and _time(detention.detain_time) > now + CLOCK_SKEW:
        v.add(f"{path}.detain_time", "must not be in the future")
    _text(v, f"{path}.internal_notes", detention.internal_notes, required=False, max_len=MAX_TEXT)
    v.raise_if_any("detention")


def _detained_goods(v: Violations, path: str, goods: detention_pb2.DetainedGoods) -> None:
    _text(v, f"{path}.description", goods.description, required=True, max_len=MAX_TEXT)
    if not goods.hs_code:
        v.add(f"{path}.hs_code", "is required (6 digits, or the 8-digit CN / 10-digit TARIC code)")
    elif not hs_code_ok(goods.hs_code, declared=True):
        v.add(
            f"{path}.hs_code",
            f"{goods.hs_code!r} is not an HS code (6 digits, or 8 / 10 for CN / TARIC)",
            HsCodeInvalid,
        )
    _gtins(v, f"{path}.gtins", goods.gtins)
    _text(v, f"{path}.brand", goods.brand, required=False, max_len=MAX_NAME)
    if goods.quantity <= 0:
        v.add(f"{path}.quantity", "must be at least 1")
    if goods.unit not in detention_pb2.QuantityUnit.values():
        v.add(f"{path}.unit", "is not a unit")
    if goods.category not in detention_pb2.GoodsCategory.values():
        v.add(f"{path}.category", "is not a category")
    if goods.HasField("estimated_value"):
        _money(v, f"{path}.estimated_value", goods.estimated_value)
    _digests(v, f"{path}.image_digests", goods.image_digests)


def _money(v: Violations, path: str, value: detention_pb2.MonetaryValue) -> None:
    if not _CURRENCY.fullmatch(value.currency_code):
        v.add(f"{path}.currency_code", "must be an ISO 4217 code, e.g. EUR")
    if value.units < 0 or value.nanos < 0:
        v.add(f"{path}.units", "must not be negative")
    if not -999_999_999 <= value.nanos <= 999_999_999:
        v.add(f"{path}.nanos", "must be between -999999999 and 999999999")


def _transport(v: Violations, path: str, transport: detention_pb2.DetentionTransport) -> None:
    if transport.mode not in detention_pb2.TransportMode.values():
        v.add(f"{path}.mode", "is not a transport mode")
    _via(
        v,
        f"{path}.container_number",
        transport.container_number,
        identifiers.container_number,
        ContainerNumberInvalid,
    )
    _text(v, f"{path}.seal_number", transport.seal_number, required=False, max_len=64)
    _text(v, f"{path}.bill_of_lading", transport.bill_of_lading, required=False, max_len=64)
    _text(v, f"{path}.vessel_name", transport.vessel_name, required=False, max_len=MAX_NAME)
    _via(v, f"{path}.vessel_imo", transport.vessel_imo, identifiers.imo_number)
    if transport.air_waybill and not air_waybill_ok(transport.air_waybill):
        v.add(
            f"{path}.air_waybill",
            f"{transport.air_waybill!r} is not an air waybill number "
            "(3-digit prefix and 8 digits, the last one the check digit, e.g. 176-12345675)",
        )
    _via(v, f"{path}.vehicle_plate", transport.vehicle_plate, identifiers.plate_number)
    _country(v, f"{path}.vehicle_country", transport.vehicle_country)
    if transport.vehicle_plate and not transport.vehicle_country:
        v.add(f"{path}.vehicle_country", "is required with a vehicle_plate")
    _text(v, f"{path}.tracking_number", transport.tracking_number, required=False, max_len=64)


def _recordation_names(v: Violations, path: str, detention: detention_pb2.Detention) -> None:
    names = list(detention.recordations)
    _count(v, path, names)
    for i, name in enumerate(names):
        if not _RECORDATION_NAME.fullmatch(name):
            v.add(f"{path}[{i}]", f"{name!r} is not a recordation name (recordations/{{id}})")
        elif name in names[:i]:
            v.add(f"{path}[{i}]", f"{name} is listed twice")
    procedure = detention.procedure
    if procedure == detention_pb2.DETENTION_PROCEDURE_EX_OFFICIO and names:
        v.add(path, "an ex-officio detention has no recordation yet (the holder must apply)")
    needs = (
        detention_pb2.DETENTION_PROCEDURE_STANDARD,
        detention_pb2.DETENTION_PROCEDURE_SMALL_CONSIGNMENT,
    )
    if procedure in needs and not names:
        v.add(
            path,
            "the standard and small-consignment procedures need the recordation the goods "
            "fall under (else detain ex officio)",
        )
