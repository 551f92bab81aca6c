"""Risk targeting: profiles (list, one with its criteria and statistics, withdraw), hits
(list, one with its reasons and related records, the inspection outcome), and screening a file.

Hits have no watch stream in the node's API, so their pages are not live:
they carry a *Refresh* button (a plain link to the same page). A rights
holder's session never gets here: the node refuses it every RiskService
call, and the pages say so.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import link, web
from console.criteria_view import readable
from console.display import ENUMS, enum_value
from console.screening import MAX_UPLOAD_BYTES, screen_file
from console.sessions import Session
from intelshare import errors
from intelshare.v1 import risk_profile_pb2
from node.targeting.declarations import file_format

P = risk_profile_pb2


def profile_name(profile_id: str) -> str:
    if not profile_id or "/" in profile_id:
        raise errors.NotFound("no such risk profile")
    return f"riskProfiles/{profile_id}"


def hit_name(hit_id: str) -> str:
    if not hit_id or "/" in hit_id:
        raise errors.NotFound("no such risk hit")
    return f"riskHits/{hit_id}"


def _direction(request: Request) -> str:
    value = request.query_params.get("direction", "")
    return value if value in ("issued", "received") else ""


# --- profiles -------------------------------------------------------------------------------


async def profiles(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    direction = _direction(request)
    token = request.query_params.get("page", "")
    page = await link.call(
        session.client.list_profiles,
        direction=enum_value(ENUMS["profile_direction"], direction),
        page_size=web.config(request).page_size,
        page_token=token,
    )
    return web.render(
        request,
        "profiles.html",
        {
            "profiles": page.risk_profiles,
            "direction": direction,
            "query": urlencode({"direction": direction}) if direction else "",
            "next_token": page.next_page_token,
            "first_page": not token,
        },
        session=session,
    )


async def _profile_page(
    request: Request,
    session: Session,
    name: str,
    *,
    withdraw_error: str = "",
    status_code: int = 200,
) -> Response:
    assert session.client is not None
    profile = await link.call(session.client.get_profile, name)
    stats = None
    if profile.direction == P.RISK_PROFILE_DIRECTION_ISSUED:
        stats = await link.call(session.client.profile_statistics, name)
    return web.render(
        request,
        "profile.html",
        {
            "p": profile,
            "criteria": readable(profile.criteria),
            "stats": stats,
            "withdraw_error": withdraw_error,
            "withdrawn": request.query_params.get("withdrawn") == "1",
        },
        status_code=status_code,
        session=session,
    )


async def profile(request: Request) -> Response:
    session = web.require(request)
    return await _profile_page(request, session, profile_name(request.path_params["profile_id"]))


async def withdraw(request: Request) -> Response:
    session = web.require(request)
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    profile_id = request.path_params["profile_id"]
    name = profile_name(profile_id)
    reason = str(form.get("reason") or "").strip()
    problem = "" if reason else "Say why: every partner holding the profile receives the reason."
    if not problem:
        try:
            await link.call(
                session.client.withdraw_profile,
                name,
                reason,
                str(form.get("request_id") or "") or None,
            )
        except (errors.InvalidArgument, errors.FailedPrecondition) as exc:
            problem = f"{exc.message} [{exc.reason}]"
        else:
            return web.redirect(request, f"/profiles/{profile_id}?withdrawn=1")
    return await _profile_page(request, session, name, withdraw_error=problem, status_code=400)


# --- hits ------------------------------------------------------------------------------------


async def hits(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    direction = _direction(request)
    profile_id = request.query_params.get("profile", "").strip().removeprefix("riskProfiles/")
    token = request.query_params.get("page", "")
    page = await link.call(
        session.client.list_hits,
        direction=enum_value(ENUMS["profile_direction"], direction),
        profile=profile_id,
        page_size=web.config(request).page_size,
        page_token=token,
    )
    filters = {"direction": direction, "profile": profile_id}
    return web.render(
        request,
        "hits.html",
        {
            "hits": page.risk_hits,
            "filters": filters,
            "query": urlencode({k: v for k, v in filters.items() if v}),
            "next_token": page.next_page_token,
            "first_page": not token,
        },
        session=session,
    )


async def _hit_page(
    request: Request,
    session: Session,
    name: str,
    *,
    outcome_error: str = "",
    status_code: int = 200,
) -> Response:
    assert session.client is not None
    hit = await link.call(session.client.get_hit, name)
    return web.render(
        request,
        "hit.html",
        {
            "h": hit,
            "outcome_error": outcome_error,
            "saved": request.query_params.get("saved") == "1",
        },
        status_code=status_code,
        session=session,
    )


async def hit(request: Request) -> Response:
    session = web.require(request)
    return await _hit_page(request, session, hit_name(request.path_params["hit_id"]))


async def outcome(request: Request) -> Response:
    """Record the inspection, the finding and a note of a hit screened here."""
    session = web.require(request)
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    hit_id = request.path_params["hit_id"]
    name = hit_name(hit_id)
    update = P.RiskHit(
        name=name,
        inspection=enum_value(ENUMS["inspection"], str(form.get("inspection") or "")),  # type: ignore[arg-type]
        finding=enum_value(ENUMS["finding"], str(form.get("finding") or "")),  # type: ignore[arg-type]
        note=str(form.get("note") or "").strip(),
    )
    try:
        await link.call(
            session.client.update_hit,
            update,
            ["inspection", "finding", "note"],
            str(form.get("request_id") or "") or None,
        )
    except (errors.InvalidArgument, errors.FailedPrecondition) as exc:
        problem = web.refusal_text(exc)
        return await _hit_page(request, session, name, outcome_error=problem, status_code=400)
    return web.redirect(request, f"/hits/{hit_id}?saved=1")


# --- screening a file --------------------------------------------------------------------------


async def screen_page(request: Request) -> Response:
    session = web.require(request)
    web.customs_only(session)
    return web.render(request, "screen.html", {"summary": None, "problem": ""}, session=session)


async def screen(request: Request) -> Response:
    session = web.require(request)
    web.customs_only(session)
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > MAX_UPLOAD_BYTES + 64 * 1024:
        return _screen_problem(
            request,
            session,
            f"The file is larger than the console accepts ({MAX_UPLOAD_BYTES >> 20} MiB). "
            "Split it, or screen it with the command line: intelshare screen FILE.",
            413,
        )
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    upload: Any = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _screen_problem(request, session, "Choose a .csv or .jsonl file to screen.", 400)
    try:
        fmt = file_format(upload.filename)
    except errors.InvalidArgument:
        return _screen_problem(
            request,
            session,
            f"{upload.filename}: not a declarations file the console reads. "
            "Use a .csv file with a header row or a .jsonl file (columns in docs/screening.md).",
            400,
        )
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        return _screen_problem(
            request, session, "The file is larger than the console accepts.", 413
        )
    summary = await link.call(screen_file, session.client, data, fmt, upload.filename)
    return web.render(request, "screen.html", {"summary": summary, "problem": ""}, session=session)


def _screen_problem(request: Request, session: Session, message: str, status: int) -> Response:
    return web.render(
        request,
        "screen.html",
        {"summary": None, "problem": message},
        status_code=status,
        session=session,
    )


routes = [
    Route("/profiles", profiles),
    Route("/profiles/{profile_id}", profile),
    Route("/profiles/{profile_id}/withdraw", withdraw, methods=["POST"]),
    Route("/hits", hits),
    Route("/hits/{hit_id}", hit),
    Route("/hits/{hit_id}/outcome", outcome, methods=["POST"]),
    Route("/screen", screen_page, methods=["GET"]),
    Route("/screen", screen, methods=["POST"]),
]
