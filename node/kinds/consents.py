"""Onward sharing, the originator's side: partners' consent requests and their answers.

A recipient of an alert that asks to pass it on under a treaty whose
``onward_sharing`` is ``with_originator_consent`` sends a
``CONSENT_REQUEST`` to the originator (:mod:`node.kinds.forwarding`). The
originator's node stores it (kind ``consent_request``,
:mod:`node.kinds.workflow_rows`) only if it names a message this node sent
to the requester under that treaty. An officer with the ``consent``
permission grants it (a ``CONSENT_GRANT`` sealed for the requester, with
the same terms, valid until the alert expires: the signed consent the
forwarded copy carries) or refuses it with a reason
(``CONSENT_REFUSAL``); ``ListConsentRequests`` lists them.

:class:`ConsentAnswers` is a mixin of :class:`node.kinds.forwarding.Forwarding`,
which registers :meth:`ConsentAnswers.on_consent_request` as the handler of
consent requests; it is a module of its own to keep the two sides apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from intelshare import errors
from intelshare.treaty import kind_name
from intelshare.v1 import alert_service_pb2, envelope_pb2
from node.kinds import workflow_rows as rows
from node.schema import alert as rec
from node.schema import names
from node.sharing.incoming import Incoming, Refused, Stored, parse_payload
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Writer, now_ms

if TYPE_CHECKING:
    from node.kinds.alerts import Alerts
    from node.sharing.engine import Sharing

CONSENT = "consent_request"

PENDING = "pending"
GRANTED = "granted"
REFUSED = "refused"

_CONSENT_STATES = {
    PENDING: alert_service_pb2.CONSENT_STATE_PENDING,
    GRANTED: alert_service_pb2.CONSENT_STATE_GRANTED,
    REFUSED: alert_service_pb2.CONSENT_STATE_REFUSED,
}
_CONSENT_FILTER: dict[int, str] = {int(v): k for k, v in _CONSENT_STATES.items()}


def _consent_id(name: str) -> str:
    return names.assigned_id(name, "consentRequests")


class ConsentAnswers:
    """The originator's answers to consent requests (see the module docstring)."""

    alerts: Alerts
    sharing: Sharing

    def on_consent_request(self, w: Writer, inc: Incoming) -> Stored:
        h = inc.header
        d = w.conn.execute(
            select(t.deliveries).where(
                t.deliveries.c.view_id == h.reference_id, t.deliveries.c.agency_id == h.sender
            )
        ).first()
        if d is None:
            raise Refused(
                "REFERENCE_UNKNOWN", f"no alert {h.reference_id!r} was sent to {h.sender}"
            )
        if d.treaty_id != h.treaty_id:
            raise Refused(
                "REFERENCE_MISMATCH",
                f"alert {h.reference_id} was shared under {d.treaty_id}, not {h.treaty_id}",
            )
        terms = h.consent
        if terms.original_message_id != h.reference_id or not terms.onward_recipients:
            raise Refused("MALFORMED", "the consent request does not say what it asks for")
        payload = parse_payload(inc.payload)
        fields = payload.get("fields", [])
        alert_row = self.alerts._row(w.conn, d.alert_id)
        rows.insert(
            w,
            row_id=h.message_id,
            kind=CONSENT,
            state=PENDING,
            agency=h.sender,
            treaty_id=h.treaty_id,
            treaty_version=h.treaty_version,
            item={
                "alert_id": d.alert_id,
                "original_message_id": h.reference_id,
                "requester": h.sender,
                "onward_recipients": sorted(terms.onward_recipients),
                "onward_treaty_id": terms.onward_treaty_id,
                "fields": [str(f) for f in fields] if isinstance(fields, list) else [],
                "reason": str(payload.get("reason", ""))[:2000],
            },
            expire_ms=alert_row.expire_ms,
            officer_id=None,
            handling=int(h.handling),
            tlp=int(h.tlp),
        )
        w.event("alert.consent_requested", alert_id=d.alert_id, agency_id=h.sender)
        return Stored(alert_id=d.alert_id)

    def _consent_row(self, w: Writer, name: str) -> Any:
        row = rows.get(w.conn, CONSENT, _consent_id(name))
        if row is None:
            raise errors.ConsentRequestNotFound(
                f"there is no consent request {name}", metadata={"name": name}
            )
        if row.state != PENDING:
            raise errors.ConsentRequestDecided(
                f"consent request {name} was already {row.state}",
                metadata={"name": name, "state": row.state},
            )
        return row

    def _answer(
        self,
        w: Writer,
        row: Any,
        kind: envelope_pb2.MessageKind.ValueType,
        payload: Mapping[str, Any],
        expire_ms: int,
    ) -> Any:
        data = rows.item(row)
        treaty = self.sharing.in_force_version(row.treaty_id, row.treaty_version)
        self.sharing.check(
            treaty,
            kind=kind_name(kind),
            recipients=[row.origin_agency],
            categories=[],
            handling=row.handling,
            tlp=row.tlp,
        )
        sealed = self.sharing.seal(
            treaty,
            kind=kind,
            recipients=[row.origin_agency],
            handling=row.handling,
            tlp=row.tlp,
            categories=[],
            expire_ms=expire_ms,
            payload=payload,
            reference_id=row.record_id,
            consent=envelope_pb2.OnwardConsent(
                original_message_id=data["original_message_id"],
                onward_recipients=list(data["onward_recipients"]),
                onward_treaty_id=data["onward_treaty_id"],
                request_message_id=row.record_id,
            ),
        )
        self.sharing.queue(w, sealed, record_id=data["alert_id"])
        return sealed

    def grant(self, w: Writer, officer: Officer, name: str) -> alert_service_pb2.ConsentRequest:
        row = self._consent_row(w, name)
        data = rows.item(row)
        alert = self.alerts._row(w.conn, data["alert_id"])
        if alert.state == "revoked" or alert.expire_ms <= now_ms():
            raise errors.AlertNotActive(
                f"alert alerts/{alert.alert_id} is no longer active; nothing to consent to",
                metadata={"name": name},
            )
        sealed = self._answer(
            w, row, envelope_pb2.MESSAGE_KIND_CONSENT_GRANT, {"granted": True}, alert.expire_ms
        )
        rows.move(
            w,
            row,
            GRANTED,
            {"decided_by": officer.officer_id, "consent_id": sealed.message_id, "at": now_ms()},
        )
        w.event("alert.consent_granted", alert_id=data["alert_id"], agency_id=row.origin_agency)
        w.audit(
            "consent_granted",
            {
                "alert_id": data["alert_id"],
                "request": row.record_id,
                "officer_id": officer.officer_id,
                "requester": row.origin_agency,
                "onward_recipients": list(data["onward_recipients"]),
                "onward_treaty": data["onward_treaty_id"],
                "message_id": sealed.message_id,
            },
        )
        found = rows.get(w.conn, CONSENT, row.record_id)
        return _consent(found)

    def refuse(
        self, w: Writer, officer: Officer, name: str, reason: str
    ) -> alert_service_pb2.ConsentRequest:
        v: dict[str, str] = {}
        rec._text(v, "reason", reason, max_len=2000, required=True, multiline=True)
        if v:
            raise errors.invalid_fields(rec.summary(v, "a refusal needs a reason"), violations=v)
        row = self._consent_row(w, name)
        data = rows.item(row)
        sealed = self._answer(
            w,
            row,
            envelope_pb2.MESSAGE_KIND_CONSENT_REFUSAL,
            {"reason": reason},
            self.sharing.control_expire_ms(),
        )
        rows.move(
            w,
            row,
            REFUSED,
            {"decided_by": officer.officer_id, "refusal_reason": reason, "at": now_ms()},
        )
        w.event("alert.consent_refused", alert_id=data["alert_id"], agency_id=row.origin_agency)
        w.audit(
            "consent_refused",
            {
                "alert_id": data["alert_id"],
                "request": row.record_id,
                "officer_id": officer.officer_id,
                "message_id": sealed.message_id,
            },
        )
        return _consent(rows.get(w.conn, CONSENT, row.record_id))

    def list_consents(
        self, officer: Officer, state: int, page_size: int, page_token: str
    ) -> tuple[list[alert_service_pb2.ConsentRequest], str]:
        if state and state not in _CONSENT_FILTER:
            raise errors.FieldInvalid("unknown state", violations={"state": "unknown state"})
        states = [_CONSENT_FILTER[state]] if state else []
        with self.alerts.store.engine.connect() as conn:
            found, token = rows.page(
                conn,
                self.alerts.store.page_tokens,
                CONSENT,
                caller=officer.officer_id,
                states=states,
                page_size=page_size,
                page_token=page_token,
                newest_first=True,
                filters=str(state),
            )
        return [_consent(r) for r in found], token


def _consent(row: Any) -> alert_service_pb2.ConsentRequest:
    data = rows.item(row)
    out = alert_service_pb2.ConsentRequest(
        name=f"consentRequests/{row.record_id}",
        alert=f"alerts/{data['alert_id']}",
        requester=row.origin_agency,
        onward_recipients=list(data.get("onward_recipients", [])),
        onward_treaty_id=str(data.get("onward_treaty_id", "")),
        fields=list(data.get("fields", [])),
        reason=str(data.get("reason", "")),
        state=_CONSENT_STATES.get(row.state, alert_service_pb2.CONSENT_STATE_UNSPECIFIED),
        create_time=rec.ms_to_ts(row.create_ms),
        refusal_reason=str(data.get("refusal_reason", "")),
        consent_id=str(data.get("consent_id", "")),
    )
    if "at" in data:
        out.decide_time.CopyFrom(rec.ms_to_ts(int(data["at"])))
    return out


__all__ = ["CONSENT", "ConsentAnswers"]
