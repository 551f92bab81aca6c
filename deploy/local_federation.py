"""``make run``: a whole federation on this machine, and a scenario to follow.

Starts, as separate processes, the gateway and three agency nodes (customs of
the Netherlands, police of Belgium, customs of Germany) with their
notification workers, on the embedded defaults (SQLite, and a bundled real
Redis per node) unless ``INTELSHARE_DATABASE_URL`` (a PostgreSQL server URL)
or ``INTELSHARE_REDIS_URL`` say otherwise (PostgreSQL databases named for the
demo directory, dropped on exit unless ``--keep-databases``). Each run
removes the previous demo's directory first. It then plays the scenario of the
design with the same ``intelshare`` commands an officer would type, printing
each command and its output, writes ``.intelshare/demo/federation.json`` for
scripts, and stays up until Ctrl-C.

This script sits in ``deploy/`` because it is a deployment — of everything,
on one machine — and may therefore start both services; the ``node`` and
``gateway`` packages never import each other.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml

from intelshare import devfed
from intelshare.treaty import Treaty, treaties_from_yaml

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / ".intelshare" / "demo"
SPEC = Path(__file__).with_name("demo-federation.yaml")
PY = sys.executable
ROLES = ("liaison", "analyst")


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(f"== {text} " + "=" * max(0, 70 - len(text)))


class Processes:
    """Child processes of the demo, stopped together (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = log.open("ab")
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [PY, "-m", "intelshare.cli", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        self.children.append((name, proc))
        return proc

    def stop(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _name, proc in reversed(self.children):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        time.sleep(0.1)
    raise SystemExit(f"demo: timed out waiting for {what}")


def wait_ready(name: str, proc: subprocess.Popen[bytes], ready: Path, log: Path) -> int:
    def check() -> int:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"demo: {name} exited during start-up; its log says:\n{tail}")
        text = ready.read_text().strip() if ready.exists() else ""
        return int(text) if text else 0

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        port = check()
        if port:
            return port
        time.sleep(0.1)
    raise SystemExit(f"demo: {name} did not become ready (see {log})")


# --- building the federation -------------------------------------------------------


def load_spec(today: date) -> tuple[list[devfed.AgencySpec], list[Treaty]]:
    data = yaml.safe_load(SPEC.read_text())
    agencies = [
        devfed.AgencySpec(a["id"], a["name"], a["country"], a["kind"]) for a in data["agencies"]
    ]
    treaties = []
    for treaty in treaties_from_yaml(SPEC.read_text()):
        mapping = treaty.to_mapping()
        if not treaty.valid_from <= today <= treaty.valid_until:
            # Keep the demo working on any date: shift the window to include today.
            span = treaty.valid_until - treaty.valid_from
            mapping["valid"] = {
                "from": (today - timedelta(days=30)).isoformat(),
                "until": (today - timedelta(days=30) + span).isoformat(),
            }
        treaties.append(Treaty.from_mapping(mapping))
    return agencies, treaties


def database_names(root: Path, names: Sequence[str]) -> dict[str, str]:
    """PostgreSQL database names of the demo in ``root``: one per service, unique to it.

    The names carry a digest of the host and the demo directory, so demos run
    from two clones (two users of one server) never touch each other's
    databases; a demo run again from the same directory reuses its names.
    """
    where = f"{socket.gethostname()}:{root.resolve()}"
    tag = hashlib.sha256(where.encode()).hexdigest()[:10]
    return {n: f"intelshare_demo_{tag}_{n.replace('-', '_')}" for n in names}


class Databases:
    """The demo's databases: SQLite files in the demo directory, or PostgreSQL databases.

    PostgreSQL databases (``INTELSHARE_DATABASE_URL``) are named for the demo
    directory (:func:`database_names`), created at start (the ones a previous
    demo from this directory kept are dropped first, as its directory is) and
    dropped when the demo stops unless it is asked to keep them.
    """

    def __init__(self, root: Path, server: str | None) -> None:
        self.root = root
        self.server = server
        self.created: list[str] = []

    def create(self, names: Sequence[str]) -> dict[str, str]:
        if not self.server:
            return {n: f"sqlite:///{self.root / 'data' / (n + '.db')}" for n in names}
        import psycopg

        base = self.server.rsplit("/", 1)[0]
        urls = {}
        with psycopg.connect(self.server, autocommit=True) as conn:
            for service, db in database_names(self.root, names).items():
                try:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}"')
                except psycopg.errors.ObjectInUse:
                    raise SystemExit(
                        f"demo: database {db} of a previous demo from {self.root} is still in "
                        "use; stop that demo first"
                    ) from None
                conn.execute(f'CREATE DATABASE "{db}"')
                self.created.append(db)
                urls[service] = f"{base}/{db}"
        return urls

    def drop(self) -> list[str]:
        """Drop the databases this demo created (after its processes stopped)."""
        if not self.server or not self.created:
            return []
        import psycopg

        dropped = []
        with psycopg.connect(self.server, autocommit=True) as conn:
            for db in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                dropped.append(db)
        self.created = []
        return dropped


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- running commands as an officer ----------------------------------------------


class Officer:
    def __init__(self, agency: str, role: str, client_config: Path) -> None:
        self.agency = agency
        self.role = role
        self.client_config = client_config

    @property
    def label(self) -> str:
        return f"{self.role}@{self.agency}"

    def run(
        self, *args: str, show: bool = True, expect_fail: bool = False
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "INTELSHARE_CLIENT_CONFIG": str(self.client_config)}
        if show:
            say(f"\n[{self.label}] $ intelshare {shlex.join(args)}")
        done = subprocess.run(  # noqa: S603 - our own interpreter and command
            [PY, "-m", "intelshare.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            check=False,
        )
        if show:
            for line in (done.stdout + done.stderr).rstrip().splitlines():
                say("    " + line)
        if (done.returncode != 0) != expect_fail:
            raise SystemExit(
                f"demo: `intelshare {shlex.join(args)}` exited {done.returncode}:\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json", show=False).stdout)


# --- the federation --------------------------------------------------------------


class Federation:
    def __init__(self, procs: Processes, databases: Databases) -> None:
        self.procs = procs
        self.databases = databases
        self.officers: dict[tuple[str, str], Officer] = {}
        self.tokens: dict[tuple[str, str], str] = {}
        self.node_ports: dict[str, int] = {}
        self.gateway_port = 0

    def build(self) -> None:
        today = datetime.now(UTC).date()
        agencies, treaties = load_spec(today)
        self.agencies = [a.agency_id for a in agencies]
        heading("Building the federation")
        if ROOT.exists():
            # Every run starts afresh: new keys, new databases, new tokens.
            say(f"removing the previous demo in {ROOT} (each make run starts afresh)")
            shutil.rmtree(ROOT)
        self.fed = devfed.build(ROOT, agencies, treaties, federation_id="demo")
        say(f"root key, CA and anchor in {self.fed.root / 'federation'}")
        for a in self.agencies:
            say(f"enrolled {a:<12} keys (0600), certificate, anchor: {self.fed.agencies[a].dir}")
        say(f"enrolled the gateway; directory v1 published ({self.fed.directory_file})")
        for tid, path in self.fed.treaties.items():
            t = self.fed.signed_treaty(tid).treaty
            say(f"treaty {tid} v{t.version}: signed by {', '.join(t.parties)} ({path.name})")
        self.urls = self.databases.create(["gateway", *self.agencies])
        if self.databases.server:
            say(f"PostgreSQL databases: {', '.join(self.databases.created)}")
        self.redis = os.environ.get("INTELSHARE_REDIS_URL")

    def start_gateway(self) -> None:
        heading("Starting the gateway")
        cfg = self.fed.gateway_config(self.urls["gateway"])
        if self.redis:
            cfg.update(redis_url=self.redis, redis_prefix="intelshare-demo:gateway:")
        self.gateway_config = write_yaml(ROOT / "gateway.yaml", {"gateway": cfg})
        ready, log = ROOT / "run" / "gateway.port", ROOT / "logs" / "gateway.log"
        proc = self.procs.start(
            "gateway",
            ["gateway", "serve", "--config", str(self.gateway_config), "--ready-file", str(ready)],
            log,
        )
        self.gateway_port = wait_ready("gateway", proc, ready, log)
        say(f"gateway listening on 127.0.0.1:{self.gateway_port} (mTLS); log: {log}")
        for tid, path in self.fed.treaties.items():
            party = self.fed.signed_treaty(tid).treaty.parties[0]
            ident = self.fed.agencies[party].dir
            self.cli_print(
                "treaty",
                "publish",
                str(path),
                "--gateway",
                f"127.0.0.1:{self.gateway_port}",
                "--identity",
                str(ident),
            )

    def cli_print(self, *args: str) -> subprocess.CompletedProcess[str]:
        say(f"\n$ intelshare {shlex.join(args)}")
        done = subprocess.run(  # noqa: S603
            [PY, "-m", "intelshare.cli", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        for line in (done.stdout + done.stderr).rstrip().splitlines():
            say("    " + line)
        if done.returncode:
            raise SystemExit(f"demo: intelshare {shlex.join(args)} failed")
        return done

    def start_nodes(self) -> None:
        heading("Starting the three agency nodes and their workers")
        configs = {}
        for agency in self.agencies:
            cfg = self.fed.node_config(
                agency,
                self.urls[agency],
                self.gateway_port,
                embedded_redis_dir=str(ROOT / "redis" / agency),
                heartbeat_seconds=5,
            )
            if self.redis:
                prefix = f"intelshare-demo:{agency}:"
                cfg.update(redis_url=self.redis, redis_prefix=prefix, broker_url=self.redis)
            configs[agency] = write_yaml(ROOT / f"node-{agency}.yaml", {"node": cfg})
        started = []
        for agency, path in configs.items():
            ready, log = ROOT / "run" / f"{agency}.port", ROOT / "logs" / f"node-{agency}.log"
            proc = self.procs.start(
                f"node {agency}",
                ["node", "serve", "--config", str(path), "--ready-file", str(ready)],
                log,
            )
            started.append((agency, proc, ready, log))
        for agency, proc, ready, log in started:
            self.node_ports[agency] = wait_ready(f"node {agency}", proc, ready, log)
            say(f"node {agency:<12} officer API on 127.0.0.1:{self.node_ports[agency]}; log: {log}")
        for agency, path in configs.items():
            log = ROOT / "logs" / f"worker-{agency}.log"
            self.procs.start(f"worker {agency}", ["worker", "--config", str(path), "--beat"], log)
            say(f"worker {agency:<10} (Celery, with beat); log: {log}")
        self.node_configs = configs

    def add_officers(self) -> None:
        heading("Officers and their tokens (each node keeps only a hash of them)")
        say("`intelshare node officer add` shows a token once; the demo saved each in tokens/.")
        for agency in self.agencies:
            for role in ROLES:
                self.add_officer(agency, role)

    def add_officer(self, agency: str, role: str, *extra: str) -> Officer:
        """``intelshare node officer add`` at ``agency``: its token file and client config."""
        name = f"{role}-{agency}"
        done = subprocess.run(  # noqa: S603
            [
                PY,
                "-m",
                "intelshare.cli",
                "node",
                "officer",
                "add",
                name,
                "--role",
                role,
                *extra,
                "--config",
                str(self.node_configs[agency]),
                "--json",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        )
        token = json.loads(done.stdout)["token"]
        token_file = ROOT / "tokens" / f"{name}.token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        client = write_yaml(
            ROOT / "clients" / f"{name}.yaml",
            {
                "node": f"127.0.0.1:{self.node_ports[agency]}",
                "ca": str(self.fed.ca_file),
                "server_name": agency,
                "token_file": str(token_file),
            },
        )
        officer = Officer(agency, role, client)
        self.officers[(agency, role)] = officer
        self.tokens[(agency, role)] = token
        say(f"{name:<22} token {token}")
        say(f"{'':<22} client config {client}")
        return officer

    def start_consoles(self) -> None:
        heading("The officers' web consoles (one per node)")
        self.console_urls: dict[str, str] = {}
        started = []
        for agency in self.agencies:
            config = write_yaml(
                ROOT / f"console-{agency}.yaml",
                {
                    "console": {
                        "listen": "127.0.0.1:0",
                        "node": f"127.0.0.1:{self.node_ports[agency]}",
                        "node_ca": str(self.fed.ca_file),
                        "node_server_name": agency,
                    }
                },
            )
            ready, log = (
                ROOT / "run" / f"console-{agency}.port",
                ROOT / "logs" / f"console-{agency}.log",
            )
            proc = self.procs.start(
                f"console {agency}",
                ["console", "serve", "--config", str(config), "--ready-file", str(ready)],
                log,
            )
            started.append((agency, proc, ready, log))
        for agency, proc, ready, log in started:
            port = wait_ready(f"console {agency}", proc, ready, log)
            self.console_urls[agency] = f"http://127.0.0.1:{port}"
            health = self.console_urls[agency] + "/healthz"
            wait_for(f"console {agency} to answer", lambda u=health: _http_ok(u))
            say(f"console {agency:<12} {self.console_urls[agency]}   log: {log}")
            for role in ROLES:
                say(f"  sign in as {role}-{agency:<12} with token {self.tokens[(agency, role)]}")

    def describe(self) -> Path:
        doc = {
            "gateway": {"address": f"127.0.0.1:{self.gateway_port}", "server_name": "localhost"},
            "ca_cert": str(self.fed.ca_file),
            "anchor": str(self.fed.anchor_file),
            "directory": str(self.fed.directory_file),
            "nodes": {
                a: {
                    "agency_id": a,
                    "address": f"127.0.0.1:{self.node_ports[a]}",
                    "server_name": a,
                    "config": str(self.node_configs[a]),
                    "console": self.console_urls.get(a, ""),
                    "officers": {
                        role: {
                            "name": f"{role}-{a}",
                            "token": self.tokens[(a, role)],
                            "client_config": str(officer.client_config),
                        }
                        for (agency, role), officer in self.officers.items()
                        if agency == a
                    },
                }
                for a in self.agencies
            },
            "treaties": {tid: str(p) for tid, p in self.fed.treaties.items()},
        }
        path = ROOT / "federation.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
        return path


# --- the scenario -----------------------------------------------------------------


def scenario(f: Federation) -> None:
    nl = f.officers[("nl-customs", "liaison")]
    be = f.officers[("be-police", "analyst")]
    de = f.officers[("de-customs", "analyst")]
    be_l = f.officers[("be-police", "liaison")]
    de_l = f.officers[("de-customs", "liaison")]

    heading("1. nl-customs issues an alert to two partners under two treaties")
    say(
        "The container of counterfeit medicines, its consignee, and a person with date of\n"
        "birth and passport number. de-customs shares a customs treaty that allows those;\n"
        "be-police shares the task-force treaty, which does not."
    )
    issued = nl.run(
        "alert",
        "issue",
        "--kind",
        "counterfeit_goods",
        "--urgency",
        "high",
        "--to",
        "de-customs@customs-mutual-assistance",
        "--to",
        "be-police@counterfeit-medicines-taskforce",
        "--description",
        "Container of counterfeit oncology medicines expected at Rotterdam",
        "--handling",
        "H1",
        "--tlp",
        "AMBER",
        "--reliability",
        "B",
        "--credibility",
        "2",
        "--container",
        "number=MSCU1234566,bl=RTM-2026-99812,hs=300490",
        "--company",
        "name=Medi Trade Logistics BV,country=NL,role=consignee",
        "--person",
        "name=Jan Visser,dob=1978-04-12,nationality=NL,passport=NXC4KR7P1",
    )
    first = issued.stdout.splitlines()[0]  # "issued alerts/<id>"
    alert_id = first.split("alerts/", 1)[1].strip()

    def delivered_to_all() -> bool:
        got = nl.json("alert", "show", alert_id)
        states = got.get("deliveries", [])
        return len(states) == 2 and all(s.get("deliver_time") for s in states)

    wait_for("delivery to both partners", delivered_to_all)
    heading("2. Each partner received exactly what its treaty allows")
    say(
        "(Each treaty's copy is its own message, so each partner knows the alert by the id\n"
        "of the copy it received.)"
    )
    de.run("alert", "list", "--direction", "received")
    de_id = _received_id(de)
    be_id = _received_id(be)
    de.run("alert", "show", de_id)
    be.run("alert", "show", be_id)
    nl.run("alert", "show", alert_id, "--delivery", "be-police")

    heading("3. be-police acknowledges and reports a hit back to nl-customs")
    be.run("alert", "ack", be_id)
    be.run(
        "alert",
        "hit",
        be_id,
        "--place",
        "Port of Antwerp, quay 1742",
        "--found",
        "Consignee's director seen collecting a second container",
    )

    def hit_arrived() -> bool:
        got = nl.json("alert", "show", alert_id)
        return bool(got.get("hits"))

    wait_for("the hit report at nl-customs", hit_arrived)
    nl.run("alert", "show", alert_id)

    heading("4. A firearms alert to be-police is refused: the task-force treaty forbids it")
    nl.run(
        "alert",
        "issue",
        "--kind",
        "firearms",
        "--to",
        "be-police@counterfeit-medicines-taskforce",
        "--description",
        "Pistols hidden in a car transporter",
        expect_fail=True,
    )

    heading("5. A joint case; an officer at de-customs follows it live")
    opened = nl.run(
        "case",
        "create",
        "--title",
        "Operation Pangea: counterfeit oncology medicines",
        "--treaty",
        "counterfeit-medicines-taskforce",
        "--member",
        "be-police",
        "--member",
        "de-customs",
        "--category",
        "counterfeit_goods",
    )
    case_id = opened.stdout.splitlines()[0].split("cases/", 1)[1].strip()
    wait_for("the case at de-customs", lambda: de_l.json("case", "show", case_id))
    follow_log: list[str] = []
    follower = _follow(de_l, case_id, follow_log)
    nl.run(
        "case",
        "add-entry",
        case_id,
        "--text",
        "Consignment MSCU1234566 held for inspection at Rotterdam.",
        "--container",
        "number=MSCU1234566",
    )
    wait_for("the case at be-police", lambda: be_l.json("case", "show", case_id))
    be_l.run(
        "case",
        "add-entry",
        case_id,
        "--text",
        "Consignee's director identified in Antwerp; surveillance ongoing.",
        "--company",
        "name=Medi Trade Logistics BV,country=NL",
    )
    de_l.run(
        "case",
        "add-entry",
        case_id,
        "--text",
        "Two earlier shipments via Hamburg traced to the same consignee.",
    )

    def three_entries() -> bool:
        return sum("entry" in line for line in follow_log) >= 3

    wait_for("three entries on the de-customs feed", three_entries)
    say("\n[liaison@de-customs] live feed (intelshare case follow) printed:")
    for line in list(follow_log):
        say("    " + line)
    follower.terminate()
    de_l.run("case", "show", case_id)


def _http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our own console
        return bool(answer.status == 200)


def _received_id(officer: Officer) -> str:
    listed = officer.json("alert", "list", "--direction", "received")
    alerts = listed.get("alerts", listed) if isinstance(listed, dict) else listed
    return str(alerts[0]["name"]).split("/", 1)[1]


def _follow(officer: Officer, case_id: str, sink: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "INTELSHARE_CLIENT_CONFIG": str(officer.client_config)}
    say(f"\n[{officer.label}] $ intelshare case follow {case_id}   # in the background")
    proc = subprocess.Popen(  # noqa: S603
        [PY, "-m", "intelshare.cli", "case", "follow", case_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.append(line.rstrip())

    threading.Thread(target=pump, daemon=True).start()
    return proc


# --- the IPR story (issue 17): a recordation, a detention, the holder's answer, a report --------

ACME_EORI = "NL123456789"
ACME_HOLDER = f"eori:{ACME_EORI}"  # the holder key the rights holder's officer acts for
ACME_GTIN = "4006381333931"
RECORDATION_ID = "acme-shoes"
DETENTION_ID = "hamburg-0412"
IPR_TREATY = "customs-mutual-assistance"


C = TypeVar("C")


def node_client(f: Federation, make: Callable[..., C], agency: str, role: str) -> C:
    """One of the project's gRPC clients (node.cli.*_client) as officer ``role`` at ``agency``.

    The stories wait for what crosses the federation with these rather than
    a command per poll: starting a Python process per poll costs a second.
    """
    return make(
        f"127.0.0.1:{f.node_ports[agency]}",
        ca_pem=f.fed.ca_file.read_bytes(),
        server_name=agency,
        token=f.tokens[(agency, role)],
    )


def add_rights_holder(f: Federation) -> Officer:
    """ACME's brand protection team: an officer of role rights_holder at the detaining node."""
    say("")
    say(f"a rights holder's account at de-customs, bound to the holder {ACME_HOLDER} (Acme Sports)")
    return f.add_officer("de-customs", "rights_holder", "--holder", ACME_HOLDER)


def recordation_file(path: Path, today: date) -> Path:
    """The holder's application for action as the IPR officer writes it (docs/ipr.md, step 1)."""
    grant = today - timedelta(days=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""# A rights holder's application for action, granted at nl-customs
holder:
  name: Acme Sports B.V.
  eori: {ACME_EORI}
  country: NL
  contact: {{name: Brand protection, email: ip@acme.example, telephone: "+31 20 123 4567"}}
rights:
  - {{type: trade_mark, name: ACME, registration_number: "018123456", office: EUIPO}}
goods:
  - description: running shoes, model Sprint
    hs_codes: ["640411"]
    gtins: ["{ACME_GTIN}"]
    right_names: [ACME]
authenticity_features:
  - description: hologram inside the tongue, green to blue when tilted
supply_chain:
  manufacturers: [{{name: Acme Vietnam Co., country: VN}}]
  usual_routes: [{{origin_country: VN, destination_country: NL, description: sea via Rotterdam}}]
grant_time: {grant.isoformat()}
expire_time: {(grant + timedelta(days=364)).isoformat()}
agencies:
  - {{agency_id: de-customs, treaty_id: {IPR_TREATY}}}
internal_notes: holder answered slowly last year   # never leaves nl-customs
"""
    )
    return path


def detention_file(path: Path) -> Path:
    """What the officer at Hamburg records about the container of fake shoes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""# Goods detained at Hamburg: sports shoes bearing the sign ACME
goods:
  - description: sports shoes bearing the sign ACME
    hs_code: "6404110090"
    gtins: ["{ACME_GTIN}"]
    brand: ACME
    quantity: 1200
    unit: pair
    estimated_value: {{currency_code: EUR, units: 96000}}
    category: shoes
transport: {{mode: sea, container_number: CSQU3054383, vessel_imo: "9811000"}}
parties:
  declarant: {{name: Hans Muster, country: DE}}
origin_country: CN
destination_country: NL
procedure: standard
customs_office: DE004850
recordations: [recordations/{RECORDATION_ID}]
"""
    )
    return path


class Feed:
    """An officer's IPR feed (``IprService.WatchDetentions``) read in a thread into ``lines``.

    No command prints this feed (officers' tools and webhooks read it), so
    the demo opens it with the project's client, ``node.cli.ipr_client``.
    """

    def __init__(self, f: Federation, agency: str, role: str) -> None:
        from node.cli.ipr_client import IprClient

        self.lines: list[str] = []
        self.client = node_client(f, IprClient, agency, role)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends when the demo closes it
            for item in self.client.watch_detentions():
                if item.HasField("event"):
                    e = item.event
                    at = e.create_time.ToDatetime().strftime("%H:%M:%S")
                    self.lines.append(f"{at}  {e.type:<26} {e.resource}")

    def close(self) -> None:
        self.client.close()
        self.thread.join(5)


def ipr_story(f: Federation) -> None:
    from node.cli.ipr_client import IprClient

    nl = f.officers[("nl-customs", "liaison")]
    nl_a = f.officers[("nl-customs", "analyst")]
    de = f.officers[("de-customs", "liaison")]
    holder = f.officers[("de-customs", "rights_holder")]

    heading("6. IPR: a rights holder's recordation granted at nl-customs, shared with de-customs")
    say(
        "Acme Sports asked nl-customs to act against fake ACME shoes (an application for action,\n"
        "Regulation (EU) No 608/2013). The IPR officer grants it from a YAML file and shares it\n"
        f"with de-customs under {IPR_TREATY}; the internal notes stay at nl-customs."
    )
    spec = recordation_file(ROOT / "ipr" / "acme-shoes.yaml", datetime.now(UTC).date())
    say(f"(the application: {spec})")
    nl.run("recordation", "grant", "--file", str(spec), "--id", RECORDATION_ID)

    with node_client(f, IprClient, "de-customs", "liaison") as c:
        wait_for("the recordation at de-customs", lambda: c.all_matches(gtin=ACME_GTIN))

    heading("7. de-customs detains a container of fake ACME shoes that matches it by GTIN")
    say(
        "An officer at Hamburg reads the GTIN off the shoe boxes and looks it up, then detains\n"
        "the goods; the node suggests the recordation and computes the deadlines on the German\n"
        "calendar. The rights holder's feed is open all along."
    )
    feed = Feed(f, "de-customs", "rights_holder")
    try:
        de.run("recordation", "find", "--gtin", ACME_GTIN)
        hamburg = detention_file(ROOT / "ipr" / "hamburg-0412.yaml")
        say(f"(the detention: {hamburg})")
        de.run("detention", "create", "--file", str(hamburg), "--id", DETENTION_ID)
        de.run(
            "detention",
            "move",
            DETENTION_ID,
            "holder_notified",
            "--reason",
            "holder and declarant notified by e-mail",
        )

        heading("8. The rights holder is notified with its deadline and agrees to destruction")
        resource = f"detentions/{DETENTION_ID}"
        wait_for(
            "the notification in the rights holder's feed",
            lambda: any("detention.moved" in x and resource in x for x in feed.lines),
        )
        say(f"\n[{holder.label}] its feed (IprService.WatchDetentions) brought:")
        for line in list(feed.lines):
            say("    " + line)
    finally:
        feed.close()
    holder.run("detention", "list")
    holder.run("detention", "show", DETENTION_ID)
    holder.run(
        "detention",
        "move",
        DETENTION_ID,
        "destruction_agreed",
        "--reason",
        "counterfeit: no hologram in the tongue, wrong stitching; we agree to destruction",
    )

    heading("9. The detention report reaches nl-customs; its IPR statistics count it")
    say(
        "de-customs' node reported the detention on its own to the agency that granted the\n"
        "recordation, under the treaty its copy came under (without the parties)."
    )

    with node_client(f, IprClient, "nl-customs", "analyst") as c:
        wait_for(
            "the detention report at nl-customs",
            lambda: c.all_reports(recordation=f"recordations/{RECORDATION_ID}"),
        )
    nl_a.run("detention", "reports", "--recordation", RECORDATION_ID)
    nl_a.run("ipr", "stats", "--by", "partner,country,right")


# --- the risk-targeting story (issue 18): a shared profile, 10,000 declarations, the hits ------

RISK_TREATY = "customs-mutual-assistance"
ALERT_CONTAINER = "MSCU1234566"  # the container of the alert nl-customs issued in step 1
DECLARATIONS = 10_000
RISK_TARGETS = (17, 4242, 9001)  # rows that match the profile; the second carries ALERT_CONTAINER
DECLARATION_COLUMNS = (
    "reference",
    "hs_code",
    "origin_country",
    "loading_port",
    "discharge_port",
    "transport_mode",
    "containers",
    "consignee_name",
    "value",
    "net_mass_kg",
)
PROFILE_YAML = """\
title: Counterfeit medicines from IN via INNSA
rationale: Falsified oncology medicines found in three consignments loaded at Nhava Sheva
action: physical_inspection
days: 30
criteria:
  all_of:
    - hs_prefix: "3004"
    - origin_country: IN
    - loading_port: INNSA
"""


def declaration_rows(count: int = DECLARATIONS) -> Iterator[list[str]]:
    """Generated import declarations at Hamburg, one goods item each (docs/screening.md columns).

    A third are medicaments (HS 3004), and one in five comes from India, but
    none loaded at Nhava Sheva (INNSA) except the rows at RISK_TARGETS, so the
    profile targets exactly those; every row has its own valid container
    number, and the second target carries the container of step 1's alert.
    """
    from stdnum import iso6346

    origins = ("CN", "TR", "US", "VN", "IN")
    ports = ("CNSHA", "TRIST", "USNYC", "VNSGN", "INBOM")
    for i in range(count):
        serial = f"TGHU{100000 + i:06d}"
        row = [
            f"26DE{i:014d}",
            "3004902000" if i % 3 == 0 else "8504401000",
            origins[i % 5],
            ports[(i // 5) % 5],
            "DEHAM",
            "sea",
            serial + iso6346.calc_check_digit(serial),
            f"Importer {i % 97}",
            f"{1000 + i}",
            "100",
        ]
        if i in RISK_TARGETS:
            row[1:4] = ["3004901000", "IN", "INNSA"]
        if i == RISK_TARGETS[1]:
            row[6] = ALERT_CONTAINER
        yield row


def write_declarations(path: Path, count: int = DECLARATIONS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(DECLARATION_COLUMNS)
        writer.writerows(declaration_rows(count))
    return path


def risk_story(f: Federation) -> None:
    from node.cli.risk_client import RiskClient

    nl = f.officers[("nl-customs", "liaison")]
    de = f.officers[("de-customs", "analyst")]

    heading("10. Risk targeting: nl-customs shares a risk profile with de-customs")
    say(
        "Medicaments (HS 3004) from India loaded at Nhava Sheva (INNSA): physical inspection.\n"
        f"The profile is a record shared under {RISK_TREATY}, like an alert."
    )
    spec = ROOT / "risk" / "profile.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(PROFILE_YAML)
    say(f"(the profile: {spec})")
    for line in PROFILE_YAML.rstrip().splitlines():
        say("    | " + line)
    created = nl.run(
        "profile", "create", "--criteria", str(spec), "--share", f"de-customs:{RISK_TREATY}"
    )
    profile = created.stdout.split()[0]  # "riskProfiles/<id>"

    with node_client(f, RiskClient, "de-customs", "analyst") as c:
        wait_for("the profile at de-customs", lambda: c.get_profile(profile))
    de.run("profile", "list", "--direction", "received")

    heading(f"11. de-customs screens a file of {DECLARATIONS:,} declarations")
    say(
        "Only the declarations that match are stored, as hits; the file stays on the officer's\n"
        "machine. The node also screens against what it holds in force: the containers of\n"
        "alerts (and the GTINs, HS subheadings and brands of recordations), so one target\n"
        "links to step 1's alert."
    )
    data = write_declarations(ROOT / "risk" / "declarations.csv")
    say(f"(the demo wrote {DECLARATIONS:,} generated declarations to {data})")
    started = time.monotonic()
    de.run("screen", str(data))
    say(f"\n({DECLARATIONS:,} declarations screened in {time.monotonic() - started:.1f} s)")
    with node_client(f, RiskClient, "de-customs", "analyst") as c:
        hits = c.all_hits(profile=profile)
    if len(hits) != len(RISK_TARGETS):
        raise SystemExit(f"demo: expected {len(RISK_TARGETS)} hits on the profile, got {hits}")
    de.run("related", f"iso6346:{ALERT_CONTAINER}")
    linked = next(h for h in hits if h.reference == f"26DE{RISK_TARGETS[1]:014d}")
    de.run("profile", "outcome", linked.name, "--inspection", "inspected", "--finding", "confirmed")

    heading("12. The hit reports reach nl-customs, with the inspection's outcome")

    with node_client(f, RiskClient, "nl-customs", "liaison") as c:
        wait_for(
            "the hit reports and the finding at nl-customs",
            lambda: (
                (s := c.statistics(profile)).hits == len(RISK_TARGETS) and s.confirmed_findings == 1
            ),
        )
    nl.run("profile", "stats", profile)
    nl.run("profile", "hits", "--profile", profile)


def try_ipr_and_risk(f: Federation) -> None:
    """The commands of the IPR and risk stories to try by hand."""
    q = shlex.quote
    holder = q(str(f.officers[("de-customs", "rights_holder")].client_config))
    de = q(str(f.officers[("de-customs", "analyst")].client_config))
    say(f"  INTELSHARE_CLIENT_CONFIG={holder} intelshare detention list   # the rights holder")
    say(f"  INTELSHARE_CLIENT_CONFIG={de} intelshare ipr stats --by country,category")
    data = q(str(ROOT / "risk" / "declarations.csv"))
    say(f"  INTELSHARE_CLIENT_CONFIG={de} intelshare screen {data}")
    say(f"  INTELSHARE_CLIENT_CONFIG={de} intelshare related iso6346:{ALERT_CONTAINER}")
    say("  intelshare profile list; intelshare recordation list   # at nl-customs")


def next_steps(f: Federation, description: Path) -> None:
    heading("The federation is running")
    nl = f.officers[("nl-customs", "liaison")].client_config
    be = f.officers[("be-police", "analyst")].client_config
    say(f"Machine-readable description: {description}")
    say("Try, in another terminal (from the repository):")
    say("  . .venv/bin/activate")
    q = shlex.quote
    say(f"  export INTELSHARE_CLIENT_CONFIG={q(str(nl))}   # liaison at nl-customs")
    say("  intelshare alert list")
    say("  intelshare alert issue --kind narcotics --to de-customs@customs-mutual-assistance \\")
    say("      --description 'Cocaine in banana boxes' --container number=MSCU1234566")
    say("  intelshare case list")
    say(f"  INTELSHARE_CLIENT_CONFIG={q(str(be))} intelshare alert follow   # at be-police")
    directory, anchor = str(f.fed.directory_file), str(f.fed.anchor_file)
    say(f"  intelshare directory show --file {q(directory)} --anchor {q(anchor)}")
    say(f"  intelshare gateway audit verify --config {q(str(f.gateway_config))}")
    for agency, url in f.console_urls.items():
        say(f"  open {url} (web console of {agency}; tokens above)")
    try_ipr_and_risk(f)
    say(f"Logs: {ROOT / 'logs'}")
    say("Press Ctrl-C to stop everything.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--exit", action="store_true", help="stop after the scenario instead of waiting for Ctrl-C"
    )
    parser.add_argument(
        "--keep-databases",
        action="store_true",
        help="with INTELSHARE_DATABASE_URL: leave the demo's PostgreSQL databases behind on exit "
        "(the next demo from this directory drops them)",
    )
    ns = parser.parse_args(argv)
    procs = Processes()
    databases = Databases(ROOT, os.environ.get("INTELSHARE_DATABASE_URL"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    try:
        f = Federation(procs, databases)
        f.build()
        f.start_gateway()
        f.start_nodes()
        f.add_officers()
        add_rights_holder(f)
        f.start_consoles()
        description = f.describe()
        scenario(f)
        ipr_story(f)
        risk_story(f)
        # Review before release and onward sharing (deploy/workflow_story.py).
        from workflow_story import workflow_story

        workflow_story(f, sys.modules[__name__])
        say(f"\n(scenario played in {time.monotonic() - started:.1f} s)")
        next_steps(f, description)
        if not ns.exit:
            with contextlib.suppress(KeyboardInterrupt):
                while not stop.wait(1):
                    for name, proc in procs.children:
                        if proc.poll() is not None:
                            say(f"demo: {name} exited with {proc.returncode}; stopping")
                            stop.set()
    except KeyboardInterrupt:
        pass
    finally:
        say("\nstopping the federation ...")
        procs.stop()
        if databases.created and ns.keep_databases:
            say(f"kept the PostgreSQL databases {', '.join(databases.created)}")
        elif databases.created:
            say(f"dropped the PostgreSQL databases {', '.join(databases.drop())}")
        say("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
