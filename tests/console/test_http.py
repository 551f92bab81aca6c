"""The console over plain HTTP against a real federation: pages, sessions, security.

Everything here goes through a real console (uvicorn on 127.0.0.1:0) to real
nodes and a real gateway; the browser tests (test_browser.py) walk the same
flows in Chromium.
"""

from __future__ import annotations

import re
import ssl
import threading
import uuid
from datetime import timedelta

import httpx
import pytest

from intelshare.v1 import alert_pb2
from node.storage.officers import OfficerRegistry
from tests.console.conftest import Federation, csrf_of, issue, open_case, sse_events
from tests.node.conftest import CUSTOMS, TASKFORCE, expire_in, wait_for

PAGES = ["/inbox", "/issue", "/issued", "/feed", "/cases", "/alerts/01ABC", "/cases/x"]


# --- sessions --------------------------------------------------------------------------------


def test_every_page_without_a_session_redirects_to_sign_in(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    client = nl.http()
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/sign-in?next=" + path.split("?")[0]), path
    assert client.get("/").headers["location"] == "/inbox"
    # Live streams answer with a sign-out event instead (an EventSource cannot follow a redirect).
    with client.stream("GET", "/live/feed") as stream:
        assert stream.status_code == 200
        assert sse_events(stream, 1)[0]["event"] == "signed-out"


def test_sign_in_checks_the_token_with_the_node(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    client = nl.http()
    page = client.get("/sign-in?next=/issued")
    answer = client.post(
        "/sign-in",
        data={"csrf_token": csrf_of(page.text), "token": "not-a-token", "next": "/issued"},
    )
    assert answer.status_code == 401
    assert "did not accept this token" in answer.text
    assert client.get("/inbox").status_code == 303
    # de-customs' officer cannot sign in at nl-customs' console: only nl's node decides.
    answer = client.post(
        "/sign-in",
        data={"csrf_token": csrf_of(answer.text), "token": federation.de.tokens["liaison"]},
    )
    assert answer.status_code == 401
    answer = client.post(
        "/sign-in",
        data={
            "csrf_token": csrf_of(answer.text),
            "token": nl.node.tokens["liaison"],
            "next": "/issued",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/issued"
    assert client.get("/issued").status_code == 200


def test_sign_in_goes_only_to_pages_of_the_console(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    for target in ("https://evil.example/", "//evil.example/x", "/live/feed", "javascript:x"):
        client = nl.http()
        page = client.get("/sign-in")
        answer = client.post(
            "/sign-in",
            data={
                "csrf_token": csrf_of(page.text),
                "token": nl.node.tokens["analyst"],
                "next": target,
            },
        )
        assert answer.headers["location"] == "/inbox", target


def test_sign_in_without_its_csrf_token_is_refused(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    client = nl.http()
    client.get("/sign-in")
    answer = client.post("/sign-in", data={"token": nl.node.tokens["liaison"]})
    assert answer.status_code == 403
    assert client.get("/inbox").status_code == 303


def test_cookie_holds_only_a_session_id_with_its_flags(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    client = nl.http()
    page = client.get("/sign-in")
    token = nl.node.tokens["liaison"]
    answer = client.post("/sign-in", data={"csrf_token": csrf_of(page.text), "token": token})
    cookie = answer.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    value = rest.split(";", 1)[0]
    assert name == "intelshare-console"
    assert len(value) >= 40
    assert token not in cookie
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/" in flags
    assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back
    # The session id changed at sign-in (an id planted before it is worth nothing).
    assert page.cookies["intelshare-console"] != value
    # Strict headers on every page.
    inbox = client.get("/inbox")
    csp = inbox.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert inbox.headers["x-content-type-options"] == "nosniff"
    assert inbox.headers["cache-control"] == "no-store"
    assert token not in inbox.text


def test_over_tls_the_cookie_is_secure(federation: Federation) -> None:
    fed = federation.cluster.fed
    srv = fed.gateway_server_dir  # a certificate for localhost/127.0.0.1 from the federation CA
    tls = federation.start(federation.nl, tls_cert=srv / "tls.crt", tls_key=srv / "tls.key")
    assert tls.url.startswith("https://")
    client = tls.http(verify=ssl.create_default_context(cafile=str(fed.ca_file)))
    page = client.get("/sign-in")
    answer = client.post(
        "/sign-in", data={"csrf_token": csrf_of(page.text), "token": tls.node.tokens["liaison"]}
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-intelshare-console=")
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    assert "max-age=31536000" in client.get("/inbox").headers["strict-transport-security"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(tls.url + "/healthz", verify=True)  # not a public CA: the agency's own


def test_sign_out_ends_the_session(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    client = nl.signed_in("liaison")
    page = client.get("/inbox")
    assert client.post("/sign-out", data={}).status_code == 403  # no CSRF token: refused
    assert client.get("/inbox").status_code == 200
    answer = client.post("/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in"
    assert client.get("/inbox").status_code == 303
    assert len(nl.running.app.state.sessions) == 0


def test_a_revoked_token_sends_the_officer_back_to_sign_in(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    client = nl.signed_in("analyst")
    assert client.get("/inbox").status_code == 200
    registry = OfficerRegistry(federation.nl.node.store.engine)
    try:
        registry.disable("analyst")
    finally:
        registry.close()

    def sent_back() -> str:
        answer = client.get("/inbox")
        location = answer.headers.get("location", "")
        return location if answer.status_code == 303 and "expired=1" in location else ""

    location = wait_for(sent_back, what="the console to notice the disabled officer")
    assert "Your session ended" in client.get(location).text
    # The session is gone, not only this one request; the node still refuses the token.
    assert client.get("/inbox").status_code == 303
    page = client.get("/sign-in")
    answer = client.post(
        "/sign-in", data={"csrf_token": csrf_of(page.text), "token": nl.node.tokens["analyst"]}
    )
    assert answer.status_code == 401


def test_an_idle_session_ends(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    client = nl.signed_in("liaison")
    assert client.get("/inbox").status_code == 200
    nl.running.app.state.sessions.idle = 0.0  # as if the officer had left for longer than allowed
    answer = client.get("/inbox")
    assert answer.status_code == 303
    assert "expired=1" in answer.headers["location"]


# --- forms and CSRF ---------------------------------------------------------------------------


def test_a_form_without_the_csrf_token_is_refused_and_does_nothing(
    federation: Federation,
) -> None:
    _name, received = issue(federation)
    de_id = received["de-customs"].split("/")[1]
    de = federation.consoles["de-customs"]
    client = de.signed_in("analyst")
    page = client.get(f"/alerts/{de_id}")
    assert 'id="acknowledge"' in page.text
    for data, headers in (
        ({}, {}),
        ({"csrf_token": "forged"}, {}),
        ({}, {"X-CSRF-Token": "forged", "HX-Request": "true"}),
    ):
        answer = client.post(f"/alerts/{de_id}/acknowledge", data=data, headers=headers)
        assert answer.status_code == 403
        assert "Nothing was done" in answer.text
    # Another session's token does not do either.
    other = de.signed_in("admin")
    other_csrf = csrf_of(other.get("/inbox").text)
    answer = client.post(f"/alerts/{de_id}/acknowledge", data={"csrf_token": other_csrf})
    assert answer.status_code == 403
    with federation.de.client("admin") as api:
        assert not api.get_alert(received["de-customs"]).received.HasField("acknowledge_time")
    for path in ("/issue", "/issue/check", f"/alerts/{de_id}/hits", "/cases/x/entries"):
        assert client.post(path, data={"text": "x"}).status_code == 403, path
    # With the token (a form field, or the header htmx sends) it is done.
    answer = client.post(
        f"/alerts/{de_id}/acknowledge",
        headers={"X-CSRF-Token": csrf_of(page.text), "HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert 'data-acknowledged="1"' in answer.text
    with federation.de.client("admin") as api:
        assert api.get_alert(received["de-customs"]).received.HasField("acknowledge_time")


def test_markup_in_a_description_renders_as_text(federation: Federation) -> None:
    text = '<script>alert("pwned")</script><b>bold</b> & <img src=x onerror=alert(1)>'
    _name, received = issue(federation, description=text)
    de = federation.consoles["de-customs"]
    client = de.signed_in("analyst")
    for path in ("/inbox", "/alerts/" + received["de-customs"].split("/")[1]):
        html = client.get(path).text
        assert "<script>alert" not in html
        assert "<b>bold</b>" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in html
    # The only scripts are the console's own files.
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/static/htmx.min.js" defer>',
        '<script src="/static/console.js" defer>',
    ]


def test_a_session_sees_only_what_its_own_token_may(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    de = federation.consoles["de-customs"]
    # An alert nl-customs issued to be-police only: it exists on nl's node, not on de's.
    other, _ = issue(federation, to=("be-police",), wait=False, description="for be-police")
    nl_client = nl.signed_in("liaison")
    de_client = de.signed_in("liaison")
    assert "for be-police" in nl_client.get(f"/alerts/{other.split('/')[1]}").text
    answer = de_client.get(f"/alerts/{other.split('/')[1]}")
    assert answer.status_code == 404
    assert "for be-police" not in answer.text
    assert "for be-police" not in de_client.get("/inbox").text
    # What de-customs received, it sees as received: the issuer's delivery map is not in it.
    name, received = issue(federation)
    mine = de_client.get(f"/alerts/{received['de-customs'].split('/')[1]}").text
    assert 'id="delivery-map"' not in mine
    assert 'id="received-status"' in mine
    assert 'id="delivery-map"' in nl_client.get(f"/alerts/{name.split('/')[1]}").text
    # Within one agency: a case nl's liaison opened is invisible to an analyst not on its team.
    case_id = open_case(federation, "Operation Pangea").split("/")[1]
    assert "Operation Pangea" in nl_client.get("/cases").text
    assert nl_client.get(f"/cases/{case_id}").status_code == 200
    analyst = nl.signed_in("analyst")
    assert "Operation Pangea" not in analyst.get("/cases").text
    denied = analyst.get(f"/cases/{case_id}")
    assert denied.status_code == 403
    assert "Operation Pangea" not in denied.text
    # Analysts do not issue: the node refuses the analyst's own token, whoever else is signed in.
    csrf = csrf_of(analyst.get("/issue").text)
    refused = analyst.post("/issue", data=_issue_form(csrf, action="send"))
    assert refused.status_code == 403
    assert "ROLE_NOT_PERMITTED" in refused.text
    with federation.nl.client("admin") as api:
        assert "Counterfeit oncology" not in str(
            api.list_all(direction=alert_pb2.ALERT_DIRECTION_ISSUED)
        )


# --- pages ------------------------------------------------------------------------------------


def test_empty_states_say_what_to_do(federation: Federation) -> None:
    client = federation.consoles["nl-customs"].signed_in("liaison")
    expected = {
        "/inbox": "No alert has arrived yet",
        "/issued": "Issue an alert</a> to share it",
        "/feed": "Nothing has happened yet",
        "/cases": "No case you may see",
    }
    for path, text in expected.items():
        page = client.get(path)
        assert page.status_code == 200
        assert text in page.text, path
        for href in ("/inbox", "/issue", "/issued", "/feed", "/cases"):
            assert f'href="{href}"' in page.text  # the navigation bar


def test_inbox_filters_and_pages_with_the_nodes_tokens(federation: Federation) -> None:
    de = federation.start(federation.de, page_size=2)
    kinds = [
        (alert_pb2.ALERT_KIND_NARCOTICS, alert_pb2.URGENCY_LOW, "first"),
        (alert_pb2.ALERT_KIND_COUNTERFEIT_GOODS, alert_pb2.URGENCY_CRITICAL, "second"),
        (alert_pb2.ALERT_KIND_NARCOTICS, alert_pb2.URGENCY_CRITICAL, "third"),
    ]
    for kind, urgency, text in kinds:
        issue(federation, kind=kind, urgency=urgency, description=f"{text} alert")
    client = de.signed_in("analyst")
    first = client.get("/inbox").text
    assert first.index("third alert") < first.index("second alert")  # newest first
    assert "first alert" not in first
    assert first.count('class="badge new"') == 3  # the legend, and two unread rows
    older = re.search(r'href="/inbox\?page=([^"]+)" rel="next"', first)
    assert older
    second = client.get(f"/inbox?page={older.group(1)}").text
    assert "first alert" in second
    assert "third alert" not in second
    assert 'rel="next"' not in second
    narcotics = client.get("/inbox?kind=narcotics").text
    assert "third alert" in narcotics
    assert "first alert" in narcotics
    assert "second alert" not in narcotics
    critical = client.get("/inbox?urgency=critical").text
    assert "third alert" in critical
    assert "second alert" in critical
    assert "first alert" not in critical
    assert "third alert" in client.get("/inbox?partner=nl-customs").text
    none = client.get("/inbox?partner=be-police").text
    assert "No received alert matches these filters" in none


def test_inline_check_of_a_container_number(federation: Federation) -> None:
    client = federation.consoles["nl-customs"].signed_in("liaison")
    csrf = csrf_of(client.get("/issue").text)
    headers = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    wrong = client.post(
        "/issue/check?field=containers-0-number",
        data={"containers-0-number": "MSCU1234567"},
        headers=headers,
    )
    assert "the check digit of MSCU123456 is 6" in wrong.text
    right = client.post(
        "/issue/check?field=containers-0-number",
        data={"containers-0-number": "MSCU1234566"},
        headers=headers,
    )
    assert right.text.strip() == ""
    imo = client.post(
        "/issue/check?field=vessels-0-imo_number",
        data={"vessels-0-imo_number": "9074728"},
        headers=headers,
    )
    assert "not an IMO number" in imo.text


def _issue_form(csrf: str, **over: str) -> dict[str, str]:
    form = {
        "csrf_token": csrf,
        "request_id": str(uuid.uuid4()),
        "kind": "counterfeit_goods",
        "urgency": "high",
        "handling": "h1",
        "tlp": "amber",
        "reliability": "b",
        "credibility": "2",
        "expire": (expire_in(timedelta(days=3)).ToDatetime()).strftime("%Y-%m-%dT%H:%M"),
        "description": "Counterfeit oncology medicines in MSCU1234566",
        "recipients-0-agency_id": "de-customs",
        "recipients-0-treaty_id": CUSTOMS,
        "recipients-1-agency_id": "be-police",
        "recipients-1-treaty_id": TASKFORCE,
        "persons-0-name": "Jan Visser",
        "persons-0-passport_number": "NXC4KR7P1",
        "persons-0-nationality": "NL",
        "containers-0-number": "MSCU1234566",
        "containers-0-hs_codes": "300490",
    }
    form.update(over)
    return form


def test_issue_form_adds_and_removes_rows_and_checks_fields(federation: Federation) -> None:
    client = federation.consoles["nl-customs"].signed_in("liaison")
    csrf = csrf_of(client.get("/issue").text)
    page = client.post("/issue", data=_issue_form(csrf, action="add:vessels")).text
    assert 'name="vessels-0-imo_number"' in page
    assert 'value="Jan Visser"' in page  # what was typed stays
    page = client.post(
        "/issue", data=_issue_form(csrf, action="remove:persons:0", **{"vessels-0-name": "X"})
    ).text
    assert 'name="persons-0-name"' not in page
    bad = client.post(
        "/issue", data=_issue_form(csrf, action="preview", **{"containers-0-number": "MSCU1234567"})
    )
    assert bad.status_code == 400
    assert "the check digit of MSCU123456 is 6" in bad.text
    assert 'aria-invalid="true"' in bad.text


def test_preview_per_recipient_then_send(federation: Federation) -> None:
    client = federation.consoles["nl-customs"].signed_in("liaison")
    csrf = csrf_of(client.get("/issue").text)
    # be-police is not a party of the customs treaty: the preview says why it would refuse.
    refused = client.post(
        "/issue",
        data=_issue_form(csrf, action="preview", **{"recipients-1-treaty_id": CUSTOMS}),
    )
    assert refused.status_code == 200, refused.text
    assert 'id="preview-be-police"' in refused.text
    assert "NOT_A_PARTY" in refused.text
    assert 'id="send-button"' not in refused.text
    form = _issue_form(csrf, action="preview")
    preview = client.post("/issue", data=form).text
    de_card = preview.split('id="preview-de-customs"', 1)[1].split("</article>", 1)[0]
    be_card = preview.split('id="preview-be-police"', 1)[1].split("</article>", 1)[0]
    assert "NXC4KR7P1" in de_card  # the customs treaty lets the passport number through
    assert "NXC4KR7P1" not in be_card  # the task-force treaty does not
    assert "subjects.persons.passport_number" in be_card  # and says it removed it
    assert 'id="send-button"' in preview
    # Nothing was issued by previewing.
    with federation.nl.client("liaison") as api:
        assert api.list_all(direction=alert_pb2.ALERT_DIRECTION_ISSUED) == []
    sent = client.post("/issue", data={**form, "action": "send"})
    assert sent.status_code == 303
    location = sent.headers["location"]
    assert location.startswith("/alerts/")
    again = client.post("/issue", data={**form, "action": "send"})  # same request id
    assert again.headers["location"] == location
    with federation.nl.client("liaison") as api:
        assert len(api.list_all(direction=alert_pb2.ALERT_DIRECTION_ISSUED)) == 1
    page = client.get(location).text
    assert 'id="delivery-map"' in page
    assert 'id="delivery-de-customs"' in page
    # Each recipient's copy as sent: the passport number went to de-customs only.
    de_copy = client.get(f"{location.split('?')[0]}/deliveries/de-customs").text
    be_copy = client.get(f"{location.split('?')[0]}/deliveries/be-police").text
    assert "NXC4KR7P1" in de_copy
    assert "NXC4KR7P1" not in be_copy
    assert "<code>subjects.persons.passport_number</code>" in be_copy


def test_report_a_hit_and_see_it_at_the_issuer(federation: Federation) -> None:
    name, received = issue(federation)
    de_id = received["de-customs"].split("/")[1]
    client = federation.consoles["de-customs"].signed_in("analyst")
    csrf = csrf_of(client.get(f"/alerts/{de_id}").text)
    bad = client.post(
        f"/alerts/{de_id}/hits",
        data={"csrf_token": csrf, "found_time": "yesterday", "place": "x", "found": "y"},
    )
    assert bad.status_code == 400
    assert "a date and time (UTC)" in bad.text
    ok = client.post(
        f"/alerts/{de_id}/hits",
        data={
            "csrf_token": csrf,
            "found_time": "2026-01-02T10:00",
            "place": "Port of Hamburg, CTA",
            "found": "Two pallets of the medicines",
        },
    )
    assert ok.status_code == 303
    nl = federation.consoles["nl-customs"].signed_in("liaison")

    def at_issuer() -> bool:
        return "Port of Hamburg, CTA" in nl.get(f"/alerts/{name.split('/')[1]}").text

    wait_for(at_issuer, what="the hit on the issuer's alert page")


def test_case_page_and_adding_an_entry(federation: Federation) -> None:
    case_id = open_case(federation, "Operation Pangea").split("/")[1]
    client = federation.consoles["nl-customs"].signed_in("liaison")
    page = client.get(f"/cases/{case_id}").text
    assert "No entry yet" in page
    assert "de-customs" in page
    csrf = csrf_of(page)
    empty = client.post(
        f"/cases/{case_id}/entries",
        data={"csrf_token": csrf, "text": " "},
        headers={"HX-Request": "true"},
    )
    assert empty.status_code == 400
    assert "Write the entry" in empty.text
    added = client.post(
        f"/cases/{case_id}/entries",
        data={"csrf_token": csrf, "text": "Container held at Rotterdam <b>now</b>"},
    )
    assert added.status_code == 303
    page = client.get(f"/cases/{case_id}").text
    assert "Container held at Rotterdam &lt;b&gt;now&lt;/b&gt;" in page


# --- live streams -----------------------------------------------------------------------------


def test_the_feed_resumes_after_the_last_event_id(federation: Federation) -> None:
    """A reconnecting browser sends Last-Event-ID: the stream goes on after it, nothing twice."""
    nl = federation.consoles["nl-customs"]
    client = nl.signed_in("liaison")
    issue(federation, wait=False, description="one")
    with client.stream("GET", "/live/feed") as stream:
        first = sse_events(stream, 1)
    assert first[0]["event"] == "upsert-new"
    assert "alert.issued" in first[0]["data"]
    last_id = first[0]["id"]
    assert re.fullmatch(r"\d+\.\d+", last_id)
    # While disconnected: two more alerts, each with its events (issued, delivered, ...).
    issue(federation, description="two")
    issue(federation, description="three")
    seen: list[str] = []
    with client.stream("GET", "/live/feed", headers={"Last-Event-ID": last_id}) as stream:
        for message in sse_events(stream, 4):
            seen.append(re.search(r'id="(ev-[^"]+)"', message["data"]).group(1))  # type: ignore[union-attr]
            alert_cursor = int(message["id"].split(".")[0])
            assert alert_cursor > int(last_id.split(".")[0])
    assert len(set(seen)) == len(seen)
    assert first[0]["data"].split('id="', 1)[1].split('"')[0] not in seen
    # From the start again: the first event is the one seen first.
    with client.stream("GET", "/live/feed") as stream:
        again = sse_events(stream, 1)
    assert again[0]["data"] == first[0]["data"]
    # A browser that went away: its node streams are closed (by the next heartbeat).
    wait_for(
        lambda: not [t for t in threading.enumerate() if t.name == "console-watch"],
        timeout=15,
        what="the console's watch threads to end",
    )


def test_a_new_alert_arrives_on_the_inbox_stream(federation: Federation) -> None:
    de = federation.consoles["de-customs"]
    client = de.signed_in("analyst")
    page = client.get("/inbox").text
    url = re.search(r'data-live-url="([^"]+)"', page).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    with client.stream("GET", url) as stream:
        _name, received = issue(federation, description="arriving live")
        (row,) = sse_events(stream, 1)
    assert row["event"] == "upsert-new"
    assert "arriving live" in row["data"]
    assert f'id="alert-{received["de-customs"].split("/")[1]}"' in row["data"]


def test_an_open_stream_signs_out_a_revoked_officer(federation: Federation) -> None:
    de = federation.consoles["de-customs"]
    client = de.signed_in("analyst")
    with client.stream("GET", "/live/alerts?view=inbox&insert=1") as stream:
        registry = OfficerRegistry(federation.de.node.store.engine)
        try:
            registry.disable("analyst")
        finally:
            registry.close()
        issue(federation, wait=False)  # the next event makes the node check the token again
        (event,) = sse_events(stream, 1)
    assert event["event"] == "signed-out"
    assert client.get("/inbox").status_code == 303


def test_the_issued_list_follows_deliveries(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    client = nl.signed_in("liaison")
    page = client.get("/issued").text
    url = re.search(r'data-live-url="([^"]+)"', page).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    with client.stream("GET", url) as stream:
        name, _ = issue(federation, wait=False)
        row_id = f'id="alert-{name.split("/")[1]}"'
        first = sse_events(stream, 1)[0]
        assert first["event"] == "upsert-new"  # a new row on top
        assert row_id in first["data"]
        # Then the same row again, as de-customs' node confirms delivery.
        for _ in range(10):
            (message,) = sse_events(stream, 1)
            assert message["event"] == "upsert"
            assert row_id in message["data"]
            if "Delivered" in message["data"]:
                break
        else:
            raise AssertionError("the row never said Delivered")
