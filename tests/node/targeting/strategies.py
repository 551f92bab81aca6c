"""Hypothesis strategies for criteria and declarations drawn from one small universe.

The universe is small on purpose: random profiles and random declarations
must name the same values often, or every property would hold vacuously.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from node.targeting.criteria import MAX_DEPTH
from node.targeting.declarations import Declaration

HS_PREFIXES = ["30", "300", "3004", "30049", "300490", "84", "8471", "847130", "61", "6109"]
HS_CODES = ["30049000", "3004100000", "300420", "84713000", "61091000", "6109902000", "020130"]
COUNTRIES = ["NL", "DE", "IN", "CN", "US"]
PORTS = ["NLRTM", "DEHAM", "INNSA", "CNSHA"]
MODES = ["sea", "road", "air", "rail"]
PARTIES = ["eori:NL004495445", "vat:DE136695976", "company:acme trading", "company:globex"]
CONTAINERS = ["CSQU3054383", "MSKU9070323", "MSCU1234566"]
OWNERS = ["CSQU", "MSKU", "MSCU", "TCNU"]
GTINS = ["04006381333931", "00036000291452", "00000096385074", "10012345678902"]
NUMBERS = [0.0, 0.5, 1.0, 2.5, 10.0, 1000.0]
#: watch-list keys: some the declarations carry, some they never do
WATCHED = [
    "iso6346:CSQU3054383",
    "iso6346:MSCU1234566",
    "imo:9074729",
    "plate:NL:AB123C",
    "company:acme trading",
    "eori:NL004495445",
    "gtin:00036000291452",
    "passport:DE:C01X00T47",
    "imo:8814275",
]

_SETS: dict[str, list[str]] = {
    "hs_prefix": HS_PREFIXES,
    "origin_country": COUNTRIES,
    "dispatch_country": COUNTRIES,
    "loading_port": PORTS,
    "discharge_port": PORTS,
    "transport_mode": MODES,
    "consignor": PARTIES,
    "consignee": PARTIES,
    "container_owner_prefix": OWNERS,
    "gtin": GTINS,
}


def _values(field: str) -> st.SearchStrategy[Any]:
    pool = _SETS[field]
    return st.one_of(st.sampled_from(pool), st.lists(st.sampled_from(pool), min_size=1, max_size=3))


def condition_data() -> st.SearchStrategy[dict[str, Any]]:
    sets = [_values(f).map(lambda v, f=f: {f: v}) for f in _SETS]
    bounds = [
        st.sampled_from([0.5, 1.0, 2.5, 10.0]).map(lambda v: {"value_per_kg_below": v}),
        st.sampled_from([0, 0.5, 2.5, 100]).map(lambda v: {"quantity_above": v}),
    ]
    return st.one_of(*sets, *bounds)


@st.composite
def group_data(draw: st.DrawFn, depth: int = 1) -> dict[str, Any]:
    op = draw(st.sampled_from(["all_of", "any_of"]))
    child = condition_data()
    if depth < min(MAX_DEPTH, 3):
        child = st.one_of(condition_data(), condition_data(), group_data(depth + 1))
    return {op: draw(st.lists(child, min_size=1, max_size=4))}


def criteria_data() -> st.SearchStrategy[dict[str, Any]]:
    return group_data()


def _maybe(values: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), st.sampled_from(values))


def _unique(values: list[str], most: int) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), max_size=most, unique=True).map(tuple)


def declarations() -> st.SearchStrategy[Declaration]:
    number = st.one_of(st.none(), st.sampled_from(NUMBERS))
    return st.builds(
        Declaration,
        reference=st.text(alphabet="ABC0123456789", min_size=1, max_size=8),
        hs_code=st.sampled_from(HS_CODES),
        origin_country=_maybe(COUNTRIES),
        dispatch_country=_maybe(COUNTRIES),
        loading_port=_maybe(PORTS),
        discharge_port=_maybe(PORTS),
        transport_mode=_maybe(MODES),
        consignor=_unique(PARTIES, 3),
        consignee=_unique(PARTIES, 3),
        containers=_unique(CONTAINERS, 3),
        gtins=_unique(GTINS, 3),
        vessel_imo=_maybe(["9074729", "8814275"]),
        vehicle=_maybe(["plate:NL:AB123C", "plate:DE:BMW1234"]),
        identifiers=_unique(["passport:DE:C01X00T47", "person:1980-01-31:anna de vries"], 2),
        value=number,
        net_mass_kg=number,
        quantity=number,
    )


def watch_lists() -> st.SearchStrategy[dict[str, list[str]]]:
    refs = st.lists(st.sampled_from(["alerts/a1", "alerts/a2", "recordations/r1"]), min_size=1)
    return st.dictionaries(st.sampled_from(WATCHED), refs, max_size=len(WATCHED))
