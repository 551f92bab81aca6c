"""run_all writes a README from whatever results exist, and never loses a section to one bench."""

from __future__ import annotations

import json
from pathlib import Path

from bench import _report, run_all


def _machine() -> dict[str, object]:
    return {
        "cpu": "Test CPU",
        "nproc": 2,
        "memory_gib": 1.0,
        "loadavg": [1.0, 1.0, 1.0],
        "python": "3.11",
        "kernel": "6",
        "versions": {"grpcio": "1"},
        "date": "2026-01-01 00:00 UTC",
    }


def test_report_only_writes_every_section_and_marks_failures(tmp_path: Path) -> None:
    results = {
        "growth": {
            "benchmark": "growth",
            "quick": True,
            "backend": "sqlite",
            "machine": _machine(),
            "target_ratio": 1.5,
            "sizes": [10, 100],
            "rounds": 1,
            "calls_per_round": 1,
            "seeding": {"a": {"alerts": 10, "rows": 90, "seconds": 0.1}},
            "results": {
                "list_deep": {
                    "small_p50_ms": 1.0,
                    "large_p50_ms": 2.0,
                    "small_p90_ms": 1.0,
                    "large_p90_ms": 2.0,
                    "ratio": 2.0,
                    "small_cpu_ms": 1.0,
                    "large_cpu_ms": 1.0,
                    "cpu_ratio": 1.0,
                    "calls": 1,
                    "loadavg": 1.0,
                }
            },
            "worst_ratio": 2.0,
        },
        "memory": {"error": "exit status 1\nTraceback: boom", "quick": True},
    }
    data = {"machine": _machine(), "run": {"quick": True, "seconds": {}}, "results": results}
    store = tmp_path / "results.json"
    store.write_text(json.dumps(data))
    readme = tmp_path / "README.md"
    assert run_all.main(["--report-only", "--results", str(store), "--readme", str(readme)]) == 1
    text = readme.read_text()
    assert text.startswith("# Benchmarks")
    assert "Test CPU" in text
    assert "| 5 growth | list_deep p50, 100 vs 10 alerts" in text
    assert "**no**" in text
    assert "The bench failed in this run" in text
    assert "Traceback: boom" in text
    for name, _module in _report.BENCHES:
        assert name in text or name.replace("_", " ") in text.lower()


def test_unknown_bench_is_a_usage_error(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(SystemExit) as info:
        run_all.main(["--only", "nonsense", "--results", str(tmp_path / "r.json")])
    assert info.value.code == 2
