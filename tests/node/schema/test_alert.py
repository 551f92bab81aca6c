"""Alert records: the JSON that crosses agencies, its redaction and validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intelshare.errors import InvalidArgument, Malformed
from intelshare.treaty import Treaty, check_fields, redact
from intelshare.v1 import alert_pb2
from node.schema import alert as rec
from tests.node.conftest import demo_alert, treaties

NOW = datetime.now(UTC)


def treaty(treaty_id: str) -> Treaty:
    return next(Treaty.from_mapping(t) for t in treaties() if t["id"] == treaty_id)


def test_identifier_check_digits() -> None:
    assert rec.container_check_digit("MSCU123456") == 6  # the demo's MSCU1234566
    assert rec.container_check_digit("CSQU305438") == 3  # ISO 6346's own example
    assert rec.imo_check_ok("9074729")
    assert not rec.imo_check_ok("9074728")


def test_record_round_trip_and_names_match_treaty_paths() -> None:
    alert = demo_alert()
    alert.subjects.vehicles.add(
        plate="AB-123-C", registration_country="NL", vin="WVWZZZ1JZXW000001"
    )
    alert.subjects.vessels.add(name="Maersk Example", imo_number="9074729", flag="DK")
    alert.subjects.documents.add(type="bill_of_lading", number="MEDU1234567", issuing_country="NL")
    record = rec.alert_to_record(alert)
    assert record["subjects"]["persons"][0]["passport_number"] == "NX1234567"
    assert record["subjects"]["containers"][0]["hs_codes"] == ["300490"]
    assert record["handling"] == "H1"
    assert record["tlp"] == "AMBER"
    assert record["evaluation"] == {"source_reliability": "B", "information_credibility": 2}
    assert record["expires_at"].endswith("Z")
    back = rec.record_to_alert(record)
    assert rec.alert_to_record(back) == record
    assert "subjects.persons.passport_number" in rec.field_paths(record)
    assert "subjects.containers.hs_codes" in rec.field_paths(record)


def test_redaction_per_demo_treaty() -> None:
    record = rec.alert_to_record(demo_alert())
    customs = redact(record, treaty("customs-mutual-assistance"), "alert")
    taskforce = redact(record, treaty("counterfeit-medicines-taskforce"), "alert")
    assert customs["subjects"]["persons"] == [
        {
            "name": "Jan Jansen",
            "date_of_birth": "1980-02-29",
            "nationality": "NL",
            "passport_number": "NX1234567",
        }
    ]
    assert taskforce["subjects"]["persons"] == [{"name": "Jan Jansen", "nationality": "NL"}]
    assert taskforce["subjects"]["containers"] == record["subjects"]["containers"]
    # What was redacted passes the receiving node's check; the full record does not.
    assert check_fields(taskforce, treaty("counterfeit-medicines-taskforce"), "alert")
    refused = check_fields(record, treaty("counterfeit-medicines-taskforce"), "alert")
    assert refused.reason == "FIELD_NOT_PERMITTED"
    # A redacted record still parses as an alert, with the removed fields unset.
    seen = rec.record_to_alert(taskforce)
    assert seen.subjects.persons[0].passport_number == ""


def test_malformed_records_are_refused_with_every_problem() -> None:
    with pytest.raises(Malformed) as exc:
        rec.record_to_alert(
            {
                "kind": "dragons",
                "colour": "red",
                "subjects": {"persons": [{"name": 3, "shoe_size": "44"}], "aliens": []},
                "evaluation": {"source_reliability": "Z"},
                "expires_at": "tomorrow",
            }
        )
    assert set(exc.value.violations) >= {
        "kind",
        "colour",
        "subjects.persons[0].name",
        "subjects.persons[0].shoe_size",
        "subjects.aliens",
        "evaluation.source_reliability",
        "expires_at",
    }
    with pytest.raises(Malformed):
        rec.record_to_alert([])  # type: ignore[arg-type]


def test_validation_of_new_alerts() -> None:
    rec.validate_new_alert(demo_alert(), own_agency="nl-customs", now=NOW, max_days=366)
    bad = demo_alert(expire_time=rec.ms_to_ts(int((NOW + timedelta(days=400)).timestamp() * 1000)))
    bad.subjects.persons[0].nationality = "Dutch"
    bad.subjects.persons[0].name = " padded "
    bad.subjects.vehicles.add(registration_country="NL")
    bad.subjects.containers[0].hs_codes.append("3004.90")
    bad.subjects.documents.add(type="Bill of Lading")
    bad.categories.extend(["Counterfeit", "narcotics", "narcotics"])
    with pytest.raises(InvalidArgument) as exc:
        rec.validate_new_alert(bad, own_agency="nl-customs", now=NOW, max_days=366)
    assert set(exc.value.violations) == {
        "alert.expire_time",
        "alert.subjects.persons[0].nationality",
        "alert.subjects.persons[0].name",
        "alert.subjects.vehicles[0]",
        "alert.subjects.containers[0].hs_codes[1]",
        "alert.subjects.documents[0].type",
        "alert.subjects.documents[0].number",
        "alert.categories[0]",
        "alert.categories[2]",
    }
    other = demo_alert(kind=alert_pb2.ALERT_KIND_OTHER)
    with pytest.raises(InvalidArgument) as exc:
        rec.validate_new_alert(other, own_agency="nl-customs", now=NOW, max_days=366)
    assert set(exc.value.violations) == {"alert.categories"}
    unborn = demo_alert()
    unborn.subjects.persons[0].date_of_birth = (NOW + timedelta(days=2)).date().isoformat()
    with pytest.raises(InvalidArgument) as exc:
        rec.validate_new_alert(unborn, own_agency="nl-customs", now=NOW, max_days=366)
    assert set(exc.value.violations) == {"alert.subjects.persons[0].date_of_birth"}


def test_update_validation_checks_only_the_masked_fields() -> None:
    alert = alert_pb2.Alert(description="")
    v: dict[str, str] = {}
    rec.validate_content(v, alert, now=NOW, max_days=366, paths=frozenset({"urgency"}))
    assert v == {}
    rec.validate_content(v, alert, now=NOW, max_days=366, paths=frozenset({"description"}))
    assert set(v) == {"alert.description"}


def test_default_categories() -> None:
    assert rec.categories_of(demo_alert()) == ["counterfeit_goods"]
    assert rec.categories_of(demo_alert(categories=["narcotics", "counterfeit_goods"])) == [
        "counterfeit_goods",
        "narcotics",
    ]
    assert rec.categories_of(alert_pb2.Alert(kind=alert_pb2.ALERT_KIND_OTHER)) == []


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)


@given(
    persons=st.lists(
        st.fixed_dictionaries(
            {"name": _text},
            optional={"nationality": _text, "passport_number": _text, "role": _text},
        ),
        max_size=3,
    ),
    description=st.one_of(st.none(), _text),
)
def test_record_round_trip_property(persons: list[dict[str, str]], description: str | None) -> None:
    record: dict[str, object] = {"kind": "narcotics"}
    if persons:
        record["subjects"] = {"persons": persons}
    if description is not None:
        record["description"] = description
    assert rec.alert_to_record(rec.record_to_alert(record)) == record
