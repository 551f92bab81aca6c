"""The gateway store on its own: group commit, idempotency, delivery records.

Against the store directly (no gRPC), on SQLite and PostgreSQL: what one
transaction for several submits must still guarantee to each of them, and
what two gateway processes sharing a database must agree on.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine, text

from gateway.group_commit import GroupCommit
from gateway.inbox import _inbox_entry, inbox_response_bytes
from gateway.server import MIGRATIONS
from gateway.service import GatewayServicer
from gateway.store import (
    Accepted,
    GatewayStore,
    InboxRow,
    StoredMessage,
    Submission,
)
from intelshare import errors, migrate
from intelshare.audit.heads import verify_inclusion
from intelshare.audit.log import AuditLog
from intelshare.db import make_engine
from intelshare.ids import key_id, new_message_id
from intelshare.keys import raw_public
from intelshare.v1 import envelope_pb2, gateway_service_pb2, receipt_pb2
from tests.gateway.conftest import GatewayEnv

KEY = ed25519.Ed25519PrivateKey.generate()


def open_store(db_url: str, **engine_args: Any) -> GatewayStore:
    engine = make_engine(db_url, **engine_args)
    migrate.upgrade(engine, MIGRATIONS)
    audit = AuditLog(engine, "gateway", KEY, key_id(raw_public(KEY.public_key())))
    return GatewayStore(engine, audit)


@pytest.fixture
def store(db_url: str) -> Iterator[GatewayStore]:
    s = open_store(db_url)
    yield s
    s.close()
    s.engine.dispose()


def submission(
    recipients: tuple[str, ...] = ("a-police",), message_id: str | None = None, **over: Any
) -> Submission:
    mid = message_id or new_message_id()
    values: dict[str, Any] = dict(
        message_id=mid,
        sender="x-sender",
        recipients=tuple(sorted(recipients)),
        treaty_id="t",
        envelope=b"envelope of " + mid.encode(),
        envelope_sha256=uuid.uuid4().bytes * 2,
        now_ms=1_000,
        expire_ms=2**62,
        audit_fields={"message_id": mid},
    )
    values.update(over)
    return Submission(**values)


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def audit_events(store: GatewayStore) -> list[dict[str, Any]]:
    audit = store.audit
    return [json.loads(audit.leaf(i)) for i in range(audit.size())]


def check_receipt(store: GatewayStore, receipt: bytes) -> receipt_pb2.Receipt:
    r = receipt_pb2.Receipt.FromString(receipt)
    verify_inclusion(
        r.leaf, r.log_index, r.tree_head, list(r.inclusion_proof), public_key=KEY.public_key()
    )
    assert json.loads(r.leaf)["message_id"] == r.message_id
    return r


# --- group commit ---------------------------------------------------------------------


def test_group_commit_runs_a_lone_call_at_once_and_batches_the_queued() -> None:
    batches: list[list[int]] = []
    first_running = threading.Event()
    release = threading.Event()

    def run_many(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        if len(batches) == 1:
            first_running.set()
            assert release.wait(10)
        return [ValueError(n) if n == 13 else n * 10 for n in items]

    group: GroupCommit[int, int] = GroupCommit(run_many, max_group=3)
    results: dict[int, object] = {}

    def call(n: int) -> None:
        try:
            results[n] = group(n)
        except ValueError as exc:
            results[n] = exc

    first = threading.Thread(target=call, args=(1,))
    first.start()
    assert first_running.wait(10)  # alone: it did not wait for company
    others = [threading.Thread(target=call, args=(n,)) for n in (11, 12, 13, 14, 15)]
    for t in others:
        t.start()
    while len(group._queue) < 5:  # all queued behind the running batch
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert batches[0] == [1]
    assert sorted(n for b in batches[1:] for n in b) == [11, 12, 13, 14, 15]
    assert max(len(b) for b in batches) == 3  # at most max_group per batch
    assert {n: r for n, r in results.items() if not isinstance(r, Exception)} == {
        1: 10,
        11: 110,
        12: 120,
        14: 140,
        15: 150,
    }
    assert isinstance(results[13], ValueError)  # its own failure, nobody else's
    assert not group._running
    assert not group._queue


def test_concurrent_submits_get_gap_free_sequences_and_receipts_that_verify(
    store: GatewayStore,
) -> None:
    threads, each = 6, 8
    recipients = ("a-police", "b-customs")
    outcomes: list[object] = []

    def submitter() -> None:
        for _ in range(each):
            sub = submission(recipients)
            outcomes.append(
                store.accept(
                    message_id=sub.message_id,
                    sender=sub.sender,
                    recipients=list(sub.recipients),
                    treaty_id=sub.treaty_id,
                    envelope=sub.envelope,
                    envelope_sha256=sub.envelope_sha256,
                    now_ms=sub.now_ms,
                    expire_ms=sub.expire_ms,
                    audit_fields=sub.audit_fields,
                )
            )

    workers = [threading.Thread(target=submitter) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    total = threads * each
    assert len(outcomes) == total
    accepted = [o for o in outcomes if isinstance(o, Accepted)]
    assert len(accepted) == total
    for agency in recipients:
        assert sorted(a.sequences[agency] for a in accepted) == list(range(1, total + 1))
        assert store.position(agency) == (total, 0)
    for a in accepted:
        r = check_receipt(store, a.receipt)
        assert r.log_index == a.log_index
    # No more signed heads than transactions, and the log recomputes.
    heads = rows(store.engine, "SELECT count(*) FROM audit_heads")[0][0]
    assert heads <= total
    assert store.audit.verify(KEY.public_key()).tree_size == total


def test_a_batch_keeps_duplicates_and_failures_to_themselves(store: GatewayStore) -> None:
    first = submission()
    again = submission(message_id=first.message_id, envelope_sha256=first.envelope_sha256)
    bad = submission(audit_fields={"message_id": 1.5})  # not a valid audit field
    other = submission()
    results = store.accept_many([first, again, bad, other])
    a, dup, failed, b = results
    assert isinstance(a, Accepted)
    assert isinstance(b, Accepted)
    assert isinstance(dup, StoredMessage)
    assert dup.receipt == a.receipt
    assert dup.log_index == a.log_index
    assert isinstance(failed, errors.InvalidArgument)
    # Each message queued once, in order, without a gap for the failed one.
    assert (a.sequences["a-police"], b.sequences["a-police"]) == (1, 2)
    assert rows(store.engine, "SELECT count(*) FROM gw_inbox")[0][0] == 2
    (later,) = store.accept_many([first])
    assert isinstance(later, StoredMessage)
    assert later.receipt == a.receipt
    events = [e["event"] for e in audit_events(store)]
    assert events.count("accepted") == 2


def test_submissions_keep_one_connection_and_a_failure_gives_it_back(
    store: GatewayStore,
) -> None:
    """Transactions of submissions run on one kept connection; one that fails
    returns it to the pool and the next starts on a connection from the pool."""
    pool: Any = store.engine.pool
    (first,) = store.accept_many([submission(recipients=("a-police", "b-customs"))])
    assert isinstance(first, Accepted)
    assert first.sequences == {"a-police": 1, "b-customs": 1}
    assert pool.checkedout() == 1
    (again,) = store.accept_many([submission(recipients=("a-police",))])
    assert isinstance(again, Accepted)
    assert again.sequences == {"a-police": 2}
    assert pool.checkedout() == 1
    (failed,) = store.accept_many([submission(audit_fields={"message_id": 1.5})])
    assert isinstance(failed, errors.InvalidArgument)
    assert pool.checkedout() == 0
    (dup,) = store.accept_many([submission(message_id=first.message_id)])
    assert isinstance(dup, StoredMessage)
    assert dup.receipt == first.receipt
    (after,) = store.accept_many([submission(recipients=("b-customs",))])
    assert isinstance(after, Accepted)
    assert after.sequences == {"b-customs": 2}
    assert pool.checkedout() == 1
    store.close()
    assert pool.checkedout() == 0
    assert store.position("a-police") == (2, 0)
    events = [e["event"] for e in audit_events(store)]
    assert events.count("accepted") == 3


def test_a_batch_stores_every_envelope_digest_and_receipt_byte_for_byte(
    store: GatewayStore,
) -> None:
    """One transaction for several submissions keeps each one's bytes apart
    (on PostgreSQL they travel run together in one parameter)."""
    subs = [
        submission(("a-police", "b-customs"), envelope=b"\x00" * 3, envelope_sha256=b"\x00" * 32),
        submission(("b-customs",), envelope=bytes(range(256)) * 80, expire_ms=2**40),
        submission(("a-police",), envelope=b"x", envelope_sha256=b"\xff" * 32, now_ms=7),
    ]
    results = store.accept_many(subs)
    assert all(isinstance(r, Accepted) for r in results)
    assert [r.sequences for r in results if isinstance(r, Accepted)] == [
        {"a-police": 1, "b-customs": 1},
        {"b-customs": 2},
        {"a-police": 2},
    ]
    for sub, result in zip(subs, results, strict=True):
        assert isinstance(result, Accepted)
        found = store.find_message(sub.message_id)
        assert found == StoredMessage(
            sub.message_id, sub.envelope_sha256, result.log_index, result.receipt
        )
        assert check_receipt(store, result.receipt).message_id == sub.message_id
    stored = {
        r[0]: (bytes(r[1]), r[2], r[3], r[4], r[5])
        for r in rows(
            store.engine,
            "SELECT message_id, envelope, sender, treaty_id, accept_ms, expire_ms FROM gw_messages",
        )
    }
    assert stored == {
        s.message_id: (s.envelope, s.sender, s.treaty_id, s.now_ms, s.expire_ms) for s in subs
    }
    inbox = {
        agency: [(r.sequence, r.message_id, r.envelope) for r in store.read_inbox(agency, 0, 9, 1)]
        for agency in ("a-police", "b-customs")
    }
    assert inbox == {
        "a-police": [(1, subs[0].message_id, subs[0].envelope), (2, subs[2].message_id, b"x")],
        "b-customs": [
            (1, subs[0].message_id, subs[0].envelope),
            (2, subs[1].message_id, subs[1].envelope),
        ],
    }
    expiry = dict(rows(store.engine, "SELECT message_id, expire_ms FROM gw_inbox"))
    assert expiry == {s.message_id: s.expire_ms for s in subs}


def test_two_gateways_sharing_a_database_accept_each_message_once(db_url: str) -> None:
    """Two stores on their own engines, as two gateway processes: the same
    messages submitted to both at once are stored, queued and logged once."""
    one, two = open_store(db_url), open_store(db_url)
    try:
        subs = [submission(("a-police", "b-customs")) for _ in range(30)]
        outcomes: dict[str, list[object]] = {s.message_id: [] for s in subs}
        lock = threading.Lock()
        start = threading.Barrier(4)

        def run(store: GatewayStore, batch: list[Submission]) -> None:
            start.wait()
            for i in range(0, len(batch), 3):
                chunk = batch[i : i + 3]
                for sub, out in zip(chunk, store.accept_many(chunk), strict=True):
                    with lock:
                        outcomes[sub.message_id].append(out)

        workers = [
            threading.Thread(target=run, args=(one, subs)),
            threading.Thread(target=run, args=(two, subs)),
            threading.Thread(target=run, args=(one, subs[::-1])),
            threading.Thread(target=run, args=(two, subs[::-1])),
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join(120)
        for sub in subs:
            got = outcomes[sub.message_id]
            assert len(got) == 4
            assert not [o for o in got if isinstance(o, Exception)], got
            assert sum(isinstance(o, Accepted) for o in got) == 1
            receipts = {o.receipt for o in got if isinstance(o, Accepted | StoredMessage)}
            assert len(receipts) == 1
            check_receipt(one, receipts.pop())
        for agency in ("a-police", "b-customs"):
            seqs = rows(
                one.engine,
                f"SELECT sequence FROM gw_inbox WHERE agency_id = '{agency}' ORDER BY sequence",
            )
            assert [s for (s,) in seqs] == list(range(1, 31))
        assert [e["event"] for e in audit_events(one)].count("accepted") == 30
    finally:
        one.engine.dispose()
        two.engine.dispose()


# --- deliveries -------------------------------------------------------------------------


def test_acknowledged_before_recorded_counts_as_delivered_once(store: GatewayStore) -> None:
    """A node may acknowledge an entry before its stream recorded sending it."""
    for _ in range(3):
        store.accept_many([submission()])
    read = store.read_inbox("a-police", 0, 10, now_ms=2_000)
    assert store.mark_delivered("a-police", read[:1], now_ms=2_000) == [1]
    assert store.acknowledge("a-police", 2) == 2
    assert store.mark_delivered("a-police", read, now_ms=2_001) == [3]  # 1, 2: done or gone
    delivered = [
        (e["sequence"], e.get("via")) for e in audit_events(store) if e["event"] == "delivered"
    ]
    assert delivered == [(1, None), (2, "acknowledgement"), (3, None)]
    acked = [e["sequence"] for e in audit_events(store) if e["event"] == "acknowledged"]
    assert acked == [1, 2]
    assert store.acknowledge("a-police", 2) == 2  # idempotent
    with pytest.raises(errors.CursorAhead):  # never clamped: see GatewayStore.acknowledge
        store.acknowledge("a-police", 99)
    assert store.position("a-police") == (3, 2)
    assert store.acknowledge("nobody", 0) == 0
    with pytest.raises(errors.CursorAhead):  # no queue at all: a replaced database
        store.acknowledge("nobody", 5)


def test_envelopes_are_dropped_once_no_queue_holds_them(store: GatewayStore) -> None:
    (both,) = store.accept_many([submission(("a-police", "b-customs"))])
    assert isinstance(both, Accepted)
    store.acknowledge("a-police", 1)
    assert rows(store.engine, "SELECT length(envelope) FROM gw_messages")[0][0] > 0
    store.acknowledge("b-customs", 1)
    assert rows(store.engine, "SELECT length(envelope) FROM gw_messages")[0][0] == 0
    # The message is still known: a replay gets its first receipt.
    (replay,) = store.accept_many([submission(("a-police",), message_id=both.message_id)])
    assert isinstance(replay, StoredMessage)
    assert replay.receipt == both.receipt


def response(sent: bytes | gateway_service_pb2.StreamInboxResponse) -> Any:
    """What the client receives for what StreamInbox yielded."""
    return gateway_service_pb2.StreamInboxResponse.FromString(inbox_response_bytes(sent))


def test_inbox_entries_are_encoded_as_protobuf_would() -> None:
    envelope = envelope_pb2.Envelope(
        header_bytes=b"h" * 300, ciphertext=b"c" * 20_000, signature=b"s" * 64
    )
    receipt = receipt_pb2.Receipt(message_id="m", log_index=2**40, leaf=b"{}")
    for sequence in (1, 127, 128, 16_383, 16_384, 2**35):
        row = InboxRow(
            sequence,
            "m",
            envelope.SerializeToString(),
            receipt.SerializeToString(),
            delivered=False,
            accept_ms=0,
        )
        expected = gateway_service_pb2.StreamInboxResponse(
            entry=gateway_service_pb2.InboxEntry(
                sequence=sequence, envelope=envelope, receipt=receipt
            )
        ).SerializeToString()
        assert _inbox_entry(row) == expected
        assert inbox_response_bytes(_inbox_entry(row)) == expected
    heartbeat = gateway_service_pb2.StreamInboxResponse(
        heartbeat=gateway_service_pb2.Heartbeat(head_sequence=7)
    )
    assert inbox_response_bytes(heartbeat) == heartbeat.SerializeToString()


def test_expired_entries_are_purged_audited_and_their_envelopes_dropped(
    store: GatewayStore,
) -> None:
    short = [submission(("a-police", "b-customs"), expire_ms=5_000) for _ in range(3)]
    long = submission(("a-police",))
    store.accept_many([*short, long])  # queued in that order
    assert [r.sequence for r in store.read_inbox("a-police", 0, 10, now_ms=6_000)] == [4]
    assert store.purge_expired(now_ms=6_000) == 6
    expired = sorted(
        (e["recipient"], e["sequence"]) for e in audit_events(store) if e["event"] == "expired"
    )
    assert expired == [("a-police", q) for q in (1, 2, 3)] + [("b-customs", q) for q in (1, 2, 3)]
    assert rows(store.engine, "SELECT agency_id, sequence FROM gw_inbox") == [("a-police", 4)]
    sizes = dict(rows(store.engine, "SELECT message_id, length(envelope) FROM gw_messages"))
    assert all(sizes[s.message_id] == 0 for s in short)
    assert sizes[long.message_id] > 0
    assert store.position("a-police") == (4, 0)
    assert store.purge_expired(now_ms=6_000) == 0


class _StreamContext:
    """Just enough of a gRPC servicer context for StreamInbox, as ``agency``."""

    def __init__(self, agency: str, cert_pem: bytes) -> None:
        self._auth = {
            "x509_pem_cert": [cert_pem],
            "x509_subject_alternative_name": [f"intelshare:agency:{agency}".encode()],
            "x509_common_name": [agency.encode()],
        }

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def is_active(self) -> bool:
        return True

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return True


def test_a_cancelled_stream_records_only_what_grpc_took(gw: GatewayEnv) -> None:
    """gRPC asks for the next message once it sent one: what it never asked
    past was not sent, and is not recorded as delivered."""
    n = 12
    with gw.client("nl-customs") as nl:
        for _ in range(n):
            nl.submit(gw.seal("nl-customs", ["be-police"]))
    state = gw.running.state
    servicer = GatewayServicer(state)
    context = _StreamContext("be-police", gw.fed.agencies["be-police"].cert_pem)
    request = gateway_service_pb2.StreamInboxRequest(after_sequence=0)

    def delivered() -> list[int]:
        return sorted(
            e["sequence"]
            for e in audit_events(state.store)
            if e["event"] == "delivered" and e["recipient"] == "be-police"
        )

    stream: Any = servicer.StreamInbox(request, context)  # type: ignore[arg-type]
    got = [response(next(stream)).entry.sequence for _ in range(5)]
    assert got == [1, 2, 3, 4, 5]
    stream.close()  # the client went away while gRPC was sending entry 5
    assert delivered() == [1, 2, 3, 4]
    unmarked = rows(state.store.engine, "SELECT count(*) FROM gw_inbox WHERE delivered_ms IS NULL")[
        0
    ][0]
    assert unmarked == n - 4

    # The next stream sends everything again and records the rest, once each.
    again: Any = servicer.StreamInbox(request, context)  # type: ignore[arg-type]
    seqs = [response(next(again)).entry.sequence for _ in range(n)]
    next_msg = response(next(again))  # idle: a heartbeat once all were taken
    assert next_msg.HasField("heartbeat")
    again.close()
    assert seqs == list(range(1, n + 1))
    assert delivered() == list(range(1, n + 1))


# --- connections ----------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_dropped_database_connection_is_replaced(db_url: str, tmp_path: Path) -> None:
    """Pooled connections are not pinged before use; one the server closed
    fails its first statement and the store runs the transaction again."""
    store = open_store(db_url, pool_pre_ping=False)
    try:
        (first,) = store.accept_many([submission()])
        assert isinstance(first, Accepted)
        assert store.position("a-police") == (1, 0)
        name = db_url.rsplit("/", 1)[1]
        admin = make_engine(db_url.rsplit("/", 1)[0] + "/postgres")

        def drop_connections() -> None:
            with admin.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": name},
                )
                conn.commit()

        try:
            drop_connections()
            assert [r.sequence for r in store.read_inbox("a-police", 0, 10, now_ms=2_000)] == [1]
            drop_connections()
            assert store.position("a-police") == (1, 0)
            drop_connections()
            (second,) = store.accept_many([submission()])
            assert isinstance(second, Accepted)
            drop_connections()
            assert store.mark_delivered("a-police", store.read_inbox("a-police", 0, 10, 2_000), 3)
            drop_connections()
            assert store.acknowledge("a-police", 2) == 2
        finally:
            admin.dispose()
    finally:
        store.engine.dispose()
