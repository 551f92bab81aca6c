"""The catch-up bench still runs end to end and reports what its README section is built from.

Structure only: a test machine is not a benchmark machine. The quick mode
starts the real processes (gateway, be-police's node and worker, a private
Redis) on SQLite and catches up on a handful of alerts.
"""

from __future__ import annotations

from shutil import which

import pytest

from bench import catchup

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(which("redis-server") is None, reason="redis-server binary not found"),
]


def test_quick_run_reports_floor_catchup_and_ratios() -> None:
    result = catchup.run(quick=True)
    assert result["benchmark"] == "catchup"
    assert result["quick"] is True
    assert result["backend"] == "sqlite"
    assert {"cpu", "nproc", "memory_gib", "loadavg", "python", "versions", "date"} <= set(
        result["machine"]
    )
    alerts = result["alerts"]
    assert result["floor"]["alerts"] == alerts
    assert result["floor"]["per_second"] > 0
    c = result["catchup"]
    assert c["alerts"] == alerts
    assert c["ready_s"] is not None
    assert c["stored_s"] is not None
    assert c["notified_s"] is not None
    assert c["stored_s"] <= c["notified_s"]
    assert c["stored_per_second"] > 0
    assert result["ratio_stored"] > 0
    assert result["ratio_notified"] > 0
    assert set(result["generation"]) >= {"how", "seal_seconds", "submit_seconds"}
    section = catchup.report(result)
    assert section.startswith("## Catch-up")
    assert "| floor:" in section
    assert "directly to the gateway" in section
