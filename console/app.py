"""The console's ASGI application: routes, templates, headers, error pages."""

from __future__ import annotations

from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import web
from console.config import ConsoleConfig
from console.display import jinja_globals
from console.ipr_view import jinja_globals as ipr_globals
from console.sessions import SessionStore
from console.views import (
    alerts,
    auth,
    cases,
    consents,
    detentions,
    issue,
    live,
    recordations,
    reviews,
    risk,
)
from intelshare.errors import IntelshareError

HERE = Path(__file__).parent

#: Only the console's own files: no inline script or style, no other origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the headers above to every response; pages are never cached."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                if self.hsts:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def home(request: Request) -> Response:
    return RedirectResponse(web.home(web.current(request)), status_code=303)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is text unless a template says otherwise
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(jinja_globals())
    env.globals.update(ipr_globals())
    return Jinja2Templates(env=env)


def create_app(config: ConsoleConfig) -> Starlette:
    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        *auth.routes,
        *alerts.routes,
        *issue.routes,
        *reviews.routes,
        *consents.routes,
        *cases.routes,
        *recordations.routes,
        *detentions.routes,
        *risk.routes,
        *live.routes,
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders, hsts=config.tls)],
        exception_handlers={
            web.SignInRequired: web.on_sign_in_required,
            web.CsrfRefused: web.on_csrf,
            IntelshareError: web.on_node_error,
        },
    )
    app.state.config = config
    app.state.sessions = SessionStore(
        lifetime_seconds=config.session_lifetime_minutes * 60,
        idle_seconds=config.session_idle_minutes * 60,
    )
    app.state.templates = make_templates()
    return app
