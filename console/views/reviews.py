"""Pending reviews: alerts a treaty reserves for review, released or rejected by an approver.

Under a treaty whose ``review_required_for`` names an alert's kind or
category, the node holds the alert for that treaty's recipients until an
officer with the ``approver`` role (or an admin), other than its author,
approves or rejects it. This page lists what waits (the node's
``ListPendingReviews``, oldest first), each alert with the treaty's preview
of what each partner would receive, and posts the decision
(``ApproveAlert``, ``RejectAlert`` with a reason) for that alert under that
treaty only.

The node decides everything: who may see the list (anyone else gets the
node's ``PERMISSION_DENIED`` as a page), that an author does not approve
their own alert (``APPROVER_IS_AUTHOR``), that a reason is given, that the
review is still open. Refusals of a decision are shown on the alert's card
in the node's words; the other cards stay as they are (the pattern this page
shares with *Consent requests*: :mod:`console.decisions`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import decisions, link, web
from console.sessions import Session
from console.views.alerts import alert_name
from intelshare.v1 import alert_pb2, alert_service_pb2

#: What the page says after a decision posted without htmx (the redirect's ``done``).
_DONE = {"released": "released to its recipients", "rejected": "rejected; nothing was sent"}


async def index(request: Request) -> Response:
    session = web.require(request)
    web.customs_only(session)
    message = decisions.done_line(request, _DONE, "alert", "alerts")
    return await _page(request, session, request.query_params.get("page", ""), message=message)


async def _page(
    request: Request,
    session: Session,
    token: str,
    *,
    message: str = "",
    cards: dict[str, dict[str, Any]] | None = None,
    first: alert_service_pb2.PendingReview | None = None,
    status_code: int = 200,
) -> Response:
    """One page of pending reviews; ``cards`` holds what to show on a card (by review name)."""
    assert session.client is not None
    page = await link.call(
        session.client.pending_reviews_page, web.config(request).page_size, token
    )
    reviews = list(page.reviews)
    if first is not None and all(r.name != first.name for r in reviews):
        reviews.insert(0, first)
    return web.render(
        request,
        "reviews.html",
        {
            "reviews": reviews,
            "next_token": page.next_page_token,
            "first_page": not token,
            "done": message,
            "cards": cards or {},
        },
        status_code=status_code,
        session=session,
    )


async def _find(
    session: Session, name: str, treaty_id: str
) -> alert_service_pb2.PendingReview | None:
    """The pending review of ``name`` under ``treaty_id`` as the node lists it now, or None."""
    assert session.client is not None
    for review in await link.call(session.client.pending_reviews):
        if review.alert.name == name and (not treaty_id or review.treaty_id == treaty_id):
            return review
    return None


async def approve(request: Request) -> Response:
    return await _decide(request, approve=True)


async def reject(request: Request) -> Response:
    return await _decide(request, approve=False)


async def _decide(request: Request, *, approve: bool) -> Response:
    session = web.require(request)
    web.customs_only(session)
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    alert_id = request.path_params["alert_id"]
    name = alert_name(alert_id)
    treaty_id = str(form.get("treaty_id") or "")
    reason = str(form.get("reason") or "").strip()
    request_id = str(form.get("request_id") or "") or None
    answer: decisions.Answer[alert_pb2.Alert]
    if approve:
        answer = await decisions.post(
            session.client.approve_alert, name, treaty_id, request_id, reason=reason
        )
    else:
        answer = await decisions.post(
            session.client.reject_alert, name, reason, treaty_id, request_id, reason=reason
        )
    if answer.refused is None:
        if not web.is_htmx(request):
            done = "released" if approve else "rejected"
            return web.redirect(request, "/reviews?" + urlencode({"done": done, "alert": alert_id}))
        return web.render(
            request,
            "_review_decided.html",
            {"alert": answer.done, "treaty_id": treaty_id, "approved": approve, "reason": reason},
            session=session,
        )
    # Refused: the alert's card again, with the node's words on it; when the
    # review is no longer open (decided meanwhile), the refusal is the page.
    review = await _find(session, name, treaty_id)
    if review is None:
        raise answer.refused
    card, status = answer.card, answer.status
    if web.is_htmx(request):
        context = {"review": review, "card": card}
        return web.render(request, "_review.html", context, status_code=status, session=session)
    return await _page(
        request, session, "", cards={review.name: card}, first=review, status_code=status
    )


routes = [
    Route("/reviews", index),
    Route("/reviews/{alert_id}/approve", approve, methods=["POST"]),
    Route("/reviews/{alert_id}/reject", reject, methods=["POST"]),
]
