"""Sign-in with the officer's token, and sign-out.

The token is checked by asking the node for one alert: the node alone knows
which tokens are valid, and the console learns nothing else about them. A
refused token gets the same message whatever the reason.

A rights holder's account may not read alerts: the node answers
PERMISSION_DENIED and names the role. The console then asks for one of the
holder's recordations instead; if the node answers that, the officer is
signed in as a rights holder, whose navigation shows only its recordations
and detentions (the node refuses it everything else all the same).

A customs officer's session then asks for one pending review: an approver
(or admin) gets an answer and sees *Pending reviews* in the navigation,
anyone else is refused and does not. Likewise for one consent request: an
officer whose role may answer partners' consent requests (liaison,
approver, admin) sees *Consent requests*.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import link, web
from console.node_client import ConsoleClient
from console.sessions import RIGHTS_HOLDER
from intelshare import errors


def _role(client: ConsoleClient) -> tuple[str, bool, bool]:
    """The role ('' for a customs officer, ``rights_holder`` for a holder's account, see
    above), whether the officer approves alerts held for review and whether the officer
    answers partners' consent requests (see below)."""
    try:
        client.list_alerts(page_size=1)
    except errors.PermissionDenied as exc:
        if exc.metadata.get("role") != RIGHTS_HOLDER:
            raise
        client.list_recordations(page_size=1)
        return RIGHTS_HOLDER, False, False
    return "", _may(client.pending_reviews_page), _may(client.consent_requests_page)


def _may(listing: Callable[..., object]) -> bool:
    """Whether the node lets this officer list one entry of ``listing`` (pending reviews:
    approvers and admins; consent requests: liaison officers, approvers and admins).

    Only the navigation depends on it: the page asks the node again, and the
    node refuses an officer who lost the role meanwhile.
    """
    try:
        listing(page_size=1)
    except errors.PermissionDenied:
        return False
    return True


def _safe_next(target: str | None) -> str:
    """Only a path of this console: never another site (open redirect)."""
    if not target:
        return "/inbox"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/inbox"
    if target.startswith(("/sign-in", "/sign-out", "/live/", "/static/")):
        return "/inbox"
    return target


def _form(
    request: Request, *, message: str = "", status_code: int = 200, next_url: str = ""
) -> Response:
    store = web.store(request)
    session = web.current(request)
    if session is None or session.signed_in:
        session = store.anonymous()
    expired = request.query_params.get("expired") == "1"
    response = web.render(
        request,
        "sign_in.html",
        {
            "csrf": session.csrf,
            "message": message,
            "expired": expired and not message,
            "next": _safe_next(next_url or request.query_params.get("next")),
        },
        status_code=status_code,
    )
    web.set_session_cookie(response, request, session)
    return response


async def sign_in_page(request: Request) -> Response:
    session = web.current(request)
    if session is not None and session.signed_in:
        target = _safe_next(request.query_params.get("next"))
        return web.redirect(request, web.home(session) if target == "/inbox" else target)
    return _form(request)


async def sign_in(request: Request) -> Response:
    store = web.store(request)
    previous = web.current(request)
    form = await request.form()
    next_url = _safe_next(str(form.get("next") or ""))
    offered = form.get(web.CSRF_FIELD)
    if previous is None or not previous.check_csrf(offered if isinstance(offered, str) else None):
        raise web.CsrfRefused
    token = str(form.get("token") or "").strip()
    if not token:
        return _form(
            request, message="Enter your officer token.", status_code=400, next_url=next_url
        )
    config = web.config(request)
    client = link.open_client(config, token)
    try:
        role, approves, consents = await link.call(_role, client)
    except errors.Unauthenticated:
        client.close()
        return _form(
            request,
            message=f"The node of {config.node_server_name} did not accept this token.",
            status_code=401,
            next_url=next_url,
        )
    except errors.IntelshareError:
        client.close()
        raise
    session = store.sign_in(previous, client, role, approves, consents)
    web.log.info("officer signed in (%d sessions)", len(store))
    if session.holder and next_url == "/inbox":
        next_url = web.home(session)
    response = web.redirect(request, next_url)
    web.set_session_cookie(response, request, session)
    return response


async def sign_out(request: Request) -> Response:
    session = web.require(request)
    await web.form_with_csrf(request, session)
    web.store(request).end(session)
    response = web.redirect(request, "/sign-in")
    web.clear_session_cookie(response, request)
    return response


routes = [
    Route("/sign-in", sign_in_page, methods=["GET"]),
    Route("/sign-in", sign_in, methods=["POST"]),
    Route("/sign-out", sign_out, methods=["POST"]),
]
