"""What every page shares: the session cookie, CSRF, rendering, redirects, errors.

The cookie holds only the session id. It is HttpOnly (no script reads it),
SameSite=Strict (no other site's page makes the browser send it) and Secure
with the ``__Host-`` prefix when the console is reached over TLS. Every
state-changing request (every POST) must carry the session's CSRF token,
as a hidden ``csrf_token`` field or, from htmx, the ``X-CSRF-Token`` header;
without it the answer is 403 and nothing is done.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from console.config import ConsoleConfig
from console.sessions import Session, SessionStore
from intelshare import errors

log = logging.getLogger("console")

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(Exception):
    """No signed-in session: the officer is sent to the sign-in page."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("sign in first")
        self.expired = expired


class CsrfRefused(Exception):
    """A state-changing request without this session's CSRF token."""


#: The navigation bar: (path, text). Customs officers see every page; what
#: their role may not do, the node refuses with its reason.
NAV_CUSTOMS = [
    ("/inbox", "Inbox"),
    ("/issue", "Issue an alert"),
    ("/issued", "Issued alerts"),
    ("/feed", "Live feed"),
    ("/cases", "Cases"),
    ("/recordations", "Recordations"),
    ("/detentions", "Detentions"),
    ("/profiles", "Risk profiles"),
    ("/hits", "Risk hits"),
    ("/screen", "Screen a file"),
]
#: Added for officers who approve alerts held for review (see ``Session.approves``).
NAV_APPROVER = ("/reviews", "Pending reviews")
#: Added for officers who answer partners' consent requests (see ``Session.consents``).
NAV_CONSENT = ("/consents", "Consent requests")
#: A rights holder's account: only what the node lets it use.
NAV_HOLDER = [
    ("/detentions", "Your detentions"),
    ("/recordations", "Your recordations"),
]


def navigation(session: Session | None) -> list[tuple[str, str]]:
    if session is None or not session.signed_in:
        return []
    if session.holder:
        return NAV_HOLDER
    # What waits for this officer's answer comes right after the alerts they issue.
    answers = [NAV_APPROVER] if session.approves else []
    if session.consents:
        answers.append(NAV_CONSENT)
    return [*NAV_CUSTOMS[:3], *answers, *NAV_CUSTOMS[3:]]


def home(session: Session | None) -> str:
    """The first page after sign-in: the inbox, or a rights holder's detentions."""
    return "/detentions" if session is not None and session.holder else "/inbox"


def customs_only(session: Session) -> None:
    """Refuse a rights holder a page that asks the node nothing before it is shown.

    Pages that call the node need no such check (the node refuses a holder
    everything but its own records); this one is for forms and live pages,
    which would otherwise show a form or a stream the node will refuse.
    """
    if session.holder:
        raise errors.PermissionDenied(
            "This page is for customs officers.",
            metadata={"role": session.role},
        )


def cookie_name(config: ConsoleConfig) -> str:
    return "__Host-intelshare-console" if config.cookie_secure else "intelshare-console"


def store(request: Request) -> SessionStore:
    return request.app.state.sessions  # type: ignore[no-any-return]


def config(request: Request) -> ConsoleConfig:
    return request.app.state.config  # type: ignore[no-any-return]


def templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates  # type: ignore[no-any-return]


def current(request: Request) -> Session | None:
    return store(request).get(request.cookies.get(cookie_name(config(request))))


def require(request: Request) -> Session:
    session = current(request)
    if session is None or not session.signed_in:
        raise SignInRequired(expired=bool(request.cookies.get(cookie_name(config(request)))))
    return session


async def form_with_csrf(request: Request, session: Session) -> FormData:
    """The posted form, once its CSRF token is checked (403 otherwise)."""
    form = await request.form()
    offered = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not session.check_csrf(offered if isinstance(offered, str) else None):
        raise CsrfRefused
    return form


def set_session_cookie(response: Response, request: Request, session: Session) -> None:
    cfg = config(request)
    response.set_cookie(
        cookie_name(cfg),
        session.id,
        httponly=True,
        secure=cfg.cookie_secure,
        samesite="strict",
        path="/",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    cfg = config(request)
    response.delete_cookie(
        cookie_name(cfg), path="/", secure=cfg.cookie_secure, httponly=True, samesite="strict"
    )


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def redirect(request: Request, url: str) -> Response:
    """303 to ``url``; for htmx requests a full-page redirect through HX-Redirect."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    session: Session | None = None,
) -> HTMLResponse:
    ctx: dict[str, Any] = {
        "session": session,
        "agency": config(request).node_server_name,
        "csrf": session.csrf if session is not None else "",
        "path": request.url.path,
        "nav": navigation(session),
        "home": home(session),
    }
    ctx.update(context or {})
    return templates(request).TemplateResponse(request, template, ctx, status_code=status_code)


def sign_in_url(request: Request, *, expired: bool = False) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    if request.url.path.startswith("/live/") or request.method != "GET":
        target = "/inbox"
    url = "/sign-in?next=" + quote(target, safe="/")
    return url + "&expired=1" if expired else url


async def on_sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return redirect(request, sign_in_url(request, expired=exc.expired))


async def on_csrf(request: Request, exc: Exception) -> Response:
    return render(
        request,
        "error.html",
        {
            "title": "Form refused",
            "message": "This form did not carry the console's security token (it may be from "
            "an older page or another site). Nothing was done. Reload the page and try again.",
        },
        status_code=403,
        session=current(request),
    )


def refusal_text(exc: errors.IntelshareError) -> str:
    """A node's refusal in one line for a form: its message, the fields' problems, the reason."""
    violations = getattr(exc, "violations", {}) or {}
    details = "; ".join(v for _k, v in sorted(violations.items()) if v not in exc.message)
    return f"{exc.message}{': ' + details if details else ''} [{exc.reason}]"


_STATUS = {
    "NOT_FOUND": (404, "Not found"),
    "PERMISSION_DENIED": (403, "Not permitted"),
    "UNAVAILABLE": (503, "The node cannot be reached"),
    "DEADLINE_EXCEEDED": (504, "The node did not answer in time"),
    "INVALID_ARGUMENT": (400, "Not accepted"),
    "FAILED_PRECONDITION": (409, "Not possible now"),
}


async def on_node_error(request: Request, exc: Exception) -> Response:
    """A node's refusal as a page (or, from htmx, a fragment) in the node's own words."""
    assert isinstance(exc, errors.IntelshareError)
    session = current(request)
    if isinstance(exc, errors.Unauthenticated):
        # The token no longer opens the node (revoked, officer disabled):
        # the session is worthless, so it ends here.
        if session is not None:
            store(request).end(session)
        response = redirect(request, "/sign-in?expired=1")
        clear_session_cookie(response, request)
        return response
    status, title = _STATUS.get(exc.grpc_code, (502, "The node refused"))
    log.info("node answered %s on %s %s", exc.reason, request.method, request.url.path)
    violations = sorted(getattr(exc, "violations", {}).items())
    template = "_error_box.html" if is_htmx(request) else "error.html"
    return render(
        request,
        template,
        {"title": title, "message": exc.message, "reason": exc.reason, "violations": violations},
        status_code=status,
        session=session,
    )
