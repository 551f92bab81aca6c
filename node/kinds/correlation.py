"""Correlation: the identifiers of every record the node holds, from the event log.

Alerts, case entries, detentions and recordations are kinds whose modules
this one must not import (kinds are independent) and whose owners did not
add an indexing call. They all write an event in the transaction that
changes them, so :class:`Correlator` follows the node's event log with a
cursor of its own (``node_counters.identifiers_cursor``), reads each
changed record as stored, takes its identifiers (containers, vessels,
vehicles, persons with a date of birth, passports, companies by VAT, EORI
or name, GTINs) as canonical keys of :mod:`intelshare.identifiers`, and
hands them to the index of :mod:`node.storage.identifiers`, which writes
``link.found`` events for records already held that share one. Risk hits
are indexed by their own kind's hook, in the transaction that stores them.

The follower runs in a thread of the node process (started by
:mod:`node.server`), woken by every commit with events; each batch of
events is indexed in one transaction together with the cursor's advance
(compare-and-set, so two followers never index one event twice). Values
that are not valid identifiers (a received copy's free text, a wrong check
digit) are left out, never guessed.

Cost: the follower shares the node's core with the inbox, so a batch is
cheap to find and to apply. It reads only the event types it indexes
(``link.found``, receipts, acknowledgements... are skipped in SQL, then
the cursor moves past them to the committed head), the alerts of a batch
in one statement, and counts the index's change once per batch; the index
finds the records sharing a key by reading a bounded number of rows
(:func:`node.storage.identifiers.replace`).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from sqlalchemy import Connection, select, update

from intelshare import identifiers as ids
from intelshare.errors import FieldInvalid, InvalidArgument, PageSizeInvalid
from intelshare.errors import NotFound as NotFoundError
from node.storage import identifiers as index
from node.storage import tables as t
from node.storage.store import AUDIT_IDS_PER_ENTRY, EVENTS_TOPIC, Store, Writer

log = logging.getLogger(__name__)

BATCH: Final = 200
_ALERT_INDEX = frozenset({"alert.issued", "alert.received", "alert.updated"})
_ALERT_STATE = frozenset({"alert.revoked", "alert.expired"})
_RECORD_CHANGE = frozenset({"record.issued", "record.received", "record.updated"})
_DETENTION = frozenset({"detention.created", "detention.updated"})
#: every event type the follower acts on; the others are skipped in SQL
_INDEXED = sorted(
    _ALERT_INDEX
    | _ALERT_STATE
    | _RECORD_CHANGE
    | _DETENTION
    | {"alert.purged", "case.entry_added", "case.purged", "record.purged"}
)
_EVENTS = (
    t.events.c.seq,
    t.events.c.type,
    t.events.c.alert_id,
    t.events.c.case_id,
    t.events.c.entry_id,
    t.events.c.record_id,
)


def _key(scheme: str, value: object, *, country: object = None, born: object = None) -> str | None:
    if not value:
        return None
    if isinstance(value, str) and isinstance(country, str | None) and isinstance(born, str | None):
        return _checked_key(scheme, value, country, born)
    return _checked_key.__wrapped__(scheme, value, country, born)


@functools.lru_cache(maxsize=8192)
def _checked_key(scheme: str, value: object, country: object, born: object) -> str | None:
    """The key of one value, or None. Remembered for strings: the same container, vessel or
    company comes back in record after record, and its check digits need checking once."""
    try:
        return ids.key(scheme, value, country=country, born=born)
    except InvalidArgument:
        return None


def _company(item: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    number = item.get("vat_number") or item.get("eori")
    if number:
        yield "company", _key("vat", number) or _key("eori", number)
    yield "company", _key("company", item.get("name"))


def subject_keys(subjects: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(role, key) of an alert's or case entry's subjects (the record form of node.schema)."""
    out: list[tuple[str, str | None]] = []
    for c in subjects.get("containers", []):
        out.append(("container", _key("iso6346", c.get("number"))))
    for v in subjects.get("vessels", []):
        out.append(("vessel", _key("imo", v.get("imo_number"))))
    for v in subjects.get("vehicles", []):
        if v.get("registration_country"):
            out.append(
                ("vehicle", _key("plate", v.get("plate"), country=v["registration_country"]))
            )
    for p in subjects.get("persons", []):
        if p.get("date_of_birth"):
            out.append(("person", _key("person", p.get("name"), born=p["date_of_birth"])))
        if p.get("nationality"):
            out.append(
                ("passport", _key("passport", p.get("passport_number"), country=p["nationality"]))
            )
    for item in subjects.get("companies", []):
        out.extend(_company(item))
    for d in subjects.get("documents", []):
        if d.get("type") == "passport" and d.get("issuing_country"):
            out.append(
                ("passport", _key("passport", d.get("number"), country=d["issuing_country"]))
            )
    return [(role, key) for role, key in out if key]


