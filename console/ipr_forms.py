"""The grant and detain forms: what an officer types, as a ``Recordation`` / ``Detention``.

One line of each repeatable part (one right, one line of goods, one agency
the recordation is valid for, ...) keeps the forms short; an application
with more is granted from its YAML file with ``intelshare recordation
grant``, which takes every field. Lists inside a line (HS codes, GTINs,
recordations) are typed separated by commas. The node validates everything
(check digits, HS codes, the one-year validity) and its violations are
mapped back onto the fields (:func:`field_for_path`); the rest is listed
above the form.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from console.display import ENUMS, enum_value, timestamp
from intelshare.v1 import detention_pb2, envelope_pb2, recordation_pb2

D = detention_pb2
R = recordation_pb2

RECORDATION_FIELDS = [
    "recordation_id",
    "holder_name",
    "holder_eori",
    "holder_registration_number",
    "holder_country",
    "contact_name",
    "contact_email",
    "contact_telephone",
    "right_type",
    "right_name",
    "right_registration_number",
    "right_office",
    "goods_description",
    "hs_codes",
    "gtins",
    "feature",
    "manufacturer",
    "manufacturer_country",
    "valid_from",
    "valid_until",
    "agency_id",
    "treaty_id",
    "internal_notes",
    "request_id",
]
DETENTION_FIELDS = [
    "detention_id",
    "description",
    "hs_code",
    "gtins",
    "brand",
    "quantity",
    "unit",
    "category",
    "value",
    "container_number",
    "vessel_name",
    "vessel_imo",
    "origin_country",
    "destination_country",
    "procedure",
    "perishable",
    "recordations",
    "customs_office",
    "consignee_name",
    "consignee_country",
    "declarant_name",
    "declarant_country",
    "internal_notes",
    "request_id",
]


def _split(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,;\s]+", text) if p.strip()]


def _day(text: str) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(text.strip()), datetime.min.time(), UTC)
    except ValueError:
        return None


def values_of(form: Mapping[str, object], names: list[str]) -> dict[str, str]:
    return {n: str(form.get(n) or "").strip() for n in names}


def blank_recordation() -> dict[str, str]:
    today = datetime.now(UTC).date()
    values = dict.fromkeys(RECORDATION_FIELDS, "")
    values.update(
        right_type="trade_mark",
        valid_from=today.isoformat(),
        valid_until=(today + timedelta(days=364)).isoformat(),
        request_id=str(uuid.uuid4()),
    )
    return values


def blank_detention(recordation: str = "") -> dict[str, str]:
    values = dict.fromkeys(DETENTION_FIELDS, "")
    values.update(
        unit="item",
        procedure="standard" if recordation else "ex_officio",
        recordations=recordation,
        request_id=str(uuid.uuid4()),
    )
    return values


def local_problems(values: Mapping[str, str], dates: tuple[str, ...]) -> dict[str, str]:
    return {
        name: "a date, YYYY-MM-DD"
        for name in dates
        if values.get(name) and _day(values[name]) is None
    }


def recordation_from_form(v: Mapping[str, str]) -> R.Recordation:
    r = R.Recordation(
        holder=R.RightsHolder(
            name=v["holder_name"],
            eori=v["holder_eori"].upper(),
            registration_number=v["holder_registration_number"],
            country=v["holder_country"].upper(),
            contact=R.ContactPoint(
                name=v["contact_name"], email=v["contact_email"], telephone=v["contact_telephone"]
            ),
        ),
        rights=[
            R.IntellectualPropertyRight(
                type=enum_value(ENUMS["right_type"], v["right_type"]),  # type: ignore[arg-type]
                name=v["right_name"],
                registration_number=v["right_registration_number"],
                office=v["right_office"],
            )
        ],
        goods=[
            R.CoveredGoods(
                description=v["goods_description"],
                hs_codes=_split(v["hs_codes"]),
                gtins=_split(v["gtins"]),
                right_names=[v["right_name"]] if v["right_name"] else [],
            )
        ],
        internal_notes=v["internal_notes"],
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
    )
    for line in v["feature"].splitlines():
        if line.strip():
            r.authenticity_features.add(description=line.strip())
    if v["manufacturer"]:
        r.supply_chain.manufacturers.add(
            name=v["manufacturer"], country=v["manufacturer_country"].upper()
        )
    start, end = _day(v["valid_from"]), _day(v["valid_until"])
    if start is not None:
        r.grant_time.CopyFrom(timestamp(start))
    if end is not None:
        r.expire_time.CopyFrom(timestamp(end))
    if v["agency_id"] or v["treaty_id"]:
        r.agencies.add(agency_id=v["agency_id"], treaty_id=v["treaty_id"])
    return r


def detention_from_form(v: Mapping[str, str]) -> D.Detention:
    goods = D.DetainedGoods(
        description=v["description"],
        hs_code=v["hs_code"].replace(".", "").replace(" ", ""),
        gtins=_split(v["gtins"]),
        brand=v["brand"],
        unit=enum_value(ENUMS["unit"], v["unit"]),  # type: ignore[arg-type]
        category=enum_value(ENUMS["goods_category"], v["category"]),  # type: ignore[arg-type]
    )
    if v["quantity"].isdigit():
        goods.quantity = int(v["quantity"])
    if v["value"].isdigit():
        goods.estimated_value.CopyFrom(D.MonetaryValue(currency_code="EUR", units=int(v["value"])))
    d = D.Detention(
        goods=[goods],
        origin_country=v["origin_country"].upper(),
        destination_country=v["destination_country"].upper(),
        procedure=enum_value(ENUMS["procedure"], v["procedure"]),  # type: ignore[arg-type]
        perishable=v["perishable"] == "1",
        recordations=[
            n if n.startswith("recordations/") else f"recordations/{n}"
            for n in _split(v["recordations"])
        ],
        customs_office=v["customs_office"],
        internal_notes=v["internal_notes"],
    )
    t = d.transport
    if v["container_number"]:
        t.container_number = v["container_number"].upper().replace(" ", "")
        t.mode = D.TRANSPORT_MODE_SEA
    if v["vessel_name"]:
        t.vessel_name = v["vessel_name"]
    if v["vessel_imo"]:
        t.vessel_imo = v["vessel_imo"]
    for role in ("consignee", "declarant"):
        if v[f"{role}_name"]:
            party = getattr(d.parties, role)
            party.name = v[f"{role}_name"]
            party.country = v[f"{role}_country"].upper()
    return d


#: Node violation paths (without the leading message name and indexes) -> form field.
_PATHS = {
    "holder.name": "holder_name",
    "holder.eori": "holder_eori",
    "holder.registration_number": "holder_registration_number",
    "holder.country": "holder_country",
    "holder.contact": "contact_email",
    "holder.contact.email": "contact_email",
    "holder.contact.telephone": "contact_telephone",
    "rights.type": "right_type",
    "rights.name": "right_name",
    "rights.registration_number": "right_registration_number",
    "rights.office": "right_office",
    "goods.description": "goods_description",
    "goods.hs_codes": "hs_codes",
    "goods.gtins": "gtins",
    "grant_time": "valid_from",
    "expire_time": "valid_until",
    "agencies.agency_id": "agency_id",
    "agencies.treaty_id": "treaty_id",
    "agencies": "agency_id",
    "goods.hs_code": "hs_code",
    "goods.quantity": "quantity",
    "goods.brand": "brand",
    "transport.container_number": "container_number",
    "transport.vessel_imo": "vessel_imo",
    "origin_country": "origin_country",
    "destination_country": "destination_country",
    "procedure": "procedure",
    "recordations": "recordations",
    "customs_office": "customs_office",
}


def field_for_path(path: str) -> str:
    """``recordation.goods[0].gtins[1]`` -> ``gtins``; '' when no field of the form holds it."""
    p = re.sub(r"\[\d+\]", "", path.split(".", 1)[1] if "." in path else path)
    p = p.removeprefix("recordation.").removeprefix("detention.")
    while p and p not in _PATHS:
        if "." not in p:
            return ""
        p = p.rsplit(".", 1)[0]
    return _PATHS.get(p, "")
