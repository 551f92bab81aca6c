"""``AuditLog.append_statement``: the append PostgreSQL computes itself.

The function ``audit_append_v1`` is a second implementation of the tree's
append (see :mod:`intelshare.audit.append_v1`), so these tests hold it to
the Python one: the same frontier and subtrees for the same leaves at every
size across several powers of two, mixed with Python appends on one log,
and a log that ``verify`` recomputes from scratch. PostgreSQL only: SQLite
appends stay in Python.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError

from intelshare.audit import AuditLog, merkle, verify_inclusion, verify_tree_head
from intelshare.audit.tables import audit_entries, audit_nodes, audit_state
from intelshare.db import pg_execute
from intelshare.errors import InvalidArgument
from intelshare.ids import key_id
from intelshare.keys import raw_public
from tests.intelshare.audit.test_append_many import batch

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def make_log(engine: Engine, key: Ed25519PrivateKey, log_id: str = "nl-customs") -> AuditLog:
    return AuditLog(engine, log_id, key, key_id(raw_public(key.public_key())))


def run_statement(engine: Engine, log: AuditLog, entries: list[tuple[str, dict[str, Any]]]) -> int:
    sql, params = log.append_statement(entries)
    with engine.begin() as conn:
        _, rows = pg_execute(conn, sql, params)
    return int(rows[0][0])


def stored(engine: Engine) -> tuple[int, bytes, list[bytes], dict[tuple[int, int], bytes]]:
    with engine.connect() as conn:
        size, frontier = conn.execute(select(audit_state.c.size, audit_state.c.frontier)).one()
        leaves = [bytes(r[0]) for r in conn.execute(select(audit_entries.c.leaf_hash))]
        nodes = {
            (int(level), int(idx)): bytes(h)
            for level, idx, h in conn.execute(
                select(audit_nodes.c.level, audit_nodes.c.idx, audit_nodes.c.hash)
            )
        }
    return int(size), bytes(frontier), leaves, nodes


def test_the_database_builds_the_tree_python_builds(engine: Engine, key: Ed25519PrivateKey) -> None:
    log = make_log(engine, key)
    expected = merkle.Frontier()
    expected_nodes: dict[tuple[int, int], bytes] = {}
    size = 0
    # Batches across sizes 0..70, each third one appended by Python on the same log.
    for turn, n in enumerate([1, 2, 3, 1, 4, 5, 1, 9, 2, 7, 1, 1, 8, 3, 16, 6]):
        entries = batch(size, n)
        if turn % 3 == 2:
            with engine.begin() as conn:
                first = log.append_many(conn, entries).first_index
        else:
            first = run_statement(engine, log, entries)
        assert first == size
        size += n
        db_size, frontier, leaves, nodes = stored(engine)
        for leaf_hash in leaves[first:]:
            for level, index, h in expected.append(leaf_hash):
                expected_nodes[(level, index)] = h
        assert db_size == size == expected.size
        assert frontier == expected.encode()
        assert nodes == expected_nodes
    with engine.connect() as conn:
        for i, leaf in enumerate(conn.execute(select(audit_entries.c.leaf).order_by("idx"))):
            assert merkle.leaf_hash(bytes(leaf[0])) == leaves[i]
    head = log.sign_head()
    verify_tree_head(head, key.public_key())
    assert head.root_hash == expected.root()
    for index in (0, 31, 32, size - 1):
        verify_inclusion(log.leaf(index), index, head, log.inclusion_proof(index, head.tree_size))
    report = log.verify(key.public_key())
    assert report.entries_checked == size


def test_leaves_are_the_ones_append_many_writes(engine: Engine, key: Ed25519PrivateKey) -> None:
    times = iter([f"2026-12-04T10:00:0{i}+00:00" for i in range(4)])
    from datetime import datetime

    clock = lambda: datetime.fromisoformat(next(times))  # noqa: E731
    log = AuditLog(engine, "nl-customs", key, key_id(raw_public(key.public_key())), clock=clock)
    entries = [("opened", {"message_id": "m-1", "note": "ünïcode ✓", "ids": ["a", "b"]})]
    run_statement(engine, log, entries)
    with engine.begin() as conn:
        log.append_many(conn, entries)
    first, second = log.leaf(0), log.leaf(1)
    assert first.replace(b"10:00:00", b"10:00:01") == second


def test_rollback_leaves_nothing(engine: Engine, key: Ed25519PrivateKey) -> None:
    log = make_log(engine, key)
    run_statement(engine, log, batch(0, 3))
    sql, params = log.append_statement(batch(3, 5))

    def append_then_fail() -> None:
        with engine.begin() as conn:
            pg_execute(conn, sql, params)
            raise RuntimeError("the caller's facts failed")

    with pytest.raises(RuntimeError):
        append_then_fail()
    assert log.size() == 3
    assert stored(engine)[0] == 3
    log.verify(key.public_key())


def test_another_logs_database_is_refused(engine: Engine, key: Ed25519PrivateKey) -> None:
    run_statement(engine, make_log(engine, key, "nl-customs"), batch(0, 1))
    other = make_log(engine, key, "be-police")
    with pytest.raises(DBAPIError, match="holds the audit log nl-customs, not be-police"):
        run_statement(engine, other, batch(1, 1))
    assert stored(engine)[0] == 1


def test_a_corrupt_state_is_refused_without_writing(engine: Engine, key: Ed25519PrivateKey) -> None:
    log = make_log(engine, key)
    run_statement(engine, log, batch(0, 3))
    with engine.begin() as conn:
        conn.execute(update(audit_state).values(frontier=b"\x00" * 32))  # size 3 needs two
    with pytest.raises(DBAPIError, match="audit state is corrupt"):
        run_statement(engine, log, batch(3, 1))
    with engine.connect() as conn:
        assert conn.execute(select(audit_state.c.size)).scalar_one() == 3
        assert len(conn.execute(select(audit_entries.c.idx)).all()) == 3


def test_malformed_entries_are_refused_before_sending(
    engine: Engine, key: Ed25519PrivateKey
) -> None:
    log = make_log(engine, key)
    with pytest.raises(InvalidArgument, match="audit event"):
        log.append_statement([("bad event!", {})])
    with pytest.raises(InvalidArgument, match="at least one entry"):
        log.append_statement([])
    with pytest.raises(InvalidArgument, match="never payloads"):
        log.append_statement([("opened", {"blob": "x" * 20_000})])


def test_concurrent_appenders_get_one_tree(engine: Engine, key: Ed25519PrivateKey) -> None:
    log = make_log(engine, key)
    threads, per_thread = 6, 20
    firsts: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def append(n: int) -> None:
        try:
            for i in range(per_thread):
                first = run_statement(engine, log, batch(n * 1000 + i * 2, 2))
                with lock:
                    firsts.append(first)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=append, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert errors == []
    assert sorted(firsts) == list(range(0, threads * per_thread * 2, 2))
    assert log.verify(key.public_key()).entries_checked == threads * per_thread * 2
