"""End-to-end alert latency: ``CreateAlert`` at agency A to the event on B's ``WatchAlerts``.

Run ``.venv/bin/python -m bench.latency`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--backend sqlite`` to skip
PostgreSQL, ``--rates 10,100``, ``--duration SECONDS``, ``--no-search`` to
skip the search for the highest sustainable rate).

What runs, each in its own process as operators run them: a gateway, the
nodes nl-customs (A) and be-police (B), one ``intelshare worker`` per node,
a private ``redis-server`` (append-only, as every Redis the project starts)
and the machine's PostgreSQL (one fresh database per service, dropped
afterwards). This process is the officers: one analyst at B follows
``WatchAlerts``; liaison officers at A issue alerts to B at a fixed rate
(open loop: the schedule does not wait for answers, so a slow system shows
as latency, not as a lower offered rate).

Latency of one alert = arrival of its ``alert.received`` event on B's stream
minus the moment the ``CreateAlert`` call started at A (one clock: this process).
The path in between: A's transaction (record, envelopes, outbox, event) →
A's sender thread → gateway (admission, store, receipt) → B's inbox stream →
B's transaction (verify, open, store, event) → in-process wake-up → B's feed
reads the event log. Celery is deliberately not on this path (see
``node.notify``): it carries webhooks and cross-process wake-ups.

Where the time goes is split with wall-clock stamps: ``issue`` (the
``CreateAlert`` call, until A committed), ``transfer`` (A's answer until B
wrote the event, by B's ``create_time``), ``feed`` (B's event until it
arrived on the stream). A rate is *sustainable* when every alert arrives,
the offered rate was kept (≥ 95 %) and p99 is under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from intelshare import devfed
from intelshare.v1 import alert_pb2, envelope_pb2
from node.cli.client import NodeClient
from node.config import load_config
from node.server import open_database
from node.storage.officers import OfficerRegistry

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "INTELSHARE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
A, B = "nl-customs", "be-police"
TREATY = "latency-bench"
SUSTAINABLE_P99_MS = 100.0
TARGETS = {"p50_ms": 20.0, "p99_ms": 60.0, "at_rate": 100}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    for tool in ("redis-server", "psql"):
        with suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10)
            versions[tool] = out.stdout.strip().splitlines()[0] if out.stdout else ""
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        **versions,
    }


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def spawn(name: str, args: list[str], workdir: Path, timeout: float = 60.0) -> Proc:
    ready = workdir / f"{name}.ready"
    log = workdir / f"{name}.log"
    ready.unlink(missing_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(  # fixed argv: this interpreter and our own modules
            [
                sys.executable,
                "-m",
                "intelshare.cli",
                *args,
                "--ready-file",
                str(ready),
                "--log-level",
                "WARNING",
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-3000:]}")
        text = ready.read_text().strip() if ready.exists() else ""
        if text.isdigit():
            return Proc(name, proc, log, int(text))
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{name} not ready within {timeout}s")


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import redis

    port = free_port()
    data = workdir / "redis"
    data.mkdir()
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
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.02)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


@contextmanager
def databases(backend: str, workdir: Path, names: list[str]) -> Iterator[dict[str, str]]:
    if backend == "sqlite":
        yield {n: f"sqlite:///{workdir / (n + '.db')}" for n in names}
        return
    import psycopg

    made = {n: f"intelshare_lat_{uuid.uuid4().hex[:10]}" for n in names}
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


def treaty() -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "id": TREATY,
        "version": 1,
        "title": "Latency bench",
        "parties": [A, B],
        "kinds": ["alert", "alert_update", "hit_report"],
        "categories": ["counterfeit_goods"],
        "max_handling": {"code": "H2", "tlp": "AMBER"},
        "fields": {"alert": ["kind", "urgency", "description", "handling", "tlp", "expires_at"]},
        "retention_days": 30,
        "purpose": "benchmark",
        "onward_sharing": "forbidden",
        "valid": {
            "from": (today - timedelta(days=1)).isoformat(),
            "until": (today + timedelta(days=30)).isoformat(),
        },
    }


@dataclass
class World:
    workdir: Path
    fed: devfed.LocalFederation
    procs: list[Proc] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    redis_pid: int | None = None
    backend: str = "postgresql"
    #: service name ("gateway", "nl-customs", "be-police") -> its database URL
    databases: dict[str, str] = field(default_factory=dict)

    def client(self, agency: str, token: str) -> NodeClient:
        return NodeClient(
            f"127.0.0.1:{self.ports[agency]}",
            ca_pem=self.fed.ca_file.read_bytes(),
            server_name=agency,
            token=token,
            timeout=30.0,
        )


@contextmanager
def world(backend: str, workers: bool = True) -> Iterator[World]:
    with tempfile.TemporaryDirectory(prefix="intelshare-latency-") as tmp:
        workdir = Path(tmp)
        specs = [
            devfed.AgencySpec(A, "Netherlands Customs", "NL", "customs"),
            devfed.AgencySpec(B, "Belgian Federal Police", "BE", "police"),
        ]
        fed = devfed.build(workdir / "fed", specs, [treaty()])
        redis_proc, redis_url = start_redis(workdir)
        w = World(workdir, fed, redis_pid=redis_proc.pid, backend=backend)
        try:
            with databases(backend, workdir, ["gateway", A, B]) as dbs:
                w.databases = dict(dbs)
                gw_cfg = devfed.write_config(
                    workdir / "gateway.yaml",
                    "gateway",
                    fed.gateway_config(dbs["gateway"], max_workers=32),
                )
                gw = spawn("gateway", ["gateway", "serve", "--config", str(gw_cfg)], workdir)
                w.procs.append(gw)
                fed.publish_treaties(gw.port)
                prefix = f"intelshare-latency:{uuid.uuid4().hex[:8]}:"
                for agency in (A, B):
                    cfg = devfed.write_config(
                        workdir / f"{agency}.yaml",
                        "node",
                        fed.node_config(
                            agency,
                            dbs[agency],
                            gw.port,
                            redis_url=redis_url,
                            # One key space per agency, as separate deployments
                            # have: no node parses the other's wake-ups.
                            redis_prefix=f"{prefix}{agency}:",
                            max_workers=32,
                            heartbeat_seconds=5.0,
                        ),
                    )
                    store = open_database(load_config(cfg))
                    registry = OfficerRegistry(store.engine)
                    role = "liaison" if agency == A else "analyst"
                    w.tokens[agency] = registry.add(f"bench-{role}", role)[1]
                    store.hub.close()
                    store.engine.dispose()
                    node = spawn(agency, ["node", "serve", "--config", str(cfg)], workdir)
                    w.procs.append(node)
                    w.ports[agency] = node.port
                    if workers:
                        w.procs.append(
                            spawn(
                                f"worker-{agency}",
                                ["worker", "--config", str(cfg), "--concurrency", "4"],
                                workdir,
                            )
                        )
                yield w
        finally:
            for p in reversed(w.procs):
                p.stop()
            redis_proc.terminate()
            redis_proc.wait(timeout=15)


# --- measuring -----------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            kids.setdefault(int(fields[1]), []).append(int(entry.name))
    return kids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants (Linux /proc)."""
    kids = _children()
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
        todo.extend(kids.get(current, []))
    return total


