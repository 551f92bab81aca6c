"""Onward sharing of received alerts: forward, consent, provenance, recall.

The forwarder (a recipient of an alert)
----------------------------------------
``ForwardAlert`` asks to pass a received alert, or some of its fields, to
third agencies under a treaty (the *onward* treaty). The original treaty's
``onward_sharing`` rule decides (:func:`intelshare.onward.decide_onward`):
``forbidden`` is ``ONWARD_SHARING_FORBIDDEN``; ``within_treaty`` sends at
once to parties of the original treaty; ``with_originator_consent`` sends
a ``CONSENT_REQUEST`` to the originator on the original treaty (header
``consent``: the record's message id, the third agencies, the onward
treaty) and keeps the forward *awaiting consent* (a row of kind
``alert_forward``, :mod:`node.kinds.workflow_rows`).

The copy is the received record redacted by the original treaty, then by
the onward treaty (what both allow), then to the fields asked for; it is
sealed as an ``ALERT`` under the onward treaty whose signed header carries
its :class:`~intelshare.v1.envelope_pb2.Provenance` (originator, original
message id and treaty, and the originator's consent envelope when one was
needed). When the originator later updates or revokes the alert, the
forwarder's node passes the update (redacted the same way) or a
revocation on to every third agency it sent a copy to.

The originator
--------------
A consent request is stored (kind ``consent_request``) only if it names a
message this node sent to the requester under that treaty. An officer with
the ``consent`` permission grants (a ``CONSENT_GRANT`` sealed for the
requester, with the same terms, valid until the alert expires: the signed
consent) or refuses with a reason (``CONSENT_REFUSAL``). That side is
:mod:`node.kinds.consents`, a mixin of :class:`Forwarding`.

The third agency
----------------
The gateway and the inbox check the provenance and the consent
(:func:`intelshare.onward.decide_provenance`); :meth:`Forwarding.check_received`
adds what only an opened copy shows: it carries nothing the original
treaty does not allow either. Its retention is the shorter of the two
treaties'. ``GetAlert`` shows the provenance, read from the envelope kept.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from intelshare import errors
from intelshare.onward import decide_onward, needs_consent, redact_onward
from intelshare.treaty import Treaty, check_fields, retention_until
from intelshare.v1 import alert_pb2, alert_service_pb2, envelope_pb2
from node.kinds import workflow_rows as rows
from node.kinds.consents import CONSENT, ConsentAnswers
from node.schema import alert as rec
from node.schema import names
from node.sharing.engine import Share
from node.sharing.incoming import Incoming, Refused, Stored, parse_payload
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer

if TYPE_CHECKING:
    from node.kinds.alerts import Alerts

FORWARD = "alert_forward"

AWAITING = "awaiting_consent"
SENT = "sent"
REFUSED = "refused"
RECALLED = "recalled"

_FORWARD_STATES = {
    AWAITING: alert_service_pb2.FORWARD_STATE_AWAITING_CONSENT,
    SENT: alert_service_pb2.FORWARD_STATE_SENT,
    REFUSED: alert_service_pb2.FORWARD_STATE_REFUSED,
    RECALLED: alert_service_pb2.FORWARD_STATE_RECALLED,
}


def _alert_id(name: str, field: str = "name") -> str:
    return names.assigned_id(name, "alerts", field)


class Forwarding(ConsentAnswers):
    """Onward sharing of one node's alerts (see the module docstring)."""

    def __init__(self, alerts: Alerts) -> None:
        self.alerts = alerts
        self.sharing = alerts.sharing
        self.agency_id = alerts.agency_id
        sharing = alerts.sharing
        sharing.register(envelope_pb2.MESSAGE_KIND_CONSENT_REQUEST, self.on_consent_request)
        sharing.register(envelope_pb2.MESSAGE_KIND_CONSENT_GRANT, self.on_consent_answer)
        sharing.register(envelope_pb2.MESSAGE_KIND_CONSENT_REFUSAL, self.on_consent_answer)
        sharing.on_receipt(self._on_receipt)

    # --- the forwarder ---------------------------------------------------------------------

    def _original(self, row: Any) -> Treaty:
        doc = self.sharing.trust.treaty(row.treaty_id, row.treaty_version)
        if doc is None:
            raise errors.TreatyNotInForce(
                f"treaty {row.treaty_id} v{row.treaty_version} is not known here",
                metadata={"treaty_id": row.treaty_id, "treaty_version": str(row.treaty_version)},
            )
        return doc.treaty

    def forward(
        self,
        w: Writer,
        officer: Officer,
        name: str,
        *,
        agency_ids: Sequence[str],
        treaty_id: str,
        fields: Sequence[str],
        reason: str,
    ) -> alert_service_pb2.Forward:
        alert_id = _alert_id(name)
        v: dict[str, str] = {}
        agencies = sorted(set(agency_ids))
        if not agencies or any(not a or len(a) > 128 for a in agencies):
            v["agency_ids"] = "one or more agency ids"
        if not treaty_id or len(treaty_id) > 128:
            v["treaty_id"] = "the treaty the third agencies receive it under"
        for n, path in enumerate(fields):
            if not path or len(path) > 200 or not all(p.isidentifier() for p in path.split(".")):
                v[f"fields[{n}]"] = "a field path such as subjects.containers"
        rec._text(v, "reason", reason, max_len=2000, multiline=True)
        if v:
            raise errors.invalid_fields(rec.summary(v, "invalid forward"), violations=v)
        row = self.alerts._row(w.conn, alert_id)
        if row.direction != "received":
            raise errors.NotRecipient(
                f"alert {name} was issued by this agency; only a received alert is passed on",
                metadata={"name": name},
            )
        if row.state == "revoked":
            raise errors.AlertRevoked(
                f"alert {name} was revoked by {row.origin_agency}",
                metadata={"name": name, "state": "revoked"},
            )
        original = self._original(row)
        decision = decide_onward(
            original, originator=row.origin_agency, forwarder=self.agency_id, recipients=agencies
        )
        decision.raise_if_refused()
        self.sharing._require_known(agencies)
        onward = self.sharing.current(treaty_id)
        record = json.loads(row.record)
        copy = self._copy(record, original, onward, list(fields))
        if not copy:
            raise errors.FieldNotPermitted(
                f"nothing of alert {name} is allowed by both {original.label} and {onward.label}",
                metadata={"rule": "fields"},
            )
        # Everything the onward treaty says about the copy, checked now.
        self.sharing.check(
            onward,
            kind="alert",
            recipients=agencies,
            categories=json.loads(row.categories),
            handling=row.handling,
            tlp=row.tlp,
            alert_kind=row.kind,
        )
        forward_id = str(uuid.uuid4())
        item: dict[str, Any] = {
            "alert_id": alert_id,
            "original_message_id": row.message_id,
            "originator": row.origin_agency,
            "agency_ids": agencies,
            "treaty_id": treaty_id,
            "fields": list(fields),
            "reason": reason,
            "removed": sorted(set(rec.field_paths(record)) - set(rec.field_paths(copy))),
        }
        if needs_consent(original):
            original_in_force = self.sharing.in_force_version(row.treaty_id, row.treaty_version)
            self.sharing.check(
                original_in_force,
                kind="consent_request",
                recipients=[row.origin_agency],
                categories=[],
                handling=row.handling,
                tlp=row.tlp,
            )
            request = self.sharing.seal(
                original_in_force,
                kind=envelope_pb2.MESSAGE_KIND_CONSENT_REQUEST,
                recipients=[row.origin_agency],
                handling=row.handling,
                tlp=row.tlp,
                categories=[],
                expire_ms=self.sharing.control_expire_ms(),
                payload={"fields": list(fields), "reason": reason},
                reference_id=row.message_id,
                consent=envelope_pb2.OnwardConsent(
                    original_message_id=row.message_id,
                    onward_recipients=agencies,
                    onward_treaty_id=treaty_id,
                ),
            )
            self.sharing.queue(w, request, record_id=alert_id)
            item["request_message_id"] = request.message_id
            state = AWAITING
        else:
            state = SENT
        rows.insert(
            w,
            row_id=forward_id,
            kind=FORWARD,
            state=state,
            agency=row.origin_agency,
            treaty_id=treaty_id,
            treaty_version=onward.version,
            item=item,
            expire_ms=row.expire_ms,
            officer_id=officer.officer_id,
            handling=row.handling,
            tlp=row.tlp,
        )
        if state == SENT:
            fwd = rows.get(w.conn, FORWARD, forward_id)
            assert fwd is not None
            self._send(w, fwd, consent_id="", consent_envelope=b"")
        w.event(
            "alert.forward_requested" if state == AWAITING else "alert.forwarded",
            alert_id=alert_id,
        )
        w.audit(
            "forward_requested",
            {
                "alert_id": alert_id,
                "forward_id": forward_id,
                "officer_id": officer.officer_id,
                "recipients": agencies,
                "treaty": treaty_id,
                "original_treaty": f"{original.id}@{original.version}",
                "state": state,
            },
        )
        found = rows.get(w.conn, FORWARD, forward_id)
        assert found is not None
        return _forward(found)

    @staticmethod
    def _copy(
        record: Mapping[str, Any], original: Treaty, onward: Treaty, fields: list[str]
    ) -> dict[str, Any]:
        try:
            return redact_onward(record, original, onward, "alert", fields)
        except errors.InvalidArgument as exc:
            raise errors.FieldInvalid(
                "fields name paths no treaty could allow", violations={"fields": exc.message}
            ) from None

    def _send(self, w: Writer, fwd: Any, *, consent_id: str, consent_envelope: bytes) -> None:
        """Seal and queue the copy of a forward (state ``sent``), with its provenance."""
        data = rows.item(fwd)
        row = self.alerts._row(w.conn, data["alert_id"])
        original = self._original(row)
        onward = self.sharing.current(fwd.treaty_id)
        copy = self._copy(json.loads(row.record), original, onward, list(data["fields"]))
        provenance = envelope_pb2.Provenance(
            originator=row.origin_agency,
            original_message_id=row.message_id,
            original_treaty_id=row.treaty_id,
            original_treaty_version=row.treaty_version,
            consent_id=consent_id,
            consent_envelope=consent_envelope,
        )
        share = Share(
            record=copy,
            treaty_kind="alert",
            fields_kind="alert",
            message_kind=envelope_pb2.MESSAGE_KIND_ALERT,
            handling=row.handling,
            tlp=row.tlp,
            categories=json.loads(row.categories),
            expire_ms=row.expire_ms,
            alert_kind=row.kind,
            provenance=provenance,
        )
        views = self.sharing.views(share, {fwd.treaty_id: list(data["agency_ids"])})
        sealed = views[0].sealed
        assert sealed is not None
        self.sharing.queue(w, sealed, record_id=row.alert_id)
        rows.move(
            w,
            fwd,
            SENT,
            {
                "message_id": sealed.message_id,
                "consent_id": consent_id,
                "consent_envelope": consent_envelope.hex(),
                "treaty_version": onward.version,
            },
        )

    def recall(self, w: Writer, row: Any) -> None:
        """The originator revoked ``row``: revoke every copy passed on."""
        for fwd in self._forwards_of(w, row.alert_id, [SENT, AWAITING]):
            data = rows.item(fwd)
            if fwd.state == SENT:
                treaty = self.sharing.in_force_or_current(
                    fwd.treaty_id, int(data.get("treaty_version", fwd.treaty_version))
                )
                sealed = self.sharing.seal(
                    treaty,
                    kind=envelope_pb2.MESSAGE_KIND_ALERT_REVOCATION,
                    recipients=list(data["agency_ids"]),
                    handling=row.handling,
                    tlp=row.tlp,
                    categories=[],
                    expire_ms=max(row.expire_ms, self.sharing.control_expire_ms()),
                    payload={},
                    reference_id=data["message_id"],
                )
                self.sharing.queue(w, sealed, record_id=row.alert_id)
                w.audit(
                    "forward_recalled",
                    {
                        "alert_id": row.alert_id,
                        "forward_id": fwd.record_id,
                        "recipients": list(data["agency_ids"]),
                        "message_id": sealed.message_id,
                    },
                )
            rows.move(w, fwd, RECALLED)
            w.event("alert.forward_recalled", alert_id=row.alert_id)

    def pass_update(self, w: Writer, row: Any, record: Mapping[str, Any]) -> None:
        """The originator updated ``row``: send the new version to every copy passed on."""
        for fwd in self._forwards_of(w, row.alert_id, [SENT]):
            data = rows.item(fwd)
            original = self._original(row)
            onward = self.sharing.in_force_or_current(
                fwd.treaty_id, int(data.get("treaty_version", fwd.treaty_version))
            )
            copy = self._copy(record, original, onward, list(data["fields"]))
            provenance = envelope_pb2.Provenance(
                originator=row.origin_agency,
                original_message_id=row.message_id,
                original_treaty_id=row.treaty_id,
                original_treaty_version=row.treaty_version,
                consent_id=str(data.get("consent_id", "")),
                consent_envelope=bytes.fromhex(str(data.get("consent_envelope", ""))),
            )
            current = self.alerts._row(w.conn, row.alert_id)
            share = Share(
                record=copy,
                treaty_kind="alert_update",
                fields_kind="alert",
                message_kind=envelope_pb2.MESSAGE_KIND_ALERT_UPDATE,
                handling=current.handling,
                tlp=current.tlp,
                categories=json.loads(current.categories),
                expire_ms=current.expire_ms,
                provenance=provenance,
            )
            views = self.sharing.views(
                share,
                {fwd.treaty_id: list(data["agency_ids"])},
                reference_ids={fwd.treaty_id: data["message_id"]},
            )
            sealed = views[0].sealed
            assert sealed is not None
            self.sharing.queue(w, sealed, record_id=row.alert_id)

    def _forwards_of(self, w: Writer, alert_id: str, states: list[str]) -> list[Any]:
        return [
            f
            for f in rows.where(w.conn, FORWARD, states)
            if rows.item(f).get("alert_id") == alert_id
        ]

    def list_forwards(
        self, officer: Officer, alert: str, page_size: int, page_token: str
    ) -> tuple[list[alert_service_pb2.Forward], str]:
        alert_id = _alert_id(alert, "alert") if alert else ""
        with self.alerts.store.engine.connect() as conn:
            found, token = rows.page(
                conn,
                self.alerts.store.page_tokens,
                FORWARD,
                caller=officer.officer_id,
                states=[],
                page_size=page_size,
                page_token=page_token,
                newest_first=True,
                filters=alert_id,
                extra=(t.records.c.record.like(f'%"alert_id":"{alert_id}"%') if alert_id else None),
            )
        return [_forward(f) for f in found], token

    def on_consent_answer(self, w: Writer, inc: Incoming) -> Stored:
        """The originator's grant or refusal of a consent this node asked for."""
        h = inc.header
        fwd = next(
            (
                f
                for f in rows.where(w.conn, FORWARD, [AWAITING])
                if rows.item(f).get("request_message_id") == h.reference_id
            ),
            None,
        )
        if fwd is None:
            raise Refused("REFERENCE_UNKNOWN", f"no consent request {h.reference_id!r} is open")
        data = rows.item(fwd)
        terms = h.consent
        if (
            h.sender != data["originator"]
            or terms.original_message_id != data["original_message_id"]
            or sorted(terms.onward_recipients) != sorted(data["agency_ids"])
            or terms.onward_treaty_id != fwd.treaty_id
        ):
            raise Refused(
                "CONSENT_INVALID",
                f"the answer from {h.sender} does not match consent request {h.reference_id}",
            )
        if h.kind == envelope_pb2.MESSAGE_KIND_CONSENT_GRANT:
            self._send(w, fwd, consent_id=h.message_id, consent_envelope=inc.envelope)
            w.event("alert.forwarded", alert_id=data["alert_id"], agency_id=h.sender)
        else:
            reason = str(parse_payload(inc.payload).get("reason", ""))[:2000]
            rows.move(w, fwd, REFUSED, {"refusal_reason": reason})
            w.event("alert.forward_refused", alert_id=data["alert_id"], agency_id=h.sender)
        return Stored(alert_id=data["alert_id"])

    def _on_receipt(self, w: Writer, inc: Incoming, refs: Sequence[str]) -> dict[str, Stored]:
        """Receipts from third agencies for copies passed on (nothing else to mark)."""
        sent = {
            str(rows.item(f).get("message_id")): rows.item(f)
            for f in rows.where(w.conn, FORWARD, [SENT, RECALLED])
        }
        return {
            ref: Stored(alert_id=sent[ref]["alert_id"])
            for ref in refs
            if ref in sent and inc.header.sender in sent[ref]["agency_ids"]
        }

    # --- the third agency --------------------------------------------------------------------

    def check_received(self, inc: Incoming, record: Mapping[str, Any]) -> int:
        """A copy passed on: nothing the original treaty forbids; its retention (ms).

        The provenance and consent were checked with the header (as at the
        gateway). Returns when the copy must be purged: the shorter of the
        two treaties' retention.
        """
        h = inc.header
        if not h.HasField("provenance"):
            return inc.retain_until_ms
        p = h.provenance
        doc = self.sharing.trust.treaty(p.original_treaty_id, p.original_treaty_version)
        if doc is None:
            raise Refused(
                "TREATY_NOT_IN_FORCE", f"the original treaty {p.original_treaty_id} is unknown"
            )
        decision = check_fields(record, doc.treaty, "alert")
        if not decision:
            raise Refused(
                decision.reason,
                f"{decision.detail} (the treaty the record was first shared under)",
            )
        received = datetime.fromtimestamp(inc.received_ms / 1000, UTC)
        original_end = int(retention_until(doc.treaty, received).timestamp() * 1000)
        return min(inc.retain_until_ms, original_end)

    def provenance_of(self, alert: alert_pb2.Alert) -> None:
        """Fill ``alert.provenance`` for a received copy that was passed on."""
        if alert.direction != alert_pb2.ALERT_DIRECTION_RECEIVED or not alert.received.message_id:
            return
        with self.alerts.store.engine.connect() as conn:
            data = conn.execute(
                select(t.received.c.envelope).where(
                    t.received.c.message_id == alert.received.message_id
                )
            ).scalar_one_or_none()
        if data is None:
            return
        header = envelope_pb2.Header.FromString(
            envelope_pb2.Envelope.FromString(bytes(data)).header_bytes
        )
        if not header.HasField("provenance"):
            return
        p = header.provenance
        alert.provenance.CopyFrom(
            alert_pb2.AlertProvenance(
                originator=p.originator,
                forwarder=header.sender,
                original_message_id=p.original_message_id,
                original_treaty_id=p.original_treaty_id,
                consent_id=p.consent_id,
            )
        )


def _forward(row: Any) -> alert_service_pb2.Forward:
    data = rows.item(row)
    return alert_service_pb2.Forward(
        name=f"alerts/{data['alert_id']}/forwards/{row.record_id}",
        agency_ids=list(data.get("agency_ids", [])),
        treaty_id=row.treaty_id,
        state=_FORWARD_STATES.get(row.state, alert_service_pb2.FORWARD_STATE_UNSPECIFIED),
        message_id=str(data.get("message_id", "")),
        consent_id=str(data.get("consent_id", "")),
        refusal_reason=str(data.get("refusal_reason", "")),
        removed_fields=list(data.get("removed", [])),
        create_time=rec.ms_to_ts(row.create_ms),
        update_time=rec.ms_to_ts(row.update_ms),
    )


__all__ = ["CONSENT", "FORWARD", "Forwarding"]
