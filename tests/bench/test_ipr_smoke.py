"""The IPR bench still runs on a small size and its searches and statistics answer correctly.

Timings are not asserted (a test machine is not a benchmark machine); what
the bench finds and counts is.
"""

from __future__ import annotations

from bench import ipr


def test_quick_run_finds_and_counts() -> None:
    report = ipr.run(recordations=400, detentions=2000)
    assert report["benchmark"] == "ipr"
    assert report["database"] == "sqlite"
    # a GTIN belongs to one recordation; a popular HS code to several
    assert report["checks"]["gtin"] == 1
    assert report["checks"]["hs_code"] >= 1
    assert set(report["search_ms"]) == {
        "gtin",
        "right_name",
        "hs_code (page of 50)",
        "gtin + hs_code",
    }
    for ms in report["search_ms"].values():
        assert 0 < ms["median"] <= ms["p95"]
    answers = report["statistics_answers"]
    # every breakdown of the whole year counts each of the 2,000 detentions
    # once in its total; the period cut 14 days into January and 17 days
    # before the year's end holds about 334/365 of them (spread evenly)
    cut = answers.pop("by month, cut period")
    assert {a["detentions"] for a in answers.values()} == {2000}
    assert 1700 < cut["detentions"] < 1950
    assert cut["rows"] == 12
    assert answers["by month"]["rows"] == 12
    assert answers["total"]["rows"] == 1
