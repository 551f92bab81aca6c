"""The done-criterion for cases: a gateway and three nodes as separate processes.

It reuses the process harness of ``test_processes`` (each service is
``python -m intelshare.cli ... serve`` in its own process, mTLS between
them) with the case treaties of ``test_cases``, and plays a task force's
day on SQLite and on PostgreSQL:

nl-customs opens a case with be-police → both write → de-customs joins
and receives the history with its authors' signatures → an analyst at
de-customs follows the case with ``intelshare case follow`` → entries from
all three reach everyone, redacted per treaty → be-police is killed
(SIGKILL) while the others write, restarts and catches up, nothing twice →
de-customs' node is killed under the follower and restarts; the follower
resumes after its last cursor, every event once and in order →
de-customs is removed and receives nothing after.

Waits poll a condition with a deadline; nothing sleeps in place of waiting.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from intelshare.v1 import case_pb2
from node.cli.case_client import CaseClient
from node.storage import tables as t
from tests.node.conftest import TASKFORCE, wait_for
from tests.node.kinds.test_cases import entry, fed, new_case  # noqa: F401  (fed: the case treaties)
from tests.node.test_processes import REPO, World, world  # noqa: F401  (world: the harness)

pytestmark = pytest.mark.slow


def client(w: World, agency: str, role: str = "liaison") -> CaseClient:
    return CaseClient(
        f"127.0.0.1:{w.nodes[agency].port}",
        ca_pem=w.fed.ca_file.read_bytes(),
        server_name=agency,
        token=w.tokens[agency][role],
        timeout=15.0,
    )


def entries(w: World, agency: str, case_name: str) -> list[case_pb2.CaseEntry]:
    with client(w, agency, "admin") as c:
        return c.all_entries(case_name)


def wait_entries(w: World, agency: str, case_name: str, n: int) -> list[case_pb2.CaseEntry]:
    def enough() -> list[case_pb2.CaseEntry] | None:
        try:
            got = entries(w, agency, case_name)
        except Exception:  # node restarting, case not arrived yet
            return None
        return got if len(got) >= n else None

    found: list[case_pb2.CaseEntry] = wait_for(enough, 60, f"{n} entries at {agency}")
    return found


def held(w: World, agency: str, case_name: str) -> case_pb2.Case | None:
    try:
        with client(w, agency, "admin") as c:
            return c.get_case(case_name)
    except Exception:
        return None


def pin_port(w: World, agency: str) -> None:
    """Rewrite the node's config so that a restart listens on the port it has now."""
    cfg = w.configs[agency]
    data = yaml.safe_load(cfg.read_text())
    data["node"]["listen"] = f"127.0.0.1:{w.nodes[agency].port}"
    cfg.write_text(yaml.safe_dump(data))


class Follower:
    """``intelshare case follow ID --json`` in its own process; lines arrive on a queue."""

    def __init__(self, w: World, agency: str, case_name: str) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "intelshare.cli",
                "case",
                "--node",
                f"127.0.0.1:{w.nodes[agency].port}",
                "--ca",
                str(w.fed.ca_file),
                "--server-name",
                agency,
                "follow",
                case_name,
                "--json",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "INTELSHARE_TOKEN": w.tokens[agency]["analyst"]},
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode())

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode())

    def until(self, predicate: Any, what: str, timeout: float = 60.0) -> None:
        def drain() -> bool:
            while True:
                try:
                    self.events.append(json.loads(self.lines.get_nowait()))
                except queue.Empty:
                    break
            return bool(predicate(self.events))

        wait_for(drain, timeout, f"{what} (stderr: {''.join(self.stderr)[-500:]})")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def follower_cleanup() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for f in started:
        if f.proc.poll() is None:
            f.stop()


def added(events: list[dict[str, Any]], author: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["type"] == "case.entry_added" and (author is None or e.get("agency_id") == author)
    ]


