"""`make run`'s script plays its whole scenario against real processes.

It starts the gateway, three nodes and their workers as separate processes
on the embedded defaults, plays the scenario through the officers' command
line (which exits non-zero, failing the script, at the first step that does
not do what it should), writes the federation description, and shuts
everything down.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    # Every command it prints can be pasted into a shell as it stands.
    typed = [line.split("$ ", 1)[1] for line in out.splitlines() if "$ intelshare " in line]
    assert len(typed) > 10
    words = [shlex.split(t) for t in typed]
    (hit,) = [w for w in words if w[1:3] == ["alert", "hit"]]
    assert (
        hit[hit.index("--found") + 1] == "Consignee's director seen collecting a second container"
    )
    # The officers' tokens are shown under the heading that promises them.
    officers = out.split("== Officers and their tokens", 1)[1].split("\n== ", 1)[0]
    assert len(re.findall(r"^(liaison|analyst)-\S+ +token \S{20,}$", officers, re.M)) == 6
    # A web console per node, each printed with the tokens to sign in with.
    consoles = out.split("== The officers' web consoles", 1)[1].split("\n== ", 1)[0]
    assert len(re.findall(r"^console \S+ +http://127\.0\.0\.1:\d+ ", consoles, re.M)) == 3
    assert (
        len(re.findall(r"^  sign in as (liaison|analyst)-\S+ +with token \S{20,}$", consoles, re.M))
        == 6
    )
    described = json.loads((REPO / ".intelshare" / "demo" / "federation.json").read_text())
    assert set(described["nodes"]) == {"nl-customs", "be-police", "de-customs"}
    assert described["gateway"]["address"].startswith("127.0.0.1:")
    for node in described["nodes"].values():
        assert node["officers"]["liaison"]["token"]
        assert node["console"].startswith("http://127.0.0.1:")
    _check_ipr_story(out, officers)
    _check_risk_story(out)
    holder = described["nodes"]["de-customs"]["officers"]["rights_holder"]
    assert holder["token"] in officers
    # Nothing is left running.
    leftover = subprocess.run(
        ["pgrep", "-f", str(REPO / ".intelshare" / "demo")], capture_output=True, check=False
    )
    assert leftover.stdout.strip() == b""


def _section(out: str, title: str) -> str:
    """The scenario's output under the heading that starts with ``title``."""
    return out.split(f"\n== {title}", 1)[1].split("\n== ", 1)[0]


def _output(section: str, who: str, command: str) -> str:
    """What ``command`` (its first words) printed for officer ``who`` in ``section``."""
    return section.split(f"[{who}] $ intelshare {command}", 1)[1].split("\n[", 1)[0]


def _check_ipr_story(out: str, officers: str) -> None:
    """Issue 17's story: recordation, detention by GTIN, the holder's answer, report, stats."""
    assert re.search(r"^rights_holder-de-customs +token \S{20,}$", officers, re.M)
    granted = _section(out, "6. IPR")
    assert "recordations/acme-shoes  granted  ACME (trade mark, EUIPO 018123456)" in granted
    assert "shared with: de-customs (customs-mutual-assistance)" in granted
    detained = _section(out, "7. de-customs detains")
    found = _output(detained, "liaison@de-customs", "recordation find")
    assert "from nl-customs  ACME  matched by: gtin" in found
    assert "suggested recordations: recordations/acme-shoes" in detained
    assert "holder_answer        due by the end of" in detained
    answered = _section(out, "8. The rights holder")
    feed = answered.split("its feed (IprService.WatchDetentions) brought:", 1)[1]
    assert re.search(r"detention\.moved +detentions/hamburg-0412", feed)
    listed = _output(answered, "rights_holder@de-customs", "detention list")
    assert re.search(
        r"^ +hamburg-0412 +holder_notified +standard .+ \d{4}-\d\d-\d\d$", listed, re.M
    )
    shown = _output(answered, "rights_holder@de-customs", "detention show")
    assert "holder_answer" in shown
    assert "Hans Muster" not in shown  # the holder does not see the parties (art. 17(4))
    assert "detentions/hamburg-0412  destruction_agreed" in answered
    reported = _section(out, "9. The detention report")
    reports = _output(reported, "analyst@nl-customs", "detention reports")
    assert re.search(r"de-customs +\S+ +1200 +recordations/acme-shoes", reports)
    stats = _output(reported, "analyst@nl-customs", "ipr stats")
    assert re.search(r"^ +de-customs +CN +trade_mark +1 +1200 +EUR 96 000$", stats, re.M)


