"""The end-to-end screening bench runs against a real node and answers every declaration.

Timings are not asserted (a test machine is not a benchmark machine); that
every declaration is answered without errors and that the report holds its
figures are.
"""

from __future__ import annotations

import pytest

from bench import screen_rpc

pytestmark = pytest.mark.slow


def test_quick_run_answers_every_declaration() -> None:
    report = screen_rpc.run(quick=True, backend="sqlite")
    assert report["benchmark"] == "screen_rpc"
    assert report["answers"] == report["declarations"] == 500
    assert report["errors"] == 0
    assert report["declarations_per_s"] > 0
    assert report["node_cpu_ms_per_1000"] > 0
    assert report["hits_stored"] >= report["targeted"]