def test_three_agency_case_across_processes(
    world: World,  # noqa: F811
    follower_cleanup: list[Follower],
) -> None:
    w = world
    nl = client(w, "nl-customs")

    # --- open with be-police; both write ---------------------------------------------------
    case = nl.create_case(new_case(members=("be-police",)))
    assert case.treaty_id == TASKFORCE
    wait_for(lambda: held(w, "be-police", case.name), 60, "case at be-police")
    nl.add_entry(case.name, entry("nl: container MSCU1234566 booked"))
    with client(w, "be-police") as be:
        be.add_entry(case.name, entry("be: consignee seen in Antwerp"))
    wait_entries(w, "nl-customs", case.name, 2)

    # --- membership change: de-customs joins and receives the history -------------------
    nl.add_member(case.name, "de-customs")
    history = wait_entries(w, "de-customs", case.name, 2)
    signatures = {e.author_agency: e.evidence.signature for e in history}
    assert signatures == {
        "nl-customs": case_pb2.ENTRY_SIGNATURE_AUTHOR_ENVELOPE,
        "be-police": case_pb2.ENTRY_SIGNATURE_FORWARDED_AUTHOR_ENVELOPE,
    }
    assert all(e.subjects.persons[0].passport_number == "" for e in history)
    wait_for(
        lambda: len(held(w, "be-police", case.name).members) == 3,  # type: ignore[union-attr]
        60,
        "be-police learns that de-customs joined",
    )

    # --- an analyst at de-customs follows the case live ----------------------------------------
    with client(w, "de-customs") as de:
        de.add_officer(case.name, "analyst")
    pin_port(w, "de-customs")
    follower = Follower(w, "de-customs", case.name)
    follower_cleanup.append(follower)
    follower.until(lambda ev: len(added(ev)) >= 2, "history on the follower")

    # --- entries from all three reach everyone --------------------------------------------------
    with client(w, "de-customs", "analyst") as de:
        de.add_entry(case.name, entry("de: payment traced to a Hamburg account"))
    with client(w, "be-police", "liaison") as be:
        be.add_entry(case.name, entry("be: second sighting"))
    nl.add_entry(case.name, entry("nl: vessel arriving Thursday"))
    for agency in ("nl-customs", "be-police", "de-customs"):
        got = wait_entries(w, agency, case.name, 5)
        assert len({e.name for e in got}) == 5
        for e in got:
            if e.author_agency != agency:
                assert e.subjects.persons[0].passport_number == ""
    follower.until(lambda ev: len(added(ev)) >= 5, "five entries on the follower")

    # --- node restart: be-police is down while the others write ---------------------------------
    w.nodes["be-police"].kill()
    nl.add_entry(case.name, entry("nl: while be is down"))
    with client(w, "de-customs", "analyst") as de:
        de.add_entry(case.name, entry("de: while be is down"))
    wait_entries(w, "nl-customs", case.name, 7)
    w.nodes["be-police"].start()
    at_be = wait_entries(w, "be-police", case.name, 7)
    assert len(at_be) == len({e.name for e in at_be}) == 7

    # --- the followed node restarts: the follower resumes after its cursor ---------------------
    follower.until(lambda ev: len(added(ev)) >= 7, "seven entries on the follower")
    w.nodes["de-customs"].kill()
    nl.add_entry(case.name, entry("nl: while de is down"))
    w.nodes["de-customs"].start()
    follower.until(lambda ev: len(added(ev)) >= 8, "the follower resumed after the restart")
    cursors = [int(e["cursor"]) for e in follower.events]
    assert cursors == sorted(set(cursors))  # once each, in order
    assert len({e["event_id"] for e in follower.events}) == len(follower.events)
    assert any("resuming after cursor" in line for line in follower.stderr)

    # --- de-customs is removed and receives nothing after -----------------------------------------
    nl.remove_member(case.name, "de-customs")
    wait_for(
        lambda: (
            (c := held(w, "de-customs", case.name)) is not None
            and c.standing == case_pb2.CASE_STANDING_REMOVED
        ),
        60,
        "de-customs learns it was removed",
    )
    follower.until(
        lambda ev: any(
            e["type"] == "case.member_removed" and e.get("agency_id") == "de-customs" for e in ev
        ),
        "the removal on the follower",
    )
    de_received = w.count("de-customs", t.received)
    nl.add_entry(case.name, entry("nl: after de left"))
    with client(w, "be-police") as be:
        be.add_entry(case.name, entry("be: after de left"))
    wait_entries(w, "be-police", case.name, 10)
    wait_entries(w, "nl-customs", case.name, 10)
    assert len(entries(w, "de-customs", case.name)) == 8
    assert w.count("de-customs", t.received) == de_received
    # Nothing twice anywhere: one stored entry per entry id.
    assert w.count("be-police", t.case_entries) == 10
    assert w.count("nl-customs", t.case_entries) == 10

    nl.close()
    follower.stop()
    for agency in w.nodes:
        w.nodes[agency].stop()
        assert "Traceback" not in w.nodes[agency].log_text(), w.nodes[agency].log_text()
