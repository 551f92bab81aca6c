"""Detentions with their deadlines, one detention with its moves, and detention reports.

A detention's page offers the moves the node's state machine allows next
for this kind of officer (:func:`console.ipr_view.next_moves`) as buttons
sharing one reason field; the deadline extension, the holder's request for
samples and the disclosure of the parties are forms of their own. Every
form posts to the node with the officer's token and a request id, then
goes back to the page (303); what the node refuses is shown next to the
form in the node's words, with its reason code.

A rights holder's session reaches the list and the pages of detentions
that name its recordations (the node gives it nothing else: another
holder's detention is PERMISSION_DENIED, HOLDER_MISMATCH) and may answer;
detention reports are customs' only and the node refuses them to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import link, web
from console.display import ENUMS, enum_value
from console.ipr_forms import (
    DETENTION_FIELDS,
    blank_detention,
    detention_from_form,
    field_for_path,
    values_of,
)
from console.node_client import ConsoleClient
from console.sessions import Session
from intelshare import errors
from intelshare.v1 import detention_pb2

D = detention_pb2

#: What the page says after each action (``?done=``).
DONE = {
    "created": "Detention recorded. Notify the holder and the declarant before the deadline.",
    "moved": "The detention moved; its deadlines follow.",
    "extended": "The deadline is extended.",
    "samples": "Your request for samples is recorded; customs will be in touch.",
    "disclosed": "The parties are now shown to the rights holder.",
    "reported": "The detention report is on its way to the partner.",
}


def detention_name(detention_id: str) -> str:
    if not detention_id or "/" in detention_id:
        raise errors.NotFound("no such detention")
    return f"detentions/{detention_id}"


def report_name(report_id: str) -> str:
    if not report_id or "/" in report_id:
        raise errors.NotFound("no such detention report")
    return f"detentionReports/{report_id}"


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    recordation = q.get("recordation", "").strip()
    return {
        "state": q.get("state", ""),
        "procedure": q.get("procedure", ""),
        "recordation": recordation.removeprefix("recordations/"),
    }


async def index(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    filters = _filters(request)
    token = request.query_params.get("page", "")
    page = await link.call(
        session.client.list_detentions,
        page_size=web.config(request).page_size,
        page_token=token,
        state=enum_value(ENUMS["detention_state"], filters["state"]),
        procedure=enum_value(ENUMS["procedure"], filters["procedure"]),
        recordation=f"recordations/{filters['recordation']}" if filters["recordation"] else "",
    )
    query = urlencode({k: v for k, v in filters.items() if v})
    return web.render(
        request,
        "detentions.html",
        {
            "detentions": page.detentions,
            "filters": filters,
            "query": query,
            "next_token": page.next_page_token,
            "first_page": not token,
            "live_after": session.cursor,
            "live_since": int(time.time() * 1000),
        },
        session=session,
    )


async def _render(
    request: Request,
    session: Session,
    detention: D.Detention,
    *,
    form_errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    done = request.query_params.get("done", "")
    return web.render(
        request,
        "detention.html",
        {
            "d": detention,
            "done": DONE.get(done, ""),
            "form_errors": form_errors or {},
            "values": values or {},
            "live_after": session.cursor,
            "live_since": int(time.time() * 1000),
        },
        status_code=status_code,
        session=session,
    )


async def show(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    name = detention_name(request.path_params["detention_id"])
    detention = await link.call(session.client.get_detention, name)
    return await _render(request, session, detention)


Operation = Callable[[ConsoleClient, str, FormData, str | None], Any]


async def _act(
    request: Request, form_id: str, done: str, operation: Operation, required: tuple[str, ...]
) -> Response:
    """Run one action's form against the node; back to the page, or the page with the problem."""
    session = web.require(request)
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    detention_id = request.path_params["detention_id"]
    name = detention_name(detention_id)
    values = {k: str(v) for k, v in form.items() if isinstance(v, str) and k != web.CSRF_FIELD}
    missing = [k for k in required if not values.get(k, "").strip()]
    problem = ""
    status = 400
    if missing:
        problem = "Say why: the reason is kept with the detention" + (
            " and the holder sees it." if form_id == "move" else "."
        )
    else:
        try:
            request_id = values.get("request_id") or None
            await link.call(operation, session.client, name, form, request_id)
        except errors.InvalidArgument as exc:
            problem = web.refusal_text(exc)
        except errors.FailedPrecondition as exc:
            problem = f"{exc.message} [{exc.reason}]"
            status = 409
        else:
            return web.redirect(request, f"/detentions/{detention_id}?done={done}#{form_id}")
    detention = await link.call(session.client.get_detention, name)
    return await _render(
        request,
        session,
        detention,
        form_errors={form_id: problem},
        values={f"{form_id}-{k}": v for k, v in values.items()},
        status_code=status,
    )


def _text(form: FormData, key: str) -> str:
    return str(form.get(key) or "").strip()


