"""The statements bench still runs end to end on a private PostgreSQL server.

Structure only: counts are asserted to exist and be positive, never to be a
given number (that is what the bench is for). It starts a real PostgreSQL
server of its own (``initdb``, pg_stat_statements) and the latency bench's
real processes.
"""

from __future__ import annotations

from shutil import which

import pytest

from bench import statements

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(which("redis-server") is None, reason="redis-server binary not found"),
    pytest.mark.skipif(
        statements._pg_bindir() is None, reason="PostgreSQL server binaries (initdb) not found"
    ),
]


def test_quick_run_counts_statements_per_service() -> None:
    report = statements.run(quick=True)
    assert report["benchmark"] == "statements"
    assert report["alerts"] == report["arrived"] > 0
    assert set(report["services"]) == {"gateway", "nl-customs", "be-police"}
    for figures in report["services"].values():
        assert figures["statements_per_alert"] > 0
        assert figures["transactions_per_alert"] > 0
        assert figures["statements_per_alert"] >= figures["transactions_per_alert"]
    assert report["total"]["statements_per_alert"] == pytest.approx(
        sum(s["statements_per_alert"] for s in report["services"].values()), abs=0.2
    )
    assert report["top"]
    assert all(q["per_alert"] > 0 for q in report["top"])
    assert "| database of |" in statements.report(report)


def test_summary_counts_commits_as_transactions_and_ignores_other_databases() -> None:
    stats = [
        ("db_gw", 20, 10.0, 5, "COMMIT", 0, 0.0),
        ("db_gw", 40, 30.0, 40, "INSERT INTO x VALUES ($1)", 8, 2.0),
        ("db_nl", 10, 5.0, 0, "COMMIT", 0, 0.0),
        ("postgres", 99, 99.0, 0, "SELECT 1", 99, 9.0),
    ]
    s = statements.summarize(stats, {"db_gw": "gateway", "db_nl": "nl-customs"}, alerts=10)
    assert s["services"]["gateway"] == {
        "statements_per_alert": 6.0,
        "transactions_per_alert": 2.0,
        "rows_per_alert": 4.5,
        "exec_ms_per_alert": 4.0,
        "plans_per_alert": 0.8,
        "plan_ms_per_alert": 0.2,
    }
    assert s["services"]["nl-customs"]["transactions_per_alert"] == 1.0
    assert s["total"]["statements_per_alert"] == 7.0
    assert s["total"]["plans_per_alert"] == 0.8
    assert s["top"][0]["query"] == "INSERT INTO x VALUES ($1)"
