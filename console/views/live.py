"""Live feeds as Server-Sent Events, fed by the node's watch streams.

Each ``/live/...`` response is one upstream stream (``WatchAlerts``,
``WatchCase`` or ``WatchDetentions``; two for the feed page) opened with the officer's own token and
read from the cursor the page gives (``after``) or, when the browser
reconnects, from the ``Last-Event-ID`` header it sends: every SSE message
carries the cursor of the last node event it covers as its id, so a
reconnect resumes exactly after what the page already has — nothing is lost
and nothing comes twice. (The feed page's id is ``A.C``: one cursor for the
alert stream and one for the case stream.)

What the browser receives is HTML rendered here, escaped like every page:

* ``upsert``: elements with ids; the page replaces the element with the same
  id, or inserts it into the live list when it is new and the list takes
  new items (first page of the inbox, the feed);
* ``signed-out``: the token stopped working or the session ended: go to sign-in;
* ``reload``: the stream cannot continue from here; the page reloads itself.

A page starts its stream at the session's highest cursor seen (never past
what the page shows) and ignores events older than the moment it was
rendered (``since``, minus a margin): replaying those would only re-render
what is already on the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from console import link, web
from console.display import ENUMS, enum_key, enum_value, ts_ms
from console.sessions import Session
from console.views.alerts import alert_name, matches
from console.views.cases import case_name
from console.views.detentions import detention_name
from intelshare import errors
from intelshare.v1 import (
    alert_pb2,
    alert_service_pb2,
    case_pb2,
    case_service_pb2,
    detention_pb2,
    ipr_service_pb2,
)

log = logging.getLogger("console.live")

#: Events this much older than the page are still applied (commit and clock skew).
SINCE_MARGIN_MS = 5_000
#: The browser waits this long before reconnecting.
RETRY_MS = 2_000
#: A comment line at least this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
#: Events handled together at most (one fetch per alert in a batch).
BATCH = 500

_INT = re.compile(r"^\d{1,19}$")
_PAIR = re.compile(r"^(\d{1,19})\.(\d{1,19})$")


def message(data: str = "", *, event: str = "", id: str = "") -> bytes:
    """One SSE message; multi-line data goes on several ``data:`` lines."""
    lines = []
    if event:
        lines.append(f"event: {event}")
    if id:
        lines.append(f"id: {id}")
    for line in data.splitlines() or ([""] if data else []):
        lines.append(f"data: {line}")
    return ("\n".join(lines) + "\n\n").encode()


def resume_point(request: Request) -> str:
    """Last-Event-ID when the browser reconnects, else the page's ``after``."""
    return request.headers.get("last-event-id") or request.query_params.get("after", "0")


def _cursor(text: str) -> int:
    return int(text) if _INT.match(text) else 0


def _fragment(request: Request, session: Session, template: str, **context: Any) -> str:
    """A fragment with what every page's templates may use (as :func:`console.web.render`)."""
    env = web.templates(request).env
    base = {
        "session": session,
        "csrf": session.csrf,
        "agency": web.config(request).node_server_name,
        "path": request.url.path,
        "request": request,
    }
    return env.get_template(template).render(**base, **context)


