"""Identifiers: real check digits accepted, wrong ones refused, one key per identifier."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intelshare import identifiers as ids
from intelshare.errors import InvalidArgument


@pytest.mark.parametrize(
    ("scheme", "value", "expected"),
    [
        ("iso6346", "CSQU3054383", "iso6346:CSQU3054383"),
        ("iso6346", "csqu 305438-3", "iso6346:CSQU3054383"),
        ("iso6346", "MSKU 907032 3", "iso6346:MSKU9070323"),
        ("imo", "IMO 9074729", "imo:9074729"),
        ("imo", "8814275", "imo:8814275"),
        ("gtin", "4006381333931", "gtin:04006381333931"),  # EAN-13
        ("gtin", "036000291452", "gtin:00036000291452"),  # UPC-A
        ("gtin", "96385074", "gtin:00000096385074"),  # EAN-8
        ("gtin", "10012345678902", "gtin:10012345678902"),  # GTIN-14
        ("vat", "NL004495445B01", "vat:NL004495445B01"),
        ("vat", "DE 136 695 976", "vat:DE136695976"),
        ("vat", "el094259216", "vat:EL094259216"),
        ("eori", "DE 1234567-89012345", "eori:DE123456789012345"),
        ("eori", "nl004495445", "eori:NL004495445"),
        ("company", "Acme Trading B.V.", "company:acme trading"),
        ("company", "ACME  TRADING", "company:acme trading"),
        ("company", "Müller GmbH & Co. KG", "company:muller"),
        ("company", "Straße Logistik Ltd", "company:strasse logistik"),
        ("company", "O'Neil Shipping", "company:oneil shipping"),
        (
            "company",
            "\u0418\u0432\u0430\u043d\u043e\u0432",
            "company:\u0438\u0432\u0430\u043d\u043e\u0432",
        ),
        ("company", "BV", "company:bv"),  # a name that is only a legal form keeps it
    ],
)
def test_simple_schemes_have_one_key(scheme: str, value: str, expected: str) -> None:
    assert ids.key(scheme, value) == expected


def test_upc_and_its_ean13_are_the_same_gtin() -> None:
    assert ids.key("gtin", "036000291452") == ids.key("gtin", "0036000291452")


@pytest.mark.parametrize(
    ("scheme", "value", "problem"),
    [
        ("iso6346", "CSQU3054384", "wrong check digit"),
        ("iso6346", "MSCU1234565", "wrong check digit"),
        ("iso6346", "CSQU305438", "wrong length"),
        ("iso6346", "CSQA3054383", "wrong format"),  # category must be U, J or Z
        ("imo", "9074728", "wrong check digit"),
        ("imo", "90747", "wrong length"),
        ("gtin", "4006381333932", "wrong check digit"),
        ("gtin", "123", "wrong length"),
        ("vat", "DE136695977", "wrong check digit"),
        ("vat", "US123456789", "unknown country"),
        ("eori", "1234", "not an EORI number"),
        ("eori", "QQ12345", "not an ISO 3166-1 alpha-2 country code"),
        ("eori", "DE1234567890123456", "not an EORI number"),
        ("company", " .-- ", "has no letters or digits"),
        ("company", "", "must not be empty"),
        ("company", "x" * 201, "longer than 200"),
    ],
)
def test_malformed_values_name_the_field(scheme: str, value: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ids.key(scheme, value, field="declaration.consignor")
    assert list(caught.value.violations) == ["declaration.consignor.value"]
    assert problem in caught.value.violations["declaration.consignor.value"]
    assert caught.value.reason == "FIELD_INVALID"


def test_compound_schemes() -> None:
    assert ids.key("plate", "ab-123-c", country="nl") == "plate:NL:AB123C"
    assert ids.key("plate", "B MW 1234", country="DE") == "plate:DE:BMW1234"
    assert ids.key("passport", "c01x00t47", country="DEU") == "passport:DE:C01X00T47"
    assert ids.key("passport", "SPECI2014", country="NL") == "passport:NL:SPECI2014"
    person = ids.identifier("person", "DE VRIES, Anna", born=date(1980, 1, 31))
    assert person == ids.Identifier("person", "anna de vries", "1980-01-31")
    assert person.key == "person:1980-01-31:anna de vries"
    assert ids.key("person", "Anna de Vries", born="1980-01-31") == person.key
    assert ids.key("person", "José Álvarez", born="1975-12-01") == ids.key(
        "person", "ALVAREZ JOSE", born="1975-12-01"
    )


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"scheme": "plate", "value": "AB123"}, "x.country", "needs its country"),
        ({"scheme": "plate", "value": "AB123", "country": "ZZ"}, "x.country", "not an ISO"),
        ({"scheme": "plate", "value": "AB_123", "country": "NL"}, "x.value", "letters or digits"),
        ({"scheme": "plate", "value": "A" * 13, "country": "NL"}, "x.value", "1 to 12"),
        ({"scheme": "passport", "value": "1234", "country": "NL"}, "x.value", "5 to 20"),
        ({"scheme": "passport", "value": "X1234567", "country": "NLD1"}, "x.country", "not an"),
        ({"scheme": "plate", "value": "AB1", "country": "NLD"}, "x.country", "not an ISO"),
        ({"scheme": "person", "value": "Anna"}, "x.born", "date of birth"),
        ({"scheme": "person", "value": "Anna", "born": "31/01/1980"}, "x.born", "YYYY-MM-DD"),
        ({"scheme": "person", "value": "Anna", "born": "1980-02-30"}, "x.born", "YYYY-MM-DD"),
        ({"scheme": "imo", "value": "9074729", "country": "NL"}, "x.country", "takes no country"),
        (
            {"scheme": "plate", "value": "AB1", "country": "NL", "born": "2000-01-01"},
            "x.born",
            "no",
        ),
        ({"scheme": "isbn", "value": "123"}, "x.scheme", "not one of"),
        ({"scheme": "imo", "value": 9074729}, "x.value", "must be a string, not int"),
    ],
)
def test_compound_errors_name_the_part(kwargs: dict[str, object], field: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ids.identifier(field="x", **kwargs)  # type: ignore[arg-type]
    assert list(caught.value.violations) == [field]
    assert problem in caught.value.violations[field]


def test_countries() -> None:
    assert ids.country_code("nl") == "NL"
    assert ids.country_code("XK") == "XK"  # Kosovo, user-assigned but in customs use
    assert ids.country_code("DEU", alpha3=True) == "DE"
    assert len(ids.countries()) >= 250
    with pytest.raises(InvalidArgument) as caught:
        ids.country_code("DEU", "declaration.origin_country")
    assert "declaration.origin_country" in caught.value.violations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iso6346:csqu 305438-3", "iso6346:CSQU3054383"),
        ("IMO:IMO 9074729", "imo:9074729"),
        ("plate:nl:ab-123-c", "plate:NL:AB123C"),
        ("passport:DEU:C01X00T47", "passport:DE:C01X00T47"),
        ("person:1980-01-31:DE VRIES, Anna", "person:1980-01-31:anna de vries"),
        ("company:Acme Trading B.V.", "company:acme trading"),
        ("gtin:4006381333931", "gtin:04006381333931"),
    ],
)
def test_parse_key_accepts_typed_keys(text: str, expected: str) -> None:
    assert ids.parse_key(text) == expected
    assert ids.parse_key(expected) == expected  # a canonical key is its own key


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("CSQU3054383", "not an identifier key"),
        ("container:CSQU3054383", "not an identifier key"),
        ("plate:AB123C", "plate:country:value"),
        ("person:Anna de Vries", "person:date of birth:value"),
        ("iso6346:CSQU3054384", "wrong check digit"),
        ("plate:QQ:AB1", "not an ISO 3166-1"),
    ],
)
def test_parse_key_errors_name_the_field(text: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ids.parse_key(text, "criteria.all_of[0].consignor[1]")
    assert list(caught.value.violations) == ["criteria.all_of[0].consignor[1]"]
    assert problem in caught.value.violations["criteria.all_of[0].consignor[1]"]


def test_parse_key_limits_schemes() -> None:
    assert ids.parse_key("eori:NL004495445", schemes=("eori", "vat")) == "eori:NL004495445"
    with pytest.raises(InvalidArgument, match="schemes: eori, vat"):
        ids.parse_key("imo:9074729", schemes=("eori", "vat"))


@given(st.text(min_size=1, max_size=60))
def test_names_normalise_to_plain_words(name: str) -> None:
    if not any(ch.isalnum() for ch in name):
        with pytest.raises(InvalidArgument, match=r"no letters or digits|must not be empty"):
            ids.company_name(name)
        return
    company = ids.company_name(name)
    for normalised in (company, ids.person_name(name)):
        assert normalised
        assert all(w.isalnum() for w in normalised.split(" "))
        assert normalised == normalised.casefold()
    person = ids.person_name(name)
    assert ids.person_name(person) == person  # a normalised person name is its own key
    assert ids.person_name(" ".join(reversed(name.split()))) == person
