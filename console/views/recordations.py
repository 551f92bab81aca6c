"""Recordations: the list (granted here and received, in force or all), search, one recordation.

A rights holder's session reaches the same pages; the node gives it only
its own recordations (and refuses the rest with HOLDER_MISMATCH), and the
page shows what the node gave. The grantor's internal notes are only in
what the granting node returns to its own officers, so only they see them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import link, web
from console.display import ENUMS, enum_value
from console.ipr_forms import (
    RECORDATION_FIELDS,
    blank_recordation,
    field_for_path,
    local_problems,
    recordation_from_form,
    values_of,
)
from console.ipr_view import IN_FORCE
from console.sessions import Session
from intelshare import errors
from intelshare.v1 import recordation_pb2

R = recordation_pb2
#: Node pages read at most per console page when only recordations in force are shown.
MAX_SCAN = 20
#: The grantor's moves, by the form's verb: (client verb, what the page says after it).
MOVES = {"suspend": "suspended", "resume": "resumed", "withdraw": "withdrawn"}
#: What ``?done=`` may say on a recordation's page.
DONE = {*MOVES.values(), "granted"}


def recordation_name(recordation_id: str) -> str:
    if not recordation_id or "/" in recordation_id:
        raise errors.NotFound("no such recordation")
    return f"recordations/{recordation_id}"


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    direction = q.get("direction", "")
    return {
        "direction": direction if direction in ("issued", "received") else "",
        "scope": "all" if q.get("scope") == "all" else "",
    }


async def index(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    filters = _filters(request)
    token = request.query_params.get("page", "")
    page_size = web.config(request).page_size
    found: list[R.Recordation] = []
    for _ in range(MAX_SCAN):
        page = await link.call(
            session.client.list_recordations,
            page_size=page_size,
            page_token=token,
            direction=enum_value(ENUMS["recordation_direction"], filters["direction"]),
        )
        found.extend(r for r in page.recordations if filters["scope"] or r.state in IN_FORCE)
        token = page.next_page_token
        if not token or len(found) >= page_size or filters["scope"]:
            break
    query = urlencode({k: v for k, v in filters.items() if v})
    return web.render(
        request,
        "recordations.html",
        {
            "recordations": found,
            "filters": filters,
            "query": query,
            "next_token": token,
            "first_page": not request.query_params.get("page"),
            "search": {"gtin": "", "hs_code": "", "right_name": "", "all": ""},
        },
        session=session,
    )


async def search(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    q = request.query_params
    values = {k: q.get(k, "").strip() for k in ("gtin", "hs_code", "right_name")}
    values["all"] = "1" if q.get("all") else ""
    matches: list[Any] = []
    problems: dict[str, str] = {}
    message = ""
    token = q.get("page", "")
    next_token = ""
    status = 200
    if not any(values[k] for k in ("gtin", "hs_code", "right_name")):
        message = "Give a GTIN, an HS code or a right name (or several, to narrow the search)."
        status = 400 if "gtin" in q else 200
    else:
        try:
            page = await link.call(
                session.client.search_recordations,
                gtin=values["gtin"],
                hs_code=values["hs_code"],
                right_name=values["right_name"],
                include_inactive=bool(values["all"]),
                page_size=web.config(request).page_size,
                page_token=token,
            )
        except errors.InvalidArgument as exc:
            problems = {k.rsplit(".", 1)[-1]: v for k, v in exc.violations.items()}
            message = exc.message
            status = 400
        else:
            matches = list(page.matches)
            next_token = page.next_page_token
    return web.render(
        request,
        "recordation_search.html",
        {
            "search": values,
            "matches": matches,
            "problems": problems,
            "message": message,
            "searched": not message,
            "query": urlencode({k: v for k, v in values.items() if v}),
            "next_token": next_token,
            "first_page": not token,
        },
        status_code=status,
        session=session,
    )


async def _page(
    request: Request,
    session: Session,
    recordation: R.Recordation,
    *,
    move_error: str = "",
    done: str = "",
    status_code: int = 200,
) -> Response:
    return web.render(
        request,
        "recordation.html",
        {"r": recordation, "move_error": move_error, "done": done},
        status_code=status_code,
        session=session,
    )


async def show(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    name = recordation_name(request.path_params["recordation_id"])
    recordation = await link.call(session.client.get_recordation, name)
    done = request.query_params.get("done", "")
    return await _page(request, session, recordation, done=done if done in DONE else "")


async def move(request: Request) -> Response:
    """Suspend, resume or withdraw a recordation granted here (with a reason)."""
    session = web.require(request)
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    rid = request.path_params["recordation_id"]
    name = recordation_name(rid)
    verb = str(form.get("verb") or "")
    reason = str(form.get("reason") or "").strip()
    if verb not in MOVES:
        raise errors.InvalidArgument(
            "unknown action", violations={"verb": "suspend, resume or withdraw"}
        )
    problem = "" if reason else "Say why (every copy of the recordation receives the reason)."
    if not problem:
        try:
            await link.call(
                session.client.move_recordation,
                verb,
                name,
                reason,
                str(form.get("request_id") or "") or None,
            )
        except (errors.InvalidArgument, errors.FailedPrecondition) as exc:
            problem = f"{exc.message} [{exc.reason}]"
        else:
            return web.redirect(request, f"/recordations/{rid}?done={MOVES[verb]}")
    recordation = await link.call(session.client.get_recordation, name)
    return await _page(request, session, recordation, move_error=problem, status_code=400)


def _grant_form(
    request: Request,
    session: Session,
    values: dict[str, str],
    *,
    problems: dict[str, str] | None = None,
    summary: list[tuple[str, str]] | None = None,
    message: str = "",
    status_code: int = 200,
) -> Response:
    return web.render(
        request,
        "recordation_form.html",
        {
            "v": values,
            "errors": problems or {},
            "summary": summary or [],
            "message": message,
        },
        status_code=status_code,
        session=session,
    )


async def grant_page(request: Request) -> Response:
    session = web.require(request)
    web.customs_only(session)
    return _grant_form(request, session, blank_recordation())


async def grant(request: Request) -> Response:
    """CreateRecordation from the form (one right, one line of goods, one agency)."""
    session = web.require(request)
    web.customs_only(session)
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    values = values_of(form, RECORDATION_FIELDS)
    local = local_problems(values, ("valid_from", "valid_until"))
    if local:
        return _grant_form(
            request,
            session,
            values,
            problems=local,
            message="Some fields need attention.",
            status_code=400,
        )
    try:
        granted = await link.call(
            session.client.create_recordation,
            recordation_from_form(values),
            values["recordation_id"],
            values["request_id"] or None,
        )
    except errors.InvalidArgument as exc:
        by_field: dict[str, str] = {}
        for path, text in sorted(exc.violations.items()):
            name = field_for_path(path)
            if name:
                by_field.setdefault(name, text)
        return _grant_form(
            request,
            session,
            values,
            problems=by_field,
            summary=sorted((p.removeprefix("recordation."), t) for p, t in exc.violations.items()),
            message=f"{exc.message} [{exc.reason}]",
            status_code=400,
        )
    return web.redirect(request, f"/recordations/{granted.name.split('/', 1)[1]}?done=granted")


routes = [
    Route("/recordations", index),
    Route("/recordations/search", search),
    Route("/recordations/new", grant_page, methods=["GET"]),
    Route("/recordations/new", grant, methods=["POST"]),
    Route("/recordations/{recordation_id}", show),
    Route("/recordations/{recordation_id}/move", move, methods=["POST"]),
]
