"""Real processes for notification tests: a private Redis, a gateway, two nodes, workers.

* ``RedisServer``: our own ``redis-server`` on a free port with
  ``--appendonly yes`` in a temporary folder — never the shared server on
  6379, so a test may kill and restart it.
* ``Receiver``: a real HTTP server in the test process with one route per
  webhook; each route checks the signature, can fail its first attempts,
  fail always, or block its first request until the test releases it, and
  counts what it accepted per event id (a receiver dedupes on that id).
* ``NotifyWorld``: the gateway and the nodes nl-customs and be-police as
  ``intelshare ... serve`` processes, and ``intelshare worker`` processes
  started per test, all configured from the same node config files.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intelshare import devfed
from intelshare.db import make_engine
from intelshare.keys import AgencyKeys
from intelshare.v1 import alert_pb2
from node.cli.client import NodeClient
from node.config import load_config
from node.notify import webhooks as wh
from node.server import open_database
from node.storage import tables as t
from node.storage.officers import OfficerRegistry
from tests.node.conftest import (
    AGENCIES,
    TASKFORCE,
    demo_alert,
    gateway_config,
    node_config,
    publish_treaties,
    treaties,
    wait_for,
)
from tests.node.test_processes import REPO, Service, _write

NODES = ("nl-customs", "be-police")
TO_BE = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]

#: notification settings short enough for tests, long enough to be honest:
#: visibility timeout > task limit + longest retry countdown (validated).
NOTIFY_SETTINGS: dict[str, Any] = {
    "notify_relay_seconds": 0.5,
    "notify_deadline_seconds": 2.0,
    "notify_task_time_limit_seconds": 6.0,
    "notify_visibility_timeout_seconds": 8.0,
    "webhook_timeout_seconds": 3.0,
    "webhook_max_attempts": 4,
    "webhook_backoff_seconds": 0.2,
    "webhook_backoff_max_seconds": 1.0,
    "worker_concurrency": 4,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A redis-server of our own, append-only, that tests may kill and restart."""

    dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import redis

        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            wait_for(lambda: _ping(client), 15, f"redis-server on port {self.port}")
        finally:
            client.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _ping(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    from shutil import which

    if which("redis-server") is None:
        pytest.skip("redis-server binary not found")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


# --- webhook receiver ----------------------------------------------------------------------


@dataclass
class Route:
    secret: str = ""
    fail_first: int = 0
    always_fail: bool = False
    block_first: bool = False
    blocked: threading.Event = field(default_factory=threading.Event)
    blocked_event: str = ""
    release: threading.Event = field(default_factory=threading.Event)
    attempts: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def duplicates(self) -> int:
        return sum(self.accepted.values()) - len(self.accepted)


class Receiver:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                route = receiver.routes.get(self.path)
                if route is None:
                    self._answer(404)
                    return
                event_id = self.headers.get(wh.EVENT_ID_HEADER, "")
                with route.lock:
                    route.attempts[event_id] += 1
                    attempt = route.attempts[event_id]
                    block = route.block_first and not route.blocked.is_set()
                    if block:
                        route.blocked_event = event_id
                        route.blocked.set()
                if not wh.verify(route.secret, dict(self.headers.items()), body):
                    with route.lock:
                        route.bad_signatures += 1
                    self._answer(401)
                    return
                if route.always_fail or attempt <= route.fail_first:
                    self._answer(503)
                    return
                if block:
                    route.release.wait(60)
                # Processed: a receiver keeps each event id once (the dedupe).
                with route.lock:
                    route.accepted[event_id] += 1
                    route.bodies[event_id] = json.loads(body)
                self._answer(200)

            def _answer(self, status: int) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the worker is gone (killed while we held its request)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        for route in self.routes.values():
            route.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# --- the world -----------------------------------------------------------------------------


def cli(*args: str) -> str:
    """Run ``intelshare ...`` as an operator would; returns stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "intelshare.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class NotifyWorld:
    fed: devfed.LocalFederation
    workdir: Path
    redis: RedisServer
    receiver: Receiver
    gateway: Service
    prefix: str
    nodes: dict[str, Service] = field(default_factory=dict)
    configs: dict[str, Path] = field(default_factory=dict)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    workers: list[Service] = field(default_factory=list)

    def client(self, agency: str, role: str = "admin", token: str | None = None) -> NodeClient:
        return NodeClient(
            f"127.0.0.1:{self.nodes[agency].port}",
            ca_pem=self.fed.ca_file.read_bytes(),
            server_name=agency,
            token=token or self.tokens[agency][role],
            timeout=15.0,
        )

    def start_worker(self, agency: str = "be-police", *extra: str) -> Service:
        name = f"worker-{agency}-{uuid.uuid4().hex[:6]}"
        service = Service(
            name, ["worker", "--config", str(self.configs[agency]), *extra], self.workdir
        )
        service.start()
        self.workers.append(service)
        return service

    def add_webhook(self, path: str, route: Route, events: str = "alert.received") -> str:
        out = cli(
            "node",
            "webhook",
            "add",
            self.receiver.url(path),
            "--events",
            events,
            "--config",
            str(self.configs["be-police"]),
            "--json",
        )
        data = json.loads(out)
        route.secret = data["secret"]
        self.receiver.routes[path] = route
        return str(data["webhook_id"])

    def engine(self, agency: str = "be-police") -> Any:
        return make_engine(load_config(self.configs[agency]).database_url)

    def events(self, agency: str = "be-police", after: int = 0) -> list[Any]:
        engine = self.engine(agency)
        try:
            with engine.connect() as conn:
                return list(
                    conn.execute(
                        select(t.events).where(t.events.c.seq > after).order_by(t.events.c.seq)
                    ).all()
                )
        finally:
            engine.dispose()

    def deliveries(self) -> list[wh.Delivery]:
        engine = self.engine()
        try:
            return wh.WebhookRegistry(engine, AgencyKeys.generate()).deliveries()
        finally:
            engine.dispose()

    def head(self, agency: str = "be-police") -> int:
        rows = self.events(agency)
        return int(rows[-1].seq) if rows else 0

    def issue(self, description: str, **over: Any) -> alert_pb2.Alert:
        with self.client("nl-customs", "liaison") as c:
            return c.create_alert(demo_alert(description=description, recipients=TO_BE, **over))

    def received(self, after: int, n: int, timeout: float = 60) -> list[Any]:
        """Wait for ``n`` ``alert.received`` events at be-police after ``after``."""

        def check() -> list[Any] | None:
            rows = [e for e in self.events(after=after) if e.type == "alert.received"]
            return rows if len(rows) >= n else None

        found: list[Any] = wait_for(check, timeout, f"{n} alerts received at be-police")
        return found


@pytest.fixture(scope="module")
def nworld(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, receiver: Receiver
) -> Iterator[NotifyWorld]:
    tmp = tmp_path_factory.mktemp("world")
    fed = devfed.build(tmp / "fed", AGENCIES, treaties())
    gw_cfg = _write(
        tmp / "gateway.yaml",
        "gateway",
        gateway_config(fed, f"sqlite:///{tmp / 'gateway.db'}", max_workers=16),
    )
    gateway = Service("gateway", ["gateway", "serve", "--config", str(gw_cfg)], tmp)
    prefix = f"intelshare-test:{uuid.uuid4().hex[:8]}:"
    w = NotifyWorld(fed, tmp, redis_server, receiver, gateway, prefix)
    try:
        gateway.start()
        publish_treaties(fed, gateway.port)
        for agency in NODES:
            values = node_config(
                fed,
                agency,
                f"sqlite:///{tmp / (agency + '.db')}",
                gateway.port,
                max_workers=16,
                redis_url=redis_server.url,
                redis_prefix=prefix,
                **NOTIFY_SETTINGS,
            )
            cfg = _write(tmp / f"{agency}.yaml", "node", values)
            w.configs[agency] = cfg
            store = open_database(load_config(cfg))
            registry = OfficerRegistry(store.engine)
            w.tokens[agency] = {
                role: registry.add(role, role)[1] for role in ("admin", "liaison", "analyst")
            }
            store.hub.close()
            store.engine.dispose()
            w.nodes[agency] = Service(agency, ["node", "serve", "--config", str(cfg)], tmp)
        for service in w.nodes.values():
            service.start()
        yield w
    finally:
        for service in [*w.workers, *w.nodes.values(), gateway]:
            service.stop()


@pytest.fixture
def world(nworld: NotifyWorld) -> Iterator[NotifyWorld]:
    """The module's world; workers and webhooks a test added are gone after it."""
    yield nworld
    for service in nworld.workers:
        service.stop()
    nworld.workers.clear()
    for route in nworld.receiver.routes.values():
        route.release.set()
    engine = nworld.engine()
    try:
        with engine.begin() as conn:
            conn.execute(t.webhook_deliveries.delete())
            conn.execute(t.webhooks.delete())
    finally:
        engine.dispose()
    nworld.receiver.routes.clear()


def kill_worker(service: Service) -> None:
    """SIGKILL the worker (threads pool: one process): no shutdown, no acknowledgement."""
    assert service.proc is not None
    service.proc.send_signal(signal.SIGKILL)
    service.proc.wait(timeout=10)
