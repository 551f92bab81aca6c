"""What a rights holder sees, what never leaves the node, and matching products to recordations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from intelshare.errors import HolderMismatch, InvalidArgument
from intelshare.v1 import detention_pb2 as D
from intelshare.v1 import recordation_pb2 as R
from node.ipr import views
from tests.node.ipr import samples

NOW = samples.NOW
ACME = samples.recordation("recordations/acme-2026")
BOLT = samples.recordation(
    "recordations/bolt-2026",
    eori="DE123456789012345",
    brand="Bolt",
    gtins=("4012345678901",),
    hs_codes=("640411", "420222"),
    origin="de-customs",
)
ACME_KEY = views.holder_key(ACME.holder)
BOLT_KEY = views.holder_key(BOLT.holder)


def shoes_under_both() -> D.Detention:
    d = samples.detention(recordations=("recordations/acme-2026", "recordations/bolt-2026"))
    d.suggested_recordations.extend(["recordations/acme-2026", "recordations/other"])
    d.history.add(state=D.DETENTION_STATE_DETAINED, reason="detained", officer="k.weber")
    d.deadlines.add(kind=D.DEADLINE_KIND_NOTIFICATION, last_day="2026-03-05")
    return d


# --- holders ---------------------------------------------------------------------------------


def test_holder_keys() -> None:
    assert ACME_KEY == "eori:NL123456789"
    holder = R.RightsHolder(name="X", country="fr", registration_number="RCS 123.456.789")
    assert views.holder_key(holder) == "reg:FR:RCS123456789"
    with pytest.raises(InvalidArgument):
        views.holder_key(R.RightsHolder(name="nobody"))
    assert views.own_recordation_names([ACME, BOLT], ACME_KEY) == {"recordations/acme-2026"}


def test_holder_view_hides_what_the_holder_may_not_see() -> None:
    d = shoes_under_both()
    d.sample_requests.add(reason="2 pairs for laboratory analysis")
    shown = views.holder_view(d, {"recordations/acme-2026"})
    assert not shown.HasField("parties")
    assert not shown.HasField("transport")
    assert shown.internal_notes == ""
    assert list(shown.suggested_recordations) == []
    # the other holder's recordation on the same goods is not named
    assert list(shown.recordations) == ["recordations/acme-2026"]
    assert [m.officer for m in shown.history] == [""]
    assert [m.reason for m in shown.history] == ["detained"]
    # what the holder needs to answer is there
    assert shown.goods[0].quantity == 1200
    assert shown.goods[0].gtins == [samples.GTIN_13]
    assert shown.origin_country == "CN"
    assert shown.deadlines[0].last_day == "2026-03-05"
    assert shown.procedure == D.DETENTION_PROCEDURE_STANDARD
    assert not shown.parties_disclosed
    assert shown.sample_requests == d.sample_requests


def test_parties_only_once_disclosed() -> None:
    d = shoes_under_both()
    d.parties_disclosed = True
    shown = views.holder_view(d, {"recordations/bolt-2026"})
    assert shown.parties.declarant.name == "Forwarding B.V."
    assert shown.parties.consignee.name == "Jan de Vries"
    assert not shown.HasField("transport")
    assert list(shown.recordations) == ["recordations/bolt-2026"]
    assert "parties" in views.holder_field_mask(d).paths
    d.parties_disclosed = False
    assert "parties" not in views.holder_field_mask(d).paths


def test_another_holders_detention() -> None:
    d = samples.detention(recordations=("recordations/acme-2026",))
    d.suggested_recordations.append("recordations/bolt-2026")  # suggested is not enough
    with pytest.raises(HolderMismatch) as info:
        views.holder_view(d, {"recordations/bolt-2026"})
    assert info.value.reason == "HOLDER_MISMATCH"
    assert info.value.grpc_code == "PERMISSION_DENIED"
    with pytest.raises(HolderMismatch):
        views.holder_view(d, set())


def test_holder_sees_its_recordation_without_notes() -> None:
    r = R.Recordation()
    r.CopyFrom(ACME)
    r.history.add(state=R.RECORDATION_STATE_GRANTED, officer="j.jansen", reason="granted")
    shown = views.holder_recordation_view(r, ACME_KEY)
    assert shown.internal_notes == ""
    assert shown.history[0].officer == ""
    assert shown.goods == r.goods
    with pytest.raises(HolderMismatch):
        views.holder_recordation_view(r, BOLT_KEY)


# --- partners -----------------------------------------------------------------------------------


def test_never_shared() -> None:
    r = R.Recordation()
    r.CopyFrom(ACME)
    r.direction = R.RECORDATION_DIRECTION_ISSUED
    r.revision = 3
    r.history.add(state=R.RECORDATION_STATE_GRANTED, officer="j.jansen", reason="granted")
    shared = views.shareable_recordation(r)
    assert shared.internal_notes == ""
    assert shared.revision == 0
    assert shared.direction == R.RECORDATION_DIRECTION_UNSPECIFIED
    assert shared.history[0].officer == ""
    assert shared.holder.contact.email == "ip@acme.example"
    assert r.internal_notes  # the argument is not changed


def test_detention_report() -> None:
    d = shoes_under_both()
    d.state = D.DETENTION_STATE_DESTRUCTION_AGREED
    report = views.detention_report(d, [ACME, BOLT], summary="  shoes hidden under tiles ")
    assert report.detention == "detentions/d-1"
    assert report.reporting_agency == "de-customs"
    assert report.state == D.DETENTION_STATE_DESTRUCTION_AGREED
    assert report.summary == "shoes hidden under tiles"
    assert [(x.agency_id, x.recordation) for x in report.recordations] == [
        ("nl-customs", "recordations/acme-2026"),
        ("de-customs", "recordations/bolt-2026"),
    ]
    assert [r.name for r in report.rights] == ["ACME", "Bolt"]
    assert report.goods == d.goods
    assert report.transport.container_number == "CSQU3054383"
    fields = {f.name for f, _ in report.ListFields()}
    assert not fields & {"internal_notes", "deadlines", "history", "suggested_recordations"}
    # a partner holding the ACME copy links the report to it
    copy = R.Recordation()
    copy.CopyFrom(ACME)
    assert views.linked_recordations(report, [copy]) == ["recordations/acme-2026"]
    other_origin = samples.recordation("recordations/acme-2026", origin="fr-customs")
    assert views.linked_recordations(report, [other_origin]) == []


# --- matching ---------------------------------------------------------------------------------


def test_search_by_gtin_treats_upc_and_ean_alike() -> None:
    upc = samples.recordation("recordations/upc", gtins=(samples.UPC_A,))
    found = views.search([ACME, BOLT, upc], now=NOW, gtin="0036000291452")
    assert [(m.recordation.name, m.matched_by) for m in found] == [("recordations/upc", ("gtin",))]
    with pytest.raises(InvalidArgument):
        views.search([ACME], now=NOW, gtin="0036000291453")


def test_search_by_hs_code_uses_the_subheading() -> None:
    found = views.search([ACME, BOLT], now=NOW, hs_code="6404110090")
    assert [m.recordation.name for m in found] == [
        "recordations/acme-2026",
        "recordations/bolt-2026",
    ]
    assert [m.recordation.name for m in views.search([ACME, BOLT], now=NOW, hs_code="420222")] == [
        "recordations/bolt-2026"
    ]


def test_search_by_right_name_ignores_case_accents_and_marks() -> None:
    cafe = samples.recordation("recordations/cafe", brand="Café Noir")
    assert views.right_name_key("ACME®") == views.right_name_key(" acme ") == "acme"
    assert [
        m.recordation.name for m in views.search([ACME, cafe], now=NOW, right_name="cafe-noir")
    ] == ["recordations/cafe"]
    assert views.search([ACME, cafe], now=NOW, right_name="acme co") == []


def test_search_criteria_combine_and_only_in_force() -> None:
    assert views.search([ACME, BOLT], now=NOW, hs_code="640411", right_name="bolt")[
        0
    ].matched_by == (
        "right_name",
        "hs_code",
    )
    assert views.search([ACME, BOLT], now=NOW, gtin=samples.GTIN_13, right_name="bolt") == []
    withdrawn = samples.recordation("recordations/old", state=R.RECORDATION_STATE_WITHDRAWN)
    later = ACME.expire_time.ToDatetime() + timedelta(days=1)
    assert views.search([withdrawn], now=NOW, right_name="acme") == []
    assert len(views.search([withdrawn], now=NOW, right_name="acme", include_inactive=True)) == 1
    assert views.search([ACME], now=later.replace(tzinfo=NOW.tzinfo), right_name="acme") == []
    with pytest.raises(InvalidArgument):
        views.search([ACME], now=NOW)


def test_suggestions_for_a_detention_rank_gtin_first() -> None:
    d = samples.detention(gtins=("4012345678901",), brand="ACME", hs_code="6404110090")
    found = views.match_detention(d, [ACME, BOLT], now=NOW)
    assert [(m.recordation.name, m.matched_by) for m in found] == [
        ("recordations/bolt-2026", ("gtin", "hs_code")),
        ("recordations/acme-2026", ("right_name", "hs_code")),
    ]
    unrelated = samples.detention(gtins=(), brand="Nobody", hs_code="950300")
    assert views.match_detention(unrelated, [ACME, BOLT], now=NOW) == []


def test_index_keys_skip_what_does_not_parse() -> None:
    odd = samples.recordation(gtins=("not-a-gtin", samples.UPC_A), hs_codes=("64",))
    assert views.index_keys(odd) == {("gtin", "00036000291452"), ("right_name", "acme")}
