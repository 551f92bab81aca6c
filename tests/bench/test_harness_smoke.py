"""The bench harness's own logic: profile summaries, percentiles, process status."""

from __future__ import annotations

import os
from pathlib import Path

from bench import _harness as h


def test_profile_summary_from_py_spy_raw_output(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "run (threading.py:1);_run (node/sharing/inbound.py:10);handle_entry (node/sharing/inbound.py:20);"
        "execute (sqlalchemy/engine/base.py:5) 60\n"
        "run (threading.py:1);_run (node/sharing/inbound.py:10);open_envelope (intelshare/envelope.py:3)"
        " 30\n"
        "serve (grpc/_server.py:9) 10\n"
    )
    prof = object.__new__(h.Profile)
    prof.out, prof.error, prof.proc = raw, "", None
    summary = prof.result()
    assert summary["samples"] == 100
    assert summary["self"][0] == ["sqlalchemy/engine/base.py:execute", 60.0]
    assert ["sqlalchemy", 60.0] in summary["by_package"]
    assert ["intelshare/envelope.py", 30.0] in summary["by_package"]
    inclusive = dict((k, v) for k, v in summary["inclusive_ours"])
    assert inclusive["node/sharing/inbound.py:_run"] == 90.0
    assert inclusive["node/sharing/inbound.py:handle_entry"] == 60.0
    assert "60 %" in h.profile_text(summary)
    few = {**summary, "samples": 99}
    assert "too few" in h.profile_text(few)


def test_profile_without_output_reports_why(tmp_path: Path) -> None:
    prof = object.__new__(h.Profile)
    prof.out, prof.error, prof.proc = tmp_path / "none.txt", "py-spy not available", None
    assert h.profile_text(prof.result()) == "(no profile: py-spy not available)"


def test_percentile_and_ratio() -> None:
    assert h.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert h.percentile([], 50) != h.percentile([], 50)  # NaN
    assert h.ratio(3, 2) == 1.5


def test_status_of_this_process() -> None:
    status = h.proc_status(os.getpid())
    assert status["VmRSS"] > 0
    assert status["Threads"] >= 1
    assert h.cpu_seconds(os.getpid()) > 0
