"""The gateway bench still runs end to end and reports what the README is built from.

Timings are not asserted: a test machine is not a benchmark machine. The
quick mode starts the real servers (gateway and echo, each its own process),
submits and streams a handful of envelopes and echoes as many calls, so a
bench that would crash, hang or report nonsense structure is caught here,
not the day someone wants figures. PostgreSQL is included when the shared
server is reachable (the bench uses its own database and drops it).
"""

from __future__ import annotations

import json

import pytest

from bench import gateway as bench_gateway

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SUBMIT_KEYS = {
    "submitters",
    "calls_per_round",
    "request_bytes",
    "response_bytes",
    "per_second",
    "echo_per_second",
    "ratio",
    "server_cpu_us",
    "echo_server_cpu_us",
}
FLOOR_KEYS = {"per_second", "ratio", "server_cpu_us"}
STREAM_KEYS = {
    "entries_per_round",
    "entry_bytes",
    "per_second",
    "echo_per_second",
    "ratio",
    "server_cpu_us",
    "echo_server_cpu_us",
}


def test_quick_run_reports_each_measurement_beside_its_echo() -> None:
    report = bench_gateway.run(quick=True)
    assert report["benchmark"] == "gateway"
    assert report["quick"] is True
    assert report["targets"] == {"submit_ratio": 0.40, "stream_ratio": 0.50}
    assert {"cpu", "nproc", "python", "grpcio", "sqlite", "date"} <= set(report["machine"])
    backends = [r["backend"] for r in report["results"]]
    assert backends[0] == "sqlite"
    assert set(backends) | set(report["skipped"]) == {"sqlite", "postgresql"}
    for result in report["results"]:
        assert [s["submitters"] for s in result["submit"]] == list(bench_gateway.SUBMITTERS)
        for s in result["submit"]:
            # the mandated-work floor is measured beside every submit figure
            floor = s["floor"]
            assert set(floor) == FLOOR_KEYS
            assert floor["per_second"] > 0
            assert floor["ratio"] > 0
            assert set(s) - {"floor"} == SUBMIT_KEYS
            assert s["per_second"] > 0
            assert s["echo_per_second"] > 0
            assert s["ratio"] > 0
            assert s["request_bytes"] > 1000  # an envelope with a 1 KiB payload
            assert s["response_bytes"] > 0  # a receipt
            assert s["server_cpu_us"] >= 0
        assert set(result["stream"]) == STREAM_KEYS
        assert result["stream"]["per_second"] > 0
        assert result["stream"]["entry_bytes"] > 1000
    table = bench_gateway.format_table(report)
    assert "QUICK" in table
    rows = len(report["results"]) * (len(bench_gateway.SUBMITTERS) + 1)
    floors = len(report["results"]) * len(bench_gateway.SUBMITTERS)
    # each table's header row plus one row per measurement and one per floor
    assert table.count("\n| ") == 2 + rows + floors


def test_main_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_gateway.main(["--quick", "--json", "--backends", "sqlite"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["quick"] is True
    assert [r["backend"] for r in printed["results"]] == ["sqlite"]


def test_unknown_backend_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        bench_gateway.main(["--quick", "--backends", "oracle"])
    assert info.value.code == 2
