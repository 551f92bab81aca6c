"""Alerts: issuing, updating, revoking, acknowledging, hits — both sides.

The issuing side
----------------
An alert names its recipients, each under a treaty. For every treaty the
node takes the newest version in force, checks that it permits the alert
(kind, category, handling code, TLP, every recipient a party; the precise
``PolicyRefused`` subclass otherwise, naming the rule), and **redacts**
the record with the treaty's field allow-list. Recipients under one treaty
share one redacted *view* and one envelope; the issuer keeps each view
(``node_views``) and every payload it sealed (``node_outbound``), so it can
show exactly what each recipient received (``GetAlertDelivery``). The
recipient's alert id is the message id of the envelope it received; the
issuer's alert id is the message id of its first view, so with a single
treaty both sides use the same id.

Updates and revocations are sealed per view (``ALERT_UPDATE`` with the new
redacted record, ``ALERT_REVOCATION``), with ``reference_id`` = the view's
id, so each recipient applies them to the alert it holds. Updates use the
``alert`` allow-list: an update is the alert record again, and a field a
partner may not see in an alert must not reach it through an update.

The receiving side
------------------
Received alerts are stored as received (only what the treaty let through)
and owe a ``RECEIPT``, written in the same transaction and sealed a moment
later together with the others owed to that issuer (:mod:`node.sharing.receipts`),
which the issuer records as *delivered*. Officers acknowledge (``ACKNOWLEDGEMENT``)
and report hits (``HIT_REPORT``, redacted with the treaty's ``hit_report``
allow-list; without one, the issuer learns that there was a hit and when,
not where). Control messages ride on the treaty of the alert they refer to,
and the receiving node checks that they refer to something it really
shared with that sender under that treaty.

Review before release and onward sharing are :mod:`node.kinds.reviews`
(an alert a treaty reserves for review is held until an approver releases
it) and :mod:`node.kinds.forwarding` (a received alert passed on under the
original treaty's onward-sharing rule, with the originator's consent where
it asks for one; updates and revocations follow the copies).

Every mutation writes its event row in the same transaction (see
:mod:`node.storage.store`); every officer read of a received alert is audited.

The package, module by module
-----------------------------
``db``
    names, the listing filter, statements, and the protos built from rows;
``core``
    collaborators, rows, drafts and the checks every operation makes;
``issuing``
    preview, issue, update, revoke;
``answers``
    the recipient's acknowledgements and hit reports;
``reading``
    officers' reads, a recipient's copy, the gateway's receipt;
``inbound``
    received alerts, updates, revocations, answers and receipts;
this module
    :class:`Alerts`, all of them together, expiry and retention.
"""

from __future__ import annotations

import logging

from sqlalchemy import (
    delete,
    select,
    update,
)

from intelshare.v1 import envelope_pb2
from node.kinds.alerts.answers import AlertAnswers
from node.kinds.alerts.db import (
    ACTIVE,
    RECEIVED,
    ListFilter,
    alert_name,
    parse_name,
)
from node.kinds.alerts.inbound import AlertInbound
from node.kinds.alerts.issuing import AlertIssuing
from node.kinds.alerts.reading import AlertReading
from node.kinds.forwarding import Forwarding
from node.kinds.reviews import Reviews
from node.sharing.engine import Sharing
from node.storage import tables as t
from node.storage.store import Store, now_ms

log = logging.getLogger(__name__)