def cpu_by_component(w: World) -> dict[str, float]:
    """CPU seconds so far: gateway, node A, node B, workers (both), this process."""
    out: dict[str, float] = {"bench client": time.process_time()}
    for p in w.procs:
        key = "workers" if p.name.startswith("worker-") else p.name
        out[key] = out.get(key, 0.0) + cpu_seconds(p.proc.pid)
    return out


def server_cpu(w: World) -> dict[str, float]:
    """CPU seconds so far of the servers: the private Redis, and PostgreSQL.

    PostgreSQL is the machine's shared server, so its figure is every
    ``postgres`` process's time (the backends of our connections, the WAL
    writer, autovacuum) and includes whatever else uses that server at the
    time: exact on a quiet machine, an upper bound otherwise.
    """
    out: dict[str, float] = {}
    if w.redis_pid is not None:
        out["redis-server"] = cpu_seconds(w.redis_pid)
    if w.backend == "postgresql":
        total = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with suppress(OSError):
                stat = (entry / "stat").read_text()
                if stat.split("(", 1)[1].split(")", 1)[0] != "postgres":
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / _TICK
        out["postgresql (whole server)"] = total
    return out


def alert(n: int) -> alert_pb2.Alert:
    expire = datetime.now(UTC) + timedelta(days=1)
    msg = alert_pb2.Alert(
        kind=alert_pb2.ALERT_KIND_COUNTERFEIT_GOODS,
        urgency=alert_pb2.URGENCY_HIGH,
        description=f"latency bench alert {n}",
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        recipients=[alert_pb2.AlertRecipient(agency_id=B, treaty_id=TREATY)],
    )
    msg.expire_time.FromDatetime(expire)
    return msg


