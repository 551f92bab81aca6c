"""The screening bench still runs, and its two matchers agree on what it generates.

Timings are not asserted (a test machine is not a benchmark machine); the
structure of the report, the agreement of the indexed and naive matchers on
the bench's own inputs, and the README section are.
"""

from __future__ import annotations

import json

import pytest

from bench import screening


def test_quick_run_reports_every_size() -> None:
    report = screening.run(quick=True)
    assert report["benchmark"] == "screening"
    assert report["quick"] is True
    assert report["targets"] == {"indexed_per_s": 20_000, "flat_ratio": 0.67}
    assert [row["profiles"] for row in report["scale"]] == [10, 50, 200]
    for row in report["scale"]:
        assert row["agree"] is True
        assert row["indexed_per_s"] > 0
        assert row["naive_per_s"] > 0
        assert row["subjects"] == 200
        assert row["declarations"] == 300
    assert report["main"]["profiles"] == 50
    assert report["scale"][-1]["targeted_by_profiles"] > 0  # the inputs do meet the profiles
    assert report["scale"][-1]["targeted_by_subjects"] > 0
    assert report["read_csv_rows"] == 300  # the generated CSV reads back whole
    assert set(report["met"]) == {"rate", "flat"}
    table = screening.format_table(report)
    assert "QUICK" in table
    assert table.count("\n| ") == len(report["scale"]) + 1
    assert "declarations/s** indexed" in screening.report(report)


def test_main_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert screening.main(["--quick", "--json", "--seed", "7"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["seed"] == 7
    assert printed["quick"] is True
