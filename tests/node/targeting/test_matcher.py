"""The indexed matcher answers exactly as the naive one, and both as the criteria say."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.targeting.criteria import parse_criteria
from node.targeting.declarations import Declaration
from node.targeting.matcher import (
    IndexedMatcher,
    NaiveMatcher,
    Profile,
    ProfileHit,
    Reason,
    Screening,
    SubjectHit,
)
from tests.node.targeting.strategies import criteria_data, declarations, watch_lists

MATCHERS = [IndexedMatcher, NaiveMatcher]


def _profiles(*criteria: dict[str, Any]) -> list[Profile]:
    return [Profile(f"p{i}", parse_criteria(c)) for i, c in enumerate(criteria)]


PHARMA = {"all_of": [{"hs_prefix": "3004"}, {"origin_country": "IN"}, {"loading_port": "INNSA"}]}
CHEAP_SHIRTS = {
    "all_of": [
        {"hs_prefix": ["6109", "6110"]},
        {"any_of": [{"value_per_kg_below": 5}, {"consignor": "company:Globex Ltd"}]},
    ]
}
BULK = {"any_of": [{"quantity_above": 10000}]}
GOODS = {"any_of": [{"gtin": "036000291452"}, {"container_owner_prefix": "MSCU"}]}


def _decl(**fields: Any) -> Declaration:
    return Declaration(**{"reference": "R1", "hs_code": "30049000", **fields})


@pytest.mark.parametrize("matcher", MATCHERS)
def test_examples(matcher: type[IndexedMatcher] | type[NaiveMatcher]) -> None:
    screen = matcher(_profiles(PHARMA, CHEAP_SHIRTS, BULK, GOODS)).screen
    targeted = screen(_decl(origin_country="IN", loading_port="INNSA"))
    assert targeted == Screening(
        "R1",
        (
            ProfileHit(
                "p0",
                (
                    Reason("criteria.all_of[0].hs_prefix", "hs_prefix", ("3004",)),
                    Reason("criteria.all_of[1].origin_country", "origin_country", ("IN",)),
                    Reason("criteria.all_of[2].loading_port", "loading_port", ("INNSA",)),
                ),
            ),
        ),
    )
    assert targeted.targeted
    assert not screen(_decl(origin_country="IN", loading_port="NLRTM")).targeted
    assert not screen(_decl(hs_code="30059000", origin_country="IN", loading_port="INNSA")).targeted

    # an any_of reports every branch that held, not only the first
    shirts = screen(
        _decl(hs_code="61091000", value=100.0, net_mass_kg=40.0, consignor=("company:globex",))
    )
    assert shirts.profiles == (
        ProfileHit(
            "p1",
            (
                Reason("criteria.all_of[0].hs_prefix", "hs_prefix", ("6109",)),
                Reason(
                    "criteria.all_of[1].any_of[0].value_per_kg_below",
                    "value_per_kg_below",
                    ("2.5",),
                ),
                Reason("criteria.all_of[1].any_of[1].consignor", "consignor", ("company:globex",)),
            ),
        ),
    )
    # no mass, no value per kg: that branch does not hold
    assert not screen(_decl(hs_code="61091000", value=100.0)).targeted
    assert not screen(_decl(hs_code="61091000", value=100.0, net_mass_kg=0.0)).targeted

    # a profile with no indexable key (numeric bounds only) is still screened
    assert screen(_decl(quantity=10001.0)).profiles == (
        ProfileHit(
            "p2", (Reason("criteria.any_of[0].quantity_above", "quantity_above", ("10001",)),)
        ),
    )
    assert not screen(_decl(quantity=10000.0)).targeted

    both = screen(
        _decl(gtins=("00036000291452",), containers=("CSQU3054383", "MSCU1234566", "MSCU7654321"))
    )
    assert both.profiles == (
        ProfileHit(
            "p3",
            (
                Reason("criteria.any_of[0].gtin", "gtin", ("00036000291452",)),
                Reason(
                    "criteria.any_of[1].container_owner_prefix", "container_owner_prefix", ("MSCU",)
                ),
            ),
        ),
    )


def test_bounds_are_keys_only_where_nothing_else_can_be() -> None:
    assert IndexedMatcher(_profiles(PHARMA, CHEAP_SHIRTS, GOODS)).bound_keys == 0
    assert IndexedMatcher(_profiles(PHARMA, BULK)).bound_keys == 1
    # an any_of with a bound branch is keyed by that bound too
    either = {"any_of": [{"hs_prefix": "30"}, {"value_per_kg_below": 5}, {"quantity_above": 9}]}
    matcher = IndexedMatcher(_profiles(either))
    assert matcher.bound_keys == 2
    assert matcher.screen(_decl(hs_code="84713000", value=4.0, net_mass_kg=1.0)).profiles == (
        ProfileHit(
            "p0", (Reason("criteria.any_of[1].value_per_kg_below", "value_per_kg_below", ("4",)),)
        ),
    )
    assert not matcher.screen(_decl(hs_code="84713000", value=5.0, net_mass_kg=1.0)).targeted
    assert not matcher.screen(_decl(hs_code="84713000", quantity=9.0)).targeted
    assert matcher.screen(_decl(hs_code="84713000", quantity=9.5)).targeted


def test_an_all_of_is_keyed_by_the_pair_of_its_most_selective_conditions() -> None:
    # "HS 3004 from IN via INNSA" is looked up as (3004, INNSA): neither alone makes a candidate
    matcher = IndexedMatcher(_profiles(PHARMA, CHEAP_SHIRTS))
    assert matcher.pair_keys == 1  # CHEAP_SHIRTS: an HS list beside a group, keyed by HS alone
    assert not matcher.screen(_decl(origin_country="IN", loading_port="NLRTM")).targeted
    assert matcher.screen(_decl(origin_country="IN", loading_port="INNSA")).targeted
    # a condition of a pair is tested directly when its profile is a candidate another way
    either = {
        "any_of": [
            {"all_of": [{"hs_prefix": "3004"}, {"loading_port": "INNSA"}]},
            {"all_of": [{"gtin": "96385074"}, {"hs_prefix": ["3004", "8471"]}]},
        ]
    }
    screen = IndexedMatcher(_profiles(either)).screen
    assert IndexedMatcher(_profiles(either)).pair_keys == 2
    got = screen(_decl(loading_port="NLRTM", gtins=("00000096385074",)))
    assert got.profiles == (
        ProfileHit(
            "p0",
            (
                Reason("criteria.any_of[1].all_of[0].gtin", "gtin", ("00000096385074",)),
                Reason("criteria.any_of[1].all_of[1].hs_prefix", "hs_prefix", ("3004",)),
            ),
        ),
    )
    assert got == NaiveMatcher(_profiles(either)).screen(
        _decl(loading_port="NLRTM", gtins=("00000096385074",))
    )


@pytest.mark.parametrize("matcher", MATCHERS)
def test_watch_list(matcher: type[IndexedMatcher] | type[NaiveMatcher]) -> None:
    watch = {
        "iso6346:CSQU3054383": ["alerts/a1", "alerts/a1", "alerts/a7"],
        "imo:9074729": ["alerts/a2"],
        "company:acme trading": ["alerts/a3"],
        "passport:DE:C01X00T47": ["alerts/a4"],
        "gtin:00036000291452": ["recordations/r1"],
    }
    screen = matcher(_profiles(PHARMA), watch).screen
    result = screen(
        _decl(
            containers=("MSKU9070323", "CSQU3054383"),
            vessel_imo="9074729",
            consignor=("eori:NL004495445", "company:acme trading"),
            consignee=("company:acme trading",),
            gtins=("00036000291452",),
            identifiers=("passport:DE:C01X00T47",),
        )
    )
    assert result.profiles == ()
    assert result.subjects == (
        SubjectHit("container", "iso6346:CSQU3054383", ("alerts/a1", "alerts/a7")),
        SubjectHit("vessel", "imo:9074729", ("alerts/a2",)),
        SubjectHit("consignor", "company:acme trading", ("alerts/a3",)),
        SubjectHit("consignee", "company:acme trading", ("alerts/a3",)),
        SubjectHit("gtin", "gtin:00036000291452", ("recordations/r1",)),
        SubjectHit("identifier", "passport:DE:C01X00T47", ("alerts/a4",)),
    )
    assert result.targeted
    assert not screen(_decl(containers=("MSKU9070323",), vessel_imo="8814275")).targeted


# --- the properties ------------------------------------------------------------------------------


def _holds(node: dict[str, Any], d: Declaration) -> bool:
    """An oracle written from the language's definition, on the raw JSON, sharing no code."""
    ((name, operand),) = node.items()
    if name == "all_of":
        return all(_holds(child, d) for child in operand)
    if name == "any_of":
        return any(_holds(child, d) for child in operand)
    if name == "value_per_kg_below":
        return d.value is not None and bool(d.net_mass_kg) and d.value / d.net_mass_kg < operand
    if name == "quantity_above":
        return d.quantity is not None and d.quantity > operand
    wanted = [operand] if isinstance(operand, str) else operand
    if name == "hs_prefix":
        return any(d.hs_code.startswith(p) for p in wanted)
    if name == "container_owner_prefix":
        return any(c.startswith(p) for c in d.containers for p in wanted)
    if name == "gtin":
        return any(g.zfill(14) in d.gtins for g in wanted)
    if name in ("consignor", "consignee"):
        return bool(set(wanted) & set(getattr(d, name)))
    return getattr(d, name) in wanted


