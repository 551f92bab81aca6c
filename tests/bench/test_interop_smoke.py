"""The interop bench still runs: export, our TAXII server and medallion at two sizes (structure only)."""

from __future__ import annotations

import pytest

from bench import interop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_quick_run_measures_export_ours_and_the_peer() -> None:
    result = interop.run(quick=True)
    assert result["benchmark"] == "interop"
    assert [r["stored"] for r in result["results"]] == result["sizes"]
    for r in result["results"]:
        # Every alert of the treaty's collection is exported and paged, none twice.
        assert r["export"]["alerts"] == r["stored"]
        assert r["export"]["objects"] > r["stored"]
        assert r["export"]["objects_per_s"] > 0
        assert r["ours"]["objects"] == r["ours"]["unique"] == r["export"]["objects"]
        assert r["ours"]["objects_per_s"] > 0
        if result["peer_skipped"] is None:
            # medallion holds the same objects but our extension-definition.
            assert r["peer"]["objects"] == r["peer"]["unique"] == r["export"]["objects"] - 1
            assert r["ratio"] > 0
    table = interop.format_table(result)
    assert table.startswith("| stored alerts |")
    assert table.count("\n| ") == len(result["sizes"])  # one row per size
