"""Consent requests: partners asking to pass on an alert this agency issued.

A partner that received an alert under a treaty whose ``onward_sharing`` is
``with_originator_consent`` must have this agency's consent before its node
passes the alert on to third agencies under another treaty (the onward
treaty). Its node sends a consent request to this node; an officer whose
role has the node's ``consent`` permission (liaison, approver, admin) grants
it (``GrantConsent``: a signed consent goes to the partner, whose node then
sends the copy) or refuses it with a reason (``RefuseConsent``: the reason
goes to the partner, and nothing goes to the third agencies).

This page lists the requests still waiting (``ListConsentRequests`` with
state pending, newest first as the node pages them). Each card says which
alert, which partner asks, for which third agencies, under which treaty,
and the partner's reason. What the third agencies would receive: the node's
API has no preview of the forwarded copy (the partner's node makes it from
its own copy, keeping only what both treaties allow and, if the partner
named some, only those fields). So the card shows what the node does
answer, labelled as such: the fields asked for, and the partner's own copy
(``GetAlertDelivery``), the most a forwarded copy can hold.

The node decides everything, as on *Pending reviews* (the pattern both pages
share: :mod:`console.decisions`): who may list and answer (anyone else gets
the node's ``PERMISSION_DENIED`` as a page), that a refusal has a reason,
that the request is still open, that the alert is still active. The list is
not live, like the reviews: a card that changed under an officer's eyes
would be worse than one that says, when pressed, it was decided meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import decisions, link, web
from console.node_client import ConsoleClient
from console.sessions import Session
from intelshare import errors
from intelshare.v1 import alert_pb2, alert_service_pb2

_R = TypeVar("_R")

PENDING = alert_service_pb2.CONSENT_STATE_PENDING
#: What the page says after an answer posted without htmx (the redirect's ``done``).
_DONE = {
    "granted": "granted: the signed consent went to the partner, whose node sends the copy",
    "refused": "refused: the partner was sent your reason; nothing goes to the third agency",
}


@dataclass
class Asked:
    """A consent request with what the node shows about it (``*_problem``: why not)."""

    request: alert_service_pb2.ConsentRequest
    #: The alert as this agency wrote it.
    alert: alert_pb2.Alert | None
    alert_problem: str
    #: What the partner received of it: a forwarded copy holds no more than this.
    copy: alert_pb2.AlertDelivery | None
    copy_problem: str

    @property
    def treaty_id(self) -> str:
        """The treaty the partner received the alert under (whose rule asks for consent)."""
        if self.copy is not None:
            return self.copy.status.treaty_id
        if self.alert is not None:
            for d in self.alert.deliveries:
                if d.agency_id == self.request.requester:
                    return d.treaty_id
        return ""


async def _attempt(fn: Callable[..., _R], *args: Any) -> tuple[_R | None, str]:
    """The node's answer, or its refusal in one line when it will not show this record.

    Only the refusals that concern the record (gone, not this officer's to
    read) stay on the card; the others (node unreachable, session ended)
    are the page's, as everywhere else.
    """
    try:
        return await link.call(fn, *args), ""
    except (errors.NotFound, errors.PermissionDenied) as exc:
        return None, web.refusal_text(exc)


async def _read(client: ConsoleClient, request: alert_service_pb2.ConsentRequest) -> Asked:
    alert, alert_problem = await _attempt(client.get_alert, request.alert)
    copy, copy_problem = await _attempt(client.get_delivery, request.alert, request.requester)
    return Asked(request, alert, alert_problem, copy, copy_problem)


async def index(request: Request) -> Response:
    session = web.require(request)
    web.customs_only(session)
    message = decisions.done_line(request, _DONE, "request", "consentRequests")
    return await _page(request, session, request.query_params.get("page", ""), message=message)


async def _page(
    request: Request,
    session: Session,
    token: str,
    *,
    message: str = "",
    cards: dict[str, dict[str, Any]] | None = None,
    first: alert_service_pb2.ConsentRequest | None = None,
    status_code: int = 200,
) -> Response:
    """One page of waiting requests; ``cards`` holds what to show on a card (by request name)."""
    client = session.client
    assert client is not None
    page = await link.call(
        client.consent_requests_page, web.config(request).page_size, token, PENDING
    )
    found = list(page.requests)
    if first is not None and all(r.name != first.name for r in found):
        found.insert(0, first)
    asked = await asyncio.gather(*(_read(client, r) for r in found))
    return web.render(
        request,
        "consents.html",
        {
            "requests": asked,
            "next_token": page.next_page_token,
            "first_page": not token,
            "done": message,
            "cards": cards or {},
        },
        status_code=status_code,
        session=session,
    )


async def _find(session: Session, name: str) -> alert_service_pb2.ConsentRequest | None:
    """The request ``name`` if the node lists it as waiting now, else None."""
    assert session.client is not None
    for found in await link.call(session.client.consent_requests, PENDING):
        if found.name == name:
            return found
    return None


async def grant(request: Request) -> Response:
    return await _answer(request, grant=True)


async def refuse(request: Request) -> Response:
    return await _answer(request, grant=False)


async def _answer(request: Request, *, grant: bool) -> Response:
    session = web.require(request)
    web.customs_only(session)
    form = await web.form_with_csrf(request, session)
    client = session.client
    assert client is not None
    ident = request.path_params["request_id"]
    name = f"consentRequests/{ident}"  # the node checks the id (NAME_INVALID)
    reason = str(form.get("reason") or "").strip()
    request_id = str(form.get("request_id") or "") or None
    answer: decisions.Answer[alert_service_pb2.ConsentRequest]
    if grant:
        answer = await decisions.post(client.grant_consent, name, request_id)
    else:
        answer = await decisions.post(
            client.refuse_consent, name, reason, request_id, reason=reason
        )
    if answer.done is not None:
        if not web.is_htmx(request):
            done = "granted" if grant else "refused"
            query = urlencode({"done": done, "request": ident})
            return web.redirect(request, "/consents?" + query)
        return web.render(
            request,
            "_consent_decided.html",
            {"asked": await _read(client, answer.done), "granted": grant},
            session=session,
        )
    assert answer.refused is not None
    # Refused: the request's card again, with the node's words on it; when it
    # no longer waits (answered meanwhile), the refusal is the page.
    waiting = await _find(session, name)
    if waiting is None:
        raise answer.refused
    card, status = answer.card, answer.status
    if web.is_htmx(request):
        context = {"asked": await _read(client, waiting), "card": card}
        return web.render(request, "_consent.html", context, status_code=status, session=session)
    return await _page(
        request, session, "", cards={waiting.name: card}, first=waiting, status_code=status
    )


routes = [
    Route("/consents", index),
    Route("/consents/{request_id}/grant", grant, methods=["POST"]),
    Route("/consents/{request_id}/refuse", refuse, methods=["POST"]),
]