async def move(request: Request) -> Response:
    def run(client: ConsoleClient, name: str, form: FormData, rid: str | None) -> Any:
        state = enum_value(ENUMS["detention_state"], _text(form, "state"))
        if not state:
            raise errors.InvalidArgument(
                "choose the state to move to", violations={"state": "required"}
            )
        return client.move_detention(name, state, _text(form, "reason"), rid)

    return await _act(request, "move", "moved", run, ("reason",))


async def extend(request: Request) -> Response:
    def run(client: ConsoleClient, name: str, form: FormData, rid: str | None) -> Any:
        days = _text(form, "working_days")
        if not days.isdigit() or not 1 <= int(days) <= 10:
            raise errors.InvalidArgument(
                "working days to add: a whole number from 1 to 10",
                violations={"working_days": "1 to 10"},
            )
        return client.extend_deadline(
            name, int(days), _text(form, "reason"), D.DEADLINE_KIND_HOLDER_ANSWER, rid
        )

    return await _act(request, "extend", "extended", run, ("reason",))


async def samples(request: Request) -> Response:
    def run(client: ConsoleClient, name: str, form: FormData, rid: str | None) -> Any:
        return client.request_samples(name, _text(form, "reason"), rid)

    return await _act(request, "samples", "samples", run, ("reason",))


async def disclose(request: Request) -> Response:
    def run(client: ConsoleClient, name: str, form: FormData, rid: str | None) -> Any:
        return client.disclose_parties(name, _text(form, "reason"), rid)

    return await _act(request, "disclose", "disclosed", run, ("reason",))


async def share_report(request: Request) -> Response:
    def run(client: ConsoleClient, name: str, form: FormData, rid: str | None) -> Any:
        agency, treaty = _text(form, "agency_id"), _text(form, "treaty_id")
        if not agency or not treaty:
            raise errors.InvalidArgument(
                "name the partner agency and the treaty it receives the report under",
                violations={"agency_id": "required", "treaty_id": "required"},
            )
        return client.share_report(name, [(agency, treaty)], _text(form, "summary"), rid)

    return await _act(request, "report", "reported", run, ())


# --- recording a detention -------------------------------------------------------------------


def _detain_form(
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
        "detention_form.html",
        {"v": values, "errors": problems or {}, "summary": summary or [], "message": message},
        status_code=status_code,
        session=session,
    )


async def detain_page(request: Request) -> Response:
    session = web.require(request)
    web.customs_only(session)
    recordation = request.query_params.get("recordation", "").strip()
    return _detain_form(request, session, blank_detention(recordation))


async def detain(request: Request) -> Response:
    """CreateDetention from the form; the node computes the deadlines and suggests recordations."""
    session = web.require(request)
    web.customs_only(session)
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    values = values_of(form, DETENTION_FIELDS)
    try:
        created = await link.call(
            session.client.create_detention,
            detention_from_form(values),
            values["detention_id"],
            values["request_id"] or None,
        )
    except (errors.InvalidArgument, errors.FailedPrecondition) as exc:
        violations = getattr(exc, "violations", {}) or {}
        by_field: dict[str, str] = {}
        for path, text in sorted(violations.items()):
            name = field_for_path(path)
            if name:
                by_field.setdefault(name, text)
        return _detain_form(
            request,
            session,
            values,
            problems=by_field,
            summary=sorted((p.removeprefix("detention."), t) for p, t in violations.items()),
            message=f"{exc.message} [{exc.reason}]",
            status_code=400 if isinstance(exc, errors.InvalidArgument) else 409,
        )
    return web.redirect(request, f"/detentions/{created.name.split('/', 1)[1]}?done=created")


# --- detention reports -----------------------------------------------------------------------


async def reports(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    token = request.query_params.get("page", "")
    page = await link.call(
        session.client.list_reports, page_size=web.config(request).page_size, page_token=token
    )
    return web.render(
        request,
        "reports.html",
        {
            "reports": page.detention_reports,
            "next_token": page.next_page_token,
            "first_page": not token,
        },
        session=session,
    )


async def report(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    got = await link.call(session.client.get_report, report_name(request.path_params["report_id"]))
    return web.render(request, "report.html", {"report": got}, session=session)


routes = [
    Route("/detentions", index),
    Route("/detentions/new", detain_page, methods=["GET"]),
    Route("/detentions/new", detain, methods=["POST"]),
    Route("/detentions/{detention_id}", show),
    Route("/detentions/{detention_id}/move", move, methods=["POST"]),
    Route("/detentions/{detention_id}/extend", extend, methods=["POST"]),
    Route("/detentions/{detention_id}/samples", samples, methods=["POST"]),
    Route("/detentions/{detention_id}/disclose", disclose, methods=["POST"]),
    Route("/detentions/{detention_id}/report", share_report, methods=["POST"]),
    Route("/detention-reports", reports),
    Route("/detention-reports/{report_id}", report),
]
