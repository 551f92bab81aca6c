"""The criteria language: what parses, what is refused under which path, and the published schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings

from intelshare.errors import InvalidArgument
from intelshare.identifiers import countries
from node.targeting import criteria as C
from tests.node.targeting.strategies import criteria_data

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "docs" / "risk-criteria.schema.json"


@pytest.fixture(scope="module")
def schema() -> jsonschema.Draft202012Validator:
    document = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


GOOD: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        # the scenario of the issue: HS 3004 from a given origin via a given port
        {"all_of": [{"hs_prefix": "3004"}, {"origin_country": "IN"}, {"loading_port": "INNSA"}]},
        {
            "all_of": [
                {"hs_prefix": ["3004"]},
                {"origin_country": ["IN"]},
                {"loading_port": ["INNSA"]},
            ]
        },
    ),
    (
        {
            "any_of": [
                {
                    "consignor": [
                        "eori:NL004495445",
                        "company:Acme Trading B.V.",
                        "eori:NL004495445",
                    ]
                },
                {"consignee": "vat:DE 136 695 976"},
                {"gtin": ["036000291452", "4006381333931"]},
            ]
        },
        {
            "any_of": [
                {"consignor": ["company:acme trading", "eori:NL004495445"]},
                {"consignee": ["vat:DE136695976"]},
                {"gtin": ["00036000291452", "04006381333931"]},
            ]
        },
    ),
    (
        {
            "all_of": [
                {"transport_mode": ["sea", "inland_waterway"]},
                {"container_owner_prefix": ["MSCU", "CSQU"]},
                {"any_of": [{"value_per_kg_below": 2.5}, {"quantity_above": 0}]},
                {"all_of": [{"dispatch_country": "XK"}, {"discharge_port": "NLRTM"}]},
            ]
        },
        {
            "all_of": [
                {"transport_mode": ["inland_waterway", "sea"]},
                {"container_owner_prefix": ["CSQU", "MSCU"]},
                {"any_of": [{"value_per_kg_below": 2.5}, {"quantity_above": 0.0}]},
                {"all_of": [{"dispatch_country": ["XK"]}, {"discharge_port": ["NLRTM"]}]},
            ]
        },
    ),
    ({"any_of": [{"quantity_above": 1000}]}, {"any_of": [{"quantity_above": 1000.0}]}),
]


@pytest.mark.parametrize(("data", "canonical"), GOOD)
def test_good_criteria_parse_to_their_canonical_form(
    data: dict[str, Any], canonical: dict[str, Any], schema: jsonschema.Draft202012Validator
) -> None:
    parsed = C.parse_criteria(data)
    assert C.to_data(parsed) == canonical
    assert C.parse_criteria(canonical) == parsed
    assert list(schema.iter_errors(data)) == []
    assert list(schema.iter_errors(canonical)) == []


def test_paths_of_conditions() -> None:
    parsed = C.parse_criteria(GOOD[2][0])
    assert [c.path for c in C.conditions(parsed)] == [
        "criteria.all_of[0].transport_mode",
        "criteria.all_of[1].container_owner_prefix",
        "criteria.all_of[2].any_of[0].value_per_kg_below",
        "criteria.all_of[2].any_of[1].quantity_above",
        "criteria.all_of[3].all_of[0].dispatch_country",
        "criteria.all_of[3].all_of[1].discharge_port",
    ]
    deepest = C.conditions(C.parse_criteria(_nested(C.MAX_DEPTH)))
    assert [c.path for c in deepest] == ["criteria" + ".all_of[0]" * C.MAX_DEPTH + ".hs_prefix"]
    assert C.parse_criteria(GOOD[3][0], "profile.criteria").children[0].path == (
        "profile.criteria.any_of[0].quantity_above"
    )


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"hs_prefix": "30"}
    for _ in range(depth):
        node = {"all_of": [node]}
    return node


#: (criteria, the path named, words of the problem, whether the schema refuses it too)
BAD: list[tuple[object, str, str, bool]] = [
    ([{"hs_prefix": "30"}], "criteria", "must be an object", True),
    ({}, "criteria", "exactly one of all_of or any_of", True),
    ({"all_of": [], "any_of": []}, "criteria", "exactly one of", True),
    ({"none_of": []}, "criteria.none_of", "unknown key", True),
    ({"all_of": {"hs_prefix": "30"}}, "criteria.all_of", "must be a list", True),
    ({"all_of": []}, "criteria.all_of", "at least one condition", True),
    ({"all_of": [{"hs_prefix": "30"}, "hs_prefix"]}, "criteria.all_of[1]", "not a string", True),
    ({"all_of": [{}]}, "criteria.all_of[0]", "exactly one key", True),
    (
        {"all_of": [{"hs_prefix": "30", "origin_country": "IN"}]},
        "criteria.all_of[0]",
        "exactly one key",
        True,
    ),
    ({"any_of": [{"hs_code": "30"}]}, "criteria.any_of[0].hs_code", "unknown field", True),
    ({"all_of": [{"hs_prefix": "3"}]}, "criteria.all_of[0].hs_prefix", "2 to 6 digits", True),
    ({"all_of": [{"hs_prefix": "3004101"}]}, "criteria.all_of[0].hs_prefix", "2 to 6", True),
    (
        {"all_of": [{"hs_prefix": ["3004", "30.04"]}]},
        "criteria.all_of[0].hs_prefix[1]",
        "2 to 6 digits",
        True,
    ),
    ({"all_of": [{"hs_prefix": 3004}]}, "criteria.all_of[0].hs_prefix", "not a number", True),
    ({"all_of": [{"hs_prefix": []}]}, "criteria.all_of[0].hs_prefix", "at least one value", True),
    (
        {"all_of": [{"hs_prefix": ["30", None]}]},
        "criteria.all_of[0].hs_prefix[1]",
        "not null",
        True,
    ),
    (
        {"all_of": [{"origin_country": "nl"}]},
        "criteria.all_of[0].origin_country",
        "alpha-2",
        True,
    ),
    (
        {"all_of": [{"dispatch_country": ["NL", "EU"]}]},
        "criteria.all_of[0].dispatch_country[1]",
        "alpha-2",
        True,
    ),
    ({"all_of": [{"loading_port": "NL RTM"}]}, "criteria.all_of[0].loading_port", "LOCODE", True),
    (
        {"all_of": [{"discharge_port": "QQRTM"}]},
        "criteria.all_of[0].discharge_port",
        "LOCODE",
        False,
    ),
    ({"all_of": [{"transport_mode": "ship"}]}, "criteria.all_of[0].transport_mode", "sea", True),
    ({"all_of": [{"transport_mode": "1"}]}, "criteria.all_of[0].transport_mode", "mode", True),
    (
        {"all_of": [{"consignor": "NL004495445"}]},
        "criteria.all_of[0].consignor",
        "party identifier",
        True,
    ),
    (
        {"all_of": [{"consignor": "imo:9074729"}]},
        "criteria.all_of[0].consignor",
        "party identifier",
        True,
    ),
    (
        {"all_of": [{"consignee": ["vat:DE136695977"]}]},
        "criteria.all_of[0].consignee[0]",
        "check digit",
        False,
    ),
    (
        {"all_of": [{"consignee": ["eori:QQ123"]}]},
        "criteria.all_of[0].consignee[0]",
        "country code",
        False,
    ),
    (
        {"all_of": [{"container_owner_prefix": "MSC"}]},
        "criteria.all_of[0].container_owner_prefix",
        "U, J or Z",
        True,
    ),
    (
        {"all_of": [{"container_owner_prefix": "MSCA"}]},
        "criteria.all_of[0].container_owner_prefix",
        "U, J or Z",
        True,
    ),
    ({"all_of": [{"gtin": "4006381333932"}]}, "criteria.all_of[0].gtin", "check digit", False),
    ({"all_of": [{"gtin": "40063813339"}]}, "criteria.all_of[0].gtin", "8, 12, 13 or 14", True),
    (
        {"all_of": [{"value_per_kg_below": "2.5"}]},
        "criteria.all_of[0].value_per_kg_below",
        "must be a number",
        True,
    ),
    (
        {"all_of": [{"value_per_kg_below": 0}]},
        "criteria.all_of[0].value_per_kg_below",
        "more than 0",
        True,
    ),
    (
        {"all_of": [{"quantity_above": -1}]},
        "criteria.all_of[0].quantity_above",
        "at least 0",
        True,
    ),
    (
        {"all_of": [{"quantity_above": True}]},
        "criteria.all_of[0].quantity_above",
        "not a boolean",
        True,
    ),
    (
        {"all_of": [{"quantity_above": 1e16}]},
        "criteria.all_of[0].quantity_above",
        "at most",
        True,
    ),
    (
        {"all_of": [{"quantity_above": float("inf")}]},
        "criteria.all_of[0].quantity_above",
        "finite",
        True,
    ),
    (
        {"all_of": [{"any_of": [{"hs_prefix": "30"}, {"any_of": []}]}]},
        "criteria.all_of[0].any_of[1].any_of",
        "at least one condition",
        True,
    ),
    (
        {"all_of": [{"hs_prefix": "30"}] * (C.MAX_CHILDREN + 1)},
        "criteria.all_of",
        f"more than {C.MAX_CHILDREN}",
        True,
    ),
    (
        {"all_of": [{"gtin": ["96385074"] * (C.MAX_VALUES + 1)}]},
        "criteria.all_of[0].gtin",
        f"more than {C.MAX_VALUES}",
        True,
    ),
    (
        _nested(C.MAX_DEPTH + 1),  # MAX_DEPTH groups parse (test_paths_of_conditions)
        "criteria" + ".all_of[0]" * C.MAX_DEPTH,
        f"more than {C.MAX_DEPTH} deep",
        False,
    ),
    (
        {"any_of": [{"all_of": [{"hs_prefix": "30"}] * 40}] * 6},
        "criteria.any_of[5].all_of[0].hs_prefix",
        f"more than {C.MAX_CONDITIONS} conditions",
        False,
    ),
]


@pytest.mark.parametrize(("data", "path", "words", "schema_refuses"), BAD)
def test_bad_criteria_name_the_path(
    data: object,
    path: str,
    words: str,
    schema_refuses: bool,
    schema: jsonschema.Draft202012Validator,
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        C.parse_criteria(data)
    assert path in caught.value.violations, caught.value.violations
    assert words in caught.value.violations[path]
    assert caught.value.message.startswith(f"the risk criteria are invalid: {path}")
    # the schema refuses whatever it can express; the rest is the parser's alone (check
    # digits, country codes inside identifiers, depth, the total of conditions)
    assert schema.is_valid(data) is not schema_refuses


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as caught:
        C.parse_criteria(
            {
                "all_of": [
                    {"hs_prefix": "30"},
                    {"hs_prefix": "3x"},
                    {"fob": 1},
                    {"any_of": []},
                    {"origin_country": ["nl", "NL", "QQ"]},
                ]
            }
        )
    assert set(caught.value.violations) == {
        "criteria.all_of[1].hs_prefix",
        "criteria.all_of[2].fob",
        "criteria.all_of[3].any_of",
        "criteria.all_of[4].origin_country[0]",
        "criteria.all_of[4].origin_country[2]",
    }
    assert "(and 4 more)" in caught.value.message


def test_the_schema_lists_the_parsers_countries_fields_and_modes(
    schema: jsonschema.Draft202012Validator,
) -> None:
    defs = schema.schema["$defs"]
    assert set(defs["country"]["enum"]) == countries()
    assert defs["transport_mode"]["enum"] == list(C.TRANSPORT_MODES.values())
    assert set(defs["condition"]["properties"]) == {*C.FIELDS, *C.GROUPS}
    assert defs["conditions"]["maxItems"] == C.MAX_CHILDREN


@settings(max_examples=200, deadline=None)
@given(criteria_data())
def test_random_criteria_parse_round_trip_and_satisfy_the_schema(
    schema: jsonschema.Draft202012Validator, data: dict[str, Any]
) -> None:
    validator = schema
    parsed = C.parse_criteria(data)
    canonical = C.to_data(parsed)
    assert C.parse_criteria(canonical) == parsed
    assert C.to_data(C.parse_criteria(json.loads(json.dumps(canonical)))) == canonical
    assert validator.is_valid(data)
    assert validator.is_valid(canonical)
