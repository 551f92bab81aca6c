"""Shared pieces of the IPR tests: a federation whose customs treaty carries IPR records.

The customs treaty of the node tests gains the kinds ``recordation`` and
``detention_report`` with allow-lists: partners receive a recordation's
goods, features, contact and validity (never internal notes, which the
node keeps back whatever a treaty says, and here the list does not name
them either), and a report without the parties.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from intelshare import devfed
from intelshare.v1 import detention_pb2, envelope_pb2, recordation_pb2
from node.cli.ipr_client import IprClient
from node.storage.officers import OfficerRegistry
from tests.node.conftest import AGENCIES, CUSTOMS, RunningNode, treaties

ACME_EORI = "NL123456789"
ACME_KEY = f"eori:{ACME_EORI}"
OTHER_KEY = "eori:DE987654321"
ACME_GTIN = "4006381333931"

RECORDATION_FIELDS = [
    "name",
    "holder",
    "rights",
    "goods",
    "authenticity_features",
    "supply_chain",
    "grant_time",
    "expire_time",
    "extensions",
    "agencies",
    "state",
    "history",
    "handling",
    "tlp",
    "origin_agency",
]
REPORT_FIELDS = [
    "detention",
    "reporting_agency",
    "detain_time",
    "procedure",
    "state",
    "goods",
    "transport",
    "origin_country",
    "destination_country",
    "rights",
    "recordations",
    "summary",
    "handling",
    "tlp",
]


def ipr_treaties() -> list[dict[str, Any]]:
    data = treaties()
    customs = next(d for d in data if d["id"] == CUSTOMS)
    customs["kinds"] = [*customs["kinds"], "recordation", "detention_report"]
    customs["fields"]["recordation"] = list(RECORDATION_FIELDS)
    customs["fields"]["detention_report"] = list(REPORT_FIELDS)
    return data


def ipr_fed(tmp_path: Path) -> devfed.LocalFederation:
    return devfed.build(tmp_path / "fed", AGENCIES, ipr_treaties())


def ts(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def client(node: RunningNode, role: str = "liaison", token: str | None = None) -> IprClient:
    return IprClient(
        node.target,
        ca_pem=node.ca_pem,
        server_name=node.agency,
        token=token or node.tokens[role],
    )


def holder_token(node: RunningNode, key: str = ACME_KEY, name: str = "") -> str:
    registry = OfficerRegistry(node.node.store.engine)
    return registry.add(name or f"brand protection {key}", "rights_holder", key)[1]


def acme(
    *,
    eori: str = ACME_EORI,
    gtin: str = ACME_GTIN,
    mark: str = "ACME",
    agencies: list[tuple[str, str]] | None = None,
    grant: datetime | None = None,
) -> recordation_pb2.Recordation:
    """The walk-through's recordation: ACME running shoes, valid for a year from yesterday."""
    start = grant or datetime.now(UTC) - timedelta(days=1)
    r = recordation_pb2.Recordation(
        holder=recordation_pb2.RightsHolder(
            name="Acme Sports B.V.",
            eori=eori,
            country=eori[:2],
            contact=recordation_pb2.ContactPoint(
                name="Brand protection", email="ip@acme.example", telephone="+31 20 123 4567"
            ),
        ),
        rights=[
            recordation_pb2.IntellectualPropertyRight(
                type=recordation_pb2.RIGHT_TYPE_TRADE_MARK,
                name=mark,
                registration_number="018123456",
                office="EUIPO",
            )
        ],
        goods=[
            recordation_pb2.CoveredGoods(
                description="running shoes, model Sprint",
                hs_codes=["640411"],
                gtins=[gtin],
                right_names=[mark],
            )
        ],
        authenticity_features=[
            recordation_pb2.AuthenticityFeature(
                description="hologram inside the tongue, green to blue when tilted"
            )
        ],
        grant_time=ts(start),
        expire_time=ts(start + timedelta(days=300)),
        internal_notes="holder answered slowly in 2025",
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
    )
    for agency, treaty in agencies if agencies is not None else [("de-customs", CUSTOMS)]:
        r.agencies.add(agency_id=agency, treaty_id=treaty)
    return r


def shoes(
    *recordations: str,
    gtin: str = ACME_GTIN,
    container: str = "CSQU3054383",
    procedure: int = detention_pb2.DETENTION_PROCEDURE_STANDARD,
    quantity: int = 1200,
    perishable: bool = False,
    category: int = detention_pb2.GOODS_CATEGORY_SHOES,
) -> detention_pb2.Detention:
    """A container of fake ACME shoes detained at Hamburg."""
    d = detention_pb2.Detention(
        goods=[
            detention_pb2.DetainedGoods(
                description="sports shoes bearing the sign ACME",
                hs_code="6404110090",
                gtins=[gtin],
                brand="ACME",
                quantity=quantity,
                unit=detention_pb2.QUANTITY_UNIT_PAIR,
                estimated_value=detention_pb2.MonetaryValue(currency_code="EUR", units=96_000),
                category=category,  # type: ignore[arg-type]
            )
        ],
        transport=detention_pb2.DetentionTransport(
            mode=detention_pb2.TRANSPORT_MODE_SEA,
            container_number=container,
            vessel_name="Ever Given",
            vessel_imo="9811000",
        ),
        parties=detention_pb2.DetentionParties(
            consignee=detention_pb2.DetentionParty(name="Schuh Import GmbH", country="DE"),
            declarant=detention_pb2.DetentionParty(name="Hans Muster", country="DE"),
        ),
        origin_country="CN",
        destination_country="NL",
        procedure=procedure,  # type: ignore[arg-type]
        perishable=perishable,
        customs_office="DE004850",
        internal_notes="tip from the port's risk unit",
    )
    d.recordations.extend(recordations)
    return d
