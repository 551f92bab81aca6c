"""The gateway as real operating-system processes: replicas, crashes, reconnects.

In-process tests (test_service.py) cannot show what the design promises about
processes: that two replicas sharing PostgreSQL and Redis act as one gateway,
and that nothing is lost or delivered twice when a process dies with SIGKILL
(no shutdown hook, no flush, no finally block) or a node drops its stream.
Here each gateway is ``python -m intelshare.cli gateway serve`` in its own
process, exactly as an operator runs it, and the tests talk to it over mTLS
with the same client a node uses.

Every wait polls a condition with a deadline; no test sleeps in place of
waiting. Each test has its own database (``db_url``) and, where Redis is
used, its own channel prefix on the shared server (``redis_prefix``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from intelshare import devfed
from intelshare.directory import Anchor, TrustedDirectory, verify_directory
from intelshare.envelope import HeaderFields, lookup_recipient_keys, seal
from intelshare.gateway_client import GatewayClient
from intelshare.v1 import envelope_pb2, gateway_service_pb2, receipt_pb2

REPO = Path(__file__).resolve().parents[2]
TREATY = "counterfeit-medicines-taskforce"  # nl-customs, be-police, de-customs
SENDER = "nl-customs"
RECIPIENT = "be-police"

pytestmark = pytest.mark.slow


# --- processes -----------------------------------------------------------------------


@dataclass
class GatewayProcess:
    """One ``intelshare gateway serve`` process and where to reach it."""

    name: str
    config_file: Path
    ready_file: Path
    log_file: Path
    proc: subprocess.Popen[bytes]
    port: int = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the ready file (written once the server listens)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"gateway {self.name} exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            text = self.ready_file.read_text().strip() if self.ready_file.exists() else ""
            if text.isdigit():
                self.port = int(text)
                return
            time.sleep(0.02)
        raise AssertionError(f"gateway {self.name} not ready after {timeout}s:\n{self.log_text()}")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class Federation:
    """A federation on disk plus the gateway processes a test started."""

    fed: devfed.LocalFederation
    workdir: Path
    db_url: str
    started: list[GatewayProcess] = field(default_factory=list)
    _directory: TrustedDirectory | None = None

    def config(self, name: str, **over: Any) -> Path:
        values = {"heartbeat_seconds": 0.5, "max_workers": 8, **over}
        section = self.fed.gateway_config(self.db_url, **values)
        return devfed.write_config(self.workdir / f"{name}.yaml", "gateway", section)

    def start(self, name: str, **over: Any) -> GatewayProcess:
        config_file = self.config(name, **over)
        ready = self.workdir / f"{name}.port"
        ready.unlink(missing_ok=True)
        log_file = self.workdir / f"{name}.log"
        with log_file.open("ab") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "intelshare.cli",
                    "gateway",
                    "serve",
                    "--config",
                    str(config_file),
                    "--ready-file",
                    str(ready),
                    "--log-level",
                    "WARNING",
                ],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        gp = GatewayProcess(name, config_file, ready, log_file, proc)
        self.started.append(gp)
        gp.wait_ready()
        return gp

    def client(self, gp: GatewayProcess, agency: str) -> GatewayClient:
        a = self.fed.agencies[agency]
        return GatewayClient(
            gp.target,
            ca_pem=self.fed.ca_file.read_bytes(),
            cert_pem=a.cert_pem,
            key_pem=a.key_pem,
            timeout=15.0,
        )

    def publish_treaties(self, gp: GatewayProcess) -> None:
        self.fed.publish_treaties(gp.port)

    @property
    def directory(self) -> TrustedDirectory:
        if self._directory is None:
            self._directory = verify_directory(
                self.fed.directory_file.read_bytes(),
                Anchor.load(self.fed.anchor_file),
                now=datetime.now(UTC),
            )
        return self._directory

    def seal(self, n: int, recipients: tuple[str, ...] = (RECIPIENT,)) -> envelope_pb2.Envelope:
        """A fresh alert from nl-customs under the task-force treaty."""
        keys = self.fed.agencies[SENDER].keys
        now = datetime.now(UTC)
        fields = HeaderFields(
            sender=SENDER,
            recipients=recipients,
            treaty_id=TREATY,
            treaty_version=1,
            kind=envelope_pb2.MESSAGE_KIND_ALERT,
            handling=envelope_pb2.HANDLING_CODE_H1,
            tlp=envelope_pb2.TLP_AMBER,
            categories=("counterfeit_goods",),
            expire_time=now + timedelta(days=7),
            create_time=now,
        )
        return seal(
            fields,
            json.dumps({"n": n}).encode(),
            signing_key=keys.signing,
            signing_key_id=keys.signing_key_id,
            recipient_keys=lookup_recipient_keys(self.directory, list(recipients)),
        )


def message_id(env: envelope_pb2.Envelope) -> str:
    return str(envelope_pb2.Header.FromString(env.header_bytes).message_id)


@pytest.fixture
def federation(
    tmp_path: Path, local_fed: devfed.LocalFederation, db_url: str
) -> Iterator[Federation]:
    f = Federation(local_fed, tmp_path, db_url)
    yield f
    for gp in f.started:
        gp.stop()


# --- reading a stream with deadlines -------------------------------------------------


_END = object()


class InboxReader:
    """An inbox stream drained by a thread, so the test can wait with deadlines.

    Uses the stub directly (not ``GatewayClient.stream_inbox``) because the
    test must cancel the call from outside the thread that iterates it,
    exactly as a node does when it shuts down or its network drops.
    """

    def __init__(self, client: GatewayClient, after: int) -> None:
        self.call = client.stub.StreamInbox(
            gateway_service_pb2.StreamInboxRequest(after_sequence=after)
        )
        self.items: queue.Queue[object] = queue.Queue()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        try:
            for msg in self.call:
                self.items.put(msg)
        except grpc.RpcError as err:
            self.items.put(err)
        finally:
            self.items.put(_END)

    def next(self, timeout: float) -> gateway_service_pb2.StreamInboxResponse:
        """The next message (entry or heartbeat); fails on error, end or timeout."""
        try:
            item = self.items.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"nothing on the inbox stream within {timeout}s") from None
        if isinstance(item, gateway_service_pb2.StreamInboxResponse):
            return item
        raise AssertionError(f"inbox stream ended: {item!r}")

    def entries(self, count: int, timeout: float = 20.0) -> list[gateway_service_pb2.InboxEntry]:
        """The next ``count`` entries, skipping heartbeats, within ``timeout``."""
        deadline = time.monotonic() + timeout
        got: list[gateway_service_pb2.InboxEntry] = []
        while len(got) < count:
            msg = self.next(max(deadline - time.monotonic(), 0.001))
            if msg.HasField("entry"):
                got.append(msg.entry)
        return got

    def expect_idle_at(self, head: int, timeout: float = 10.0) -> None:
        """A heartbeat at ``head`` with no entry before it: nothing more is queued.

        The gateway sends a heartbeat only after finding nothing after the
        cursor, so this is the stream's own statement that it has no more.
        """
        msg = self.next(timeout)
        assert not msg.HasField("entry"), f"unexpected extra entry {msg.entry.sequence}"
        assert msg.heartbeat.head_sequence == head

    def wait_closed(self, timeout: float = 10.0) -> object:
        """Drain until the stream ends; returns what ended it (error or end)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.items.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"inbox stream still open after {timeout}s") from None
            if not isinstance(item, gateway_service_pb2.StreamInboxResponse):
                return item

    def cancel(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=10)


