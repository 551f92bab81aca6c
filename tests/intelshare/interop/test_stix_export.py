"""STIX 2.1 export: valid bundles (stix2-validator), deterministic ids, markings, extension."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stix2validator import ValidationOptions, validate_string

from intelshare.errors import InvalidArgument
from intelshare.interop import ExportContext, alert_objects, export_alerts
from intelshare.interop import extension as ext
from intelshare.interop.markings import TLP2_IDS
from intelshare.v1 import alert_pb2

from .conftest import objects_of, validate
from .samples import ISSUED_NAME, issued_alert, received_alert

REPO = Path(__file__).resolve().parents[3]
CTX = ExportContext(holder_agency="nl-customs")


def _export(*alerts: alert_pb2.Alert, ctx: ExportContext = CTX) -> str:
    return str(export_alerts(alerts, ctx).serialize(pretty=True))


def test_issued_alert_bundle_is_valid_with_no_warning() -> None:
    errors, warnings = validate(_export(issued_alert()))
    assert errors == []
    assert warnings == []


def test_the_only_recommendation_departed_from_is_uuid4_ids() -> None:
    # With every check on, what remains is check 103 on the ids we derive on purpose.
    out = _export(issued_alert(), received_alert())
    result = validate_string(out, ValidationOptions(version="2.1"))
    assert result.errors == []
    assert result.warnings
    assert all("{103}" in str(w) for w in result.warnings)
    fixed = {ext.EXTENSION_ID, ext.PUBLISHER_ID, *TLP2_IDS.values()}
    assert not any(i in str(w) for w in result.warnings for i in fixed)


def test_objects_and_mapping_of_every_subject_list() -> None:
    objs = {o["type"]: o for o in objects_of(_export(issued_alert()))}
    report = objs["report"]
    assert report["description"].startswith("Container of counterfeit")
    assert report["labels"] == ["counterfeit_goods"]
    props = report["extensions"][ext.EXTENSION_ID]
    assert props["extension_type"] == "property-extension"
    assert props["handling"] == "H1"
    assert props["alert_kind"] == "counterfeit_goods"
    assert props["source_reliability"] == "B"
    assert props["information_credibility"] == 2
    assert props["expire_time"] == "2026-09-28T14:13:20Z"
    assert report["object_marking_refs"] == [TLP2_IDS["AMBER"]]
    assert report["external_references"] == [
        {"source_name": "intelshare", "external_id": ISSUED_NAME}
    ]
    by_type = {}
    for o in objects_of(_export(issued_alert())):
        by_type.setdefault(o["type"], []).append(o)
    persons = [i for i in by_type["identity"] if i["identity_class"] == "individual"]
    assert persons[0]["name"] == "Jan de Vries"
    assert persons[0]["roles"] == ["consignee"]
    assert persons[0]["extensions"][ext.EXTENSION_ID]["passport_number"] == "NX1234567"
    company = next(i for i in by_type["identity"] if i["name"] == "Pharma Trading BV")
    assert company["contact_information"] == "Kaai 1, 2000 Antwerpen"
    assert company["extensions"][ext.EXTENSION_ID]["vat_number"] == "BE0123456789"
    assert by_type["intelshare-container"][0]["hs_codes"] == ["300490", "300410"]
    assert by_type["intelshare-vessel"][0]["imo_number"] == "9074729"
    assert by_type["intelshare-document"][0]["document_type"] == "bill_of_lading"
    assert by_type["intelshare-vehicle"][0]["extensions"] == {
        ext.EXTENSION_ID: {"extension_type": "new-sdo"}
    }
    subject_ids = {o["id"] for t, os_ in by_type.items() for o in os_ if t != "report"}
    assert set(report["object_refs"]) <= subject_ids
    assert len(report["object_refs"]) == 6
    # No deprecated x_ custom property anywhere.
    text = _export(issued_alert())
    assert '"x_' not in text
    # The TLP 2.0 marking is the published object.
    tlp = next(o for o in objects_of(text) if o["id"] == TLP2_IDS["AMBER"])
    assert tlp["name"] == "TLP:AMBER"
    assert tlp["created"] == "2022-10-01T00:00:00.000Z"


def test_ids_are_deterministic_and_an_update_keeps_them() -> None:
    first = objects_of(_export(issued_alert()))
    again = objects_of(_export(issued_alert()))
    assert first == again
    updated = issued_alert()
    updated.revision = 2
    updated.update_time.FromSeconds(1_790_000_600)
    updated.description = "Now expected at Antwerp instead."
    later = objects_of(_export(updated))
    assert [o["id"] for o in later] == [o["id"] for o in first]
    report = next(o for o in later if o["type"] == "report")
    assert report["modified"] == "2026-09-21T14:23:20.000Z"
    assert report["created"] == "2026-09-21T14:13:20.000Z"


def test_received_alert_states_the_treaty_onward_rule() -> None:
    ctx = ExportContext(holder_agency="de-customs", onward_rules={"benelux-customs": "forbidden"})
    out = _export(received_alert(), ctx=ctx)
    assert validate(out) == ([], [])
    objs = objects_of(out)
    statement = next(o for o in objs if o.get("definition_type") == "statement")
    text = statement["definition"]["statement"]
    assert "Received by de-customs from nl-customs under treaty benelux-customs version 3" in text
    assert "must not be passed to anyone outside de-customs" in text
    report = next(o for o in objs if o["type"] == "report")
    assert statement["id"] in report["object_marking_refs"]
    assert report["created_by_ref"] == next(
        o["id"] for o in objs if o["type"] == "identity" and o["name"] == "nl-customs"
    )
    person = next(o for o in objs if o.get("identity_class") == "individual")
    assert statement["id"] in person["object_marking_refs"]
    assert "name not shared" in person["name"]


def test_received_alert_without_the_treaty_says_to_treat_it_as_forbidden() -> None:
    out = _export(received_alert(), ctx=ExportContext(holder_agency="de-customs"))
    statement = next(o for o in objects_of(out) if o.get("definition_type") == "statement")
    assert "treat it as forbidden" in statement["definition"]["statement"]


def test_revoked_alert_is_revoked_in_stix() -> None:
    a = issued_alert()
    a.state = alert_pb2.ALERT_STATE_REVOKED
    out = _export(a)
    assert validate(out) == ([], [])
    assert all(o.get("revoked") for o in objects_of(out) if o["type"] == "report")


def test_alert_without_subjects_refers_to_its_issuer() -> None:
    a = issued_alert()
    a.ClearField("subjects")
    out = _export(a)
    assert validate(out) == ([], [])
    report = next(o for o in objects_of(out) if o["type"] == "report")
    assert report["object_refs"] == [report["created_by_ref"]]


def test_unstored_alert_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="only a stored record"):
        alert_objects(alert_pb2.Alert(description="draft"), CTX)


def test_shared_objects_appear_once_in_a_bundle_of_many() -> None:
    alerts = []
    for n in range(3):
        a = issued_alert()
        a.name = f"{ISSUED_NAME[:-1]}{n}"
        alerts.append(a)
    ids = [o["id"] for o in objects_of(_export(*alerts))]
    assert len(ids) == len(set(ids))
    assert sum(1 for i in ids if i.startswith("report--")) == 3


def test_extension_properties_follow_the_published_schema() -> None:
    schema = json.loads((REPO / "docs/stix" / ext.SCHEMA_FILE).read_text())
    defs = schema["$defs"]
    for o in objects_of(_export(issued_alert(), received_alert())):
        props = (o.get("extensions") or {}).get(ext.EXTENSION_ID)
        if props is None:
            continue
        if o["type"] == "report":
            jsonschema.validate(props, {**defs["report-properties"], "$defs": defs})
        elif o["type"] == "identity":
            key = f"identity-{o['identity_class']}-properties"
            jsonschema.validate(props, {**defs[key], "$defs": defs})
        else:
            jsonschema.validate(o, {**defs[o["type"]], "$defs": defs})


def test_published_extension_files_are_current() -> None:
    for name, text in ext.published_files().items():
        shipped = (REPO / "docs/stix" / name).read_text()
        assert shipped == text, (
            f"docs/stix/{name} is stale: python -m intelshare.interop.publish docs/stix"
        )
    errors, warnings = validate(ext.published_files()[ext.DEFINITION_FILE])
    assert (errors, warnings) == ([], [])


# --- hypothesis: any alert a node could return exports to a valid bundle ----------------

_text = st.text(max_size=40)
_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).map(
    lambda s: "c" + s
)


def _subject(message: type, fields: dict[str, st.SearchStrategy[object]]) -> st.SearchStrategy:
    return st.builds(lambda kw: message(**kw), st.fixed_dictionaries({}, optional=fields))


_subjects = st.builds(
    lambda p, v, c, s, co, d: alert_pb2.Subjects(
        persons=p, vehicles=v, containers=c, vessels=s, companies=co, documents=d
    ),
    st.lists(
        _subject(
            alert_pb2.Person,
            {
                "name": _text,
                "date_of_birth": _text,
                "nationality": _text,
                "passport_number": _text,
                "id_card_number": _text,
                "role": _text,
            },
        ),
        max_size=3,
    ),
    st.lists(
        _subject(alert_pb2.Vehicle, {"plate": _text, "vin": _text, "colour": _text}), max_size=2
    ),
    st.lists(
        _subject(alert_pb2.Container, {"number": _text, "hs_codes": st.lists(_text, max_size=3)}),
        max_size=2,
    ),
    st.lists(_subject(alert_pb2.Vessel, {"name": _text, "imo_number": _text}), max_size=2),
    st.lists(
        _subject(alert_pb2.Company, {"name": _text, "address": _text, "role": _text}), max_size=2
    ),
    st.lists(_subject(alert_pb2.Document, {"type": _text, "number": _text}), max_size=2),
)


@st.composite
def alerts(draw: st.DrawFn) -> alert_pb2.Alert:
    a = alert_pb2.Alert(
        name="alerts/" + draw(st.uuids()).hex,
        kind=draw(st.integers(0, 9)),
        urgency=draw(st.integers(0, 4)),
        description=draw(_text),
        handling=draw(st.integers(0, 4)),
        tlp=draw(st.integers(0, 5)),
        treaty_id=draw(st.sampled_from(["", "benelux-customs", "eu-police"])),
        origin_agency=draw(st.sampled_from(["", "nl-customs", "de-customs"])),
        direction=draw(st.integers(0, 2)),
        state=draw(st.integers(0, 3)),
        revision=draw(st.integers(0, 50)),
        categories=draw(st.lists(_words, max_size=3)),
        subjects=draw(_subjects),
    )
    a.evaluation.source_reliability = draw(st.integers(0, 4))
    a.evaluation.information_credibility = draw(st.integers(0, 4))
    created = draw(st.integers(1_600_000_000, 2_000_000_000))
    a.create_time.FromMilliseconds(created * 1000 + draw(st.integers(0, 999)))
    if draw(st.booleans()):
        a.update_time.FromMilliseconds((created + draw(st.integers(-100, 10_000))) * 1000)
    if draw(st.booleans()):
        a.expire_time.FromSeconds(created + draw(st.integers(1, 10_000_000)))
    a.received.treaty_version = draw(st.integers(0, 5))
    return a


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(alerts(), st.sampled_from(["forbidden", "within_treaty", "with_originator_consent", None]))
def test_any_alert_exports_to_a_valid_bundle(alert: alert_pb2.Alert, rule: str | None) -> None:
    rules = {"benelux-customs": rule} if rule else {}
    out = _export(alert, ctx=ExportContext(holder_agency="be-police", onward_rules=rules))
    errors, warnings = validate(out)
    assert errors == []
    assert warnings == []
    again = _export(alert, ctx=ExportContext(holder_agency="be-police", onward_rules=rules))
    assert objects_of(again) == objects_of(out)