def _check_risk_story(out: str) -> None:
    """Issue 18's story: a shared profile, 10,000 declarations, 3 targets, a link, reports."""
    shared = _section(out, "10. Risk targeting")
    received = _output(shared, "analyst@de-customs", "profile list")
    assert re.search(r"active +nl-customs +physical inspection .+ Counterfeit medicines", received)
    screened = _section(out, "11. de-customs screens")
    summary = _output(screened, "analyst@de-customs", "screen")
    # read, screened, targeted, hits stored (3 on the profile, 1 on the alert's container), not
    assert re.search(r"^ +10000 +10000 +3 +4 +0$", summary, re.M)
    assert [int(n) for n in re.findall(r"^ +line (\d+) ", summary, re.M)] == [19, 4244, 9003]
    assert re.search(r"watched container iso6346:MSCU1234566: alerts/\S+", summary)
    assert re.search(r"declarations screened in [\d.]+ s", screened)
    related = _output(screened, "analyst@de-customs", "related")
    assert re.search(
        r"^ +alerts/\S+ +alert +iso6346:MSCU1234566 +container +received", related, re.M
    )
    assert "riskHits/" in related
    reports = _section(out, "12. The hit reports")
    stats = _output(reports, "liaison@nl-customs", "profile stats")
    assert "3 hits, 1 inspected, 1 confirmed, 0 nothing found" in stats
    hits = _output(reports, "liaison@nl-customs", "profile hits")
    assert sorted(re.findall(r"26DE\d{14}", hits)) == [
        "26DE00000000000017",
        "26DE00000000004242",
        "26DE00000000009001",
    ]


# --- pieces of the script, without the processes --------------------------------------


def _script() -> Any:
    """deploy/local_federation.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "local_federation", REPO / "deploy" / "local_federation.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_printed_commands_can_be_pasted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the demo prints an officer typing is what a shell turns back into the same words."""
    lf = _script()
    said: list[str] = []
    monkeypatch.setattr(lf, "say", said.append)
    monkeypatch.setattr(
        lf.subprocess,
        "run",
        lambda argv, **_kw: subprocess.CompletedProcess(argv, 0, stdout="", stderr=""),
    )
    args = (
        "alert",
        "hit",
        "01ABC",
        "--place",
        "Port of Antwerp, quay 1742",
        "--found",
        "Consignee's director seen collecting a second container",
        "--note",
        'a "quoted" $HOME; and `more`',
    )
    lf.Officer("be-police", "analyst", tmp_path / "client.yaml").run(*args)
    (line,) = [s for s in said if "$ intelshare" in s]
    typed = line.split("$ ", 1)[1]
    assert shlex.split(typed) == ["intelshare", *args]


def test_database_names_are_per_demo_directory(tmp_path: Path) -> None:
    lf = _script()
    services = ["gateway", "nl-customs", "be-police", "de-customs"]
    one = lf.database_names(tmp_path / "clone-a" / ".intelshare" / "demo", services)
    again = lf.database_names(tmp_path / "clone-a" / ".intelshare" / "demo", services)
    other = lf.database_names(tmp_path / "clone-b" / ".intelshare" / "demo", services)
    assert one == again
    assert set(one.values()).isdisjoint(other.values())
    for name in [*one.values(), *other.values()]:
        assert len(name) <= 63  # PostgreSQL's identifier limit
        assert re.fullmatch(r"intelshare_demo_[0-9a-f]{10}_[a-z_]+", name)


def _databases(server: str) -> set[str]:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database").fetchall()
    return {r[0] for r in rows}