async def _run(
    request: Request,
    session: Session,
    upstreams: Callable[[asyncio.Queue[tuple[str, Any]]], list[link.Upstream]],
    handle: Callable[[list[tuple[str, Any]]], Awaitable[list[bytes]]],
) -> AsyncIterator[bytes]:
    """Read the upstreams, hand batches of events to ``handle``, yield SSE bytes."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    streams = upstreams(queue)
    store = web.store(request)
    yield f"retry: {RETRY_MS}\n\n".encode()
    try:
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                if store.get(session.id) is None:
                    yield message("", event="signed-out") + b""
                    return
                yield b": keep-alive\n\n"
                continue
            batch = [first]
            while len(batch) < BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            ended = [item for _tag, item in batch if isinstance(item, link.StreamEnd)]
            events = [(tag, item) for tag, item in batch if not isinstance(item, link.StreamEnd)]
            if events:
                if store.get(session.id) is None:
                    yield message("bye", event="signed-out")
                    return
                try:
                    chunks = await handle(events)
                    for chunk in chunks:
                        yield chunk
                    if not chunks:
                        # Heartbeats only: writing something is also how a browser
                        # that went away is noticed (and its node stream closed).
                        yield b": heartbeat\n\n"
                except errors.Unauthenticated:
                    store.end(session)
                    yield message("bye", event="signed-out")
                    return
            if ended:
                error = ended[0].error
                if isinstance(error, errors.Unauthenticated):
                    store.end(session)
                    yield message("bye", event="signed-out")
                elif isinstance(error, errors.InvalidArgument | errors.CursorExpired):
                    # The cursor is not one the node can resume from (its log was
                    # reset or purged past it): start the page afresh.
                    session.cursor = 0
                    yield message("reload", event="reload")
                elif isinstance(error, errors.PermissionDenied | errors.NotFound):
                    yield message("reload", event="reload")
                # Anything else (node restarting, network): the browser reconnects
                # after RETRY_MS with Last-Event-ID and the stream resumes.
                return
    finally:
        for s in streams:
            s.cancel()


def _sse(body: AsyncIterator[bytes]) -> Response:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _signed_out() -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield message("bye", event="signed-out")

    return _sse(body())


# --- alert lists and one alert ---------------------------------------------------------


async def _fetch_alerts(session: Session, names: list[str]) -> dict[str, alert_pb2.Alert]:
    assert session.client is not None
    out = {}
    for name in names:
        with contextlib.suppress(errors.NotFound, errors.PermissionDenied):
            out[name] = await link.call(session.client.get_alert, name)
    return out


async def alert_list(request: Request) -> Response:
    """Rows of the inbox (``view=inbox``) or the issued list (``view=issued``)."""
    session = web.current(request)
    if session is None or session.signed_in is False:
        return _signed_out()
    client = session.client
    assert client is not None
    q = request.query_params
    view = q.get("view", "inbox")
    direction = (
        alert_pb2.ALERT_DIRECTION_ISSUED if view == "issued" else alert_pb2.ALERT_DIRECTION_RECEIVED
    )
    insert_type = "alert.issued" if view == "issued" else "alert.received"
    may_insert = q.get("insert") == "1"
    since = _cursor(q.get("since", "0")) - SINCE_MARGIN_MS
    kind = enum_value(ENUMS["kind"], q.get("kind", ""))
    state = enum_value(ENUMS["state"], q.get("state", ""))
    urgency = enum_value(ENUMS["urgency"], q.get("urgency", ""))
    partner = q.get("partner", "")
    row_template = "_issued_row.html" if view == "issued" else "_inbox_row.html"
    after = _cursor(resume_point(request))

    async def handle(batch: list[tuple[str, Any]]) -> list[bytes]:
        events = [
            item.event
            for _t, item in batch
            if isinstance(item, alert_service_pb2.WatchAlertsResponse) and item.HasField("event")
        ]
        if not events:
            return []
        last = events[-1].cursor
        session.saw_cursor(last)
        recent = [e for e in events if ts_ms(e.create_time) >= since and e.alert]
        inserts = {e.alert for e in recent if e.type == insert_type}
        fetched = await _fetch_alerts(session, list(dict.fromkeys(e.alert for e in recent)))
        out = []
        for name, alert in fetched.items():
            if alert.direction != direction:
                continue
            if (kind and alert.kind != kind) or (state and alert.state != state):
                continue
            if not matches(alert, urgency, partner):
                continue
            html = _fragment(request, session, row_template, alert=alert)
            insert = "1" if may_insert and name in inserts else "0"
            out.append(message(html, event="upsert-new" if insert == "1" else "upsert"))
        out.append(message("", id=str(last)))
        return out

    return _sse(
        _run(request, session, lambda qu: [link.Upstream.alerts(client, after, qu)], handle)
    )


async def one_alert(request: Request) -> Response:
    """The delivery map, status, hits and related records of one alert, re-rendered when it
    changes or when the node finds a new record sharing one of its identifiers.

    Only this stream asks the node for ``link.found`` events (``include_links``): such an
    event names the older record, so one naming this alert says its ``related`` list grew.
    What the list holds is the node's answer to ``GetAlert``, never worked out here.
    """
    session = web.current(request)
    if session is None or not session.signed_in:
        return _signed_out()
    client = session.client
    assert client is not None
    try:
        name = alert_name(request.path_params["alert_id"])
    except errors.NotFound:
        return Response(status_code=404)
    since = _cursor(request.query_params.get("since", "0")) - SINCE_MARGIN_MS
    after = _cursor(resume_point(request))

    async def handle(batch: list[tuple[str, Any]]) -> list[bytes]:
        events = [
            item.event
            for _t, item in batch
            if isinstance(item, alert_service_pb2.WatchAlertsResponse) and item.HasField("event")
        ]
        if not events:
            return []
        last = events[-1].cursor
        session.saw_cursor(last)
        out = []
        if any(e.alert == name and ts_ms(e.create_time) >= since for e in events):
            alert = await link.call(client.get_alert, name)
            out.append(
                message(
                    _fragment(request, session, "_alert_live.html", alert=alert), event="upsert"
                )
            )
        out.append(message("", id=str(last)))
        return out

    return _sse(
        _run(
            request,
            session,
            lambda qu: [link.Upstream.alerts(client, after, qu, links=True)],
            handle,
        )
    )


# --- the feed ---------------------------------------------------------------------------


async def feed(request: Request) -> Response:
    """Every alert and case event of the officer, as it happens (history first)."""
    session = web.current(request)
    if session is None or not session.signed_in:
        return _signed_out()
    client = session.client
    assert client is not None
    m = _PAIR.match(resume_point(request))
    cursors = {"a": int(m.group(1)), "c": int(m.group(2))} if m else {"a": 0, "c": 0}

    def upstreams(qu: asyncio.Queue[tuple[str, Any]]) -> list[link.Upstream]:
        return [
            link.Upstream.alerts(client, cursors["a"], qu, "a"),
            link.Upstream.cases(client, cursors["c"], qu, "c"),
        ]

    async def handle(batch: list[tuple[str, Any]]) -> list[bytes]:
        out = []
        for tag, item in batch:
            if isinstance(item, case_service_pb2.WatchCaseResponse) and item.HasField("heartbeat"):
                cursors["c"] = max(cursors["c"], item.heartbeat.head_cursor)
                continue
            if not item.HasField("event"):
                continue
            event = item.event
            cursors[tag] = event.cursor
            session.saw_cursor(event.cursor)
            html = _fragment(request, session, "_feed_item.html", event=event, tag=tag)
            out.append(message(html, event="upsert-new", id=f"{cursors['a']}.{cursors['c']}"))
        return out

    return _sse(_run(request, session, upstreams, handle))


# --- one case ---------------------------------------------------------------------------


async def one_case(request: Request) -> Response:
    """A case's members and entries, re-rendered when an event of the case arrives."""
    session = web.current(request)
    if session is None or not session.signed_in:
        return _signed_out()
    client = session.client
    assert client is not None
    try:
        name = case_name(request.path_params["case_id"])
    except errors.NotFound:
        return Response(status_code=404)
    since = _cursor(request.query_params.get("since", "0")) - SINCE_MARGIN_MS
    after = _cursor(resume_point(request))

    async def handle(batch: list[tuple[str, Any]]) -> list[bytes]:
        last = 0
        changed = False
        for _t, item in batch:
            if item.HasField("heartbeat"):
                last = max(last, item.heartbeat.head_cursor)
            elif item.HasField("event"):
                last = max(last, item.event.cursor)
                session.saw_cursor(item.event.cursor)
                changed = changed or ts_ms(item.event.create_time) >= since
        out = []
        if changed:
            case: case_pb2.Case = await link.call(client.get_case, name)
            entries = await link.call(client.all_entries, name)
            html = _fragment(request, session, "_case_live.html", case=case, entries=entries)
            out.append(message(html, event="upsert"))
        if last:
            out.append(message("", id=str(last)))
        return out

    return _sse(
        _run(
            request, session, lambda qu: [link.Upstream.cases(client, after, qu, case=name)], handle
        )
    )


