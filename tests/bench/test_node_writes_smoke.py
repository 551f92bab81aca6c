"""The node-writes bench still runs end to end and reports both write paths.

Structure only: rates are asserted to exist, never to be a given number or
one path to beat the other (that is what the bench is for). Each
measurement checks its own audit log and event count and raises otherwise,
so a run that returns has written what it counted, on both paths.
"""

from __future__ import annotations

import pytest

from bench import _harness as h
from bench import node_writes

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not h.pg_reachable(), reason="PostgreSQL is not reachable on 127.0.0.1:5432"
    ),
]


def test_quick_run_measures_both_paths() -> None:
    result = node_writes.run(quick=True)
    assert result["benchmark"] == "node_writes"
    assert result["quick"] is True
    [case] = result["cases"]
    assert case["threads"] == 2
    for mode in node_writes.MODES:
        [one] = case[mode]
        assert one["transactions"] > 0
        assert one["per_second"] > 0
        assert 0 < one["p50_ms"] <= one["p99_ms"]
    assert case["ratio"] > 0
    text = node_writes.report(result)
    assert "| 2 | one by one |" in text
    assert "| 2 | pipelined |" in text
