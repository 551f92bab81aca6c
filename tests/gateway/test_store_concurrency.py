"""Submits, deliveries, acknowledgements and purges racing on one database.

Every gateway transaction takes its locks in one order — queue rows, then
inbox and message rows, then the audit log's state row last — because the
audit state row serializes all writers: a transaction that held it while
waiting for a queue or inbox row could deadlock with one holding that row
and waiting for the audit log. PostgreSQL detects such cycles and aborts one
side (``DeadlockDetected``); this test runs the four writers concurrently
and requires that none fails and that the audit log stays verifiable.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.server import MIGRATIONS
from gateway.store import Accepted, GatewayStore
from intelshare import migrate
from intelshare.audit.log import AuditLog
from intelshare.db import make_engine
from intelshare.ids import key_id, new_message_id
from intelshare.keys import raw_public

AGENCIES = ["a-police", "b-customs", "c-customs"]


def test_writers_never_deadlock(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url, pool_size=12) if "postgresql" in db_url else make_engine(db_url)
    migrate.upgrade(engine, MIGRATIONS)
    key = ed25519.Ed25519PrivateKey.generate()
    audit = AuditLog(engine, "gateway", key, key_id(raw_public(key.public_key())))
    store = GatewayStore(engine, audit)
    errors: list[BaseException] = []
    stop = threading.Event()
    rounds = 25

    def guard(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        return run

    def submitter() -> None:
        for _ in range(rounds):
            mid = new_message_id()
            result = store.accept(
                message_id=mid,
                sender="x-sender",
                recipients=AGENCIES,
                treaty_id="t",
                envelope=b"e" * 64,
                envelope_sha256=uuid.uuid4().bytes * 2,
                now_ms=1,
                expire_ms=2**62,
                audit_fields={"message_id": mid},
            )
            assert isinstance(result, Accepted)

    def deliverer(agency: str) -> None:
        while not stop.is_set():
            rows = store.read_inbox(agency, 0, 50, now_ms=1)
            store.mark_delivered(agency, rows, now_ms=1)
            if rows:
                store.acknowledge(agency, rows[len(rows) // 2].sequence)
            store.purge_expired(now_ms=1)

    subs = [threading.Thread(target=guard(submitter)) for _ in range(3)]
    dels = [threading.Thread(target=guard(lambda a=a: deliverer(a))) for a in AGENCIES]
    for t in subs + dels:
        t.start()
    for t in subs:
        t.join(120)
    stop.set()
    for t in dels:
        t.join(60)
    assert errors == [], errors[:3]
    for agency in AGENCIES:
        last, _acked = store.position(agency)
        assert last == 3 * rounds
    report = audit.verify(audit.public_key)
    assert report.tree_size >= 3 * rounds
    engine.dispose()


def test_purges_racing_deliveries_and_acknowledgements_never_deadlock(db_url: str) -> None:
    """The same writers while entries expire under them: purges lock rows in
    queue order too, so they never wait in a cycle with marks and releases."""
    engine = make_engine(db_url, pool_size=12) if "postgresql" in db_url else make_engine(db_url)
    migrate.upgrade(engine, MIGRATIONS)
    key = ed25519.Ed25519PrivateKey.generate()
    audit = AuditLog(engine, "gateway", key, key_id(raw_public(key.public_key())))
    store = GatewayStore(engine, audit)
    errors: list[BaseException] = []
    stop = threading.Event()
    clock = [1_000]

    def guard(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        return run

    def submitter() -> None:
        for i in range(25):
            mid = new_message_id()
            store.accept(
                message_id=mid,
                sender="x-sender",
                recipients=AGENCIES,
                treaty_id="t",
                envelope=b"e" * 64,
                envelope_sha256=uuid.uuid4().bytes * 2,
                now_ms=clock[0],
                # expiring in a mixed order, so expiry order is not queue order
                expire_ms=clock[0] + (i * 7919) % 50,
                audit_fields={"message_id": mid},
            )

    def deliverer(agency: str) -> None:
        while not stop.is_set():
            rows = store.read_inbox(agency, 0, 50, now_ms=clock[0])
            store.mark_delivered(agency, rows, now_ms=clock[0])
            if rows:
                store.acknowledge(agency, rows[len(rows) // 2].sequence)

    def purger() -> None:
        while not stop.is_set():
            clock[0] += 5
            store.purge_expired(now_ms=clock[0])

    subs = [threading.Thread(target=guard(submitter)) for _ in range(3)]
    others = [threading.Thread(target=guard(lambda a=a: deliverer(a))) for a in AGENCIES]
    others.append(threading.Thread(target=guard(purger)))
    for t in subs + others:
        t.start()
    for t in subs:
        t.join(120)
    stop.set()
    for t in others:
        t.join(60)
    assert errors == [], errors[:3]
    report = audit.verify(audit.public_key)
    assert report.tree_size >= 3 * 25
    engine.dispose()