# --- detentions -------------------------------------------------------------------------------


def _ipr_events(batch: list[tuple[str, Any]]) -> tuple[list[Any], int]:
    """The IPR events of a batch, and the highest cursor it covers (heartbeats included)."""
    events = []
    last = 0
    for _t, item in batch:
        if not isinstance(item, ipr_service_pb2.WatchDetentionsResponse):
            continue
        if item.HasField("heartbeat"):
            last = max(last, item.heartbeat.head_cursor)
        elif item.HasField("event"):
            events.append(item.event)
            last = max(last, item.event.cursor)
    return events, last


async def detention_list(request: Request) -> Response:
    """Rows of the detentions list: new detentions on top, changed ones in place."""
    session = web.current(request)
    if session is None or not session.signed_in:
        return _signed_out()
    client = session.client
    assert client is not None
    q = request.query_params
    may_insert = q.get("insert") == "1"
    since = _cursor(q.get("since", "0")) - SINCE_MARGIN_MS
    after = _cursor(resume_point(request))

    async def handle(batch: list[tuple[str, Any]]) -> list[bytes]:
        events, last = _ipr_events(batch)
        if not last:
            return []
        out = []
        recent = [
            e
            for e in events
            if ts_ms(e.create_time) >= since and e.resource.startswith("detentions/")
        ]
        created = {e.resource for e in recent if e.type == "detention.created"}
        for name in dict.fromkeys(e.resource for e in recent):
            try:
                detention: detention_pb2.Detention = await link.call(client.get_detention, name)
            except (errors.NotFound, errors.PermissionDenied):
                continue  # not this officer's to see (another holder's)
            html = _fragment(request, session, "_detention_row.html", d=detention)
            new = may_insert and name in created
            out.append(message(html, event="upsert-new" if new else "upsert"))
        out.append(message("", id=str(last)))
        return out

    return _sse(
        _run(request, session, lambda qu: [link.Upstream.detentions(client, after, qu)], handle)
    )


