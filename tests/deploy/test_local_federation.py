"""`make run`'s script plays its whole scenario against real processes.

It starts the gateway, three nodes and their workers as separate processes
on the embedded defaults, plays the scenario through the officers' command
line (which exits non-zero, failing the script, at the first step that does
not do what it should), writes the federation description, and shuts
everything down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_make_run_scenario_end_to_end() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTELSHARE_")}
    done = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "local_federation.py"), "--exit"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=540,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    # Redaction per treaty: de-customs saw the passport number, be-police did not.
    de_view = out.split("[analyst@de-customs] $ intelshare alert show", 1)[1].split("\n[", 1)[0]
    be_view = out.split("[analyst@be-police] $ intelshare alert show", 1)[1].split("\n[", 1)[0]
    assert "passport_number=NXC4KR7P1" in de_view
    assert "NXC4KR7P1" not in be_view
    assert "CATEGORY_NOT_PERMITTED" in out
    assert "Port of Antwerp" in out.split("[liaison@nl-customs] $ intelshare alert show", 2)[2]
    assert out.count("case.entry_added") >= 3
    assert "stopped." in out
    described = json.loads((REPO / ".intelshare" / "demo" / "federation.json").read_text())
    assert set(described["nodes"]) == {"nl-customs", "be-police", "de-customs"}
    assert described["gateway"]["address"].startswith("127.0.0.1:")
    for node in described["nodes"].values():
        assert node["officers"]["liaison"]["token"]
    # Nothing is left running.
    leftover = subprocess.run(
        ["pgrep", "-f", str(REPO / ".intelshare" / "demo")], capture_output=True, check=False
    )
    assert leftover.stdout.strip() == b""