@pytest.mark.postgres
def test_a_demo_drops_its_own_databases_and_no_one_elses(
    tmp_path: Path, postgres_server_url: str
) -> None:
    lf = _script()
    mine = lf.Databases(tmp_path / "a" / "demo", postgres_server_url)
    theirs = lf.Databases(tmp_path / "b" / "demo", postgres_server_url)
    try:
        urls = mine.create(["gateway", "nl-customs"])
        theirs.create(["gateway", "nl-customs"])
        assert set(urls) == {"gateway", "nl-customs"}
        assert all(u.rsplit("/", 1)[1] in mine.created for u in urls.values())
        assert set(mine.created) | set(theirs.created) <= _databases(postgres_server_url)
        assert set(mine.created).isdisjoint(theirs.created)

        # A demo from the same directory again: the kept databases are replaced.
        kept = list(mine.created)
        again = lf.Databases(tmp_path / "a" / "demo", postgres_server_url)
        assert again.create(["gateway", "nl-customs"]) == urls
        assert again.created == kept

        assert sorted(again.drop()) == sorted(kept)
        present = _databases(postgres_server_url)
        assert present.isdisjoint(kept)
        assert set(theirs.created) <= present  # the other demo's are untouched
        assert again.drop() == []
    finally:
        theirs.drop()
        mine.drop()
    assert _databases(postgres_server_url).isdisjoint(mine.created + theirs.created)


def test_sqlite_databases_live_in_the_demo_directory(tmp_path: Path) -> None:
    lf = _script()
    dbs = lf.Databases(tmp_path / "demo", None)
    assert dbs.create(["gateway"]) == {
        "gateway": f"sqlite:///{tmp_path / 'demo' / 'data' / 'gateway.db'}"
    }
    assert dbs.drop() == []


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_make_run_on_postgresql_drops_its_own_databases_on_exit(postgres_server_url: str) -> None:
    """Databases named for this demo directory; another demo's are never touched."""
    import psycopg

    from tests.conftest import PG_ADMIN_URL

    lf = _script()
    services = ["gateway", "nl-customs", "be-police", "de-customs"]
    ours = set(lf.database_names(lf.ROOT, services).values())
    other = lf.database_names(Path("/elsewhere/.intelshare/demo"), ["gateway"])["gateway"]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{other}"')
        conn.execute(f'CREATE DATABASE "{other}"')
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTELSHARE_")}
        env["INTELSHARE_DATABASE_URL"] = PG_ADMIN_URL
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
        config = (lf.ROOT / "gateway.yaml").read_text()
        assert any(name in config for name in ours), config
        assert "dropped the PostgreSQL databases" in out
        present = _databases(PG_ADMIN_URL)
        assert present.isdisjoint(ours)
        assert other in present  # another directory's demo: left alone
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


def test_the_generated_declarations_target_three_and_link_one(tmp_path: Path) -> None:
    """The demo's file, screened by the node's own reader and matcher: what the story promises."""
    import yaml

    from node.targeting.criteria import parse_criteria
    from node.targeting.declarations import Parsed, read_declarations
    from node.targeting.matcher import IndexedMatcher, Profile

    lf = _script()
    path = lf.write_declarations(tmp_path / "declarations.csv")
    criteria = parse_criteria(yaml.safe_load(lf.PROFILE_YAML)["criteria"])
    watch = {f"iso6346:{lf.ALERT_CONTAINER}": ["alerts/step-1"]}
    matcher = IndexedMatcher([Profile("profile", criteria)], watch)
    with path.open("rb") as stream:
        read = list(read_declarations(stream, "csv"))
    assert all(isinstance(r, Parsed) for r in read)
    assert len(read) == lf.DECLARATIONS == 10_000
    screenings = {r.line: matcher.screen(r.declaration) for r in read if isinstance(r, Parsed)}
    targeted = {line: s for line, s in screenings.items() if s.targeted}
    assert sorted(targeted) == [i + 2 for i in lf.RISK_TARGETS]  # line 1 is the header
    assert all(s.profiles for s in targeted.values())
    linked = targeted[lf.RISK_TARGETS[1] + 2]
    assert [(h.role, h.key, h.records) for h in linked.subjects] == [
        ("container", "iso6346:MSCU1234566", ("alerts/step-1",))
    ]
    assert not any(s.subjects for s in targeted.values() if s is not linked)
