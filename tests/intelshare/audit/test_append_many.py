"""``AuditLog.append_many``: batches, their in-memory proofs and their signed heads.

The proofs an ``Appended`` computes without reading the database must equal
the ones the log computes from its stored nodes, for every way a batch can
sit against the frontier it started from (sizes 0..20, batches of 1..9).
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, select

from intelshare.audit import AuditLog, verify_inclusion, verify_tree_head
from intelshare.audit.tables import audit_entries, audit_heads
from intelshare.errors import InvalidArgument
from intelshare.ids import key_id
from intelshare.keys import raw_public
from tests.intelshare.audit.test_log import StatementLog


@pytest.fixture
def log(engine: Engine, key: Ed25519PrivateKey) -> AuditLog:
    return AuditLog(engine, "gateway.example", key, key_id(raw_public(key.public_key())))


def batch(start: int, n: int) -> list[tuple[str, dict[str, str | int | None]]]:
    return [("delivered", {"message_id": f"m-{i}", "sequence": i}) for i in range(start, start + n)]


def test_batches_prove_every_entry_from_memory(
    log: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    size = 0
    for n in [1, 2, 3, 1, 4, 5, 1, 9, 2, 7, 1, 1, 8, 3]:
        with engine.begin() as conn:
            got = log.append_many(conn, batch(size, n), sign=True)
        assert got.indexes == list(range(size, size + n))
        assert got.tree_size == size + n
        assert got.head is not None
        assert got.head.tree_size == size + n
        verify_tree_head(got.head, key.public_key())
        for index in got.indexes:
            proof = got.inclusion_proof(index)
            assert proof == log.inclusion_proof(index, got.tree_size)
            assert got.leaf(index) == log.leaf(index)
            verify_inclusion(got.leaf(index), index, got.head, proof, public_key=key.public_key())
        size += n
    report = log.verify(key.public_key())
    assert (report.tree_size, report.heads_checked) == (size, 14)


def test_same_leaves_as_one_by_one(log: AuditLog, engine: Engine, key: Ed25519PrivateKey) -> None:
    """A batch is the same log as its entries appended singly (same hashes, same root)."""
    with engine.begin() as conn:
        got = log.append_many(conn, batch(0, 5), sign=True)
    with engine.begin() as conn:
        single = log.append(conn, "delivered", {"message_id": "m-5", "sequence": 5})
    assert single == 5
    assert [log.leaf(i) for i in range(5)] == list(got.leaves)
    assert log.verify(key.public_key()).tree_size == 6


def test_rollback_leaves_nothing(log: AuditLog, engine: Engine) -> None:
    with engine.begin() as conn:
        log.append_many(conn, batch(0, 3))
    conn = engine.connect()
    with conn.begin():
        log.append_many(conn, batch(3, 4), sign=True)
        conn.rollback()  # the caller's fact failed
    conn.close()
    assert log.size() == 3
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_entries)).scalar_one() == 3
        assert conn.execute(select(func.count()).select_from(audit_heads)).scalar_one() == 0


def test_empty_batch(log: AuditLog, engine: Engine, key: Ed25519PrivateKey) -> None:
    with engine.begin() as conn:
        log.append_many(conn, batch(0, 2))
    with engine.begin() as conn:
        nothing = log.append_many(conn, [])
        signed = log.append_many(conn, [], sign=True)
    assert nothing.indexes == []
    assert nothing.head is None
    assert signed.indexes == []
    assert signed.head is not None
    assert signed.head.tree_size == 2
    assert log.verify(key.public_key()).heads_checked == 1


def test_bad_entry_refused_before_writing(log: AuditLog, engine: Engine) -> None:
    with pytest.raises(InvalidArgument), engine.begin() as conn:
        log.append_many(conn, [("delivered", {"ok": 1}), ("delivered", {"bad": 1.5})])  # type: ignore[dict-item]
    assert log.size() == 0


def test_proof_outside_the_batch_refused(log: AuditLog, engine: Engine) -> None:
    with engine.begin() as conn:
        log.append_many(conn, batch(0, 3))
        got = log.append_many(conn, batch(3, 2))
    with pytest.raises(InvalidArgument):
        got.inclusion_proof(2)
    with pytest.raises(InvalidArgument):
        got.inclusion_proof(5)


def test_stored_leaves_are_byte_exact_whatever_their_text(
    log: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    """Leaves of any length and script come back as the bytes that were hashed.

    On PostgreSQL a batch travels as one byte string cut apart by offsets in
    SQL; an off-by-one or a re-encoding would store other bytes than the
    leaf hash covers, which ``verify`` and the stored-leaf comparison catch.
    """
    texts = [
        "",
        "a",
        "Ærø — ✓ \U0001f512 astral",
        'quote " backslash \\ \n tab \t',
        "x" * 700,
        "日本語",
    ]
    with engine.begin() as conn:
        got = log.append_many(
            conn, [("noted", {"text": text, "n": i}) for i, text in enumerate(texts)], sign=True
        )
    assert [log.leaf(i) for i in got.indexes] == list(got.leaves)
    assert len({len(leaf) for leaf in got.leaves}) == len(texts)
    assert log.verify(key.public_key()).tree_size == len(texts)


# --- appending on what this log last wrote (PostgreSQL) ---------------------------------


def _statements(engine: Engine) -> list[str]:
    """Every statement ``engine``'s connections send from now on (a live list)."""
    return StatementLog(engine).statements


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_append_locks_the_state_row_then_writes_once(log: AuditLog, engine: Engine) -> None:
    with engine.begin() as conn:
        log.append_many(conn, batch(0, 2))
    seen = _statements(engine)
    with engine.begin() as conn:
        got = log.append_many(conn, batch(2, 3), sign=True)
    assert got.indexes == [2, 3, 4]
    state = [s for s in seen if "audit_state" in s]
    assert len(state) == 2, state  # the lock, then the one write of the whole batch
    assert "FOR UPDATE" in state[0]
    assert state[1].lstrip().startswith("WITH new_entries")
    log.verify(log.public_key)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_appends_of_another_appender_or_a_rollback_are_caught(
    log: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    """Another AuditLog on the same database (another process) and a rolled-back
    transaction of this one: every append starts from the state the database
    holds, never from what this object last wrote."""
    other = AuditLog(engine, "gateway.example", key, log.key_id)
    with engine.begin() as conn:
        assert log.append_many(conn, batch(0, 3)).indexes == [0, 1, 2]
    with engine.begin() as conn:
        assert other.append_many(conn, batch(3, 2)).indexes == [3, 4]
    with engine.begin() as conn:  # log still thinks the size is 3
        got = log.append_many(conn, batch(5, 2), sign=True)
    assert got.indexes == [5, 6]
    assert got.head is not None
    assert got.head.tree_size == 7
    with engine.begin() as conn:
        log.append_many(conn, batch(7, 4))
        conn.rollback()  # log now thinks the size is 11; it is 7
    with engine.begin() as conn:
        assert other.append_many(conn, batch(7, 4)).indexes == [7, 8, 9, 10]
    # Same size as log's guess, but other leaves: the frontier tells them apart.
    with engine.begin() as conn:
        got = log.append_many(conn, batch(11, 1), sign=True)
    assert got.indexes == [11]
    assert got.inclusion_proof(11) == log.inclusion_proof(11, 12)
    report = log.verify(log.public_key)
    assert report.entries_checked == 12
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(audit_entries)).scalar_one()
    assert count == 12


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_threads_of_one_process_append_on_each_others_state(log: AuditLog, engine: Engine) -> None:
    """Concurrent appenders of one log: a consistent tree, each append one lock
    and one write."""
    import threading

    with engine.begin() as conn:
        log.append_many(conn, batch(0, 1))
    seen = _statements(engine)
    errors: list[BaseException] = []

    def appender(n: int) -> None:
        try:
            for i in range(10):
                with engine.begin() as conn:
                    log.append_many(conn, batch(1000 * n + i, 2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    report = log.verify(log.public_key)
    assert report.entries_checked == 1 + 4 * 10 * 2
    locks = sum("FOR UPDATE" in s and "audit_state" in s for s in seen)
    writes = sum(s.lstrip().startswith("WITH new_entries") for s in seen)
    assert (locks, writes) == (40, 40)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_logs_on_one_database_append_at_once(
    log: AuditLog, engine: Engine, key: Ed25519PrivateKey
) -> None:
    """Two processes' logs appending concurrently: every
    entry once, in a tree that verifies."""
    import threading

    other = AuditLog(engine, "gateway.example", key, log.key_id)
    errors: list[BaseException] = []

    def appender(target: AuditLog, n: int) -> None:
        try:
            for i in range(10):
                with engine.begin() as conn:
                    target.append_many(conn, batch(1000 * n + i, 3), sign=i % 3 == 0)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=appender, args=(target, n))
        for n, target in enumerate([log, other, log, other])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert log.verify(log.public_key).entries_checked == 4 * 10 * 3
    with engine.connect() as conn:
        messages = [
            json.loads(bytes(leaf))["message_id"]
            for (leaf,) in conn.execute(select(audit_entries.c.leaf).order_by(audit_entries.c.idx))
        ]
    assert sorted(messages) == sorted(
        f"m-{1000 * n + i + k}" for n in range(4) for i in range(10) for k in range(3)
    )
