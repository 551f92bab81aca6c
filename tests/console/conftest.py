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
from tests.node.conftest import (  # noqa: F401 - fixtures used by this directory's tests
    Cluster,
    RunningNode,
    cluster,
    db_factory,
    fed,
)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The consoles' tests run on SQLite only (see the module docstring)."""
    return f"sqlite:///{tmp_path / 'gateway.db'}"


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
def federation(cluster: Cluster) -> Iterator[Federation]:
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
