"""Sample recordations and detentions for the IPR rule tests (valid as built)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.v1 import detention_pb2 as D
from intelshare.v1 import recordation_pb2 as R

#: A fixed "now" for tests that do not care which day it is (a Wednesday).
NOW = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)

ACME_EORI = "NL123456789"
GTIN_13 = "4006381333931"
UPC_A = "036000291452"  # the same trade item as EAN-13 0036000291452


def ts(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant)
    return stamp


def recordation(
    name: str = "recordations/acme-2026",
    *,
    eori: str = ACME_EORI,
    brand: str = "ACME",
    gtins: tuple[str, ...] = (GTIN_13,),
    hs_codes: tuple[str, ...] = ("640411",),
    grant: datetime = NOW - timedelta(days=30),
    valid_for: timedelta = timedelta(days=300),
    state: int = R.RECORDATION_STATE_GRANTED,
    origin: str = "nl-customs",
) -> R.Recordation:
    return R.Recordation(
        name=name,
        holder=R.RightsHolder(
            name=f"{brand.title()} Sports B.V.",
            eori=eori,
            country="NL",
            contact=R.ContactPoint(name="Brand protection", email="ip@acme.example"),
        ),
        rights=[
            R.IntellectualPropertyRight(
                type=R.RIGHT_TYPE_TRADE_MARK,
                name=brand,
                registration_number="018123456",
                office="EUIPO",
            )
        ],
        goods=[
            R.CoveredGoods(
                description="running shoes",
                hs_codes=list(hs_codes),
                gtins=list(gtins),
                right_names=[brand],
            )
        ],
        authenticity_features=[
            R.AuthenticityFeature(
                description="hologram inside the tongue",
                attachment_digests=["sha256:" + "ab" * 32],
            )
        ],
        supply_chain=R.GenuineSupplyChain(
            manufacturers=[R.SupplyChainParty(name="Acme Vietnam Co.", country="VN")],
            usual_routes=[R.SupplyRoute(origin_country="VN", destination_country="NL")],
        ),
        grant_time=ts(grant),
        expire_time=ts(grant + valid_for),
        agencies=[R.RecordationAgency(agency_id="de-customs", treaty_id="customs-ipr")],
        internal_notes="holder slow to answer in 2025",
        state=state,
        origin_agency=origin,
    )


def detention(
    name: str = "detentions/d-1",
    *,
    procedure: int = D.DETENTION_PROCEDURE_STANDARD,
    perishable: bool = False,
    recordations: tuple[str, ...] = ("recordations/acme-2026",),
    gtins: tuple[str, ...] = (GTIN_13,),
    hs_code: str = "64041100",
    brand: str = "Acme",
) -> D.Detention:
    return D.Detention(
        name=name,
        goods=[
            D.DetainedGoods(
                description="sports shoes bearing the sign ACME",
                hs_code=hs_code,
                gtins=list(gtins),
                brand=brand,
                quantity=1200,
                unit=D.QUANTITY_UNIT_PAIR,
                estimated_value=D.MonetaryValue(currency_code="EUR", units=96000),
                category=D.GOODS_CATEGORY_SHOES,
            )
        ],
        transport=D.DetentionTransport(
            mode=D.TRANSPORT_MODE_SEA,
            container_number="CSQU3054383",
            vessel_name="EVER GIVEN",
            vessel_imo="9811000",
            bill_of_lading="MEDU1234567",
        ),
        parties=D.DetentionParties(
            consignor=D.DetentionParty(name="Shenzhen Trading Ltd", country="CN"),
            consignee=D.DetentionParty(
                name="Jan de Vries", address="Kade 1, Rotterdam", country="NL"
            ),
            declarant=D.DetentionParty(name="Forwarding B.V.", country="NL", eori="NL987654321"),
        ),
        origin_country="CN",
        destination_country="NL",
        procedure=procedure,
        perishable=perishable,
        recordations=list(recordations),
        customs_office="DE004851",
        internal_notes="tip from the port risk unit",
        detaining_agency="de-customs",
    )