def detention_keys(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str | None]] = []
    transport = record.get("transport") or {}
    out.append(("container", _key("iso6346", transport.get("container_number"))))
    out.append(("vessel", _key("imo", transport.get("vessel_imo"))))
    if transport.get("vehicle_country"):
        out.append(
            (
                "vehicle",
                _key("plate", transport.get("vehicle_plate"), country=transport["vehicle_country"]),
            )
        )
    for role, party in (record.get("parties") or {}).items():
        if isinstance(party, Mapping):
            out.append((role, _key("eori", party.get("eori"))))
            out.append((role, _key("company", party.get("name"))))
    for goods in record.get("goods", []):
        for gtin in goods.get("gtins", []):
            out.append(("gtin", _key("gtin", gtin)))
    return [(role, key) for role, key in out if key]


def recordation_keys(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str | None]] = []
    holder = record.get("holder") or {}
    out.append(("holder", _key("eori", holder.get("eori"))))
    out.append(("holder", _key("company", holder.get("name"))))
    for goods in record.get("goods", []):
        for gtin in goods.get("gtins", []):
            out.append(("gtin", _key("gtin", gtin)))
    chain = record.get("supply_chain") or {}
    for group in ("manufacturers", "importers", "distributors"):
        for party in chain.get(group, []):
            out.append(("supply_chain", _key("eori", party.get("eori"))))
    return [(role, key) for role, key in out if key]


#: a record to index: who holds the identifiers, and its (role, key) pairs
Indexed = tuple[index.Holder, list[tuple[str, str]]]


def _alert(row: Any) -> Indexed | None:
    if row is None:
        return None
    record = json.loads(row.record)
    holder = index.Holder(
        "alert", row.alert_id, f"alerts/{row.alert_id}", row.direction, row.origin_agency
    )
    return holder, subject_keys(record.get("subjects") or {})


