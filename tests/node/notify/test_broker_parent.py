"""The bundled Redis dies with the process that started it, even one killed by SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

SCRIPT = """
import subprocess, time
from node.notify.broker import _die_with_parent
child = subprocess.Popen(_die_with_parent(["sleep", "120"]), start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="no setpriv (util-linux) on PATH")
def test_server_gets_sigterm_when_its_starter_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    assert _alive(pid)
    # setpriv sets the parent-death signal and then execs sleep: kill the
    # starter only once the exec has happened, or the signal may not be set yet.
    deadline = time.monotonic() + 10
    while _comm(pid) != "sleep" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _comm(pid) == "sleep"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the child outlived the process that started it"