def submit_all(
    fedn: Federation, gp: GatewayProcess, count: int
) -> list[tuple[str, receipt_pb2.Receipt]]:
    """Submit ``count`` envelopes; returns (message id, receipt) in submission order."""
    out: list[tuple[str, receipt_pb2.Receipt]] = []
    with fedn.client(gp, SENDER) as c:
        for n in range(count):
            env = fedn.seal(n)
            resp = c.submit(env)
            assert not resp.duplicate
            out.append((message_id(env), resp.receipt))
    return out


def audit_verify(gp: GatewayProcess) -> subprocess.CompletedProcess[str]:
    argv = ["gateway", "audit", "verify", "--config", str(gp.config_file)]
    return subprocess.run(
        [sys.executable, "-m", "intelshare.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- a. two replicas, one PostgreSQL, one Redis --------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(120)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_replica_streams_what_another_replica_accepted_promptly(
    federation: Federation, redis_url: str, redis_prefix: str
) -> None:
    """A submit through A wakes a stream on B through Redis, long before B's heartbeat.

    Both replicas wait 30 s between heartbeats, and a waiting stream looks at
    the database again only when woken or when that timer expires. Each
    message is submitted after the previous one arrived, i.e. while B's stream
    is back in its wait; arriving within a few seconds is then explained only
    by the wake-up A published on the shared Redis channel.
    """
    import redis

    heartbeat = 30.0
    prompt = 5.0
    shared = dict(redis_url=redis_url, redis_prefix=redis_prefix, heartbeat_seconds=heartbeat)
    a = federation.start("a", **shared)
    federation.publish_treaties(a)
    b = federation.start("b", **shared)

    watcher = redis.Redis.from_url(redis_url).pubsub()
    watcher.psubscribe(redis_prefix + "*")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # wait until Redis confirms the subscription
        confirmed = watcher.get_message(timeout=0.2)
        if confirmed and confirmed["type"] == "psubscribe":
            break
    try:
        with federation.client(a, SENDER) as nl, federation.client(b, RECIPIENT) as be:
            reader = InboxReader(be, 0)
            try:
                for n in range(5):
                    env = federation.seal(n)
                    sent = time.monotonic()
                    receipt = nl.submit(env).receipt
                    (entry,) = reader.entries(1, timeout=prompt)
                    took = time.monotonic() - sent
                    assert entry.sequence == n + 1
                    assert entry.receipt == receipt
                    assert took < prompt < heartbeat
            finally:
                reader.cancel()
        # The wake-up went over the shared channel, and carried a topic and a tag only.
        topics: set[str] = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and f"gateway:inbox:{RECIPIENT}" not in topics:
            msg = watcher.get_message(timeout=0.2)
            if msg and msg["type"] == "pmessage":
                topics.add(msg["channel"].decode()[len(redis_prefix) :])
                # the publishing hub's random tag (to ignore its own echo), nothing else
                assert re.fullmatch(rb"[0-9a-f]{16}", msg["data"]), msg["data"]
        assert f"gateway:inbox:{RECIPIENT}" in topics
    finally:
        watcher.close()


# --- b. SIGKILL between submit and delivery, and during delivery --------------------


@pytest.mark.timeout(180)
def test_sigkill_after_submit_loses_nothing(federation: Federation) -> None:
    """Receipted envelopes survive a SIGKILL and are delivered once each, in order."""
    n = 20
    first = federation.start("first")
    federation.publish_treaties(first)
    submitted = submit_all(federation, first, n)
    first.kill()

    second = federation.start("second")
    with federation.client(second, RECIPIENT) as be:
        reader = InboxReader(be, 0)
        try:
            got = reader.entries(n)
            reader.expect_idle_at(n)
        finally:
            reader.cancel()
    assert [e.sequence for e in got] == list(range(1, n + 1))
    assert [e.receipt.message_id for e in got] == [m for m, _ in submitted]
    assert [e.receipt for e in got] == [r for _, r in submitted]
    assert [message_id(e.envelope) for e in got] == [m for m, _ in submitted]
    # The log the killed process wrote is whole: every head and proof recomputes.
    result = audit_verify(second)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


@pytest.mark.timeout(180)
def test_sigkill_during_submits_then_resubmit_delivers_each_once(federation: Federation) -> None:
    """Submits in flight when the gateway dies are retried; none is delivered twice.

    A sender that got no receipt cannot know whether the gateway committed:
    it resubmits the same envelope to the new process, which answers either
    with a fresh receipt or with the first one (``duplicate``).
    """
    first = federation.start("first")
    federation.publish_treaties(first)
    envelopes = [federation.seal(i) for i in range(200)]
    receipts: dict[str, receipt_pb2.Receipt] = {}
    unanswered: list[envelope_pb2.Envelope] = []
    some_accepted = threading.Event()

    def submitter() -> None:
        with federation.client(first, SENDER) as c:
            for env in envelopes:
                if unanswered:  # the gateway is gone: the rest were never sent
                    unanswered.append(env)
                    continue
                try:
                    receipts[message_id(env)] = c.submit(env).receipt
                except Exception:
                    unanswered.append(env)
                if len(receipts) >= 10:
                    some_accepted.set()

    t = threading.Thread(target=submitter)
    t.start()
    assert some_accepted.wait(60), first.log_text()
    first.kill()
    t.join(60)
    assert not t.is_alive()
    assert unanswered, "every submit finished before the kill; nothing was in flight"

    second = federation.start("second")
    with federation.client(second, SENDER) as c:
        for env in unanswered:
            receipts[message_id(env)] = c.submit(env).receipt
    order = [message_id(e) for e in envelopes]
    with federation.client(second, RECIPIENT) as be:
        reader = InboxReader(be, 0)
        try:
            got = reader.entries(len(envelopes), timeout=60)
            reader.expect_idle_at(len(envelopes))
        finally:
            reader.cancel()
    assert [e.sequence for e in got] == list(range(1, len(envelopes) + 1))
    assert sorted(e.receipt.message_id for e in got) == sorted(order)
    # Sequential submits: queue order is submission order, across the crash.
    assert [e.receipt.message_id for e in got] == order
    assert all(receipts[e.receipt.message_id] == e.receipt for e in got)


@pytest.mark.timeout(180)
def test_sigkill_mid_stream_resume_from_last_ack(federation: Federation) -> None:
    """The gateway dies while streaming; the node resumes from its last acknowledgement.

    The node has processed more than it acknowledged (it acknowledges in
    batches) and deduplicates by sequence, as a node does: what it sees twice
    it drops, and nothing it acknowledged comes back.
    """
    n, processed, acked = 60, 20, 12
    first = federation.start("first")
    federation.publish_treaties(first)
    submitted = submit_all(federation, first, n)
    seen: dict[int, str] = {}
    duplicates_dropped = 0

    def take(entries: list[gateway_service_pb2.InboxEntry]) -> None:
        nonlocal duplicates_dropped
        for e in entries:
            if e.sequence in seen:
                assert seen[e.sequence] == e.receipt.message_id
                duplicates_dropped += 1
            else:
                seen[e.sequence] = e.receipt.message_id

    with federation.client(first, RECIPIENT) as be:
        reader = InboxReader(be, 0)
        take(reader.entries(processed))
        assert be.acknowledge(acked) == acked
        first.kill()  # the server is still pushing the other 40 entries
        ended = reader.wait_closed()
        assert isinstance(ended, grpc.RpcError)
        reader.cancel()

    second = federation.start("second")
    with federation.client(second, RECIPIENT) as be:
        reader = InboxReader(be, acked)
        try:
            again = reader.entries(n - acked)
            reader.expect_idle_at(n)
        finally:
            reader.cancel()
        take(again)
        assert [e.sequence for e in again] == list(range(acked + 1, n + 1))
        assert be.acknowledge(n) == n
    assert duplicates_dropped == processed - acked
    assert [seen[s] for s in sorted(seen)] == [m for m, _ in submitted]
    assert sorted(seen) == list(range(1, n + 1))


# --- c. a node drops its stream ---------------------------------------------------------


@pytest.mark.timeout(180)
def test_node_disconnects_mid_stream_and_resumes_from_cursor(federation: Federation) -> None:
    """Cancelling a stream part-way and reconnecting from a cursor gives exactly the rest.

    Twice: once from the last acknowledged sequence (the node lost what it had
    not acknowledged), once from a cursor past the acknowledgement (the node
    stored more than it acknowledged; the gateway still holds those entries,
    but the node asks only for what it lacks).
    """
    n = 30
    gp = federation.start("gw")
    federation.publish_treaties(gp)
    submitted = [m for m, _ in submit_all(federation, gp, n)]

    def ids(entries: list[gateway_service_pb2.InboxEntry]) -> list[str]:
        return [e.receipt.message_id for e in entries]

    with federation.client(gp, RECIPIENT) as be:
        one = InboxReader(be, 0)
        part1 = one.entries(12)
        assert be.acknowledge(9) == 9
        one.cancel()  # without acknowledging 10..12

        two = InboxReader(be, 9)
        part2 = two.entries(11)
        assert [e.sequence for e in part2] == list(range(10, 21))
        assert be.acknowledge(16) == 16
        two.cancel()

        three = InboxReader(be, 20)
        try:
            part3 = three.entries(n - 20)
            three.expect_idle_at(n)
        finally:
            three.cancel()
        assert [e.sequence for e in part3] == list(range(21, n + 1))
        assert ids(part1) == submitted[:12]
        assert ids(part2) == submitted[9:20]
        assert ids(part3) == submitted[20:]
        assert be.acknowledge(n) == n

        four = InboxReader(be, n)
        try:
            four.expect_idle_at(n)
        finally:
            four.cancel()
    # The gateway stays healthy after abandoned streams: another submit flows.
    more = submit_all(federation, gp, 1)
    with federation.client(gp, RECIPIENT) as be:
        five = InboxReader(be, n)
        try:
            (entry,) = five.entries(1)
        finally:
            five.cancel()
    assert entry.sequence == n + 1
    assert entry.receipt == more[0][1]