class Alerts(AlertIssuing, AlertAnswers, AlertReading, AlertInbound):
    """Alert operations of one node (officer side and inbound handlers), on the engine."""

    def __init__(
        self, *, agency_id: str, store: Store, sharing: Sharing, max_alert_days: int
    ) -> None:
        super().__init__(
            agency_id=agency_id, store=store, sharing=sharing, max_alert_days=max_alert_days
        )
        #: review before release and onward sharing (node.kinds.reviews, .forwarding)
        self.reviews = Reviews(self)
        self.forwarding = Forwarding(self)
        sharing.register(envelope_pb2.MESSAGE_KIND_ALERT, self.on_alert)
        sharing.register(envelope_pb2.MESSAGE_KIND_ALERT_UPDATE, self.on_update)
        sharing.register(envelope_pb2.MESSAGE_KIND_ALERT_REVOCATION, self.on_revocation)
        sharing.on_receipt(self._on_receipt)
        sharing.register(envelope_pb2.MESSAGE_KIND_ACKNOWLEDGEMENT, self.on_control)
        sharing.register(envelope_pb2.MESSAGE_KIND_HIT_REPORT, self.on_control)
        sharing.on_failed(self.on_send_failed)

    def note_expired(self, limit: int = 500) -> int:
        """Emit ``alert.expired`` once for every alert whose expire_time passed."""
        now = now_ms()
        with self.store.engine.connect() as conn:
            ids = [
                r.alert_id
                for r in conn.execute(
                    select(t.alerts.c.alert_id)
                    .where(
                        t.alerts.c.state == ACTIVE,
                        t.alerts.c.expire_ms <= now,
                        t.alerts.c.expired_noted.is_(False),
                    )
                    .limit(limit)
                )
            ]
        done = 0
        for alert_id in ids:
            with self.store.write() as w:
                changed = w.conn.execute(
                    update(t.alerts)
                    .where(
                        t.alerts.c.alert_id == alert_id,
                        t.alerts.c.expired_noted.is_(False),
                        t.alerts.c.expire_ms <= now,
                    )
                    .values(expired_noted=True)
                )
                if changed.rowcount:
                    w.event("alert.expired", alert_id=alert_id)
                    done += 1
        return done

    def purge_retention(self, limit: int = 500) -> int:
        """Delete received records whose treaty retention has ended, with audit entries."""
        now = now_ms()
        purged = 0
        with self.store.engine.connect() as conn:
            alert_rows = conn.execute(
                select(t.alerts.c.alert_id, t.alerts.c.message_id, t.alerts.c.treaty_id)
                .where(t.alerts.c.direction == RECEIVED, t.alerts.c.retain_until_ms <= now)
                .limit(limit)
            ).all()
            stray = conn.execute(
                select(t.received.c.message_id, t.received.c.treaty_id)
                .where(t.received.c.retain_until_ms <= now)
                .limit(limit)
            ).all()
            hit_rows = conn.execute(
                select(t.hits.c.hit_id, t.hits.c.message_id, t.hits.c.alert_id)
                .where(t.hits.c.direction == RECEIVED, t.hits.c.retain_until_ms <= now)
                .limit(limit)
            ).all()
        for a in alert_rows:
            with self.store.write() as w:
                gone = w.conn.execute(
                    delete(t.alerts).where(
                        t.alerts.c.alert_id == a.alert_id, t.alerts.c.retain_until_ms <= now
                    )
                )
                if not gone.rowcount:
                    continue
                # Every envelope about the alert goes with it (its updates and
                # revocation too): the record they changed no longer exists.
                envs = w.conn.execute(
                    delete(t.received)
                    .where(t.received.c.alert_id == a.alert_id)
                    .returning(t.received.c.message_id)
                ).all()
                w.event("alert.purged", alert_id=a.alert_id)
                w.audit(
                    "purged",
                    {
                        "alert_id": a.alert_id,
                        "treaty": a.treaty_id,
                        "messages": sorted(e.message_id for e in envs),
                        "rule": "retention_days",
                    },
                )
                purged += 1
        for h in hit_rows:
            with self.store.write() as w:
                gone = w.conn.execute(delete(t.hits).where(t.hits.c.hit_id == h.hit_id))
                if gone.rowcount:
                    w.audit(
                        "purged",
                        {
                            "alert_id": h.alert_id,
                            "hit_message_id": h.message_id,
                            "rule": "retention_days",
                        },
                    )
                    purged += 1
        for s in stray:
            with self.store.write() as w:
                gone = w.conn.execute(
                    delete(t.received).where(
                        t.received.c.message_id == s.message_id,
                        t.received.c.retain_until_ms <= now,
                    )
                )
                if gone.rowcount:
                    w.audit(
                        "purged",
                        {
                            "message_id": s.message_id,
                            "treaty": s.treaty_id,
                            "rule": "retention_days",
                        },
                    )
                    purged += 1
        return purged


__all__ = ["Alerts", "ListFilter", "alert_name", "parse_name"]
