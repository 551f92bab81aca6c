"""The latency bench still runs end to end and reports what the README table is built from.

Structure only: a test machine is not a benchmark machine, so no figure is
asserted. The quick mode starts the real processes (gateway, two nodes, two
workers, a private Redis) on SQLite and sends a handful of alerts.
"""

from __future__ import annotations

from shutil import which

import pytest

from bench import latency

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(which("redis-server") is None, reason="redis-server binary not found"),
]


def test_quick_run_reports_percentiles_split_and_machine() -> None:
    report = latency.run(quick=True, backend="sqlite")
    assert report["benchmark"] == "latency"
    assert report["quick"] is True
    assert report["targets"] == {"p50_ms": 20.0, "p99_ms": 60.0, "at_rate": 100}
    assert {"cpu", "nproc", "python", "date"} <= set(report["machine"])
    (run,) = report["runs"]
    assert run["rate"] == 5
    assert run["arrived"] == run["alerts"] == run["issued"]
    assert run["missing"] == 0
    for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        assert run[key] > 0
    assert run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"] <= run["max_ms"]
    assert set(run["split_p50_ms"]) == {"issue", "transfer", "feed"}
    assert set(run["cpu_ms_per_alert"]) == {
        "bench client",
        "gateway",
        "nl-customs",
        "be-police",
        "workers",
    }
    # measured, not necessarily above 0: with no webhook the relay confirms events
    # itself (node.notify.relay) and an idle worker may use no clock tick in a second
    assert run["cpu_ms_per_alert"]["workers"] >= 0
    assert isinstance(run["sustainable"], bool)
    assert "| offered/s |" in latency.format_table(report)


def test_rate_search_closes_in_below_the_first_failure() -> None:
    from bench.latency import bisect_rate

    def runs(ok: list[float], failed: list[float]) -> list[dict[str, object]]:
        return [{"rate": r, "sustainable": True} for r in ok] + [
            {"rate": r, "sustainable": False} for r in failed
        ]

    assert bisect_rate(runs([10], [100])) == 55
    assert bisect_rate(runs([10, 55], [100])) == 80  # 77.5 rounded to 5/s
    assert bisect_rate(runs([10], [100, 55])) == 30  # 32.5 rounded to 5/s
    assert bisect_rate(runs([], [10])) == 5
    assert bisect_rate(runs([10, 100, 150], [])) is None
    assert bisect_rate(runs([10, 30], [35])) is None  # gap under one step
