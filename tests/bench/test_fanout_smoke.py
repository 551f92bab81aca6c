"""The fan-out bench still runs: nodes in one process, a case, entries, the floor (structure only)."""

from __future__ import annotations

import pytest

from bench import fanout

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_quick_run_reports_time_to_each_member_and_the_floor() -> None:
    result = fanout.run(quick=True)
    assert result["benchmark"] == "fanout"
    assert result["quick"] is True
    members = result["agencies"] - 1
    nodes, floor = result["nodes"], result["floor"]
    assert nodes["recipients"] == floor["recipients"] == members
    for key in ("first_member", "median_member", "last_member", "add_entry_call"):
        assert set(nodes[key]) == {"p50_ms", "max_ms", "min_ms"}
    assert nodes["first_member"]["p50_ms"] <= nodes["last_member"]["p50_ms"]
    assert floor["first_member"]["p50_ms"] <= floor["last_member"]["p50_ms"]
    assert result["ratio_last"] > 0
    assert result["host_process"]["rss_mib"] > 0
    section = fanout.report(result)
    assert section.startswith("## Fan-out")
    assert "one second process" in section
