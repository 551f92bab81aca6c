"""The memory bench still reads every process's resident size idle and under load (structure only)."""

from __future__ import annotations

from shutil import which

import pytest

from bench import memory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(which("redis-server") is None, reason="redis-server binary not found"),
]


def test_quick_run_reports_rss_beside_the_bare_server() -> None:
    result = memory.run(quick=True)
    assert result["benchmark"] == "memory"
    assert result["baseline"]["rss_mib"] > 0
    names = set(result["processes"])
    assert {"gateway", "node nl-customs", "node be-police"} <= names
    for p in result["processes"].values():
        assert p["idle_mib"] > 0
        assert p["load_peak_mib"] >= p["idle_mib"] * 0.5
        assert p["idle_ratio"] > 0
        assert p["processes"] >= 1
    load = result["load"]
    assert load["issued"] == load["arrived"] == load["offered"]
    section = memory.report(result)
    assert section.startswith("## Memory")
    assert "baseline" in section
