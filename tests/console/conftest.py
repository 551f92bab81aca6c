"""A real federation (gateway and two nodes, from tests/node/conftest.py) with a console per node.

The consoles run in this process on 127.0.0.1:0 (uvicorn in a thread) and
talk to their node over TLS with the officers' own tokens, as deployed. The
federation is the node tests' (``cluster``), on SQLite: the console never
touches a database, so one backend is enough here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.config import ConsoleConfig
from console.server import RunningConsole, start_in_thread
from intelshare import devfed
from intelshare.v1 import alert_pb2, case_pb2, envelope_pb2
from node.cli.case_client import CaseClient
from tests.node.api.ipr_fixtures import RECORDATION_FIELDS, REPORT_FIELDS
from tests.node.conftest import (  # noqa: F401 - fixtures used by this directory's tests
    AGENCIES,
    CUSTOMS,
    TASKFORCE,
    Cluster,
    RunningNode,
    cluster,
    db_factory,
    demo_alert,
    treaties,
    wait_for,
)
from tests.node.risk.conftest import HIT_FIELDS, PROFILE_FIELDS

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The consoles' tests run on SQLite only (see the module docstring)."""
    return f"sqlite:///{tmp_path / 'gateway.db'}"


def console_treaties() -> list[dict[str, Any]]:
    """The node tests' treaties, with joint cases allowed under both (titles shared), and the
    customs treaty carrying the IPR and risk kinds with the allow-lists of their API tests."""
    data = treaties()
    for t in data:
        t["kinds"].append("case_membership")
        t["fields"]["case_membership"] = ["title"]
        t["fields"]["case_entry"] = ["text", "subjects", "attachments_digest"]
        if t["id"] == CUSTOMS:
            t["kinds"] += ["recordation", "detention_report", "risk_profile", "risk_hit"]
            t["fields"]["recordation"] = list(RECORDATION_FIELDS)
            t["fields"]["detention_report"] = list(REPORT_FIELDS)
            t["fields"]["risk_profile"] = list(PROFILE_FIELDS)
            t["fields"]["risk_hit"] = list(HIT_FIELDS)
    return data


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    """The node tests' federation (three agencies) with the treaties above."""
    return devfed.build(tmp_path / "fed", AGENCIES, console_treaties())


@dataclass
class Console:
    running: RunningConsole
    node: RunningNode
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def agency(self) -> str:
        return self.node.agency

    def http(self, **kw: Any) -> httpx.Client:
        kw.setdefault("verify", False)
        client = httpx.Client(base_url=self.url, follow_redirects=False, timeout=30, **kw)
        self.clients.append(client)
        return client

    def signed_in(self, role: str = "liaison", **kw: Any) -> httpx.Client:
        """An HTTP client signed in as the node's officer with ``role``."""
        client = self.http(**kw)
        page = client.get("/sign-in")
        assert page.status_code == 200
        answer = client.post(
            "/sign-in", data={"csrf_token": csrf_of(page.text), "token": self.node.tokens[role]}
        )
        assert answer.status_code == 303, answer.text
        return client

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.running.stop()


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def console_config(node: RunningNode, ca: Path, **over: Any) -> ConsoleConfig:
    values: dict[str, Any] = {
        "node": node.target,
        "node_ca": ca,
        "node_server_name": node.agency,
        "listen": "127.0.0.1:0",
    }
    values.update(over)
    config = ConsoleConfig(**values)
    config.validate()
    return config


@dataclass
class Federation:
    cluster: Cluster
    nl: RunningNode
    de: RunningNode
    consoles: dict[str, Console]
    start: Callable[..., Console]


@pytest.fixture
def federation(cluster: Cluster) -> Iterator[Federation]:  # noqa: F811 - the fixture
    """Gateway, nl-customs and de-customs nodes, and a console for each node."""
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    started: list[Console] = []

    def start(node: RunningNode, **over: Any) -> Console:
        running = start_in_thread(console_config(node, cluster.fed.ca_file, **over))
        console = Console(running, node)
        started.append(console)
        return console

    f = Federation(cluster, nl, de, {"nl-customs": start(nl), "de-customs": start(de)}, start)
    yield f
    for c in started:
        c.close()


def issue(
    f: Federation, *, to: tuple[str, ...] = ("de-customs",), wait: bool = True, **over: Any
) -> tuple[str, dict[str, str]]:
    """nl-customs issues the demo alert through its node's API; returns its name and,
    per recipient with a running node, the name of the copy that arrived there."""
    treaty = {"de-customs": CUSTOMS, "be-police": TASKFORCE}
    alert = demo_alert(
        recipients=[alert_pb2.AlertRecipient(agency_id=a, treaty_id=treaty[a]) for a in to],
        **over,
    )
    with f.nl.client("liaison") as client:
        created = client.create_alert(alert)
    received: dict[str, str] = {}
    if wait:
        for agency in to:
            node = f.cluster.nodes.get(agency)
            if node is None:
                continue
            with node.client("admin") as client:

                def arrived(client: Any = client) -> str:
                    for a in client.list_all(direction=alert_pb2.ALERT_DIRECTION_RECEIVED):
                        if a.description == alert.description and a.name not in received.values():
                            return str(a.name)
                    return ""

                received[agency] = wait_for(arrived, what=f"the alert at {agency}")
    return created.name, received


def sse_events(response: httpx.Response, count: int, timeout: float = 30.0) -> list[dict[str, str]]:
    """The next ``count`` dispatched SSE messages (with data or an event name) of a stream."""
    import time

    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    # One line iterator per response, so that a test may read a stream in several steps.
    lines = response.extensions.setdefault("sse_lines", response.iter_lines())
    for line in lines:
        if time.monotonic() > deadline:
            break
        if line == "":
            if current.get("data") or current.get("event"):
                out.append(current)
                if len(out) == count:
                    return out
            current = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "data":
            current["data"] = current["data"] + "\n" + value if "data" in current else value
        else:
            current[key] = value
    raise AssertionError(f"stream ended after {len(out)} of {count} events: {out}")


def open_case(f: Federation, title: str, members: tuple[str, ...] = ("de-customs",)) -> str:
    """nl-customs' liaison opens a case under the customs treaty; returns its name."""
    with CaseClient(
        f.nl.target, ca_pem=f.nl.ca_pem, server_name="nl-customs", token=f.nl.tokens["liaison"]
    ) as api:
        case = api.create_case(
            case_pb2.Case(
                title=title,
                treaty_id=CUSTOMS,
                categories=["counterfeit_goods"],
                handling=envelope_pb2.HANDLING_CODE_H1,
                tlp=envelope_pb2.TLP_AMBER,
                members=[case_pb2.CaseMember(agency_id=a) for a in members],
            )
        )
    return str(case.name)


def case_client(node: RunningNode, role: str = "liaison") -> CaseClient:
    return CaseClient(
        node.target, ca_pem=node.ca_pem, server_name=node.agency, token=node.tokens[role]
    )
