"""STIX 2.1 and MISP import: drafts, what mapped, what was skipped and why, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intelshare.errors import Malformed
from intelshare.interop import ExportContext, draft_from_misp, draft_from_stix, export_alerts
from intelshare.v1 import alert_pb2

from .samples import issued_alert

DATA = Path(__file__).parent / "data"


def _skipped(draft: object) -> dict[str, str]:
    return {s.source: s.reason for s in draft.skipped}  # type: ignore[attr-defined]


def test_our_own_export_comes_back_as_the_same_content() -> None:
    original = issued_alert()
    text = export_alerts([original], ExportContext(holder_agency="nl-customs")).serialize()
    draft = draft_from_stix(text)
    a = draft.alert
    assert a.kind == original.kind
    assert a.urgency == original.urgency
    assert a.description == original.description
    assert a.handling == original.handling
    assert a.tlp == original.tlp
    assert a.evaluation == original.evaluation
    assert list(a.categories) == list(original.categories)
    assert a.subjects == original.subjects
    # Nothing that would send it: no recipients, no name, no expiry.
    assert not a.recipients
    assert not a.name
    assert not a.HasField("expire_time")
    assert draft.missing == ["recipients", "expiry"]
    # The issuing agency's identity is reported, not turned into a company.
    assert any("your agency issues the draft" in r for r in _skipped(draft).values())
    mapped_targets = {m.target for m in draft.mapped}
    assert {"subjects.persons[0]", "subjects.vessels[0]", "subjects.documents[0]"} <= mapped_targets


def test_a_foreign_report_maps_what_it_can_and_says_why_not_the_rest() -> None:
    draft = draft_from_stix((DATA / "opencti_report.json").read_bytes())
    a = draft.alert
    assert a.description.startswith("Reefer containers of bananas")
    assert a.tlp == 3  # TLP 1.0 AMBER read as AMBER
    assert list(a.categories) == ["narcotics"]
    assert [p.name for p in a.subjects.persons] == ["Pieter Bakker"]
    assert a.subjects.persons[0].role == "driver"
    assert [c.name for c in a.subjects.companies] == ["Fresh Fruit Logistics BV"]
    assert a.subjects.companies[0].address == "Waalhaven 12, 3089 Rotterdam"
    skipped = _skipped(draft)
    assert (
        "relationships are not carried"
        in skipped["relationship--0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"]
    )
    assert "indicators" in skipped["indicator--11223344-5566-4778-899a-abbccddeeff0"]
    assert (
        "places are not alert subjects" in skipped["location--3c2b1a09-8f7e-4d6c-9b5a-493827160504"]
    )
    assert "identity_class 'class'" in skipped["identity--55555555-6666-4777-8888-999999999999"]
    assert (
        "not one of the report's objects"
        in skipped["malware--abcdefab-cdef-4abc-8def-abcdefabcdef"]
    )
    assert "not valid STIX 2.1" in skipped["identity--broken"]
    assert (
        "your agency issues the draft" in skipped["identity--7b8d6f4e-2d1a-4c6e-9f3b-1a2b3c4d5e6f"]
    )
    assert (
        "not a data category"
        in skipped["report--a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d label 'Banana Route'"]
    )
    assert draft.missing == ["kind", "recipients", "expiry"]
    # Every object of the bundle is accounted for, once.
    sources = [
        m.source for m in draft.mapped if m.source.count(" ") == 0 and m.target != "description"
    ]
    ids = {o["id"] for o in json.loads((DATA / "opencti_report.json").read_text())["objects"]}
    accounted = (
        {s.split(" ")[0] for s in _skipped(draft)}
        | set(sources)
        | {"report--a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"}
    )
    assert ids <= accounted


def test_a_misp_event_becomes_a_draft() -> None:
    draft = draft_from_misp((DATA / "misp_event.json").read_bytes())
    a = draft.alert
    assert a.description.startswith("Counterfeit perfume seized at Antwerp")
    assert a.description.endswith("Perfume bottles with copied batch codes, 4 pallets.")
    assert a.urgency == alert_pb2.URGENCY_HIGH
    assert a.tlp == 3
    assert a.evaluation.source_reliability == alert_pb2.SOURCE_RELIABILITY_A
    assert a.evaluation.information_credibility == 0  # admiralty 3 has no equal
    marie = a.subjects.persons[0]
    assert (marie.name, marie.date_of_birth, marie.nationality, marie.passport_number) == (
        "Marie Dubois",
        "1975-06-14",
        "FR",
        "19FR12345",
    )
    assert marie.role == "suspect"
    assert a.subjects.persons[1].name == "Ahmed Haddad"
    assert a.subjects.persons[1].nationality == ""
    assert a.subjects.companies[0].registration_number == "0456.789.123"
    assert a.subjects.vehicles[0].plate == "1-ABC-234"
    assert a.subjects.vehicles[0].colour == "white"
    assert len(a.subjects.vehicles) == 1
    assert (a.subjects.documents[0].type, a.subjects.documents[0].number) == (
        "passport",
        "XK7654321",
    )
    skipped = _skipped(draft)
    assert (
        "ISO 3166-1"
        in skipped["MISP object person b2b2b2b2-0000-4000-8000-000000000002 nationality"]
    )
    assert "ip-src" in skipped["MISP attribute ip-src a1a1a1a1-0000-4000-8000-000000000003"]
    assert (
        "license-plate-number or a vin"
        in skipped["MISP object vehicle b2b2b2b2-0000-4000-8000-000000000005"]
    )
    assert "domain-ip" in skipped["MISP object domain-ip b2b2b2b2-0000-4000-8000-000000000006"]
    assert (
        "admiralty grade has no equal" in skipped['tag admiralty-scale:information-credibility="3"']
    )
    assert "no alert field for this tag" in skipped["tag PAP:GREEN"]
    assert draft.missing == ["kind", "recipients", "expiry"]
    summary = draft.to_dict()
    assert summary["source_format"] == "misp"
    assert summary["draft"]["subjects"]["persons"][0]["name"] == "Marie Dubois"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"\x00not json", "is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "report"}', "not a STIX bundle"),
        (b'{"type": "bundle", "objects": {}}', "'objects' must be a list"),
        (b'{"type": "bundle", "spec_version": "2.0", "objects": []}', "only STIX 2.1 is read"),
        (b'{"type": "bundle", "objects": []}', "no report and no object"),
    ],
)
def test_malformed_stix_is_a_clear_error(text: bytes, message: str) -> None:
    with pytest.raises(Malformed, match=message):
        draft_from_stix(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"{", "is not JSON"),
        (b'{"Event": []}', "not a MISP event"),
        (b'{"response": []}', "not a MISP event"),
    ],
)
def test_malformed_misp_is_a_clear_error(text: bytes, message: str) -> None:
    with pytest.raises(Malformed, match=message):
        draft_from_misp(text)


def test_too_many_subjects_are_skipped_with_the_limit() -> None:
    event = {
        "Event": {
            "info": "many",
            "Attribute": [
                {"type": "passport-number", "value": f"P{n:07d}", "uuid": str(n)}
                for n in range(105)
            ],
        }
    }
    draft = draft_from_misp(event)
    assert len(draft.alert.subjects.documents) == 100
    assert sum("at most 100 documents" in s.reason for s in draft.skipped) == 5
