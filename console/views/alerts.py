"""Inbox, issued alerts, one alert (acknowledge, report a hit), one recipient's copy."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import link, web
from console.display import ENUMS, enum_value, timestamp
from console.sessions import Session
from intelshare import errors
from intelshare.v1 import alert_pb2

#: Node pages read at most per console page when filtering on what the node
#: cannot filter (urgency, partner): the scan stops there and offers "more".
MAX_SCAN = 20


def alert_name(alert_id: str) -> str:
    if not alert_id or "/" in alert_id:
        raise errors.NotFound("no such alert")
    return f"alerts/{alert_id}"


def matches(alert: alert_pb2.Alert, urgency: int, partner: str) -> bool:
    """The filters the node cannot apply itself: urgency, and the partner agency."""
    if urgency and alert.urgency != urgency:
        return False
    if partner:
        agencies = {alert.origin_agency, *(r.agency_id for r in alert.recipients)}
        if partner not in agencies:
            return False
    return True


async def list_page(
    session: Session,
    *,
    direction: int,
    page_size: int,
    token: str = "",
    kind: int = 0,
    state: int = 0,
    urgency: int = 0,
    partner: str = "",
) -> tuple[list[alert_pb2.Alert], str]:
    """One page of alerts, newest first, and the node's token for the next."""
    assert session.client is not None
    found: list[alert_pb2.Alert] = []
    for _ in range(MAX_SCAN):
        page = await link.call(
            session.client.list_alerts,
            page_size=page_size,
            page_token=token,
            direction=direction,
            kind=kind,
            state=state,
        )
        found.extend(a for a in page.alerts if matches(a, urgency, partner))
        token = page.next_page_token
        if not token or len(found) >= page_size or not (urgency or partner):
            break
    return found, token


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {
        "kind": q.get("kind", ""),
        "urgency": q.get("urgency", ""),
        "state": q.get("state", ""),
        "partner": q.get("partner", "").strip(),
    }


def _filter_query(filters: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in filters.items() if v})


async def inbox(request: Request) -> Response:
    return await _listing(request, alert_pb2.ALERT_DIRECTION_RECEIVED, "inbox.html")


async def issued(request: Request) -> Response:
    return await _listing(request, alert_pb2.ALERT_DIRECTION_ISSUED, "issued.html")


async def _listing(request: Request, direction: int, template: str) -> Response:
    session = web.require(request)
    filters = _filters(request)
    token = request.query_params.get("page", "")
    rendered_at = int(time.time() * 1000)
    alerts, next_token = await list_page(
        session,
        direction=direction,
        page_size=web.config(request).page_size,
        token=token,
        kind=enum_value(ENUMS["kind"], filters["kind"]),
        state=enum_value(ENUMS["state"], filters["state"]),
        urgency=enum_value(ENUMS["urgency"], filters["urgency"]),
        partner=filters["partner"],
    )
    context = {
        "alerts": alerts,
        "filters": filters,
        "query": _filter_query(filters),
        "next_token": next_token,
        "first_page": not token,
        "live_after": session.cursor,
        "live_since": rendered_at,
    }
    return web.render(request, template, context, session=session)


async def show(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    name = alert_name(request.path_params["alert_id"])
    alert = await link.call(session.client.get_alert, name)
    return web.render(
        request,
        "alert.html",
        {
            "alert": alert,
            "hit_form": {"found_time": _now_local(), "place": "", "found": ""},
            "hit_errors": {},
            "live_after": session.cursor,
            "live_since": int(time.time() * 1000),
        },
        session=session,
    )


def _now_local() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")


async def acknowledge(request: Request) -> Response:
    session = web.require(request)
    await web.form_with_csrf(request, session)
    assert session.client is not None
    name = alert_name(request.path_params["alert_id"])
    alert = await link.call(session.client.acknowledge_alert, name)
    if web.is_htmx(request):
        return web.render(request, "_received_status.html", {"alert": alert}, session=session)
    return web.redirect(request, f"/alerts/{request.path_params['alert_id']}")


async def report_hit(request: Request) -> Response:
    session = web.require(request)
    form = await web.form_with_csrf(request, session)
    assert session.client is not None
    name = alert_name(request.path_params["alert_id"])
    values = {k: str(form.get(k) or "").strip() for k in ("found_time", "place", "found")}
    problems: dict[str, str] = {}
    try:
        found = datetime.fromisoformat(values["found_time"]).replace(tzinfo=UTC)
    except ValueError:
        problems["found_time"] = "a date and time (UTC), e.g. 2026-12-05T14:30"
    if not problems:
        try:
            alert = await link.call(
                session.client.report_hit,
                name,
                found_time=timestamp(found),
                place=values["place"],
                found=values["found"],
            )
        except errors.InvalidArgument as exc:
            problems = {k.rsplit(".", 1)[-1]: v for k, v in exc.violations.items()} or {
                "found": exc.message
            }
        else:
            if web.is_htmx(request):
                return web.render(
                    request,
                    "_hits.html",
                    {
                        "alert": alert,
                        "hit_form": {"found_time": _now_local(), "place": "", "found": ""},
                        "hit_errors": {},
                        "reported": True,
                    },
                    session=session,
                )
            return web.redirect(request, f"/alerts/{request.path_params['alert_id']}")
    alert = await link.call(session.client.get_alert, name)
    return web.render(
        request,
        "_hits.html" if web.is_htmx(request) else "alert.html",
        {
            "alert": alert,
            "hit_form": values,
            "hit_errors": problems,
            "live_after": session.cursor,
            "live_since": int(time.time() * 1000),
        },
        status_code=400,
        session=session,
    )


async def delivery(request: Request) -> Response:
    session = web.require(request)
    assert session.client is not None
    name = alert_name(request.path_params["alert_id"])
    got = await link.call(session.client.get_delivery, name, request.path_params["agency_id"])
    return web.render(request, "delivery.html", {"delivery": got}, session=session)


routes = [
    Route("/inbox", inbox),
    Route("/issued", issued),
    Route("/alerts/{alert_id}", show),
    Route("/alerts/{alert_id}/acknowledge", acknowledge, methods=["POST"]),
    Route("/alerts/{alert_id}/hits", report_hit, methods=["POST"]),
    Route("/alerts/{alert_id}/deliveries/{agency_id}", delivery),
]
