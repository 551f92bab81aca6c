"""The concurrency bench still runs end to end and reports both SQLite write paths.

Structure only: latencies are asserted to exist and be ordered, never to be
a given number or one path to beat the other (that is what the bench is
for). Each measurement checks that the node lists every alert it issued,
and a failed call fails the run, so a run that returns did what it counted.
"""

from __future__ import annotations

import pytest

from bench import concurrency

pytestmark = pytest.mark.slow


def test_quick_run_measures_both_paths_at_each_concurrency() -> None:
    result = concurrency.run(quick=True)
    assert result["benchmark"] == "concurrency"
    assert result["quick"] is True
    assert result["concurrency"] == [1, 4]
    runs = result["runs"]
    assert [(r["backend"], r["variant"]) for r in runs] == [
        ("sqlite", concurrency.BUSY_RETRY),
        ("sqlite", concurrency.QUEUED),
    ]
    for r in runs:
        assert sorted(r["by_concurrency"]) == ["1", "4"]
        for step in r["by_concurrency"].values():
            assert step["calls"] + step["failed"] == result["calls"]
            assert step["calls"] > 0
            assert 0 < step["p50_ms"] <= step["p99_ms"] <= step["max_ms"]
            assert step["calls_per_second"] > 0
        # warm-up plus one step per concurrency: every answered alert listed by the node
        assert r["alerts_issued"] >= sum(s["calls"] for s in r["by_concurrency"].values())
    text = concurrency.report(result)
    assert "| sqlite | busy retry (before) | 4 |" in text
    assert "| sqlite | queued (as shipped) | 1 |" in text
