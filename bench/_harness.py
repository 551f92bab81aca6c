"""What the benches of issue 7 share: the machine, databases, Redis, real processes.

Every service runs as operators run it, ``python -m intelshare.cli gateway
serve`` / ``node serve`` / ``worker``, each its own process, with a
ready-file for its port. PostgreSQL is the machine's server (one fresh
database per service, dropped afterwards); Redis is a private
``redis-server`` with append-only persistence, as every Redis the project
starts. A process's CPU time and resident size are read from ``/proc``.

This module is private to ``bench/``: the benches and their report import
it, nothing else does.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from intelshare import devfed
from intelshare.gateway_client import GatewayClient

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "INTELSHARE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ROLES = ("admin", "liaison", "analyst")
_DISTRIBUTIONS = (
    "grpcio",
    "protobuf",
    "cryptography",
    "SQLAlchemy",
    "psycopg",
    "celery",
    "redis",
    "medallion",
    "taxii2-client",
    "Flask",
)


# --- the machine ---------------------------------------------------------------------------


def _first_line(argv: Sequence[str]) -> str:
    with suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
        lines = (out.stdout or out.stderr).strip().splitlines()
        return lines[0] if lines else ""
    return ""


def _postgres_version() -> str:
    if not pg_reachable():
        return ""
    with suppress(Exception):
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else ""
    return ""


def machine() -> dict[str, Any]:
    """CPU, cores, memory, load, Python and the versions of what the figures depend on."""
    cpu = platform.processor() or platform.machine()
    mem_kib = 0
    with suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with suppress(OSError), open("/proc/meminfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    versions: dict[str, str] = {}
    for dist in _DISTRIBUTIONS:
        with suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    from cryptography.hazmat.backends.openssl.backend import backend

    versions["OpenSSL"] = backend.openssl_version_text()
    versions["SQLite"] = sqlite3.sqlite_version
    versions["redis-server"] = _first_line(["redis-server", "--version"])
    versions["PostgreSQL"] = _postgres_version()
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": {k: v for k, v in versions.items() if v},
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


# --- servers: PostgreSQL, Redis --------------------------------------------------------------


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1.0):
            return True
    except OSError:
        return False


def pick_backend(requested: str | None, quick: bool) -> str:
    """``requested``, or PostgreSQL when reachable (SQLite in quick mode or without it)."""
    if requested:
        return requested
    return "postgresql" if not quick and pg_reachable() else "sqlite"


@contextmanager
def databases(backend: str, workdir: Path, names: Sequence[str]) -> Iterator[dict[str, str]]:
    """One fresh database per name; PostgreSQL ones are dropped afterwards."""
    if backend == "sqlite":
        yield {n: f"sqlite:///{workdir / (n + '.db')}" for n in names}
        return
    import psycopg

    made = {n: f"intelshare_bench_{uuid.uuid4().hex[:10]}" for n in names}
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for db in made.values():
            conn.execute(f'CREATE DATABASE "{db}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield {n: f"{base}/{db}" for n, db in made.items()}
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for db in made.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def serve_until_terminated(server: Any, cert: Path, key: Path, ca: Path, ready_file: Path) -> None:
    """Serve ``server`` (an :class:`intelshare.grpc_server.ManagedServer`) with
    the gateway's mTLS credentials on a free port until SIGTERM.

    The port goes into ``ready_file`` once the server is up: how the bench
    processes that spawn a baseline server learn where it listens.
    """
    from intelshare.tls import server_credentials

    creds = server_credentials(
        cert.read_bytes(), key.read_bytes(), ca.read_bytes(), require_client_auth=True
    )
    port = server.bind("127.0.0.1:0", creds)
    server.start()
    ready_file.write_text(str(port))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    server.stop(1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server (append-only, as the project runs Redis); its URL."""
    import redis

    port = free_port()
    data = workdir / "redis"
    data.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)),
            *("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 15
    while True:
        with suppress(Exception):
            if client.ping():
                break
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.02)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


