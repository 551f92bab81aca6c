"""Alerts as a node returns them, for the interop tests."""

from __future__ import annotations

from intelshare.v1 import alert_pb2

ISSUED_NAME = "alerts/0193a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b"
RECEIVED_NAME = "alerts/0193a1b2-c3d4-7e5f-9a6b-aaaaaaaaaaaa"


def issued_alert() -> alert_pb2.Alert:
    """A counterfeit-medicines alert nl-customs issued, every subject list filled."""
    a = alert_pb2.Alert(
        name=ISSUED_NAME,
        kind=alert_pb2.ALERT_KIND_COUNTERFEIT_GOODS,
        urgency=alert_pb2.URGENCY_HIGH,
        description="Container of counterfeit anticoagulants expected at Rotterdam.",
        handling=2,  # H1
        tlp=3,  # AMBER
        treaty_id="benelux-customs",
        origin_agency="nl-customs",
        direction=alert_pb2.ALERT_DIRECTION_ISSUED,
        state=alert_pb2.ALERT_STATE_ACTIVE,
        revision=1,
        categories=["counterfeit_goods"],
        evaluation=alert_pb2.Evaluation(
            source_reliability=alert_pb2.SOURCE_RELIABILITY_B,
            information_credibility=alert_pb2.INFORMATION_CREDIBILITY_2,
        ),
    )
    a.create_time.FromSeconds(1_790_000_000)
    a.update_time.FromSeconds(1_790_000_000)
    a.expire_time.FromSeconds(1_790_604_800)
    s = a.subjects
    s.persons.add(
        name="Jan de Vries",
        date_of_birth="1980-02-29",
        nationality="NL",
        passport_number="NX1234567",
        role="consignee",
    )
    s.companies.add(
        name="Pharma Trading BV",
        country="BE",
        vat_number="BE0123456789",
        registration_number="0123.456.789",
        address="Kaai 1, 2000 Antwerpen",
        role="consignee",
    )
    s.containers.add(
        number="MSCU1234566",
        bill_of_lading="MEDU1234567",
        hs_codes=["300490", "300410"],
        seal_number="SL-998",
        description="Blister packs labelled as a prescription anticoagulant",
    )
    s.vehicles.add(plate="AB-12-CD", registration_country="NL", make="DAF", model="XF")
    s.vessels.add(name="MSC Anna", imo_number="9074729", mmsi="356789000", flag="PA")
    s.documents.add(type="bill_of_lading", number="MEDU1234567", issuing_country="AE")
    return a


def received_alert() -> alert_pb2.Alert:
    """The same alert as de-customs' node received it from nl-customs (name redacted)."""
    a = issued_alert()
    a.name = RECEIVED_NAME
    a.direction = alert_pb2.ALERT_DIRECTION_RECEIVED
    a.received.treaty_version = 3
    a.received.message_id = RECEIVED_NAME.removeprefix("alerts/")
    a.subjects.persons[0].ClearField("name")  # the treaty removed it
    return a
