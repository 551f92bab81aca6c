"""Recordations, detentions, detention reports and risk profiles as a node returns them."""

from __future__ import annotations

from google.protobuf.struct_pb2 import Struct

from intelshare.v1 import detention_pb2, recordation_pb2, risk_profile_pb2

R = recordation_pb2
D = detention_pb2
P = risk_profile_pb2

T0 = 1_790_000_000  # 2026-09-21T14:13:20Z


def recordation(*, received: bool = False) -> R.Recordation:
    r = R.Recordation(
        name="recordations/acme-2026",
        holder=R.RightsHolder(
            name="Acme Sports B.V.",
            eori="NL123456789",
            country="NL",
            address="Stadionweg 1, Amsterdam",
            contact=R.ContactPoint(name="Brand protection", email="bp@acme.example"),
        ),
        rights=[
            R.IntellectualPropertyRight(
                type=R.RIGHT_TYPE_TRADE_MARK,
                name="ACME",
                registration_number="018123456",
                office="EUIPO",
            )
        ],
        goods=[
            R.CoveredGoods(
                description="running shoes, model Sprint",
                hs_codes=["640411"],
                gtins=["4006381333931"],
                right_names=["ACME"],
            )
        ],
        authenticity_features=[R.AuthenticityFeature(description="hologram on the inner tongue")],
        supply_chain=R.GenuineSupplyChain(
            manufacturers=[R.SupplyChainParty(name="Acme Vietnam Ltd", country="VN")],
            usual_routes=[
                R.SupplyRoute(origin_country="VN", destination_country="NL", description="sea")
            ],
        ),
        agencies=[R.RecordationAgency(agency_id="de-customs", treaty_id="ipr-enforcement")],
        internal_notes="holder was slow to answer in 2025",
        state=R.RECORDATION_STATE_GRANTED,
        handling=1,
        tlp=3,
        origin_agency="nl-customs",
        direction=R.RECORDATION_DIRECTION_ISSUED,
        revision=1,
    )
    r.grant_time.FromSeconds(T0)
    r.expire_time.FromSeconds(T0 + 300 * 86_400)
    r.create_time.FromSeconds(T0)
    r.update_time.FromSeconds(T0)
    if received:
        r.direction = R.RECORDATION_DIRECTION_RECEIVED
        r.ClearField("internal_notes")
    return r


def _goods() -> list[D.DetainedGoods]:
    g = D.DetainedGoods(
        description="sports shoes bearing the sign ACME",
        hs_code="640411",
        gtins=["4006381333931"],
        brand="ACME",
        quantity=1200,
        unit=D.QUANTITY_UNIT_PAIR,
        category=D.GOODS_CATEGORY_SHOES,
    )
    g.estimated_value.currency_code = "EUR"
    g.estimated_value.units = 96_000
    g.estimated_value.nanos = 500_000_000
    return [g]


def _transport() -> D.DetentionTransport:
    return D.DetentionTransport(
        mode=D.TRANSPORT_MODE_SEA,
        container_number="CSQU3054383",
        seal_number="S123",
        bill_of_lading="MEDU1234567",
        vessel_name="MSC Oscar",
        vessel_imo="9703291",
    )


def _parties() -> D.DetentionParties:
    return D.DetentionParties(
        consignor=D.DetentionParty(name="Shenzhen Trading Co", country="CN"),
        consignee=D.DetentionParty(name="J. Jansen", address="Dorpsstraat 1", country="NL"),
    )


def detention() -> D.Detention:
    d = D.Detention(
        name="detentions/det-1",
        goods=_goods(),
        transport=_transport(),
        parties=_parties(),
        origin_country="CN",
        destination_country="NL",
        procedure=D.DETENTION_PROCEDURE_STANDARD,
        recordations=["recordations/acme-2026"],
        state=D.DETENTION_STATE_HOLDER_NOTIFIED,
        deadlines=[
            D.DetentionDeadline(
                kind=D.DEADLINE_KIND_HOLDER_ANSWER,
                last_day="2026-10-05",
                working_days=10,
                state=D.DEADLINE_STATE_OPEN,
                country="NL",
                time_zone="Europe/Amsterdam",
            )
        ],
        history=[D.DetentionMove(state=D.DETENTION_STATE_DETAINED, officer="officer-jan")],
        customs_office="NL000396",
        internal_notes="tip from the port authority",
        detaining_agency="nl-customs",
        revision=2,
    )
    d.detain_time.FromSeconds(T0)
    d.create_time.FromSeconds(T0)
    d.update_time.FromSeconds(T0 + 3600)
    return d


def detention_report(*, received: bool = False) -> D.DetentionReport:
    r = D.DetentionReport(
        name="detentionReports/rep-1",
        detention="detentions/det-1",
        reporting_agency="nl-customs",
        procedure=D.DETENTION_PROCEDURE_STANDARD,
        state=D.DETENTION_STATE_DESTROYED,
        goods=_goods(),
        transport=_transport(),
        origin_country="CN",
        destination_country="NL",
        rights=[R.IntellectualPropertyRight(type=R.RIGHT_TYPE_TRADE_MARK, name="ACME")],
        recordations=[
            D.RecordationReference(agency_id="nl-customs", recordation="recordations/acme-2026")
        ],
        summary="Fake ACME shoes declared as sports articles.",
        handling=2,
        tlp=3,
    )
    r.detain_time.FromSeconds(T0)
    r.create_time.FromSeconds(T0 + 7200)
    if received:
        r.treaty_id = "ipr-enforcement"
        r.linked_recordations.append("recordations/acme-2026")
    return r


CRITERIA = {
    "all_of": [
        {"hs_prefix": ["3004"]},
        {"origin_country": ["CN", "IN"]},
        {"any_of": [{"loading_port": ["INNSA"]}, {"value_per_kg_below": 2.5}]},
        {"consignee": ["eori:NL123456789", "company:O'BRIEN PHARMA"]},
    ]
}


def risk_profile(*, received: bool = False, criteria: dict | None = CRITERIA) -> P.RiskProfile:
    p = P.RiskProfile(
        name="riskProfiles/rp-1",
        title="Counterfeit medicines from IN via INNSA",
        rationale="Seizures in 2026 of falsified anticoagulants.",
        action=P.RISK_ACTION_PHYSICAL_INSPECTION,
        handling=2,
        tlp=3,
        categories=["suspect_shipment"],
        origin_agency="nl-customs",
        direction=P.RISK_PROFILE_DIRECTION_ISSUED,
        state=P.RISK_PROFILE_STATE_ACTIVE,
        treaty_id="customs-mutual-assistance",
        revision=1,
    )
    if criteria is not None:
        s = Struct()
        s.update(criteria)
        p.criteria.CopyFrom(s)
    p.create_time.FromSeconds(T0)
    p.update_time.FromSeconds(T0)
    p.end_time.FromSeconds(T0 + 90 * 86_400)
    if received:
        p.direction = P.RISK_PROFILE_DIRECTION_RECEIVED
        p.origin_agency = "de-customs"
    return p
