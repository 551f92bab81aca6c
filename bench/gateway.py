"""Gateway throughput beside a bare gRPC echo over the same mTLS setup.

Run ``.venv/bin/python -m bench.gateway`` (``--quick`` for a smoke run,
``--json`` for machine-readable output, ``--backends sqlite`` to skip
PostgreSQL, ``--profile BACKEND`` to see where a submit's server time goes).

What is measured, each against its own floor measured in the same run:

* **submit** with 1 and with 4 concurrent submitters (each its own mTLS
  channel, as separate nodes would have): envelopes accepted per second
  (admission, one transaction storing envelope, queue entry, audit entry and
  signed receipt), against a bare unary echo of a request of the same size;
* **inbox streaming** to one recipient: entries per second on one stream, each
  entry delivered for the first time (so marked delivered and audited, as in
  production), against a bare server-streaming echo of messages of the same
  size.

Both servers run in their own process, each a real ``intelshare`` gRPC server
(same thread pool, keepalive and message-size settings, same certificates,
client authentication required); the clients run in this process. Absolute
figures depend on the machine and its neighbours: the ratio is the figure
that says something about our code. Targets: submit >= 40 % of the unary
echo, streaming >= 50 % of the streaming echo.

Echo and gateway are timed in alternating rounds and the best round of each
kept, so that load from neighbours lands on both sides of a ratio alike.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import platform
import pstats
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from bench._harness import serve_until_terminated
from intelshare import config, devfed
from intelshare.directory import Anchor, TrustedDirectory, verify_directory
from intelshare.envelope import HeaderFields, lookup_recipient_keys, seal
from intelshare.gateway_client import GatewayClient
from intelshare.v1 import envelope_pb2, gateway_service_pb2

TARGET_SUBMIT = 0.40
TARGET_STREAM = 0.50
SUBMITTERS = (1, 4)
PG_ADMIN_URL = os.environ.get(
    "INTELSHARE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REPO = Path(__file__).resolve().parents[1]

ECHO_SERVICE = "intelshare.bench.Echo"
UNARY = f"/{ECHO_SERVICE}/Unary"
STREAM = f"/{ECHO_SERVICE}/Stream"
FLOOR_SERVICE = "intelshare.bench.Floor"
FLOOR_SUBMIT = f"/{FLOOR_SERVICE}/Submit"

SENDER = "nl-customs"
RECIPIENT = "be-police"
TREATY = "bench-treaty"
AGENCIES = [
    devfed.AgencySpec(SENDER, "Netherlands Customs", "NL", "customs"),
    devfed.AgencySpec(RECIPIENT, "Belgian Federal Police", "BE", "police"),
]


@dataclass(frozen=True)
class Sizes:
    """How much work one full or quick run does."""

    rounds: int
    submits_per_round: int  # per round, shared by the submitters
    echo_calls_per_round: int  # the echo is ~10x faster: more calls, similar round length
    stream_entries: int  # per round
    echo_stream_messages: int
    warmup: int

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(
                rounds=1,
                submits_per_round=8,
                echo_calls_per_round=8,
                stream_entries=8,
                echo_stream_messages=8,
                warmup=2,
            )
        return cls(
            rounds=4,
            submits_per_round=400,
            echo_calls_per_round=2000,
            stream_entries=1000,
            echo_stream_messages=5000,
            warmup=20,
        )


# --- the machine -------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "sqlite": sqlite3.sqlite_version,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


# --- the echo server (runs in its own process) -------------------------------------------


def _echo_unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _echo_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    """``request`` is a u32 count then a payload: the payload, count times."""
    (count,) = struct.unpack(">I", request[:4])
    payload = request[4:]
    for _ in range(count):
        yield payload


def serve_echo(cert: Path, key: Path, ca: Path, ready_file: Path, max_workers: int) -> None:
    """A bare echo service on the gateway's kind of server: the floor of the ratios.

    Built on :class:`intelshare.grpc_server.ManagedServer` with the gateway's
    credentials, so the only difference from the gateway is what a call does.
    """
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_echo_unary),
        "Stream": grpc.unary_stream_rpc_method_handler(_echo_stream),
    }
    _serve_like_the_gateway(ECHO_SERVICE, handlers, cert, key, ca, ready_file, max_workers)


def _serve_like_the_gateway(
    service: str,
    handlers: dict[str, grpc.RpcMethodHandler],
    cert: Path,
    key: Path,
    ca: Path,
    ready_file: Path,
    max_workers: int,
) -> None:
    """``handlers`` on the gateway's kind of server (thread pool, health service,
    message size, keepalive) and credentials, until SIGTERM."""
    from gateway.server import SERVICE_NAME
    from intelshare.grpc_server import ManagedServer

    server = ManagedServer(
        max_workers=max_workers,
        service_names=[SERVICE_NAME],
        max_message_bytes=1_200_000 + 64 * 1024,
    )
    server.server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, handlers),)
    )
    serve_until_terminated(server, cert, key, ca, ready_file)


# --- the mandated-work floor (runs in its own process) -------------------------------------


class _FloorStore:
    """Durable writes of envelopes with a signed receipt, shared by concurrent calls.

    The connection comes from :func:`intelshare.db.make_engine`, so it has
    the services' own durability settings (SQLite in WAL with
    ``synchronous=FULL``; PostgreSQL with ``synchronous_commit`` on); its
    driver connection is used in autocommit. Calls that arrive while a write
    is on disk join the next one (group commit, as the gateway does): one
    transaction and one receipt signature (over the batch's digests, as the
    gateway's signed tree head covers a group) per batch. A lone call is one
    statement in autocommit, the least a durable write can be.
    """

    def __init__(self, db_url: str, receipt_key: Any) -> None:
        from intelshare.db import make_engine

        self._sqlite = db_url.startswith("sqlite")
        self._engine = make_engine(db_url)
        self._proxy = self._engine.raw_connection()  # kept: it owns the driver connection
        conn: Any = self._proxy.driver_connection
        if self._sqlite:
            conn.isolation_level = None
            self._sql = "INSERT INTO bench_floor (sha, envelope, signature) VALUES (?, ?, ?)"
        else:
            conn.autocommit = True
            self._sql = "INSERT INTO bench_floor (sha, envelope, signature) VALUES (%s, %s, %s)"
        blob = "BLOB" if self._sqlite else "BYTEA"
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS bench_floor (sha {blob} PRIMARY KEY, "
            f"envelope {blob} NOT NULL, signature {blob} NOT NULL)"
        )
        self._conn = conn
        self._key = receipt_key
        self._cond = threading.Condition()
        self._queue: list[list[Any]] = []  # [sha, envelope, outcome: signature or error]
        self._busy = False

    def accept(self, sha: bytes, envelope: bytes) -> bytes:
        """Write ``envelope`` durably; the receipt signature covering it.

        A failed write fails every call of its batch: none gets a receipt
        for an envelope that was not written.
        """
        item: list[Any] = [sha, envelope, None]
        with self._cond:
            self._queue.append(item)
            while self._busy and item[2] is None:
                self._cond.wait()
            if item[2] is None:
                batch, self._queue, self._busy = self._queue, [], True
        if item[2] is None:
            outcome: bytes | Exception
            try:
                outcome = self._write(batch)
            except Exception as exc:
                outcome = exc
            with self._cond:
                for i in batch:
                    i[2] = outcome
                self._busy = False
                self._cond.notify_all()
        if isinstance(item[2], Exception):
            raise item[2]
        return bytes(item[2])

    def _write(self, batch: list[list[Any]]) -> bytes:
        signature: bytes = self._key.sign(b"".join(i[0] for i in batch))
        rows = [(i[0], i[1], signature) for i in batch]
        if len(rows) == 1:
            self._conn.execute(self._sql, rows[0])
        elif self._sqlite:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(self._sql, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        else:
            with self._conn.transaction():
                self._conn.cursor().executemany(self._sql, rows)
        return signature


def serve_floor(
    cert: Path,
    key: Path,
    ca: Path,
    ready_file: Path,
    max_workers: int,
    db_url: str,
    sender_key: Path,
    response_bytes: int,
) -> None:
    """What no implementation of a submit can skip, and nothing else: the floor
    the gateway's ratio cannot rise above on this machine.

    Per call: parse the request, frame the envelope's signed digest and check
    the sender's Ed25519 signature over it, hash the envelope, sign a receipt
    (one Ed25519 signature, as the receipt's signed tree head is), write the
    envelope durably (one statement that commits, see :class:`_FloorStore`)
    and answer with as many bytes as the gateway's receipt has. Not done
    here, and all required of the gateway: the canonical-encoding and
    structure checks, directory and treaty decisions, queue sequences, the
    Merkle log and its proofs, the receipt's encoding, metrics. Concurrent
    calls share writes and receipt signatures (:class:`_FloorStore`), as the
    gateway's do; with one submitter a call is alone and shares nothing.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from intelshare.hazmat import envelope_primitives as prim

    sender = Ed25519PublicKey.from_public_bytes(bytes.fromhex(sender_key.read_text().strip()))
    store = _FloorStore(db_url, Ed25519PrivateKey.generate())
    padding = b"\0" * max(response_bytes - 64, 0)

    def submit(request: bytes, context: grpc.ServicerContext) -> bytes:
        env = gateway_service_pb2.SubmitEnvelopeRequest.FromString(request).envelope
        blocks = [(b.agency_id, b.key_id, b.wrapped_key) for b in env.key_blocks]
        digest = prim.envelope_digest(env.header_bytes, blocks, env.ciphertext)
        prim.verify_digest(sender, env.signature, digest)
        data = env.SerializeToString()
        return store.accept(hashlib.sha256(data).digest(), data) + padding

    handlers = {"Submit": grpc.unary_unary_rpc_method_handler(submit)}
    _serve_like_the_gateway(FLOOR_SERVICE, handlers, cert, key, ca, ready_file, max_workers)


# --- processes -----------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process used so far; 0 if unknown.

        Wall-clock throughput on a shared machine mostly measures the
        neighbours; the server's own CPU per call is what our code costs, and
        it is far steadier between runs. PostgreSQL's own processes are not
        included.
        """
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _spawn(argv: list[str], ready: Path, log: Path, timeout: float = 60.0) -> Server:
    ready.unlink(missing_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(  # fixed argv: this interpreter and our own modules
            [sys.executable, *argv], cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        text = ready.read_text().strip() if ready.exists() else ""
        if text.isdigit():
            return Server(proc, int(text), log)
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{argv} not ready within {timeout}s")


# --- federation, databases ------------------------------------------------------------------


@dataclass
class Setup:
    fed: devfed.LocalFederation
    directory: TrustedDirectory
    workdir: Path

    def client(self, target: str, agency: str = SENDER) -> GatewayClient:
        a = self.fed.agencies[agency]
        return GatewayClient(
            target, ca_pem=self.fed.ca_file.read_bytes(), cert_pem=a.cert_pem, key_pem=a.key_pem
        )

    def seal(self, n: int) -> envelope_pb2.Envelope:
        keys = self.fed.agencies[SENDER].keys
        now = datetime.now(UTC)
        fields = HeaderFields(
            sender=SENDER,
            recipients=(RECIPIENT,),
            treaty_id=TREATY,
            treaty_version=1,
            kind=envelope_pb2.MESSAGE_KIND_ALERT,
            handling=envelope_pb2.HANDLING_CODE_H1,
            tlp=envelope_pb2.TLP_AMBER,
            categories=("counterfeit_goods",),
            expire_time=now + timedelta(days=7),
            create_time=now,
        )
        # A 1 KiB payload: an alert with a description and a few subjects.
        payload = json.dumps({"n": n, "description": "x" * 1000}).encode()
        return seal(
            fields,
            payload,
            signing_key=keys.signing,
            signing_key_id=keys.signing_key_id,
            recipient_keys=lookup_recipient_keys(self.directory, [RECIPIENT]),
        )


def build_federation(workdir: Path) -> Setup:
    today = datetime.now(UTC).date()
    treaty = {
        "id": TREATY,
        "version": 1,
        "title": "Benchmark treaty",
        "parties": [SENDER, RECIPIENT],
        "valid": {
            "from": (today - timedelta(days=1)).isoformat(),
            "until": (today + timedelta(days=30)).isoformat(),
        },
        "kinds": ["alert"],
        "categories": ["counterfeit_goods"],
        "max_handling": {"code": "H1", "tlp": "AMBER"},
        "fields": {"alert": ["kind", "description"]},
        "retention_days": 30,
        "purpose": "benchmark",
        "onward_sharing": "forbidden",
    }
    fed = devfed.build(workdir / "fed", AGENCIES, [treaty])
    directory = verify_directory(
        fed.directory_file.read_bytes(), Anchor.load(fed.anchor_file), now=datetime.now(UTC)
    )
    return Setup(fed, directory, workdir)


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1.0):
            return True
    except OSError:
        return False


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database for one backend, dropped afterwards (PostgreSQL is shared)."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'gateway-bench.db'}"
        return
    import psycopg

    name = f"intelshare_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def gateway_config(setup: Setup, db_url: str, name: str) -> Path:
    values = setup.fed.gateway_config(db_url)
    return devfed.write_config(setup.workdir / f"{name}.yaml", "gateway", values)


# --- timing --------------------------------------------------------------------------------


def _concurrently(calls: list[Callable[[], None]]) -> float:
    """Run each callable in its own thread, all released at once; wall seconds."""
    if len(calls) == 1:
        start = time.perf_counter()
        calls[0]()
        return time.perf_counter() - start
    barrier = threading.Barrier(len(calls) + 1)

    def worker(fn: Callable[[], None]) -> None:
        barrier.wait()
        fn()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(worker, fn) for fn in calls]
        barrier.wait()
        start = time.perf_counter()
        for f in futures:
            f.result()
        return time.perf_counter() - start


@dataclass
class Best:
    """The best round of one side of a ratio: least wall time, least server CPU."""

    wall: float = float("inf")
    cpu: float = float("inf")

    def timed(self, server: Server, fn: Callable[[], float]) -> None:
        before = server.cpu_seconds()
        self.wall = min(self.wall, fn())
        self.cpu = min(self.cpu, server.cpu_seconds() - before)

    def cpu_us(self, calls: int) -> float:
        return round(self.cpu / calls * 1e6, 1)


def _request(env: envelope_pb2.Envelope) -> bytes:
    return gateway_service_pb2.SubmitEnvelopeRequest(
        request_id=str(uuid.uuid4()), envelope=env
    ).SerializeToString()


def bench_submit(
    setup: Setup,
    gateway: Server,
    echo: Server,
    submitters: int,
    sizes: Sizes,
    floor: Server,
) -> dict[str, Any]:
    """Submits per second with ``submitters`` channels, the unary echo and the
    mandated-work floor (see :func:`serve_floor`) beside it."""
    per = max(sizes.submits_per_round // submitters, 1)
    echo_per = max(sizes.echo_calls_per_round // submitters, 1)
    gw_clients = [setup.client(gateway.target) for _ in range(submitters)]
    echo_clients = [setup.client(echo.target) for _ in range(submitters)]
    floor_clients = [setup.client(floor.target) for _ in range(submitters)]
    try:
        echo_calls = [c.channel.unary_unary(UNARY) for c in echo_clients]
        floor_calls = [c.channel.unary_unary(FLOOR_SUBMIT) for c in floor_clients]
        sample = _request(setup.seal(-1))
        for c, call in zip(gw_clients, echo_calls, strict=True):  # handshakes, warm caches
            for _ in range(sizes.warmup):
                c.submit(setup.seal(-1))
                call(sample)
        for call in floor_calls:
            for _ in range(sizes.warmup):
                call(_request(setup.seal(-1)))
        best_gw, best_echo, best_floor = Best(), Best(), Best()
        receipt_bytes = 0
        for _ in range(sizes.rounds):
            batches = [[setup.seal(i) for i in range(per)] for _ in range(submitters)]
            floor_batches = [[setup.seal(i) for i in range(per)] for _ in floor_calls]

            def echo_work(call: Any) -> Callable[[], None]:
                def run() -> None:
                    for _ in range(echo_per):
                        call(sample)

                return run

            def submit_work(client: GatewayClient, batch: list[Any]) -> Callable[[], None]:
                def run() -> None:
                    nonlocal receipt_bytes
                    for env in batch:
                        resp = client.submit(env)
                        receipt_bytes = resp.ByteSize()

                return run

            def floor_work(call: Any, batch: list[Any]) -> Callable[[], None]:
                def run() -> None:
                    for env in batch:  # serialized in the loop, as the gateway's client does
                        call(_request(env))

                return run

            best_echo.timed(echo, lambda: _concurrently([echo_work(c) for c in echo_calls]))
            best_floor.timed(
                floor,
                lambda: _concurrently(
                    [floor_work(c, b) for c, b in zip(floor_calls, floor_batches, strict=True)]  # noqa: B023
                ),
            )
            best_gw.timed(
                gateway,
                lambda: _concurrently(
                    [submit_work(c, b) for c, b in zip(gw_clients, batches, strict=True)]  # noqa: B023
                ),
            )
        total, echo_total = per * submitters, echo_per * submitters
        gw_rate, echo_rate = total / best_gw.wall, echo_total / best_echo.wall
        floor_rate = total / best_floor.wall
        return {
            "submitters": submitters,
            "accepted": total * sizes.rounds + sizes.warmup * submitters,
            "calls_per_round": total,
            "request_bytes": len(sample),
            "response_bytes": receipt_bytes,
            "per_second": round(gw_rate, 1),
            "echo_per_second": round(echo_rate, 1),
            "ratio": round(gw_rate / echo_rate, 3),
            "server_cpu_us": best_gw.cpu_us(total),
            "echo_server_cpu_us": best_echo.cpu_us(echo_total),
            "floor": {
                "per_second": round(floor_rate, 1),
                "ratio": round(floor_rate / echo_rate, 3),
                "server_cpu_us": best_floor.cpu_us(total),
            },
        }
    finally:
        for c in gw_clients + echo_clients + floor_clients:
            c.close()


def bench_stream(
    setup: Setup, gateway: Server, echo: Server, sizes: Sizes, queued: int
) -> dict[str, Any]:
    """Inbox entries per second on one stream, and the streaming echo beside it.

    Every round streams entries never delivered before (queued by the submit
    rounds, topped up here), so each is marked delivered and audited as in
    production; replaying an already delivered range would be cheaper. The
    gateway records as delivered what gRPC sent, which runs ahead of what a
    cancelled stream's client read (transport buffers), so each round starts
    a batch past where the previous one stopped.
    """
    from gateway.inbox import INBOX_BATCH

    m = sizes.stream_entries
    with setup.client(gateway.target, RECIPIENT) as be, setup.client(echo.target) as ec:
        # Warm-up: a small first slice, so connection setup is not timed.
        warm = m // 10 or 1
        missing = warm + (m + INBOX_BATCH) * sizes.rounds - queued
        if missing > 0:
            with setup.client(gateway.target) as nl, ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda i: nl.submit(setup.seal(i)), range(missing)))
        cursor = 0
        entry_bytes = 0
        stream = be.stub.StreamInbox(gateway_service_pb2.StreamInboxRequest(after_sequence=0))
        got = 0
        for msg in stream:
            if msg.HasField("entry"):
                got += 1
                entry_bytes = msg.ByteSize()
                cursor = msg.entry.sequence + INBOX_BATCH
                if got == warm:
                    break
        stream.cancel()
        e = sizes.echo_stream_messages
        request = struct.pack(">I", e) + os.urandom(entry_bytes)
        echo_stream = ec.channel.unary_stream(STREAM)
        for _ in echo_stream(struct.pack(">I", warm) + request[4:]):
            pass

        def echo_round() -> float:
            start = time.perf_counter()
            n = sum(1 for _ in echo_stream(request))
            assert n == e
            return time.perf_counter() - start

        def inbox_round() -> float:
            nonlocal cursor
            start = time.perf_counter()
            stream = be.stub.StreamInbox(
                gateway_service_pb2.StreamInboxRequest(after_sequence=cursor)
            )
            n = 0
            for msg in stream:
                if msg.HasField("entry"):
                    n += 1
                    if n == m:
                        cursor = msg.entry.sequence + INBOX_BATCH
                        break
            took = time.perf_counter() - start
            stream.cancel()
            return took

        best_gw, best_echo = Best(), Best()
        for _ in range(sizes.rounds):
            best_echo.timed(echo, echo_round)
            best_gw.timed(gateway, inbox_round)
    gw_rate, echo_rate = m / best_gw.wall, e / best_echo.wall
    return {
        "entries_per_round": m,
        "entry_bytes": entry_bytes,
        "per_second": round(gw_rate, 1),
        "echo_per_second": round(echo_rate, 1),
        "ratio": round(gw_rate / echo_rate, 3),
        "server_cpu_us": best_gw.cpu_us(m),
        "echo_server_cpu_us": best_echo.cpu_us(e),
    }


def bench_backend(setup: Setup, backend: str, echo: Server, sizes: Sizes) -> dict[str, Any]:
    with database(backend, setup.workdir) as url:
        config_file = gateway_config(setup, url, f"gateway-{backend}")
        gateway = _spawn(
            [
                *("-m", "intelshare.cli", "gateway", "serve", "--config", str(config_file)),
                *("--ready-file", str(setup.workdir / f"{backend}.port"), "--log-level", "WARNING"),
            ],
            setup.workdir / f"{backend}.port",
            setup.workdir / f"gateway-{backend}.log",
        )
        try:
            with setup.client(gateway.target) as c:
                c.publish_treaty(setup.fed.signed_treaty(TREATY).to_proto())
                receipt_bytes = c.submit(setup.seal(-1)).ByteSize()
            with spawn_floor(setup, backend, receipt_bytes) as floor:
                submit = [bench_submit(setup, gateway, echo, n, sizes, floor) for n in SUBMITTERS]
            queued = 1 + sum(s.pop("accepted") for s in submit)
            stream = bench_stream(setup, gateway, echo, sizes, queued)
        finally:
            gateway.stop()
    return {"backend": backend, "submit": submit, "stream": stream}


@contextmanager
def spawn_floor(setup: Setup, backend: str, response_bytes: int) -> Iterator[Server]:
    """The floor server (:func:`serve_floor`) in its own process, on a database
    of its own on ``backend``."""
    where = setup.workdir / f"floor-{backend}"
    where.mkdir(exist_ok=True)
    key_file = where / "sender.pub"
    public = setup.fed.agencies[SENDER].keys.signing.public_key()
    key_file.write_text(public.public_bytes_raw().hex())
    srv = setup.fed.gateway_server_dir
    with database(backend, where) as url:
        floor = _spawn(
            [
                *("-m", "bench.gateway", "--serve-floor", url, "--sender-key", str(key_file)),
                *("--response-bytes", str(response_bytes), "--cert", str(srv / "tls.crt")),
                *("--key", str(srv / "tls.key"), "--ca", str(setup.fed.ca_file)),
                *("--ready-file", str(where / "floor.port")),
            ],
            where / "floor.port",
            where / "floor.log",
        )
        try:
            yield floor
        finally:
            floor.stop()


def run(
    *, quick: bool = False, backends: tuple[str, ...] = ("sqlite", "postgresql")
) -> dict[str, Any]:
    """Every measurement; ``quick`` does a few calls only (a smoke run, figures meaningless).

    A backend whose server cannot be reached (PostgreSQL on 127.0.0.1:5432)
    is reported as skipped rather than failing the run.
    """
    sizes = Sizes.of(quick)
    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="intelshare-bench-") as tmp:
        workdir = Path(tmp)
        setup = build_federation(workdir)
        srv = setup.fed.gateway_server_dir
        echo = _spawn(
            [
                *("-m", "bench.gateway", "--serve-echo", "--cert", str(srv / "tls.crt")),
                *("--key", str(srv / "tls.key"), "--ca", str(setup.fed.ca_file)),
                *("--ready-file", str(workdir / "echo.port")),
            ],
            workdir / "echo.port",
            workdir / "echo.log",
        )
        try:
            for backend in backends:
                if backend == "postgresql" and not _pg_reachable():
                    skipped[backend] = "PostgreSQL is not reachable on 127.0.0.1:5432"
                    continue
                results.append(bench_backend(setup, backend, echo, sizes))
        finally:
            echo.stop()
    return {
        "benchmark": "gateway",
        "quick": quick,
        "machine": machine(),
        "targets": {"submit_ratio": TARGET_SUBMIT, "stream_ratio": TARGET_STREAM},
        "sizes": asdict(sizes),
        "results": results,
        "skipped": skipped,
    }


def format_table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"gateway bench  {m['date']}  {m['cpu']}  nproc={m['nproc']}  python {m['python']}  "
        f"grpcio {m['grpcio']}  sqlite {m['sqlite']}"
        + ("  (QUICK: not meaningful)" if report["quick"] else ""),
        "",
        "| backend | measurement | gateway /s | bare echo /s | ratio | target "
        "| gateway CPU µs/call | echo CPU µs/call |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    t = report["targets"]
    for r in report["results"]:
        for s in r["submit"]:
            lines.append(
                f"| {r['backend']} | submit, {s['submitters']} submitter(s) "
                f"| {s['per_second']:.0f} | {s['echo_per_second']:.0f} "
                f"| {s['ratio']:.2f} | {t['submit_ratio']:.2f} "
                f"| {s['server_cpu_us']:.0f} | {s['echo_server_cpu_us']:.0f} |"
            )
        st = r["stream"]
        lines.append(
            f"| {r['backend']} | inbox stream, 1 recipient | {st['per_second']:.0f} "
            f"| {st['echo_per_second']:.0f} | {st['ratio']:.2f} | {t['stream_ratio']:.2f} "
            f"| {st['server_cpu_us']:.0f} | {st['echo_server_cpu_us']:.0f} |"
        )
    floors = [(r["backend"], s) for r in report["results"] for s in r["submit"] if "floor" in s]
    if floors:
        lines += [
            "",
            "Mandated-work floor (see `serve_floor`: signature check, receipt signature, "
            "durable write, shared by concurrent calls; nothing else):",
            "",
            "| backend | submitters | floor /s | floor / echo | gateway / floor "
            "| floor CPU µs/call |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for backend, s in floors:
            f = s["floor"]
            lines.append(
                f"| {backend} | {s['submitters']} | {f['per_second']:.0f} | {f['ratio']:.2f} "
                f"| {s['per_second'] / f['per_second']:.2f} | {f['server_cpu_us']:.0f} |"
            )
    if report["results"]:
        first = report["results"][0]
        lines.append("")
        lines.append(
            f"submit request {first['submit'][0]['request_bytes']} B, receipt response "
            f"{first['submit'][0]['response_bytes']} B; inbox entry "
            f"{first['stream']['entry_bytes']} B"
        )
    for backend, why in report["skipped"].items():
        lines.append(f"{backend}: skipped ({why})")
    return "\n".join(lines)


# --- profiling -----------------------------------------------------------------------------


def profile(backend: str, count: int = 300, top: int = 25) -> str:
    """cProfile of the gateway's own SubmitEnvelope and StreamInbox, in this process.

    The gateway runs in-process here (``gateway.server.start``) and each
    handler call is profiled on the worker thread that runs it; client and
    gRPC transport threads are left out, so the figures are the server's
    share of a call.
    """
    from gateway.config import GatewayConfig
    from gateway.server import start
    from gateway.service import GatewayServicer

    lock = threading.Lock()
    prof = cProfile.Profile()

    def wrap(name: str) -> None:
        original = getattr(GatewayServicer, name)

        def unary(self: Any, request: Any, context: Any) -> Any:
            with lock:
                prof.enable()
                try:
                    return original(self, request, context)
                finally:
                    prof.disable()

        def streaming(self: Any, request: Any, context: Any) -> Any:
            it = original(self, request, context)
            while True:
                with lock:
                    prof.enable()
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                    finally:
                        prof.disable()
                yield item

        setattr(GatewayServicer, name, streaming if name == "StreamInbox" else unary)

    out = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="intelshare-prof-") as tmp:
        setup = build_federation(Path(tmp))
        with database(backend, Path(tmp)) as url:
            cfg = config.load(
                GatewayConfig, "gateway", {"gateway": setup.fed.gateway_config(url)}, env={}
            )
            originals = {n: getattr(GatewayServicer, n) for n in ("SubmitEnvelope", "StreamInbox")}
            for name in originals:  # before start: grpc binds the handlers when registering
                wrap(name)
            running = start(cfg)
            try:
                target = f"127.0.0.1:{running.port}"
                with setup.client(target) as c:
                    c.publish_treaty(setup.fed.signed_treaty(TREATY).to_proto())
                    for env in [setup.seal(i) for i in range(count)]:
                        c.submit(env)
                with setup.client(target, RECIPIENT) as be:
                    stream = be.stub.StreamInbox(
                        gateway_service_pb2.StreamInboxRequest(after_sequence=0)
                    )
                    n = 0
                    for msg in stream:
                        n += msg.HasField("entry")
                        if n == count:
                            break
                    stream.cancel()
            finally:
                for name, fn in originals.items():
                    setattr(GatewayServicer, name, fn)
                running.stop(grace=1.0)
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument(
        "--profile", metavar="BACKEND", help="profile the gateway's handlers on BACKEND instead"
    )
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", metavar="DB_URL", help=argparse.SUPPRESS)
    parser.add_argument("--sender-key", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--response-bytes", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--cert", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--key", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ca", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--max-workers", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        serve_echo(args.cert, args.key, args.ca, args.ready_file, args.max_workers)
        return 0
    if args.serve_floor:
        serve_floor(
            args.cert,
            args.key,
            args.ca,
            args.ready_file,
            args.max_workers,
            args.serve_floor,
            args.sender_key,
            args.response_bytes,
        )
        return 0
    if args.profile:
        print(profile(args.profile))
        return 0
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    report = run(quick=args.quick, backends=backends)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
