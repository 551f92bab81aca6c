"""Issue an alert: the form, inline checks, a preview per recipient, sending.

``Preview`` asks the node's ``PreviewAlert`` what each recipient would get
under its treaty (exactly the fields let through, or the refusal with its
reason) without sending or storing anything. ``Send`` calls ``CreateAlert``
with the form's request id, so pressing it twice issues one alert.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from console import link, web
from console.forms import SUBJECTS, Draft, check_field, field_for_path
from console.sessions import Session
from intelshare import errors


def _render(
    request: Request,
    session: Session,
    draft: Draft,
    *,
    errors_by_field: dict[str, str] | None = None,
    summary: list[tuple[str, str]] | None = None,
    message: str = "",
    preview: object = None,
    status_code: int = 200,
) -> Response:
    return web.render(
        request,
        "issue.html",
        {
            "draft": draft,
            "subjects": SUBJECTS,
            "errors": errors_by_field or {},
            "summary": summary or [],
            "message": message,
            "preview": preview,
        },
        status_code=status_code,
        session=session,
    )


async def form_page(request: Request) -> Response:
    session = web.require(request)
    web.customs_only(session)
    return _render(request, session, Draft.blank())


def _node_errors(exc: errors.InvalidArgument) -> tuple[dict[str, str], list[tuple[str, str]]]:
    by_field: dict[str, str] = {}
    summary: list[tuple[str, str]] = []
    for path, text in sorted(exc.violations.items()):
        name = field_for_path(path)
        if name:
            by_field.setdefault(name, text)
        summary.append((path.removeprefix("alert."), text))
    return by_field, summary


async def submit(request: Request) -> Response:
    session = web.require(request)
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    draft = Draft.from_form(values)
    action = values.get("action", "preview")
    if draft.apply(action):
        return _render(request, session, draft)
    local = draft.local_errors()
    if local:
        summary = [(k, v) for k, v in sorted(local.items())]
        return _render(
            request,
            session,
            draft,
            errors_by_field=local,
            summary=summary,
            message="Some fields need attention before the node is asked.",
            status_code=400,
        )
    alert = draft.to_alert()
    try:
        if action == "send":
            created = await link.call(
                session.client.create_alert, alert, draft.values["request_id"]
            )
            return web.redirect(request, f"/alerts/{created.name.removeprefix('alerts/')}?issued=1")
        preview = await link.call(session.client.preview_alert, alert)
    except errors.InvalidArgument as exc:
        by_field, summary = _node_errors(exc)
        return _render(
            request,
            session,
            draft,
            errors_by_field=by_field,
            summary=summary,
            message=exc.message,
            status_code=400,
        )
    except errors.PolicyRefused as exc:
        # Sending was refused by a treaty (the preview shows which and why).
        return _render(
            request,
            session,
            draft,
            message=f"Not sent: {exc.message} [{exc.reason}]. Preview to see each recipient.",
            status_code=400,
        )
    return _render(request, session, draft, preview=preview)


async def check(request: Request) -> Response:
    """Inline check of one subject field (htmx, on change): the message, or nothing."""
    session = web.require(request)
    form = await web.form_with_csrf(request, session)
    field = str(request.query_params.get("field", ""))
    problem = check_field(field, str(form.get(field) or "")) if field else ""
    return (
        web.render(request, "_field_message.html", {"message": problem}, session=session)
        if problem
        else HTMLResponse("")
    )


routes = [
    Route("/issue", form_page, methods=["GET"]),
    Route("/issue", submit, methods=["POST"]),
    Route("/issue/check", check, methods=["POST"]),
]
