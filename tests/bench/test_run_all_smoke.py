"""run_all writes a README from whatever results exist, and never loses a section to one bench."""

from __future__ import annotations

import json
import sys
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
    data = {
        "machine": _machine(),
        "run": {"quick": True, "commit": "abc123", "loadavg_start": [1.0, 1.0, 1.0]},
        "results": results,
    }
    store = tmp_path / "results.json"
    store.write_text(json.dumps(data))
    readme = tmp_path / "README.md"
    assert run_all.main(["--report-only", "--results", str(store), "--readme", str(readme)]) == 1
    text = readme.read_text()
    assert text.startswith("# Benchmarks")
    assert "Test CPU, 2 cores" in text
    assert "`abc123`" in text
    assert "**the figures mean nothing**" in text
    # one summary line per bench, in the order run_all runs them
    summary = text.split("## Summary", 1)[1].split("## Method", 1)[0]
    lines = [line for line in summary.splitlines() if line.startswith("| [")]
    assert [line.split("]")[0][3:] for line in lines] == [b.name for b in _report.BENCHES]
    growth = next(line for line in lines if line.startswith("| [growth]"))
    assert "worst p50 2.0 ms (list_deep, 100 stored)" in growth
    assert "ratio 2.00 (target ≤ 1.5)" in growth
    assert "| **failed** |" in next(line for line in lines if line.startswith("| [memory]"))
    assert "| not run |" in next(line for line in lines if line.startswith("| [ipr]"))
    # and a section per bench: the failure's tail, the method of one not run
    assert "**The bench failed in this run:**" in text
    assert "Traceback: boom" in text
    for bench in _report.BENCHES:
        assert f"### {bench.name}\n" in text
    assert "`bench/_seed.py`" in text


def test_a_run_gives_each_bench_its_arguments_and_keeps_what_failed(tmp_path: Path) -> None:
    growth = _report.BY_NAME["growth"]
    quick = run_all.bench_argv(growth, quick=True, full=False)
    assert quick[1:] == ["-m", "bench.growth", "--json", "--quick"]
    assert run_all.bench_argv(growth, quick=False, full=False)[-4:-2] == ["--large", "10000"]
    assert run_all.bench_argv(growth, quick=False, full=True)[-4:-2] == ["--large", "100000"]
    # screen_rpc prints JSON without being asked
    assert "--json" not in run_all.bench_argv(_report.BY_NAME["screen_rpc"], quick=True, full=False)
    failed = run_all.run_bench(
        [sys.executable, "-c", "import sys; print('no json'); sys.exit(3)"], tmp_path / "x.log"
    )
    assert failed["error"].startswith("exit status 3")
    ran = run_all.run_bench(
        [
            sys.executable,
            "-c",
            "import json; print('noise'); print(json.dumps({'figure': 1}))",
        ],
        tmp_path / "y.log",
    )
    assert ran["figure"] == 1
    assert ran["bench_seconds"] >= 0


def test_unknown_bench_is_a_usage_error(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(SystemExit) as info:
        run_all.main(["--only", "nonsense", "--results", str(tmp_path / "r.json")])
    assert info.value.code == 2


def test_a_failed_bench_is_run_again_and_the_report_says_so(tmp_path: Path) -> None:
    data = {
        "machine": _machine(),
        "run": {"quick": True, "commit": "abc123", "started": "2026-01-01 00:00 UTC"},
        "results": {
            "screening": {
                "error": "exit status 1\nOperationalError: FATAL:  sorry, too many clients already\n"
                "(Background on this error at: https://sqlalche.me/e/21/e3q8)\n"
            }
        },
    }
    store = tmp_path / "results.json"
    store.write_text(json.dumps(data))
    readme = tmp_path / "README.md"
    argv = [
        "--retry-failed",
        "--only",
        "screening",
        "--results",
        str(store),
        "--readme",
        str(readme),
    ]
    assert run_all.main(argv) == 0
    again = json.loads(store.read_text())
    assert "error" not in again["results"]["screening"]
    assert again["results"]["screening"]["benchmark"] == "screening"
    retried = again["run"]["retried"]["screening"]
    assert retried["first_error"] == "OperationalError: FATAL:  sorry, too many clients already"
    text = readme.read_text()
    assert "**Run again**: screening failed in this run" in text
    assert "too many clients already" in text
