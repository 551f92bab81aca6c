"""Filling a node's database with many stored alerts, through the node's own code.

Issuing 100,000 alerts through gRPC and the gateway would take most of an
hour on two cores; the benches that need a full database (growth, the TAXII
peer, interop) fill it here instead, before the node starts. Nothing here
knows the node's tables: the node is built in this process from its own
configuration (:func:`node.server.build`, nothing started) and every row is
written by the node's own writers, in transactions of many alerts each:

* half the alerts are **issued** to the partner by :meth:`Alerts.issue`
  (redaction, sealing, the alert with its views, deliveries and outbox
  rows, its event and audit entry), and then recorded as accepted by the
  gateway by the sender's own bookkeeping (no gateway is called: the outbox
  must not send them again once the node runs);
* half are **received** from the partner: envelopes sealed with the
  partner's keys as its node would seal them (the alert redacted by the
  treaty), handed to the node's inbound path as inbox entries
  (:meth:`Inbound.handle_batch`: verify, open, treaty checks, the received
  alert, its event and audit entry, the receipt it owes), and the receipts
  owed are sealed and queued by the node's receipt batcher and recorded as
  accepted like the issued alerts.

Then the node's followers catch up as they would have in the meantime: the
identifier index (:meth:`Correlator.catch_up`) and the notifier's
confirmation of every event (:meth:`Store.mark_notified`), so that a node
started on the database has no backlog of its own to work through.

The audit log, the event counter and every index are therefore exactly what
the node keeps after that traffic. Each alert is the caller's alert with
subjects of its own (a person, passport, container and company numbered
after it: real traffic is not thousands of alerts about one container, and
the identifier index links alerts sharing a subject). What differs from
months of real traffic: every row is created now (creation times a few
seconds or minutes apart, not spread over months), and the issued alerts'
deliveries stay *accepted* (no receipt from the partner comes back).

The node must not be running while its database is seeded.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stdnum import iso6346

from intelshare.devfed import LocalFederation
from intelshare.envelope import HeaderFields, lookup_recipient_keys, seal
from intelshare.treaty import redact
from intelshare.v1 import alert_pb2, envelope_pb2, gateway_service_pb2
from node.config import load_config
from node.schema import alert as rec
from node.server import Node, build
from node.storage.officers import OfficerRegistry
from node.storage.store import canonical_bytes

#: Alerts written in one transaction.
BATCH = 250


def _node(config: Path, fed: LocalFederation, treaty_id: str) -> Node:
    """The node of ``config``, built in this process, with the federation's trust material."""
    cfg = load_config(config)
    # The directory as the node would have fetched it from the gateway.
    cfg.directory_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fed.directory_file, cfg.directory_file)
    node = build(cfg)
    node.trust.keep(fed.signed_treaty(treaty_id))
    return node


def _settle_outbox(node: Node) -> int:
    """Record everything queued as accepted by the gateway, as the sender does."""
    settled = 0
    while rows := node.sender._pending([]):
        node.sender._accepted_many([(r, None) for r in rows])
        settled += len(rows)
    return settled


def numbered(alert: alert_pb2.Alert, n: int) -> alert_pb2.Alert:
    """``alert`` with subjects of its own: every identifier numbered after ``n``."""
    out = alert_pb2.Alert()
    out.CopyFrom(alert)
    for person in out.subjects.persons:
        person.name = f"{person.name} {n}"
        if person.passport_number:
            person.passport_number = f"NX{n % 10**7:07d}"
    for container in out.subjects.containers:
        serial = f"{container.number[:4]}{n % 10**6:06d}"
        container.number = serial + str(iso6346.calc_check_digit(serial))
    for company in out.subjects.companies:
        company.name = f"{company.name} {n}"
    return out


def _issue(node: Node, alert: alert_pb2.Alert, count: int, first: int) -> None:
    officer, _token = OfficerRegistry(node.store.engine).add(f"seeder-{time.time_ns()}", "liaison")
    for start in range(0, count, BATCH):
        with node.store.write() as w:
            for n in range(start, min(start + BATCH, count)):
                node.alerts.issue(w, officer, numbered(alert, first + n))


def _receive(
    node: Node, fed: LocalFederation, partner: str, alert: alert_pb2.Alert, count: int, first: int
) -> None:
    """``count`` alerts from ``partner``, sealed with its keys, through the inbound path."""
    treaty = fed.signed_treaty(alert.recipients[0].treaty_id).treaty
    keys = fed.agencies[partner].keys
    agency = node.config.agency_id
    recipient_keys = lookup_recipient_keys(node.trust.directory, [agency])
    # They never came through the gateway: each carries the inbox cursor as it
    # is, which therefore stays where the gateway has it (the node would read
    # again from the gateway's last sequence if it were beyond it).
    sequence = node.inbound.cursor()
    for start in range(0, count, BATCH):
        entries = []
        for n in range(start, min(start + BATCH, count)):
            record = rec.alert_to_record(numbered(alert, first + n))
            payload = canonical_bytes(redact(record, treaty, "alert"))
            now = datetime.now(UTC)
            fields = HeaderFields(
                sender=partner,
                recipients=(agency,),
                treaty_id=treaty.id,
                treaty_version=treaty.version,
                kind=envelope_pb2.MESSAGE_KIND_ALERT,
                handling=alert.handling,
                tlp=alert.tlp,
                categories=("counterfeit_goods",),
                expire_time=now + timedelta(days=300),
                create_time=now,
            )
            envelope = seal(
                fields,
                payload,
                signing_key=keys.signing,
                signing_key_id=keys.signing_key_id,
                recipient_keys=recipient_keys,
            )
            entries.append(gateway_service_pb2.InboxEntry(sequence=sequence, envelope=envelope))
        outcomes = node.inbound.handle_batch(entries)
        if set(outcomes) != {"stored"}:
            raise RuntimeError(f"seeding: the node did not store what it received: {outcomes}")
        node.sharing.receipts.flush()


def seed(
    config: Path,
    fed: LocalFederation,
    *,
    partner: str,
    alert: alert_pb2.Alert,
    count: int,
) -> dict[str, Any]:
    """Add ``count`` alerts to the node of ``config`` (every other one received); statistics.

    ``alert`` is what is issued to ``partner`` (its one recipient, under the
    treaty it names) and, redacted by that treaty, what the partner sends.
    """
    started = time.perf_counter()
    node = _node(config, fed, alert.recipients[0].treaty_id)
    try:
        first = node.store.head_seq()  # numbers not used by an earlier seeding
        received = count // 2
        _receive(node, fed, partner, alert, received, first)
        _issue(node, alert, count - received, first + received)
        settled = _settle_outbox(node)
        assert node.correlator is not None
        node.correlator.catch_up()
        while events := node.store.unnotified(1000):
            node.store.mark_notified([e.seq for e in events])
        engine = node.store.engine
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
    finally:
        node.stop()
    return {
        "alerts": count,
        "issued": count - received,
        "received": received,
        "envelopes_settled": settled,
        "seconds": round(time.perf_counter() - started, 1),
    }
