"""The identifier index's writer: links to the newest holders, batches as one by one (SQLite, PostgreSQL).

``replace_many`` indexes a batch of records in a few statements; these
tests pin what it must keep from indexing each record on its own: a record
sharing a key with records already held writes one ``link.found`` per
older record, for the 20 most recent only; a later record of a batch is
linked to an earlier one; a record indexed again under the same keys
changes nothing; only *newly given* keys link. The correlation follower
indexes what is held when it looks, and moves its cursor past the events
it has nothing to do with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from intelshare import migrate
from intelshare.audit.log import AuditLog
from intelshare.audit.tables import audit_entries
from intelshare.db import make_engine
from intelshare.ids import key_id
from intelshare.keys import raw_public
from intelshare.wakeup import WakeupHub
from node.kinds.correlation import Correlator, find_related
from node.server import MIGRATIONS
from node.storage import identifiers as index
from node.storage import tables as t
from node.storage.store import Store

CONTAINER = "iso6346:MSCU1234566"
VESSEL = "imo:9074729"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    engine = make_engine(db_url)
    migrate.upgrade(engine, MIGRATIONS)
    key = Ed25519PrivateKey.generate()
    audit = AuditLog(engine, "de-customs", key, key_id(raw_public(key.public_key())))
    hub = WakeupHub(None)
    yield Store(engine, audit, hub)
    hub.close()
    engine.dispose()


def alert(n: int) -> index.Holder:
    return index.Holder("alert", f"a{n:03d}", f"alerts/a{n:03d}", "received", "nl-customs")


def links(store: Store) -> list[str | None]:
    """The alert ids named by link.found events, in the order they were written."""
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                select(t.events.c.alert_id)
                .where(t.events.c.type == "link.found")
                .order_by(t.events.c.seq)
            ).scalars()
        )


def test_a_key_held_by_many_links_its_twenty_newest_holders(store: Store) -> None:
    for n in range(25):  # one transaction each: every record is older than the next
        with store.write() as w:
            index.replace(w, alert(n), [("container", CONTAINER)])
    before = len(links(store))
    with store.write() as w:
        assert index.replace(w, alert(99), [("container", CONTAINER), ("vessel", VESSEL)])
    new = links(store)[before:]
    assert new == [f"a{n:03d}" for n in range(5, 25)]  # the 20 newest, oldest first
    # the same keys again: nothing changes, nothing is linked
    with store.write() as w:
        again = index.replace(w, alert(99), [("vessel", VESSEL), ("container", CONTAINER)])
    assert not again
    assert len(links(store)) == before + 20


def test_a_batch_links_as_records_indexed_one_by_one(store: Store) -> None:
    with store.write() as w:
        index.replace(w, alert(1), [("container", CONTAINER)])
    with store.write() as w:
        changed = index.replace_many(
            w,
            [
                (alert(2), [("container", CONTAINER)]),
                (alert(3), [("vessel", VESSEL)]),
                (alert(4), [("container", CONTAINER), ("vessel", VESSEL)]),
                (alert(3), [("vessel", VESSEL), ("container", CONTAINER)]),  # again: the last wins
            ],
            count=False,
        )
    assert changed
    # a2 -> a1; a4 -> a1, a2; a3 (indexed last, under both keys) -> a1, a2, a4
    assert links(store) == ["a001", "a001", "a002", "a001", "a002", "a004"]
    with store.engine.connect() as conn:
        held = {
            (row.record_id, row.key)
            for row in conn.execute(
                select(t.identifiers.c.record_id, t.identifiers.c.key).where(
                    t.identifiers.c.record_id == "a003"
                )
            )
        }
        changes = index.changes(conn)
    assert held == {("a003", CONTAINER), ("a003", VESSEL)}
    assert changes == 1  # count=False: the first replace counted, the batch did not


def test_only_a_newly_given_key_links(store: Store) -> None:
    with store.write() as w:
        index.replace(w, alert(1), [("container", CONTAINER)])
        index.replace(w, alert(2), [("vessel", VESSEL)])
    with store.write() as w:
        index.replace(w, alert(3), [("container", CONTAINER)])
    assert links(store) == ["a001"]
    with store.write() as w:  # a3 keeps the container and gains the vessel: a2 only
        index.replace(w, alert(3), [("container", CONTAINER), ("vessel", VESSEL)])
    assert links(store) == ["a001", "a002"]
    with store.write() as w:  # a record that drops a key is not a link either
        assert index.replace(w, alert(3), [("vessel", VESSEL)])
    assert links(store) == ["a001", "a002"]


def _alert_row(alert_id: str, container: str) -> dict[str, object]:
    record = {"subjects": {"containers": [{"number": container}]}}
    return {
        "alert_id": alert_id,
        "direction": "received",
        "origin_agency": "nl-customs",
        "kind": "counterfeit_goods",
        "urgency": "high",
        "treaty_id": "t",
        "treaty_version": 1,
        "categories": "[]",
        "recipients": "[]",
        "handling": 1,
        "tlp": 3,
        "record": json.dumps(record),
        "revision": 1,
        "state": "active",
        "create_ms": 1,
        "update_ms": 1,
        "expire_ms": 2**40,
        "expired_noted": False,
    }


def test_the_follower_indexes_what_is_held_and_moves_past_the_rest(store: Store) -> None:
    with store.write() as w:  # a1 and a2 arrive; a2 is purged before the follower looks
        w.conn.execute(
            t.alerts.insert(),
            [_alert_row("a1", "MSCU1234566"), _alert_row("a2", "MSCU1234566")],
        )
        w.event("alert.received", alert_id="a1")
        w.event("alert.received", alert_id="a2")
        w.event("alert.acknowledged", alert_id="a1")  # nothing to index
    with store.write() as w:
        w.conn.execute(t.alerts.delete().where(t.alerts.c.alert_id == "a2"))
        w.event("alert.purged", alert_id="a2")
    with store.write() as w:
        w.conn.execute(t.alerts.insert(), [_alert_row("a3", "MSCU 123456-6")])
        w.event("alert.received", alert_id="a3")
    follower = Correlator(store)
    assert follower.catch_up() == 4  # the events it acted on (not the acknowledgement)
    with store.engine.connect() as conn:
        held = sorted((row.record_id, row.key) for row in conn.execute(select(t.identifiers)))
        assert follower.cursor(conn) == store.head_seq()  # past its own link.found too
    assert held == [("a1", CONTAINER), ("a3", CONTAINER)]  # two spellings, one key
    assert links(store) == ["a1"]  # a3 is linked to a1, never to the purged a2
    assert follower.catch_up() == 0


def test_a_related_page_audits_every_received_record_it_names(store: Store) -> None:
    """A page of 250 received holders: every one is named in the audit log, in
    entries of bounded size (a single entry used to keep the first 200 only)."""
    with store.write() as w:
        for n in range(250):
            index.replace(w, alert(n), [("container", CONTAINER)])
    _keys, rows, token = find_related(
        store, "officer-1", "analyst", identifier=CONTAINER, page_size=300
    )
    assert len(rows) == 250
    assert token == ""
    with store.engine.connect() as conn:
        leaves = conn.execute(
            select(audit_entries.c.leaf).where(audit_entries.c.event == "related")
        ).scalars()
        named = [json.loads(leaf) for leaf in leaves]
    assert {n["records"] for n in named} == {250}
    ids = [i for n in named for i in n["record_ids"]]
    assert sorted(ids) == sorted(f"a{n:03d}" for n in range(250))