class Feed:
    """B's analyst following WatchAlerts; records arrival times per alert id."""

    def __init__(self, client: NodeClient) -> None:
        self.client = client
        self.arrived: dict[str, tuple[float, int]] = {}
        self.cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with suppress(Exception):
            for item in self.client.watch(after_cursor=0):
                if item.HasField("event") and item.event.type == "alert.received":
                    now = time.monotonic()
                    alert_id = item.event.alert.removeprefix("alerts/")
                    created_ms = item.event.create_time.ToMilliseconds()
                    with self.cond:
                        self.arrived[alert_id] = (now, created_ms)
                        self.cond.notify_all()

    def wait_for(self, ids: set[str], timeout: float) -> set[str]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not ids <= set(self.arrived):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return ids - set(self.arrived)

    def close(self) -> None:
        self.client.close()
        self._thread.join(timeout=10)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class Sent:
    start: float  # monotonic, call started
    start_wall_ms: float
    answered_wall_ms: float
    alert_id: str


def run_rate(w: World, feed: Feed, rate: float, duration: float) -> dict[str, Any]:
    count = max(1, int(rate * duration))
    threads = int(min(64, max(4, rate / 4)))
    sent: list[Sent] = []
    errors: list[str] = []
    lock = threading.Lock()
    clients = [w.client(A, w.tokens[A]) for _ in range(min(threads, 8))]

    def issue(n: int) -> None:
        client = clients[n % len(clients)]
        start = time.monotonic()
        start_wall = time.time() * 1000
        try:
            created = client.create_alert(alert(n))
        except Exception as exc:
            with lock:
                errors.append(type(exc).__name__)
            return
        answered = time.time() * 1000
        with lock:
            sent.append(Sent(start, start_wall, answered, created.deliveries[0].message_id))

    cpu_before = cpu_by_component(w)
    servers_before = server_cpu(w)
    t0 = time.monotonic() + 0.05
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for n in range(count):
            delay = t0 + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(issue, n)
    offered_seconds = (max(s.start for s in sent) - min(s.start for s in sent)) if sent else 0.0
    missing = feed.wait_for({s.alert_id for s in sent}, timeout=30)
    cpu_after = cpu_by_component(w)
    servers_after = server_cpu(w)
    server_ms_per_alert = {
        k: round((servers_after[k] - servers_before.get(k, 0.0)) * 1000 / max(1, len(sent)), 2)
        for k in servers_after
    }
    cpu_ms_per_alert = {
        k: round((cpu_after[k] - cpu_before.get(k, 0.0)) * 1000 / max(1, len(sent)), 2)
        for k in cpu_after
    }
    for c in clients:
        c.close()
    latencies: list[float] = []
    issue_ms: list[float] = []
    transfer_ms: list[float] = []
    feed_ms: list[float] = []
    for s in sent:
        if s.alert_id in missing:
            continue
        arrived, created_ms = feed.arrived[s.alert_id]
        latency = (arrived - s.start) * 1000
        latencies.append(latency)
        issue_ms.append(s.answered_wall_ms - s.start_wall_ms)
        transfer_ms.append(created_ms - s.answered_wall_ms)
        feed_ms.append(s.start_wall_ms + latency - created_ms)
    achieved = (len(sent) - 1) / offered_seconds if offered_seconds > 0 else float(len(sent))
    result: dict[str, Any] = {
        "rate": rate,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "alerts": count,
        "issued": len(sent),
        "errors": len(errors),
        "arrived": len(latencies),
        "missing": len(missing) + len(errors),
        "achieved_rate": round(achieved, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1) if latencies else float("nan"),
        "cpu_ms_per_alert": cpu_ms_per_alert,
        "server_cpu_ms_per_alert": server_ms_per_alert,
        "split_p50_ms": {
            "issue": round(percentile(issue_ms, 50), 1),
            "transfer": round(percentile(transfer_ms, 50), 1),
            "feed": round(percentile(feed_ms, 50), 1),
        },
    }
    p99 = percentile(latencies, 99)
    result["sustainable"] = bool(
        result["missing"] == 0 and achieved >= 0.95 * rate and p99 < SUSTAINABLE_P99_MS
    )
    return result


