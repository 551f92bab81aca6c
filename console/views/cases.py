"""Joint cases: the list, one case with its members and entries, adding an entry."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import link, web
from console.sessions import Session
from intelshare import errors
from intelshare.v1 import case_pb2


def case_name(case_id: str) -> str:
    if not case_id or "/" in case_id:
        raise errors.NotFound("no such case")
    return f"cases/{case_id}"


async def index(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    token = request.query_params.get("page", "")
    page = await link.call(
        session.client.list_cases, page_size=web.config(request).page_size, page_token=token
    )
    return web.render(
        request,
        "cases.html",
        {"cases": page.cases, "next_token": page.next_page_token, "first_page": not token},
        session=session,
    )


async def _entries(session: Session, name: str) -> list[case_pb2.CaseEntry]:
    assert session.client is not None
    return await link.call(session.client.all_entries, name)


async def show(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    name = case_name(request.path_params["case_id"])
    after = session.cursor
    case = await link.call(session.client.get_case, name)
    entries = await _entries(session, name)
    return web.render(
        request,
        "case.html",
        {
            "case": case,
            "entries": entries,
            "entry_form": {"text": ""},
            "entry_error": "",
            "live_after": after,
            "live_since": int(time.time() * 1000),
        },
        session=session,
    )


async def add_entry(request: Request) -> Response:
    session = web.require(request)
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    name = case_name(request.path_params["case_id"])
    text = str(form.get("text") or "").strip()
    request_id = str(form.get("request_id") or "") or None
    problem = "" if text else "Write the entry's text."
    if not problem:
        try:
            await link.call(
                session.client.add_entry, name, case_pb2.CaseEntry(text=text), request_id
            )
        except errors.InvalidArgument as exc:
            problem = "; ".join(exc.violations.values()) or exc.message
    if not problem and not web.is_htmx(request):
        return web.redirect(request, f"/cases/{request.path_params['case_id']}")
    case = await link.call(session.client.get_case, name)
    context = {
        "case": case,
        "entry_form": {"text": text if problem else ""},
        "entry_error": problem,
        "added": not problem,
    }
    if web.is_htmx(request):
        # The new entry itself arrives on the case's live stream, like anyone else's.
        status = 400 if problem else 200
        return web.render(request, "_entry_form.html", context, status_code=status, session=session)
    entries = await _entries(session, name)
    return web.render(
        request,
        "case.html",
        {**context, "entries": entries, "live_after": session.cursor, "live_since": 0},
        status_code=400,
        session=session,
    )


routes = [
    Route("/cases", index),
    Route("/cases/{case_id}", show),
    Route("/cases/{case_id}/entries", add_entry, methods=["POST"]),
]
