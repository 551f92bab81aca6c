"""The TAXII peer bench still runs both sides at both sizes (structure only).

Needs the ``bench`` extra (medallion, taxii2-client); without it the bench
must say why instead of failing, which is checked either way.
"""

from __future__ import annotations

import pytest

from bench import taxii_peer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_reports_why_when_the_peer_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(taxii_peer, "peer_available", lambda: "ImportError: no medallion")
    result = taxii_peer.run(quick=True)
    assert result["skipped"] == "ImportError: no medallion"
    assert result["results"] == []
    assert "skipped" in taxii_peer.report(result)


def test_stix_object_and_data_file_are_what_medallion_loads() -> None:
    data = taxii_peer.peer_data(3, 5000)
    (collection,) = data[taxii_peer.API_ROOT]["collections"]
    assert len(collection["objects"]) == len(collection["manifest"]) == 3
    obj = taxii_peer.stix_indicator(1)
    assert obj["type"] == "indicator"
    assert obj["spec_version"] == "2.1"
    assert obj["id"].startswith("indicator--")


def test_quick_run_reports_cycles_for_both_at_both_sizes() -> None:
    if taxii_peer.peer_available() is not None:
        pytest.skip(f"bench extra not installed: {taxii_peer.peer_available()}")
    result = taxii_peer.run(quick=True)
    assert result["benchmark"] == "taxii_peer"
    assert [r["stored"] for r in result["results"]] == result["sizes"]
    for r in result["results"]:
        for side in ("peer", "ours"):
            assert r[side]["cycles"] > 0, r
            assert r[side]["per_second"] > 0
            assert r[side]["errors"] == 0, r[side]["first_error"]
        assert r["ratio"] > 0
    assert set(result["growth"]) == {"peer", "ours"}
    assert "| stored objects |" in taxii_peer.report(result)