# --- processes ---------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS``, ``VmHWM`` (KiB) and ``Threads`` of a process from /proc/<pid>/status."""
    out: dict[str, int] = {}
    with suppress(OSError), open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        with suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with suppress(OSError):
                    kids = [int(x) for x in (task / "children").read_text().split()]
                    out.extend(kids)
                    todo.extend(kids)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0
    ready_file: Path | None = None

    def wait_ready(self, timeout: float = 90.0) -> Proc:
        """Wait for the ready file (the port, or a worker's pid)."""
        if self.ready_file is None or self.port:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}: "
                    f"{self.log.read_text()[-3000:]}"
                )
            text = self.ready_file.read_text().strip() if self.ready_file.exists() else ""
            if text.isdigit():
                self.port = int(text)
                return self
            time.sleep(0.02)
        self.proc.kill()
        raise RuntimeError(
            f"{self.name} not ready within {timeout}s: {self.log.read_text()[-3000:]}"
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss_kib(self) -> int:
        return proc_status(self.proc.pid).get("VmRSS", 0)

    def tree_rss_kib(self) -> int:
        """VmRSS of this process plus every descendant (shared pages count in each)."""
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        return sum(proc_status(p).get("VmRSS", 0) for p in pids)

    def tree_size(self) -> int:
        return 1 + len(descendants(self.proc.pid))

    def status(self) -> dict[str, int]:
        return proc_status(self.proc.pid)

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def spawn(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    *,
    ready: bool = True,
    wait: bool = True,
    timeout: float = 90.0,
    module: str = "intelshare.cli",
) -> Proc:
    """``python -m module *argv --ready-file F --log-level WARNING``; wait for its port.

    With ``ready=False`` the process gets no ready file and is returned at
    once; with ``wait=False`` call :meth:`Proc.wait_ready` later.
    """
    ready_file = workdir / f"{name}.ready"
    log = workdir / f"{name}.log"
    ready_file.unlink(missing_ok=True)
    extra = ["--ready-file", str(ready_file), "--log-level", "WARNING"] if ready else []
    with log.open("ab") as out:
        proc = subprocess.Popen(  # fixed argv: this interpreter and our own modules
            [sys.executable, "-m", module, *argv, *extra],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    p = Proc(name, proc, log, ready_file=ready_file if ready else None)
    if ready and wait:
        p.wait_ready(timeout)
    return p


def spawn_worker(
    name: str, config: Path, workdir: Path, concurrency: int = 4, wait: bool = True
) -> Proc:
    """``intelshare worker`` for a node's config: its Celery tasks (notifications).

    Its ready file holds its pid, not a port; ``wait=False`` returns at once
    (call :meth:`Proc.wait_ready` before relying on it).
    """
    return spawn(
        name,
        ["worker", "--config", str(config), "--concurrency", str(concurrency)],
        workdir,
        wait=wait,
    )


# --- the federation --------------------------------------------------------------------------


def treaty(
    treaty_id: str,
    parties: Sequence[str],
    *,
    kinds: Sequence[str] = ("alert", "alert_update", "hit_report"),
    categories: Sequence[str] = ("counterfeit_goods",),
    fields: Mapping[str, Sequence[str]] | None = None,
    retention_days: int = 365,
) -> dict[str, Any]:
    """A treaty in force today with ``parties``, letting a realistic alert through."""
    today = datetime.now(UTC).date()
    return {
        "id": treaty_id,
        "version": 1,
        "title": f"Benchmark treaty {treaty_id}",
        "parties": list(parties),
        "kinds": list(kinds),
        "categories": list(categories),
        "max_handling": {"code": "H2", "tlp": "AMBER"},
        "fields": {k: list(v) for k, v in (fields or {"alert": ALERT_FIELDS}).items()},
        "retention_days": retention_days,
        "purpose": "benchmark",
        "onward_sharing": "forbidden",
        "valid": {
            "from": (today - timedelta(days=1)).isoformat(),
            "until": (today + timedelta(days=60)).isoformat(),
        },
    }


#: What the bench treaties let through of an alert: the demo task force's list.
ALERT_FIELDS = (
    "kind",
    "urgency",
    "description",
    "subjects.persons.name",
    "subjects.persons.nationality",
    "subjects.companies",
    "subjects.containers",
    "handling",
    "tlp",
    "evaluation",
    "expires_at",
)


def agency_specs(ids: Sequence[str]) -> list[devfed.AgencySpec]:
    countries = ("NL", "BE", "DE", "FR", "LU", "AT", "PL", "ES", "IT", "PT")
    return [
        devfed.AgencySpec(a, f"Agency {a}", countries[i % len(countries)], "customs")
        for i, a in enumerate(ids)
    ]


def write_yaml(path: Path, section: str, values: Mapping[str, Any]) -> Path:
    return devfed.write_config(path, section, values)


def gateway_values(fed: devfed.LocalFederation, db_url: str, **over: Any) -> dict[str, Any]:
    """The bench gateway's config: the federation's, with a larger thread pool."""
    return fed.gateway_config(db_url, **{"max_workers": 64, **over})


def node_values(
    fed: devfed.LocalFederation, agency: str, db_url: str, gateway_port: int, **over: Any
) -> dict[str, Any]:
    """A bench node's config: the federation's, with a larger pool, slow heartbeats."""
    return fed.node_config(
        agency, db_url, gateway_port, **{"max_workers": 32, "heartbeat_seconds": 5.0, **over}
    )


def gateway_client(fed: devfed.LocalFederation, port: int, agency: str) -> GatewayClient:
    return fed.gateway_client(port, agency, max_message_bytes=8 * 1024 * 1024)


def prepare_node_db(config: Path) -> dict[str, str]:
    """Migrate a node's database and add one officer per role; the tokens by role."""
    from node.config import load_config
    from node.server import open_database
    from node.storage.officers import OfficerRegistry

    store = open_database(load_config(config))
    try:
        registry = OfficerRegistry(store.engine)
        existing = {o.name for o in registry.list()}
        tokens = {}
        for role in ROLES:
            name = f"bench-{role}"
            if name in existing:
                name = f"bench-{role}-{uuid.uuid4().hex[:6]}"
            tokens[role] = registry.add(name, role)[1]
        return tokens
    finally:
        store.hub.close()
        store.engine.dispose()


@dataclass
class World:
    """A federation on disk, its gateway process and whichever nodes were started."""

    workdir: Path
    fed: devfed.LocalFederation
    backend: str
    dbs: dict[str, str]
    redis_url: str
    gateway: Proc
    prefix: str
    procs: list[Proc] = field(default_factory=list)
    nodes: dict[str, Proc] = field(default_factory=dict)
    workers: dict[str, Proc] = field(default_factory=dict)
    configs: dict[str, Path] = field(default_factory=dict)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def node_config(self, agency: str, **over: Any) -> Path:
        """Write ``agency``'s node config (its database, this gateway, this Redis)."""
        values = node_values(
            self.fed,
            agency,
            self.dbs[agency],
            self.gateway.port,
            # One key space per agency, as separate deployments have.
            **{"redis_url": self.redis_url, "redis_prefix": f"{self.prefix}{agency}:", **over},
        )
        path = write_yaml(self.workdir / f"{agency}.yaml", "node", values)
        self.configs[agency] = path
        return path

    def prepare(self, agency: str, **over: Any) -> Path:
        """Config plus migrated database with officers; the node is not started."""
        path = self.node_config(agency, **over)
        self.tokens[agency] = prepare_node_db(path)
        return path

    def start_node(self, agency: str, *, worker: bool = True, **over: Any) -> Proc:
        return self.start_nodes([agency], worker=worker, **over)[agency]

    def start_nodes(
        self, agencies: Sequence[str], *, worker: bool = True, **over: Any
    ) -> dict[str, Proc]:
        """Start the nodes (and their workers) of ``agencies`` at once; wait for all."""
        started: list[Proc] = []
        for agency in agencies:
            if agency not in self.configs:
                self.prepare(agency, **over)
            if worker:
                wk = spawn_worker(
                    f"worker-{agency}", self.configs[agency], self.workdir, wait=False
                )
                self.workers[agency] = wk
                self.procs.append(wk)
                started.append(wk)
            node = spawn(
                agency,
                ["node", "serve", "--config", str(self.configs[agency])],
                self.workdir,
                wait=False,
            )
            self.nodes[agency] = node
            self.procs.append(node)
            started.append(node)
        for p in started:
            p.wait_ready()
        return {a: self.nodes[a] for a in agencies}

    def stop_node(self, agency: str) -> None:
        """Stop ``agency``'s node and worker (its database stays)."""
        for group in (self.nodes, self.workers):
            p = group.pop(agency, None)
            if p is not None:
                p.stop()
                if p in self.procs:
                    self.procs.remove(p)

    def client(self, agency: str, role: str = "admin") -> Any:
        """A case-capable officer client (alerts too) on ``agency``'s node."""
        from node.cli.case_client import CaseClient

        return CaseClient(
            self.nodes[agency].target,
            ca_pem=self.fed.ca_file.read_bytes(),
            server_name=agency,
            token=self.tokens[agency][role],
            timeout=60.0,
        )

    def gateway_client(self, agency: str) -> GatewayClient:
        return gateway_client(self.fed, self.gateway.port, agency)


@contextmanager
def world(
    backend: str,
    agencies: Sequence[str],
    treaties: Sequence[Mapping[str, Any]],
    *,
    nodes: Sequence[str] | None = None,
    gateway_over: Mapping[str, Any] | None = None,
    prefix: str = "intelshare-bench",
) -> Iterator[World]:
    """A federation of ``agencies``, Redis, the gateway, and a database for each of ``nodes``.

    ``nodes`` (default: every agency) are the agencies that may run a node;
    start them with :meth:`World.start_node`.
    """
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp:
        workdir = Path(tmp)
        fed = devfed.build(workdir / "fed", agency_specs(agencies), list(treaties))
        redis_proc, redis_url = start_redis(workdir)
        procs: list[Proc] = []
        try:
            with databases(
                backend, workdir, ["gateway", *(agencies if nodes is None else nodes)]
            ) as dbs:
                gw_cfg = write_yaml(
                    workdir / "gateway.yaml",
                    "gateway",
                    gateway_values(fed, dbs["gateway"], **(gateway_over or {})),
                )
                gw = spawn("gateway", ["gateway", "serve", "--config", str(gw_cfg)], workdir)
                procs.append(gw)
                fed.publish_treaties(gw.port)
                w = World(
                    workdir,
                    fed,
                    backend,
                    dbs,
                    redis_url,
                    gw,
                    prefix=f"{prefix}:{uuid.uuid4().hex[:8]}:",
                    procs=procs,
                )
                try:
                    yield w
                finally:
                    for p in reversed(w.procs):
                        p.stop()
        finally:
            for p in procs:
                p.stop()
            redis_proc.terminate()
            try:
                redis_proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                redis_proc.kill()


def wait_until(condition: Any, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    """Poll ``condition()`` until truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or condition}")
        time.sleep(interval)


def demo_alert(recipients: Sequence[tuple[str, str]], n: int = 0, days: int = 7) -> Any:
    """The design's scenario alert (a container of counterfeit medicines, a consignee,
    a person), about 1 KiB as a record, addressed to ``(agency, treaty)`` pairs."""
    from intelshare.v1 import alert_pb2, envelope_pb2
    from node.schema import alert as rec

    expire = int((datetime.now(UTC) + timedelta(days=days)).timestamp() * 1000)
    alert = alert_pb2.Alert(
        kind=alert_pb2.ALERT_KIND_COUNTERFEIT_GOODS,
        urgency=alert_pb2.URGENCY_HIGH,
        description=(
            f"Bench alert {n}: container of counterfeit medicines expected at Rotterdam; "
            "consignee in Antwerp. Falsified packaging of a prescription anticoagulant, "
            "batch numbers copied from a genuine lot; shipped via Jebel Ali."
        ),
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        evaluation=alert_pb2.Evaluation(
            source_reliability=alert_pb2.SOURCE_RELIABILITY_B,
            information_credibility=alert_pb2.INFORMATION_CREDIBILITY_2,
        ),
        expire_time=rec.ms_to_ts(expire),
        recipients=[alert_pb2.AlertRecipient(agency_id=a, treaty_id=t) for a, t in recipients],
    )
    alert.subjects.persons.add(
        name="Jan Jansen",
        date_of_birth="1980-02-29",
        nationality="NL",
        passport_number="NX1234567",
        role="consignee's director",
    )
    alert.subjects.containers.add(
        number="MSCU1234566", bill_of_lading="MEDU1234567", hs_codes=["300490"]
    )
    alert.subjects.companies.add(name="Pharma Trading BV", country="BE", role="consignee")
    return alert


# --- profiles ----------------------------------------------------------------------------------

_OURS = ("intelshare/", "node/", "gateway/", "bench/")


def _frame_name(frame: str) -> tuple[str, str]:
    """``"func (path/file.py:12)"`` -> (``"path/file.py:func"``, ``"path/file.py"``)."""
    func, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{path}:{func}", path


def _package(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    if len(parts) == 1:
        return parts[0].removesuffix(".py") or "?"
    return parts[0] if parts[0] not in ("intelshare", "node", "gateway") else "/".join(parts[:2])


class Profile:
    """``py-spy record`` of one process for ``seconds``, summarised.

    Only samples of the thread holding the GIL are kept (``--gil``): the
    profile is of the process's Python CPU time, which is what limits
    throughput on two cores (time waiting for the database or the network
    is not in it). py-spy must attach while the target is idle (attaching
    to a process that is busy fails here with "Failed to find python
    version"), so start the profile before the load.
    """

    def __init__(self, pid: int, seconds: float, out: Path, rate: int = 50) -> None:
        self.out = out
        self.error = ""
        spy = Path(sys.executable).with_name("py-spy")
        argv = [str(spy), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
        argv += ["--rate", str(rate), "--format", "raw", "--gil", "--output", str(out)]
        try:
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as exc:
            self.proc = None
            self.error = f"py-spy not available: {exc}"
        time.sleep(0.5)  # attached before the caller starts the load

    def result(self, top: int = 12) -> dict[str, Any]:
        if self.proc is not None:
            try:
                _, err = self.proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate()
            if self.proc.returncode != 0 and not self.out.exists():
                lines = err.decode(errors="replace").strip().splitlines()
                self.error = lines[0] if lines else f"py-spy exited {self.proc.returncode}"
        if self.error or not self.out.exists():
            return {"error": self.error or "no profile written"}
        own: dict[str, int] = {}
        inclusive: dict[str, int] = {}
        packages: dict[str, int] = {}
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            frames = [_frame_name(f) for f in stack.split(";") if f]
            if not frames:
                continue
            leaf, leaf_path = frames[-1]
            own[leaf] = own.get(leaf, 0) + count
            pkg = _package(leaf_path)
            packages[pkg] = packages.get(pkg, 0) + count
            for name in {n for n, p in frames if p.startswith(_OURS)}:
                inclusive[name] = inclusive.get(name, 0) + count

        def pct(d: dict[str, int]) -> list[list[Any]]:
            ranked = sorted(d.items(), key=lambda kv: -kv[1])[:top]
            return [[k, round(100 * v / total, 1)] for k, v in ranked]

        return {
            "samples": total,
            "self": pct(own),
            "by_package": pct(packages),
            "inclusive_ours": pct(inclusive),
        }


def profile_text(profile: dict[str, Any], top: int = 8) -> str:
    """A few lines of markdown for a profile summary."""
    if "error" in profile:
        return f"(no profile: {profile['error']})"
    if profile.get("samples", 0) < 100:
        return f"(only {profile.get('samples', 0)} samples holding the GIL: too few to read)"

    def items(key: str) -> str:
        return ", ".join(f"`{k}` {v:g} %" for k, v in profile.get(key, [])[:top])

    return (
        f"{profile['samples']} samples holding the GIL. "
        f"Own time by package: {items('by_package')}. "
        f"Inclusive, our functions: {items('inclusive_ours')}. "
        f"Own time, hottest functions: {items('self')}."
    )
