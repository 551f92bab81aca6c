"""Review before release (four eyes) for alerts.

A treaty may list record kinds, data categories or alert kinds in
``review_required_for``. ``CreateAlert`` sends at once to the recipients of
every other treaty, and *holds* the alert for the recipients of each
treaty that reserves it: one review row per alert and treaty
(:mod:`node.kinds.workflow_rows`, kind ``alert_review``), state
``pending``; an alert held for every recipient is ``PENDING_REVIEW``.
Everything but the review is checked when the alert is written (kind,
categories, handling, recipients), so an approval cannot meet a refusal
the author could have seen.

An officer with the ``approve`` permission (role ``approver``, or admin)
who is not the author approves (``ApproveAlert``) or rejects it with a
reason (``RejectAlert``). Approval seals one envelope per treaty view, as
issuing does, each carrying a
:class:`~intelshare.v1.envelope_pb2.ReviewAttestation` (author and
approver as officer ids of this node, approval time, payload digest) in
the signed header; :mod:`intelshare.review` says what the gateway and the
recipients check of it. A rejected alert held for everyone is revoked on
this node (reason kept); nothing was ever sent.

``ListPendingReviews`` shows each held alert with the treaty's preview of
what each of its recipients would receive (:meth:`Sharing.plan`, as
``PreviewAlert``).

Receiving: :meth:`Reviews.check_received` runs the rule again on the
opened record (whose alert kind the header may not show) and compares the
attestation's payload digest with the payload opened.

Left as it was: an update of an alert under a treaty that reserves it is
refused ``REVIEW_REQUIRED`` (updates carry no new review); revoke and
issue again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from intelshare import errors
from intelshare.review import payload_problem
from intelshare.treaty import decide_review, review_matches
from intelshare.v1 import alert_pb2, alert_service_pb2, envelope_pb2
from node.kinds import workflow_rows as rows
from node.schema import alert as rec
from node.schema import names
from node.sharing.engine import Refusal, Share, View
from node.sharing.incoming import Incoming, Refused
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer, dumps, now_ms

if TYPE_CHECKING:
    from node.kinds.alerts import Alerts

KIND = "alert_review"
PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
#: node_alerts.state of an alert held for every recipient
HELD = "pending"


def review_name(alert_id: str, treaty_id: str) -> str:
    return f"alerts/{alert_id}/reviews/{treaty_id}"


def _provisional(author: str) -> envelope_pb2.ReviewAttestation:
    """An approval as it will look, to check everything else now."""
    review = envelope_pb2.ReviewAttestation(author=author or "author", approver="(approver)")
    review.approve_time.FromMilliseconds(now_ms())
    return review


class Reviews:
    """The review workflow of one node's alerts (see the module docstring)."""

    def __init__(self, alerts: Alerts) -> None:
        self.alerts = alerts
        self.sharing = alerts.sharing

    # --- issuing -------------------------------------------------------------------------

    def held(
        self, share: Share, groups: Mapping[str, Sequence[str]], author: str
    ) -> dict[str, tuple[str, ...]]:
        """The treaties of ``groups`` that reserve ``share`` for review, with what matched.

        Those treaties are checked on everything but the review now (with
        an approval as it will look), raising the refusal the author would
        otherwise only meet at approval.
        """
        held: dict[str, tuple[str, ...]] = {}
        for treaty_id in sorted(groups):
            try:
                treaty = self.sharing.current(treaty_id)
            except errors.IntelshareError:
                continue  # the plan refuses it with its own reason
            matched = review_matches(
                treaty,
                kind=share.treaty_kind,
                categories=share.categories,
                alert_kind=share.alert_kind,
            )
            if matched:
                held[treaty_id] = matched
        if held:
            check = replace(share, review=_provisional(author))
            for item in self.sharing.plan(check, {tid: groups[tid] for tid in held}):
                if isinstance(item, Refusal):
                    raise item.error
        return held

    def hold(
        self,
        w: Writer,
        officer: Officer,
        alert_id: str,
        groups: Mapping[str, Sequence[str]],
        held: Mapping[str, tuple[str, ...]],
        expire_ms: int,
    ) -> None:
        """Write one pending review per held treaty (in the alert's transaction)."""
        for treaty_id, matched in sorted(held.items()):
            rows.insert(
                w,
                row_id=str(uuid.uuid4()),
                kind=KIND,
                state=PENDING,
                agency=self.alerts.agency_id,
                treaty_id=treaty_id,
                treaty_version=0,
                item={
                    "alert_id": alert_id,
                    "recipients": sorted(groups[treaty_id]),
                    "matched": list(matched),
                },
                expire_ms=expire_ms,
                officer_id=officer.officer_id,
            )
        w.event("alert.review_pending", alert_id=alert_id)
        w.audit(
            "review_held",
            {
                "alert_id": alert_id,
                "officer_id": officer.officer_id,
                "treaties": sorted(held),
            },
        )

    # --- deciding ------------------------------------------------------------------------

    def _pending(self, w: Writer, alert_id: str, treaty_id: str) -> list[Any]:
        found = [
            r
            for r in rows.where(w.conn, KIND, [PENDING])
            if rows.item(r).get("alert_id") == alert_id
            and (not treaty_id or r.treaty_id == treaty_id)
        ]
        if not found:
            name = rec_name(alert_id)
            raise errors.ReviewNotPending(
                f"alert {name} is not waiting for review"
                + (f" under treaty {treaty_id}" if treaty_id else ""),
                metadata={"name": name},
            )
        return found

    def _share(self, row: Any, review: envelope_pb2.ReviewAttestation | None) -> Share:
        record = json.loads(row.record)
        return Share(
            record=record,
            treaty_kind="alert",
            fields_kind="alert",
            message_kind=envelope_pb2.MESSAGE_KIND_ALERT,
            handling=row.handling,
            tlp=row.tlp,
            categories=json.loads(row.categories),
            expire_ms=row.expire_ms,
            alert_kind=row.kind,
            paths=frozenset(rec.field_paths(record)),
            review=review,
        )

    def approve(self, w: Writer, officer: Officer, name: str, treaty_id: str) -> alert_pb2.Alert:
        alert_id = _parse(name)
        row = self.alerts._row(w.conn, alert_id)
        pending = self._pending(w, alert_id, treaty_id)
        if row.created_by == officer.officer_id:
            raise errors.ApproverIsAuthor(
                f"{officer.name} wrote alert {name}; a review needs a second officer",
                metadata={"name": name},
            )
        review = envelope_pb2.ReviewAttestation(
            author=row.created_by or "", approver=officer.officer_id
        )
        review.approve_time.FromMilliseconds(now_ms())
        share = self._share(row, review)
        groups = {r.treaty_id: rows.item(r)["recipients"] for r in pending}
        views = self.sharing.views(share, groups)
        self._write_views(w, alert_id, views)
        for r in pending:
            if not rows.move(w, r, APPROVED, {"approver": officer.officer_id}):
                raise errors.ChangedMeanwhile(
                    f"alert {name} was decided meanwhile; look again", metadata={"name": name}
                )
        if row.state == HELD:
            w.conn.execute(
                update(t.alerts)
                .where(t.alerts.c.alert_id == alert_id, t.alerts.c.state == HELD)
                .values(state="active", update_ms=now_ms())
            )
        w.event("alert.approved", alert_id=alert_id)
        w.audit(
            "review_approved",
            {
                "alert_id": alert_id,
                "officer_id": officer.officer_id,
                "author": row.created_by or "",
                "treaties": sorted(groups),
                "messages": [v.sealed.message_id for v in views if v.sealed is not None],
            },
        )
        return self.alerts._load(w.conn, alert_id)

    def _write_views(self, w: Writer, alert_id: str, views: list[View]) -> None:
        """The views, deliveries and outbound rows of a release (as issuing writes them)."""
        sealed_all = [v.sealed for v in views if v.sealed is not None]
        view_rows: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        for v, sealed in zip(views, sealed_all, strict=True):
            view_rows.append(
                {
                    "view_id": sealed.message_id,
                    "alert_id": alert_id,
                    "treaty_id": v.treaty.id,
                    "treaty_version": v.treaty.version,
                    "recipients": dumps(v.recipients),
                    "payload": sealed.payload,
                    "removed_fields": dumps(v.removed),
                    "revision": 1,
                }
            )
            deliveries.extend(
                {
                    "alert_id": alert_id,
                    "agency_id": agency,
                    "view_id": sealed.message_id,
                    "treaty_id": v.treaty.id,
                    "treaty_version": v.treaty.version,
                    "hit_count": 0,
                }
                for agency in v.recipients
            )
        # Written now, not at the end of the transaction: the answer reads them back.
        for sealed in sealed_all:
            self.sharing.queue(w, sealed, record_id=alert_id)
        if view_rows:
            w.conn.execute(insert(t.views), view_rows)
            w.conn.execute(insert(t.deliveries), deliveries)

    def reject(
        self, w: Writer, officer: Officer, name: str, treaty_id: str, reason: str
    ) -> alert_pb2.Alert:
        alert_id = _parse(name)
        v: dict[str, str] = {}
        rec._text(v, "reason", reason, max_len=2000, required=True, multiline=True)
        if v:
            raise errors.invalid_fields(rec.summary(v, "a rejection needs a reason"), violations=v)
        row = self.alerts._row(w.conn, alert_id)
        pending = self._pending(w, alert_id, treaty_id)
        for r in pending:
            if not rows.move(w, r, REJECTED, {"rejected_by": officer.officer_id, "reason": reason}):
                raise errors.ChangedMeanwhile(
                    f"alert {name} was decided meanwhile; look again", metadata={"name": name}
                )
        left = [
            r
            for r in rows.where(w.conn, KIND, [PENDING])
            if rows.item(r).get("alert_id") == alert_id
        ]
        if row.state == HELD and not left:
            # Held for everyone and now for no one: it never left this node.
            at = now_ms()
            w.conn.execute(
                update(t.alerts)
                .where(t.alerts.c.alert_id == alert_id, t.alerts.c.state == HELD)
                .values(
                    state="revoked",
                    revoke_ms=at,
                    revoke_reason=f"rejected in review: {reason}",
                    update_ms=at,
                )
            )
        w.event("alert.rejected", alert_id=alert_id)
        w.audit(
            "review_rejected",
            {
                "alert_id": alert_id,
                "officer_id": officer.officer_id,
                "treaties": sorted(r.treaty_id for r in pending),
            },
        )
        return self.alerts._load(w.conn, alert_id)

    # --- listing ---------------------------------------------------------------------------

    def list_pending(
        self, officer: Officer, page_size: int, page_token: str
    ) -> tuple[list[alert_service_pb2.PendingReview], str]:
        with self.alerts.store.engine.connect() as conn:
            found, token = rows.page(
                conn,
                self.alerts.store.page_tokens,
                KIND,
                caller=officer.officer_id,
                states=[PENDING],
                page_size=page_size,
                page_token=page_token,
                newest_first=False,
            )
            alerts = {}
            for r in found:
                alert_id = rows.item(r)["alert_id"]
                if alert_id not in alerts:
                    alerts[alert_id] = (
                        self.alerts._row(conn, alert_id),
                        self.alerts._load(conn, alert_id),
                    )
            # Approvers know their colleagues by name, not by officer id.
            authors = {a.created_by for a, _ in alerts.values() if a.created_by}
            names = dict(
                conn.execute(
                    select(t.officers.c.officer_id, t.officers.c.name).where(
                        t.officers.c.officer_id.in_(sorted(authors))
                    )
                ).all()
            )
        out = []
        for r in found:
            data = rows.item(r)
            alert_row, alert = alerts[data["alert_id"]]
            share = self._share(alert_row, _provisional(alert_row.created_by or ""))
            previews = self.alerts.previews_of(
                alert, share, {r.treaty_id: list(data["recipients"])}
            )
            out.append(
                alert_service_pb2.PendingReview(
                    name=review_name(data["alert_id"], r.treaty_id),
                    alert=alert,
                    treaty_id=r.treaty_id,
                    matched=list(data.get("matched", [])),
                    author=names.get(alert_row.created_by, alert_row.created_by or ""),
                    create_time=rec.ms_to_ts(r.create_ms),
                    previews=previews,
                )
            )
        return out, token

    # --- receiving -------------------------------------------------------------------------

    @staticmethod
    def check_received(inc: Incoming, record: Mapping[str, Any]) -> None:
        """The review rule on the opened record; :class:`Refused` when it does not hold.

        The header's kind and categories were checked before the handler
        (as the gateway did); the record's own alert kind is known only
        now, and only now can the attestation's payload digest be compared.
        """
        h = inc.header
        decision = decide_review(
            inc.treaty,
            kind="alert",
            categories=h.categories,
            alert_kind=str(record.get("kind", "")),
            attested=h,
        )
        if not decision:
            raise Refused(decision.reason, decision.detail)
        matched = review_matches(
            inc.treaty,
            kind="alert",
            categories=h.categories,
            alert_kind=str(record.get("kind", "")),
        )
        if matched:
            problem = payload_problem(h, hashlib.sha256(inc.payload).digest())
            if problem:
                raise Refused("REVIEW_REQUIRED", f"treaty {inc.treaty.label}: {problem}")


def rec_name(alert_id: str) -> str:
    return f"alerts/{alert_id}"


def _parse(name: str) -> str:
    return names.assigned_id(name, "alerts")


__all__ = ["HELD", "KIND", "Reviews", "review_name"]
