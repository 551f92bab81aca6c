"""The SQL-backed audit log, on SQLite and on a real PostgreSQL (``db_url``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from intelshare.audit import (
    AuditLog,
    audit_metadata,
    create_tables,
    merkle,
    verify_consistency,
    verify_inclusion,
    verify_tree_head,
)
from intelshare.audit.heads import head_signing_input
from intelshare.audit.leaves import MAX_LEAF_BYTES
from intelshare.audit.tables import audit_entries, audit_heads, audit_nodes, audit_state
from intelshare.db import make_engine
from intelshare.errors import AuditLogInvalid, ConfigError, InvalidArgument, NotFound
from intelshare.ids import key_id
from intelshare.keys import raw_public
from intelshare.v1.receipt_pb2 import SignedTreeHead

# A table of the "service" that writes facts and audit entries atomically.
service_metadata = MetaData()
envelopes = Table(
    "test_envelopes",
    service_metadata,
    Column("id", Integer, primary_key=True),
    Column("message_id", String(64), nullable=False, unique=True),
)


def kid(key: Ed25519PrivateKey) -> str:
    return key_id(raw_public(key.public_key()))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    create_tables(e)
    service_metadata.create_all(e)
    yield e
    e.dispose()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def log(engine: Engine, key: Ed25519PrivateKey) -> AuditLog:
    return AuditLog(engine, "gateway.example", key, kid(key))


def fill(log: AuditLog, engine: Engine, n: int, start: int = 0) -> None:
    with engine.begin() as conn:
        for i in range(start, start + n):
            log.append(conn, "submitted", {"message_id": f"m-{i}", "seq": i})


def leaves(log: AuditLog) -> list[bytes]:
    return [log.leaf(i) for i in range(log.size())]


# --- round trip ----------------------------------------------------------------------


def test_append_prove_and_sign_round_trip(log: AuditLog, key: Ed25519PrivateKey) -> None:
    heads = [log.sign_head()]
    for i in range(23):
        assert log.record("submitted", {"message_id": f"m-{i}", "to": ["B", "C"]}) == i
        if i in (0, 4, 12):
            heads.append(log.sign_head())
    heads.append(log.sign_head())
    assert [h.tree_size for h in heads] == [0, 1, 5, 13, 23]
    assert log.size() == 23
    data = leaves(log)
    for head in heads:
        verify_tree_head(head, key.public_key())
        assert head.log_id == "gateway.example"
        assert head.key_id == kid(key)
        assert head.root_hash == merkle.mth(data[: head.tree_size])
        for index in range(head.tree_size):
            proof = log.inclusion_proof(index, head.tree_size)
            verify_inclusion(data[index], index, head, proof, public_key=key.public_key())
    for old in heads:
        for new in heads:
            if old.tree_size <= new.tree_size:
                proof = log.consistency_proof(old.tree_size, new.tree_size)
                verify_consistency(old, new, proof, public_key=key.public_key())
    report = log.verify(key.public_key())
    assert report.tree_size == 23
    assert report.root_hash == heads[-1].root_hash
    assert report.entries_checked == 23
    assert report.heads_checked == 5
    # every perfect subtree: 23 + 11 + 5 + 2 + 1
    assert report.nodes_checked == 42


def test_leaf_is_canonical_json_of_event_time_and_fields(
    engine: Engine, key: Ed25519PrivateKey
) -> None:
    t = datetime(2026, 3, 1, 12, 30, 5, 250000, tzinfo=UTC)
    log = AuditLog(engine, "agency-a", key, kid(key), clock=lambda: t)
    fields: dict[str, Any] = {
        "message_id": "0190f7a1-0000-7000-8000-000000000001",
        "recipients": ["B", "Ä"],
        "hits": 3,
        "urgent": False,
        "reason": None,
    }
    index = log.record("shared", fields)
    assert log.leaf(index) == (
        b'{"event":"shared","hits":3,"message_id":"0190f7a1-0000-7000-8000-000000000001",'
        b'"reason":null,"recipients":["B","\xc3\x84"],"time":"2026-03-01T12:30:05.250000Z",'
        b'"urgent":false}'
    )
    head = log.sign_head()
    assert (head.timestamp.seconds, head.timestamp.nanos) == (int(t.timestamp()), 250_000_000)
    verify_tree_head(head, key.public_key())
    log.verify(key.public_key())


@pytest.mark.parametrize(
    ("event_name", "fields"),
    [
        ("", {}),
        ("has space", {}),
        ("x" * 65, {}),
        ("ok", {"time": "forged"}),
        ("ok", {"event": "other"}),
        ("ok", {"bad name": "x"}),
        ("ok", {"payload": b"bytes"}),
        ("ok", {"score": 1.5}),
        ("ok", {"nested": {"a": "b"}}),
        ("ok", {"ids": [1, 2]}),
        ("ok", {"big": 1 << 63}),
        ("ok", {"text": "\ud800"}),
        ("ok", {"blob": "x" * MAX_LEAF_BYTES}),
    ],
)
def test_bad_entries_are_refused_before_writing(
    log: AuditLog, engine: Engine, event_name: str, fields: dict[str, Any]
) -> None:
    log.record("first", {})
    with pytest.raises(InvalidArgument):
        log.record(event_name, fields)
    assert log.size() == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_entries)).scalar() == 1


def test_append_requires_an_open_transaction(log: AuditLog, engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(InvalidArgument, match="transaction"):
        log.append(conn, "submitted", {})
    assert log.size() == 0


# --- atomicity -------------------------------------------------------------------------


class Boom(Exception):
    pass


def submit(
    log: AuditLog, engine: Engine, message_id: str, *, fail: bool = False, head: bool = False
) -> int:
    """Store a fact and its audit entry in one transaction, optionally failing at the end."""
    with engine.begin() as conn:
        conn.execute(insert(envelopes).values(message_id=message_id))
        index = log.append(conn, "submitted", {"message_id": message_id})
        if head:
            log.sign_head(conn)
        if fail:
            raise Boom
    return index


def append_then_store(log: AuditLog, engine: Engine, message_id: str) -> None:
    with engine.begin() as conn:
        log.append(conn, "submitted", {"message_id": message_id})
        conn.execute(insert(envelopes).values(message_id=message_id))


def test_entry_commits_and_rolls_back_with_the_callers_facts(
    log: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    # the very first append rolled back: even the state row disappears
    with pytest.raises(Boom):
        submit(log, engine, "m-0", fail=True)
    assert log.size() == 0
    assert submit(log, engine, "m-1") == 0
    with pytest.raises(Boom):
        submit(log, engine, "m-2", fail=True, head=True)
    # a failure after appending (duplicate fact) takes the entry with it
    with pytest.raises(IntegrityError):
        append_then_store(log, engine, "m-1")
    assert submit(log, engine, "m-3") == 1
    assert log.size() == 2
    assert [json.loads(x)["message_id"] for x in leaves(log)] == ["m-1", "m-3"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_heads)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(audit_nodes)).scalar() == 3
    log.verify(key.public_key())


def test_receipt_flow_in_one_transaction(
    log: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    """What the gateway does on submit: append, sign a head, prove inclusion, commit."""
    fill(log, engine, 9)
    with engine.begin() as conn:
        conn.execute(insert(envelopes).values(message_id="m-new"))
        index = log.append(conn, "submitted", {"message_id": "m-new"})
        head = log.sign_head(conn)
        proof = log.inclusion_proof(index, head.tree_size, conn=conn)
        leaf = log.leaf(index, conn=conn)
    assert (index, head.tree_size) == (9, 10)
    verify_inclusion(leaf, index, head, proof, public_key=key.public_key())
    assert log.verify(key.public_key()).heads_checked == 1


# --- concurrency -------------------------------------------------------------------------


def run_appenders(logs: list[AuditLog], per_thread: int, threads_per_log: int) -> list[int]:
    got: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(len(logs) * threads_per_log)

    def work(log: AuditLog, name: str) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                index = log.record("delivered", {"writer": name, "seq": i})
                with lock:
                    got.append(index)
                if i % 7 == 3:
                    log.sign_head()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [
        threading.Thread(target=work, args=(log, f"w{n}-{t}"))
        for n, log in enumerate(logs)
        for t in range(threads_per_log)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors, errors
    return got


def test_concurrent_threads_get_distinct_contiguous_indices(
    log: AuditLog, key: Ed25519PrivateKey
) -> None:
    got = run_appenders([log], per_thread=20, threads_per_log=6)
    assert sorted(got) == list(range(120))
    writers = {(d["writer"], d["seq"]) for d in (json.loads(x) for x in leaves(log))}
    assert len(writers) == 120
    report = log.verify(key.public_key())
    assert report.tree_size == 120
    assert report.heads_checked == 6 * 3


def test_two_engines_on_one_database(db_url: str, log: AuditLog, key: Ed25519PrivateKey) -> None:
    """Two gateway processes sharing one database: each has its own engine and pool."""
    other_engine = make_engine(db_url)
    try:
        other = AuditLog(other_engine, log.log_id, key, kid(key))
        got = run_appenders([log, other], per_thread=15, threads_per_log=3)
        assert sorted(got) == list(range(90))
        assert other.verify(key.public_key()).tree_size == 90
    finally:
        other_engine.dispose()


def test_verify_sees_one_snapshot_while_appends_continue(
    log: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    fill(log, engine, 5)
    stop = threading.Event()
    failures: list[BaseException] = []
    sizes: list[int] = []

    def verifier() -> None:
        while not stop.is_set():
            try:
                sizes.append(log.verify(key.public_key()).tree_size)
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)
                return

    t = threading.Thread(target=verifier)
    t.start()
    try:
        run_appenders([log], per_thread=25, threads_per_log=3)
    finally:
        stop.set()
        t.join(timeout=120)
    assert not failures, failures
    assert sizes == sorted(sizes)
    assert log.verify(key.public_key()).tree_size == 80


# --- tampering -------------------------------------------------------------------------


@pytest.fixture
def filled(log: AuditLog, engine: Engine) -> AuditLog:
    fill(log, engine, 12)
    log.sign_head()
    fill(log, engine, 8, start=12)
    log.sign_head()
    return log


def forged_leaf(index: int) -> bytes:
    return json.dumps(
        {
            "event": "submitted",
            "message_id": "forged",
            "seq": index,
            "time": "2026-01-01T00:00:00.000000Z",
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def test_rewritten_leaf_is_detected(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(audit_entries).where(audit_entries.c.idx == 5).values(leaf=forged_leaf(5))
        )
    with pytest.raises(AuditLogInvalid, match=r"entry 5\b"):
        filled.verify(key.public_key())


def test_rewritten_leaf_and_hash_are_detected_by_the_nodes(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    data = forged_leaf(6)
    with engine.begin() as conn:
        conn.execute(
            update(audit_entries)
            .where(audit_entries.c.idx == 6)
            .values(leaf=data, leaf_hash=merkle.leaf_hash(data))
        )
    with pytest.raises(AuditLogInvalid, match="level 0 index 6"):
        filled.verify(key.public_key())


def test_recomputed_tree_is_detected_by_the_signed_heads(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    """An operator who rewrites an entry and every hash after it still cannot re-sign."""
    with engine.begin() as conn:
        rows = conn.execute(select(audit_entries).order_by(audit_entries.c.idx)).all()
        conn.execute(delete(audit_nodes))
        f = merkle.Frontier()
        for row in rows:
            data = forged_leaf(row.idx) if row.idx == 15 else row.leaf
            h = merkle.leaf_hash(data)
            conn.execute(
                update(audit_entries)
                .where(audit_entries.c.idx == row.idx)
                .values(leaf=data, leaf_hash=h)
            )
            for level, ix, nh in f.append(h):
                conn.execute(insert(audit_nodes).values(level=level, idx=ix, hash=nh))
        conn.execute(update(audit_state).values(frontier=f.encode()))
    with pytest.raises(AuditLogInvalid, match=r"signed head \d+ \(size 20\) does not match"):
        filled.verify(key.public_key())


def test_deleted_entry_is_detected(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    with engine.begin() as conn:
        conn.execute(delete(audit_entries).where(audit_entries.c.idx == 7))
    with pytest.raises(AuditLogInvalid, match="entry 7 is missing"):
        filled.verify(key.public_key())


def test_entry_beyond_the_size_is_detected(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    data = forged_leaf(20)
    with engine.begin() as conn:
        conn.execute(
            insert(audit_entries).values(
                idx=20,
                event="submitted",
                leaf=data,
                leaf_hash=merkle.leaf_hash(data),
                created_at=datetime.now(UTC),
            )
        )
    with pytest.raises(AuditLogInvalid, match="entry 20 is stored beyond"):
        filled.verify(key.public_key())


@pytest.mark.parametrize(("level", "index"), [(0, 3), (2, 1), (4, 0)])
def test_tampered_node_is_detected(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey, level: int, index: int
) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(audit_nodes)
            .where(audit_nodes.c.level == level, audit_nodes.c.idx == index)
            .values(hash=b"\x00" * 32)
        )
        assert done.rowcount == 1
    with pytest.raises(AuditLogInvalid, match=f"level {level} index {index}"):
        filled.verify(key.public_key())


def test_stray_node_and_tampered_frontier_are_detected(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    with engine.begin() as conn:
        conn.execute(insert(audit_nodes).values(level=3, idx=2, hash=b"\x00" * 32))
    with pytest.raises(AuditLogInvalid, match="level 3 index 2 is beyond"):
        filled.verify(key.public_key())
    with engine.begin() as conn:
        conn.execute(delete(audit_nodes).where(audit_nodes.c.level == 3, audit_nodes.c.idx == 2))
        conn.execute(update(audit_state).values(frontier=b"\x01" * 64))
    with pytest.raises(AuditLogInvalid, match="frontier"):
        filled.verify(key.public_key())


@pytest.mark.parametrize(
    "change",
    [
        {"signature": b"\x00" * 64},
        {"root_hash": b"\x11" * 32},
        {"tree_size": 11},
        {"ts_seconds": 1},
        {"key_id": "0" * 32},
    ],
)
def test_tampered_head_is_detected(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey, change: dict[str, Any]
) -> None:
    with engine.begin() as conn:
        first = conn.execute(select(func.min(audit_heads.c.id))).scalar_one()
        conn.execute(update(audit_heads).where(audit_heads.c.id == first).values(**change))
    with pytest.raises(AuditLogInvalid, match=f"signed head {first}"):
        filled.verify(key.public_key())


def test_head_beyond_the_size_is_detected(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    with engine.begin() as conn:
        conn.execute(update(audit_heads).values(tree_size=21))
    with pytest.raises(AuditLogInvalid, match="claims size 21"):
        filled.verify(key.public_key())


def test_heads_of_a_rotated_key_verify_with_a_key_map(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    new_key = Ed25519PrivateKey.generate()
    rotated = AuditLog(engine, filled.log_id, new_key, kid(new_key))
    rotated.record("submitted", {"message_id": "after-rotation"})
    rotated.sign_head()
    with pytest.raises(AuditLogInvalid, match="unknown key"):
        rotated.verify(new_key.public_key())
    keys = {kid(key): key.public_key(), kid(new_key): new_key.public_key()}
    assert rotated.verify(keys).heads_checked == 3


# --- offline verifiers ------------------------------------------------------------------


def test_offline_verifiers_refuse_bad_inputs(
    filled: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    pub = key.public_key()
    old = filled.sign_head()
    fill(filled, engine, 5, start=20)
    new = filled.sign_head()
    verify_tree_head(new, pub)

    def altered(sth: SignedTreeHead, **change: Any) -> SignedTreeHead:
        copy = SignedTreeHead()
        copy.CopyFrom(sth)
        for name, value in change.items():
            setattr(copy, name, value)
        return copy

    for bad in (
        altered(new, tree_size=24),
        altered(new, log_id="other"),
        altered(new, root_hash=old.root_hash),
        altered(new, root_hash=b"short"),
        altered(new, signature=b"\x00" * 64),
        altered(new, key_id="someone-else"),
    ):
        with pytest.raises(AuditLogInvalid):
            verify_tree_head(bad, pub)
    stamped = altered(new)
    stamped.timestamp.nanos += 1
    with pytest.raises(AuditLogInvalid, match="does not verify"):
        verify_tree_head(stamped, pub)
    with pytest.raises(AuditLogInvalid):
        verify_tree_head(new, Ed25519PrivateKey.generate().public_key())

    leaf = filled.leaf(3)
    proof = filled.inclusion_proof(3, 25)
    verify_inclusion(leaf, 3, new, proof)
    for args in (
        (leaf + b" ", 3, new, proof),
        (leaf, 4, new, proof),
        (leaf, 3, old, proof),
        (leaf, 3, new, proof[:-1]),
        (leaf, 3, new, [*proof[:-1], b"\x00" * 32]),
    ):
        with pytest.raises(AuditLogInvalid, match="not proven"):
            verify_inclusion(*args)
    # The root alone does not bind the size (here the proof for 3 in 25 leaves
    # fits 26 as well): only the signature does, hence public_key.
    verify_inclusion(leaf, 3, altered(new, tree_size=26), proof)
    with pytest.raises(AuditLogInvalid, match="does not verify"):
        verify_inclusion(leaf, 3, altered(new, tree_size=26), proof, public_key=pub)

    cproof = filled.consistency_proof(20, 25)
    verify_consistency(old, new, cproof, public_key=pub)
    with pytest.raises(AuditLogInvalid, match="not proven"):
        verify_consistency(new, old, cproof)
    with pytest.raises(AuditLogInvalid, match="two logs"):
        verify_consistency(old, altered(new, log_id="other"), cproof)
    with pytest.raises(AuditLogInvalid, match="not proven"):
        verify_consistency(old, new, cproof[1:])
    with pytest.raises(AuditLogInvalid, match="not proven"):
        verify_consistency(altered(old, root_hash=b"\x22" * 32), new, cproof)


def test_head_encoding_is_domain_separated_and_fixed_width(log: AuditLog) -> None:
    head = log.sign_head()
    message = head_signing_input(head.log_id, head.tree_size, head.root_hash, head.timestamp)
    assert message.startswith(b"intelshare.v1.audit.SignedTreeHead\x00")
    assert len(message) == 35 + 2 + len(b"gateway.example") + 8 + 32 + 8 + 4
    log.public_key.verify(head.signature, message)


# --- arguments and configuration ---------------------------------------------------------


def test_out_of_range_requests(filled: AuditLog) -> None:
    with pytest.raises(InvalidArgument, match="exceeds"):
        filled.inclusion_proof(3, 21)
    with pytest.raises(InvalidArgument):
        filled.inclusion_proof(20, 20)
    with pytest.raises(InvalidArgument):
        filled.inclusion_proof(-1, 5)
    with pytest.raises(InvalidArgument):
        filled.consistency_proof(6, 5)
    with pytest.raises(InvalidArgument, match="exceeds"):
        filled.consistency_proof(6, 21)
    assert filled.consistency_proof(0, 20) == []
    assert filled.consistency_proof(20, 20) == []
    with pytest.raises(NotFound):
        filled.leaf(20)
    with pytest.raises(InvalidArgument):
        filled.leaf(-1)


def test_configuration_mistakes(engine: Engine, key: Ed25519PrivateKey) -> None:
    with pytest.raises(ConfigError, match="key id"):
        AuditLog(engine, "a", key, "not-the-key-id")
    with pytest.raises(ConfigError, match="log id"):
        AuditLog(engine, "", key, kid(key))
    AuditLog(engine, "agency-a", key, kid(key)).record("opened", {})
    other = AuditLog(engine, "agency-b", key, kid(key))
    with pytest.raises(ConfigError, match="agency-a"):
        other.record("opened", {})
    with pytest.raises(ConfigError, match="agency-a"):
        other.size()
    with pytest.raises(AuditLogInvalid, match="agency-a"):
        other.verify(key.public_key())


def test_tables_are_on_the_shared_metadata() -> None:
    assert set(audit_metadata.tables) == {
        "audit_entries",
        "audit_nodes",
        "audit_heads",
        "audit_state",
    }


# --- cost: O(log n) statements and rows, no scans ----------------------------------------


class StatementLog:
    """Statements sent, through SQLAlchemy or on the driver's own connection.

    The hot paths run on the driver's own connection or cursor
    (``intelshare.db``), which SQLAlchemy's events do not see, so the
    statements are taken from the driver. On SQLite, SQLite's own trace names
    each statement (once per row of an executemany, so rows in a row count
    once; the transaction's BEGIN and COMMIT are left out). On PostgreSQL
    every psycopg cursor of a connection checked out meanwhile records what
    it executes.
    """

    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._open = True
        event.listen(engine, "checkout", self._trace)

    def _trace(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if self._sqlite:
            dbapi_conn.set_trace_callback(self._traced)
            return
        import psycopg

        spy = self

        class Recording(psycopg.Cursor[Any]):
            def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                text = query if isinstance(query, str) else bytes(query).decode()
                if spy._open and text.strip() != ";":  # ";" is the pool's ping
                    spy.statements.append(text)
                return super().execute(query, params, **kw)

        dbapi_conn.cursor_factory = Recording

    def _traced(self, statement: str) -> None:
        if not self._open or statement.split(None, 1)[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            return
        # The trace expands bound values: rows of one executemany share
        # their statement's first words.
        if self.statements and self.statements[-1].split()[:3] == statement.split()[:3]:
            return
        self.statements.append(statement)

    def take(self) -> list[str]:
        out, self.statements = self.statements, []
        return out

    def close(self) -> None:
        self._open = False  # connections checked out before keep their spy, muted
        event.remove(self.engine, "checkout", self._trace)


def test_append_and_proofs_cost_do_not_grow_with_the_log(
    log: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    fill(log, engine, 10)
    spy = StatementLog(engine)
    try:
        log.record("submitted", {"seq": 10})
        small_append = len(spy.take())
        log.inclusion_proof(3, 11)
        small_proof = spy.take()
        spy.close()
        fill(log, engine, 1100, start=11)
        spy = StatementLog(engine)
        log.record("submitted", {"seq": 1111})
        big_append = spy.take()
        proof = log.inclusion_proof(700, 1112)
        big_proof = spy.take()
        log.consistency_proof(333, 1112)
        big_consistency = spy.take()
        log.sign_head()
        sign = spy.take()
    finally:
        spy.close()
    # lock, entry, nodes, state; PostgreSQL writes the last three as one statement
    assert len(big_append) == small_append == (2 if engine.dialect.name == "postgresql" else 4)
    assert len(big_proof) == len(small_proof) == 1
    assert len(big_consistency) == 1
    assert len(sign) <= 2
    for statement in big_proof + big_consistency + sign:
        assert "audit_entries" not in statement
    assert len(proof) == 11
    head = log.sign_head()
    verify_inclusion(log.leaf(700), 700, head, log.inclusion_proof(700, head.tree_size))
    assert log.verify(key.public_key()).tree_size == 1112


def test_verify_spans_several_chunks(log: AuditLog, engine: Engine, key: Ed25519PrivateKey) -> None:
    fill(log, engine, 2048 + 77)
    log.sign_head()
    report = log.verify(key.public_key())
    assert report.tree_size == 2125
    assert report.nodes_checked == sum(2125 >> lv for lv in range(12))
    with engine.begin() as conn:
        conn.execute(
            update(audit_nodes)
            .where(audit_nodes.c.level == 11, audit_nodes.c.idx == 0)
            .values(hash=b"\x00" * 32)
        )
    with pytest.raises(AuditLogInvalid, match=r"level 11 index 0 \(completed by entry 2047\)"):
        log.verify(key.public_key())


def test_migration_schema_matches_the_live_tables(db_url: str) -> None:
    """The frozen version-1 tables that migrations create are what the code expects."""
    schema_v1 = pytest.importorskip("intelshare.audit.schema_v1")
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            schema_v1.create(Operations(MigrationContext.configure(conn)))
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), audit_metadata
            )
        assert diff == []
    finally:
        engine.dispose()