def bisect_rate(runs: list[dict[str, Any]]) -> float | None:
    """The rate halfway between the best sustainable and the lowest failed one (5/s steps).

    None when nothing failed or the gap is already under one step.
    """
    ok = [r["rate"] for r in runs if r["sustainable"]]
    failed = [r["rate"] for r in runs if not r["sustainable"]]
    if not failed:
        return None
    low, high = (max(ok) if ok else 0.0), min(failed)
    rate = float(round((low + high) / 2 / 5) * 5)
    return rate if low < rate < high else None


def run(
    *,
    quick: bool = False,
    backend: str = "postgresql",
    rates: tuple[float, ...] = (10, 100),
    duration: float = 10.0,
    search: bool = True,
    workers: bool = True,
) -> dict[str, Any]:
    if quick:
        rates, duration, search = (5,), 1.0, False
    report: dict[str, Any] = {
        "benchmark": "latency",
        "quick": quick,
        "backend": backend,
        "machine": machine(),
        "targets": TARGETS,
        "duration_s": duration,
        "workers": workers,
        "runs": [],
        "max_sustainable": None,
    }
    with world(backend, workers=workers) as w:
        feed = Feed(w.client(B, w.tokens[B]))
        try:
            warm = run_rate(w, feed, 10, 0.5 if quick else 2.0)  # connections, caches
            report["warmup"] = {"alerts": warm["alerts"], "missing": warm["missing"]}
            for rate in rates:
                report["runs"].append(run_rate(w, feed, rate, duration))
            if search:
                for rate in (150, 200, 250, 300, 400, 500):
                    if any(not r["sustainable"] for r in report["runs"]):
                        break
                    report["runs"].append(run_rate(w, feed, rate, duration))
                # below the lowest rate that failed: halve the gap three times
                for _ in range(3):
                    between = bisect_rate(report["runs"])
                    if between is None:
                        break
                    report["runs"].append(run_rate(w, feed, between, duration))
            passing = [r["rate"] for r in report["runs"] if r["sustainable"]]
            report["max_sustainable"] = max(passing) if passing else None
        finally:
            feed.close()
    return report


def format_table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"{m['date']}, {m['cpu']}, nproc {m['nproc']}, Python {m['python']}, "
        f"backend {report['backend']}, {report['duration_s']:g} s per rate, "
        f"load average at start {m['loadavg_at_start']}",
        "",
        "| offered/s | achieved/s | arrived | p50 ms | p95 ms | p99 ms | max ms "
        "| issue p50 | transfer p50 | feed p50 | load 1m | sustainable |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in sorted(report["runs"], key=lambda r: r["rate"]):
        s = r["split_p50_ms"]
        lines.append(
            f"| {r['rate']:g} | {r['achieved_rate']:g} | {r['arrived']}/{r['alerts']} "
            f"| {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} "
            f"| {s['issue']} | {s['transfer']} | {s['feed']} | {r['loadavg_1m']} "
            f"| {'yes' if r['sustainable'] else 'no'} |"
        )
    lines.append("")
    lines.append("CPU ms per alert (user + system, all threads and child processes):")
    for r in sorted(report["runs"], key=lambda r: r["rate"]):
        parts = ", ".join(f"{k} {v}" for k, v in r["cpu_ms_per_alert"].items())
        servers = ", ".join(f"{k} {v}" for k, v in r.get("server_cpu_ms_per_alert", {}).items())
        lines.append(f"  {r['rate']:g}/s: {parts}" + (f"; servers: {servers}" if servers else ""))
    lines.append("")
    lines.append(f"highest sustainable rate tried: {report['max_sustainable']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default=None)
    parser.add_argument("--rates", default="10,100", help="offered alerts per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--no-search", action="store_true", help="skip the max-rate search")
    parser.add_argument("--no-workers", action="store_true", help="run without Celery workers")
    args = parser.parse_args(argv)
    backend = args.backend or ("sqlite" if args.quick else "postgresql")
    report = run(
        quick=args.quick,
        backend=backend,
        rates=tuple(float(r) for r in args.rates.split(",") if r),
        duration=args.duration,
        search=not args.no_search,
        workers=not args.no_workers,
    )
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