class Correlator:
    """Follows the event log and keeps the identifier index up to date."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cursor(self, conn: Connection) -> int:
        value = conn.execute(
            select(t.counters.c.value).where(t.counters.c.name == index.CURSOR)
        ).scalar()
        return int(value or 0)

    def _pending(self) -> tuple[int, int, list[Any]]:
        """(cursor, the position the batch reaches, the events of the batch to act on)."""
        c = t.counters
        with self.store.engine.connect() as conn:
            # Both counters in one read; every event up to the "events" counter is committed
            # (writers take the counter's row lock with their events).
            values = {
                name: value
                for name, value in conn.execute(
                    select(c.c.name, c.c.value).where(c.c.name.in_((index.CURSOR, "events")))
                )
            }
            cursor, head = int(values.get(index.CURSOR) or 0), int(values.get("events") or 0)
            if head <= cursor:
                return cursor, cursor, []
            e = t.events
            rows = list(
                conn.execute(
                    select(*_EVENTS)
                    .where(e.c.seq > cursor, e.c.seq <= head, e.c.type.in_(_INDEXED))
                    .order_by(e.c.seq)
                    .limit(BATCH)
                ).all()
            )
        return cursor, int(rows[-1].seq) if len(rows) == BATCH else head, rows

    def catch_up(self) -> int:
        """Index every event after the cursor; the number of events acted on."""
        done = 0
        while True:
            cursor, reach, events = self._pending()
            if reach == cursor:
                return done
            with self.store.write() as w:
                moved = w.conn.execute(
                    update(t.counters)
                    .where(t.counters.c.name == index.CURSOR, t.counters.c.value == cursor)
                    .values(value=reach)
                ).rowcount
                if not moved:
                    continue  # another follower took this batch
                if self._apply(w, events):
                    index.bump(w)
            done += len(events)

    def _apply(self, w: Writer, events: list[Any]) -> bool:
        """Index one batch of events; True if the index (or the alerts' state) changed.

        Removals are made in order; the records to index are read as they
        are now (a record purged later in the batch is not found) and indexed
        together, in the order of their events.
        """
        changed = False
        alert_ids = {e.alert_id for e in events if e.type in _ALERT_INDEX and e.alert_id}
        alerts: dict[str, Any] = {}
        if alert_ids:
            a = t.alerts
            alerts = {
                row.alert_id: row
                for row in w.conn.execute(
                    select(a.c.alert_id, a.c.record, a.c.direction, a.c.origin_agency).where(
                        a.c.alert_id.in_(sorted(alert_ids))
                    )
                )
            }
        items: list[Indexed | None] = []
        for e in events:
            if e.type in _ALERT_INDEX and e.alert_id:
                changed = True  # the watch list follows the alert's state too
                items.append(_alert(alerts.get(e.alert_id)))
            elif e.type in _ALERT_STATE:
                changed = True
            elif e.type == "alert.purged" and e.alert_id:
                changed |= index.remove(w, "alert", [e.alert_id], count=False)
            elif e.type == "case.entry_added" and e.entry_id:
                items.append(self._case_entry(w, e.entry_id))
            elif e.type == "case.purged" and e.case_id:
                changed |= index.remove_scope(w, "case_entry", e.case_id, count=False)
            elif e.type in _DETENTION and e.record_id:
                items.append(self._detention(w, e.record_id))
            elif e.type in _RECORD_CHANGE and e.record_id:
                items.append(self._recordation(w, e.record_id))
            elif e.type == "record.purged" and e.record_id:
                changed |= index.remove(w, "recordation", [e.record_id], count=False)
        found = [item for item in items if item is not None]
        return index.replace_many(w, found, count=False) or changed

    def _case_entry(self, w: Writer, entry_id: str) -> Indexed | None:
        ce = t.case_entries
        row = w.conn.execute(select(ce).where(ce.c.entry_id == entry_id)).first()
        if row is None:
            return None
        record = json.loads(row.record)
        return (
            index.Holder(
                "case_entry",
                entry_id,
                f"cases/{row.case_id}/entries/{entry_id}",
                row.direction,
                row.author_agency,
                scope=row.case_id,
            ),
            subject_keys(record.get("subjects") or {}),
        )

    def _detention(self, w: Writer, detention_id: str) -> Indexed | None:
        d = t.detentions
        row = w.conn.execute(select(d).where(d.c.detention_id == detention_id)).first()
        if row is None:
            return None
        return (
            index.Holder(
                "detention", detention_id, f"detentions/{detention_id}", "issued", "", None
            ),
            detention_keys(json.loads(row.record)),
        )

    def _recordation(self, w: Writer, record_id: str) -> Indexed | None:
        r = t.records
        row = w.conn.execute(
            select(r).where(r.c.record_id == record_id, r.c.kind == "recordation")
        ).first()
        if row is None:
            return None
        local = w.conn.execute(
            select(t.recordations.c.recordation_id).where(t.recordations.c.record_id == record_id)
        ).scalar_one_or_none()
        return (
            index.Holder(
                "recordation",
                record_id,
                f"recordations/{local or record_id}",
                row.direction,
                row.origin_agency,
            ),
            recordation_keys(json.loads(row.record)),
        )

    # --- the thread ------------------------------------------------------------------------

    def start(self, agency_id: str) -> None:
        self._thread = threading.Thread(target=self._run, name="node-correlate", daemon=True)
        self._thread.start()
        log.info("correlation follower of %s started", agency_id)

    def stop(self) -> None:
        self._stop.set()
        self.store.hub.notify(EVENTS_TOPIC)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        hub = self.store.hub
        while not self._stop.is_set():
            generation = hub.generation(EVENTS_TOPIC)
            try:
                self.catch_up()
            except Exception:
                log.exception("indexing identifiers failed; retrying")
                self._stop.wait(1.0)
                continue
            hub.wait(EVENTS_TOPIC, generation, 1.0)


def keys_of_records(items: Iterable[tuple[str, str]]) -> list[str]:
    """The keys of (role, key) pairs, without repeats."""
    return list(dict.fromkeys(key for _role, key in items))


# --- FindRelated ---------------------------------------------------------------------------


def find_related(
    store: Store,
    officer_id: str,
    role: str,
    *,
    identifier: str = "",
    record: str = "",
    page_size: int = 0,
    page_token: str = "",
) -> tuple[list[str], list[Any], str]:
    """(keys looked up, index rows of related records, next page token)."""
    if bool(identifier) == bool(record):
        raise FieldInvalid(
            "give exactly one of identifier or record",
            violations={"subject": "one of identifier or record"},
        )
    if page_size < 0:
        raise PageSizeInvalid("page_size must not be negative", violations={"page_size": ">= 0"})
    size = min(page_size or 50, 500)
    raw = store.page_tokens.read(
        page_token,
        listing="related",
        filters=identifier or record,
        caller=officer_id,
        size=5,
    )
    after: tuple[int, str, str, str, str] | None = None
    if raw is not None:
        after = (int(raw[0]), str(raw[1]), str(raw[2]), str(raw[3]), str(raw[4]))
    with store.write() as w:
        exclude: tuple[str, str] | None = None
        if identifier:
            keys = [ids.parse_key(identifier, "identifier")]
        else:
            found = index.holder_of_name(w.conn, record)
            if found is not None and found[0] == "case_entry":
                rows = w.conn.execute(
                    select(t.identifiers).where(
                        t.identifiers.c.record_kind == found[0],
                        t.identifiers.c.record_id == found[1],
                    )
                ).all()
                if not index.visible(w.conn, officer_id, role, list(rows)):
                    found = None
            if found is None:
                raise NotFoundError(
                    f"{record} is not a record with identifiers that this node indexed",
                    metadata={"record": record},
                )
            exclude = found
            keys = index.keys_of(w.conn, *found)
        rows = []
        cursor = after
        while len(rows) < size + 1:
            batch = index.related(w.conn, keys, exclude=exclude, after=cursor, limit=size + 1)
            if not batch:
                break
            rows.extend(index.visible(w.conn, officer_id, role, batch))
            last = batch[-1]
            cursor = (last.create_ms, last.record_kind, last.record_id, last.key, last.role)
            if len(batch) < size + 1:
                break
        more = len(rows) > size
        rows = rows[:size]
        received = sorted({r.record_id for r in rows if r.direction == "received"})
        # every received record named is audited, in entries of bounded size
        for start in range(0, max(len(received), 1), AUDIT_IDS_PER_ENTRY):
            w.audit(
                "related",
                {
                    "officer_id": officer_id,
                    "records": len(rows),
                    "record_ids": received[start : start + AUDIT_IDS_PER_ENTRY],
                },
            )
    token = ""
    if more and rows:
        last = rows[-1]
        token = store.page_tokens.issue(
            listing="related",
            filters=identifier or record,
            caller=officer_id,
            position=[last.create_ms, last.record_kind, last.record_id, last.key, last.role],
        )
    return keys, rows, token
