"""The README's "A federation by hand" runs as written, with real processes.

The commands are the ``sh`` block under that heading, taken from README.md
itself, run by ``bash -e`` in an empty directory with the project's
``intelshare`` on ``PATH``, the way a new operator pastes them: the
operator's steps, a gateway and two nodes started in the background, two
officers, an alert issued at one node and delivered to the other, and the
gateway's receipt for it fetched and verified offline. The only thing the
test changes is the port numbers (every ``127.0.0.1:PORT`` is mapped to a
free port, consistently), so that a run does not depend on, or disturb,
what else listens on this machine; gRPC servers bind with SO_REUSEPORT, so
a second gateway on a busy port would not even fail. The one answer the
block asks for (the enrolment fingerprint) is given on standard input, as a
person types it. Everything it started is stopped at the end, and the test
checks that nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
HEADING = "## A federation by hand"
RECEIPT_LINE = "intelshare alert receipt "


def by_hand_block(text: str) -> str:
    """The first ``sh`` fenced block of the section, exactly as written."""
    section = text.split(f"\n{HEADING}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^```sh\n(.*?)^```$", section, re.S | re.M)
    assert match, f"no ```sh block under {HEADING!r} in README.md"
    return match.group(1)


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def with_free_ports(script: str) -> str:
    ports = sorted(set(re.findall(r"127\.0\.0\.1:(\d+)", script)), key=int)
    mapping = dict(zip(ports, map(str, free_ports(len(ports))), strict=True))
    return re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{mapping[m.group(1)]}", script)


def stop_group(pgid: int) -> None:
    """SIGTERM every process of the group (the servers run on after bash exits), then KILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def test_the_block_is_the_whole_path_to_a_verified_receipt() -> None:
    """Cheap checks on the text, so a broken README fails fast and says why."""
    block = by_hand_block(README.read_text())
    commands = [line for line in block.splitlines() if line and not line.startswith(("#", " "))]
    assert commands[0].startswith("export INTELSHARE_FEDERATION_DIR=")
    assert commands[-2].startswith(RECEIPT_LINE)
    assert commands[-1].startswith("intelshare receipt verify receipt.pb")
    background = [c for c in commands if c.endswith("&")]
    assert [c.split()[1:3] for c in background] == [
        ["gateway", "serve"],
        ["node", "serve"],
        ["node", "serve"],
    ]
    for needed in (
        "federation server-cert",
        "federation request",
        "--request",
        "directory publish",
        "treaty example",
        "treaty draft",
        "treaty sign",
        "treaty publish",
        "node officer add",
        "alert issue",
    ):
        assert f"intelshare {needed}" in block or needed in block, needed


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_readme_by_hand_runs_as_written(tmp_path: Path) -> None:
    block = by_hand_block(README.read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTELSHARE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")
    script = with_free_ports(block)
    work = tmp_path / "by-hand"
    work.mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "by-hand.sh").write_text(script)
    output = tmp_path / "by-hand.out"
    with output.open("wb") as out:
        bash = subprocess.Popen(
            ["bash", "-e", "-x", str(tmp_path / "by-hand.sh")],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
            env=env,
            start_new_session=True,
        )
        try:
            assert bash.stdin is not None
            bash.stdin.write(b"y\n")  # the operator confirms the fingerprint
            bash.stdin.close()
            code = bash.wait(timeout=480)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            stop_group(bash.pid)
            if bash.poll() is None:
                bash.kill()
                bash.wait()
    text = output.read_text(errors="replace")

    def logs() -> str:
        return "".join(
            f"\n--- {p.name} (tail)\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted(work.glob("*.log"))
        )

    assert code == 0, f"the block stopped (exit {code}):\n{text[-6000:]}{logs()}"
    # The alert reached de-customs, and nl-customs saw it delivered.
    issued = text.rsplit("+ intelshare alert show alerts/", 1)[1]
    assert re.search(r"de-customs\s+customs-demo v1\s+delivered", issued), issued[-3000:]
    received = text.rsplit("+ intelshare alert list --direction received", 1)[1]
    assert re.search(r"received\s+narcotics\s+normal\s+active\s+nl-customs", received), received
    assert "Cocaine in banana boxes" in received
    # Nothing the block started is left running.
    leftover = subprocess.run(
        ["pgrep", "-f", str(work)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert not leftover, f"still running: {leftover}"
    # The gateway's receipt, fetched from the node and verified offline.
    assert f"+ {RECEIPT_LINE}" in text
    assert "receipt OK: gateway 'gateway' accepted message" in text, text[-3000:]