@settings(max_examples=300, deadline=None)
@given(
    st.lists(criteria_data(), max_size=8),
    st.lists(declarations(), min_size=1, max_size=6),
    watch_lists(),
)
def test_indexed_agrees_with_naive_and_with_the_definition(
    criteria: list[dict[str, Any]], batch: list[Declaration], watch: dict[str, list[str]]
) -> None:
    profiles = _profiles(*criteria)
    indexed, naive = IndexedMatcher(profiles, watch), NaiveMatcher(profiles, watch)
    for declaration in batch:
        got = indexed.screen(declaration)
        assert got == naive.screen(declaration)
        expected = [
            p.id for p, data in zip(profiles, criteria, strict=True) if _holds(data, declaration)
        ]
        assert [hit.profile_id for hit in got.profiles] == expected
        for hit in got.profiles:
            assert hit.reasons
            assert all(reason.matched for reason in hit.reasons)
        carried = {key for _, key in declaration.identifier_keys()}
        assert {s.key for s in got.subjects} == carried & set(watch)


@settings(max_examples=100, deadline=None)
@given(st.lists(criteria_data(), min_size=1, max_size=5), declarations())
def test_reasons_are_the_held_conditions_of_held_branches(
    criteria: list[dict[str, Any]], declaration: Declaration
) -> None:
    profiles = _profiles(*criteria)
    for hit in IndexedMatcher(profiles).screen(declaration).profiles:
        profile = next(p for p in profiles if p.id == hit.profile_id)
        paths = [reason.path for reason in hit.reasons]
        assert paths == sorted(set(paths), key=paths.index)  # each once, in document order
        for path in paths:
            assert path.startswith("criteria.")
        # each reason's condition holds on its own
        data = criteria[profiles.index(profile)]
        for reason in hit.reasons:
            assert _holds(_at(data, reason.path), declaration)


def _at(data: dict[str, Any], path: str) -> dict[str, Any]:
    """The condition object at ``criteria.all_of[1].any_of[0].gtin``."""
    node: Any = data
    *steps, field = path.split(".")[1:]
    for step in steps:
        name, index = step.rstrip("]").split("[")
        node = node[name][int(index)]
    return {field: node[field]}