async def one_detention(request: Request) -> Response:
    """A detention's state, deadlines and history (and its next steps when the state moved)."""
    session = web.current(request)
    if session is None or not session.signed_in:
        return _signed_out()
    client = session.client
    assert client is not None
    try:
        name = detention_name(request.path_params["detention_id"])
    except errors.NotFound:
        return Response(status_code=404)
    since = _cursor(request.query_params.get("since", "0")) - SINCE_MARGIN_MS
    after = _cursor(resume_point(request))
    #: The state the page's buttons are for: they are re-rendered only when it changes,
    #: so a reason being typed is not wiped by an unrelated change (samples, extension).
    shown = {"state": request.query_params.get("state", "")}

    async def handle(batch: list[tuple[str, Any]]) -> list[bytes]:
        events, last = _ipr_events(batch)
        if not last:
            return []
        out = []
        if any(e.resource == name and ts_ms(e.create_time) >= since for e in events):
            detention: detention_pb2.Detention = await link.call(client.get_detention, name)
            state = enum_key(ENUMS["detention_state"], detention.state)
            html = _fragment(
                request,
                session,
                "_detention_live.html",
                d=detention,
                with_moves=state != shown["state"],
                done="",
                form_errors={},
                values={},
            )
            shown["state"] = state
            out.append(message(html, event="upsert"))
        out.append(message("", id=str(last)))
        return out

    return _sse(
        _run(request, session, lambda qu: [link.Upstream.detentions(client, after, qu)], handle)
    )


async def feed_page(request: Request) -> Response:
    session = web.require(request)
    web.customs_only(session)
    return web.render(request, "feed.html", {}, session=session)


routes = [
    Route("/feed", feed_page),
    Route("/live/alerts", alert_list),
    Route("/live/alerts/{alert_id}", one_alert),
    Route("/live/feed", feed),
    Route("/live/cases/{case_id}", one_case),
    Route("/live/detentions", detention_list),
    Route("/live/detentions/{detention_id}", one_detention),
]
