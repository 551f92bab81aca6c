"""The console's IPR pages over HTTP against a real federation: recordations, detentions with
their deadlines and moves, detention reports, the rights holder's limited view, live streams.

Records are made through the nodes' own APIs (tests/console/ipr_helpers.py); what is checked is
what the console shows and does with the officer's (or the holder's) own token.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from intelshare.v1 import detention_pb2, recordation_pb2
from tests.console.conftest import Federation, csrf_of, sse_events
from tests.console.ipr_helpers import detain, grant, holders, ipr, notify
from tests.node.api.ipr_fixtures import ACME_GTIN, OTHER_KEY, acme, shoes, ts
from tests.node.conftest import wait_for

D = detention_pb2
R = recordation_pb2

IPR_PAGES = [
    "/recordations",
    "/recordations/search?gtin=1",
    "/recordations/acme-2026",
    "/detentions",
    "/detentions/hh-0412",
    "/detention-reports",
    "/detention-reports/x",
]


def test_ipr_pages_without_a_session_go_to_sign_in(federation: Federation) -> None:
    client = federation.consoles["de-customs"].http()
    for path in IPR_PAGES:
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/sign-in?next="), path
    with client.stream("GET", "/live/detentions") as stream:
        assert sse_events(stream, 1)[0]["event"] == "signed-out"


def test_recordation_list_page_and_internal_notes_only_at_the_grantor(
    federation: Federation,
) -> None:
    name = grant(federation)
    rid = name.split("/")[1]
    nl = federation.consoles["nl-customs"].signed_in("liaison")
    listing = nl.get("/recordations").text
    assert f'href="/recordations/{rid}"' in listing
    assert "granted here" in listing
    assert "640411" in listing
    page = nl.get(f"/recordations/{rid}")
    assert page.status_code == 200
    for text in (
        "Acme Sports B.V.",
        "NL123456789",
        "ip@acme.example",
        "Trade mark",
        "018123456",
        "EUIPO",
        "running shoes, model Sprint",
        ACME_GTIN,
        "hologram inside the tongue",
        "Granted",
        "de-customs",
    ):
        assert text in page.text, text
    assert 'id="internal-notes"' in page.text
    assert "holder answered slowly in 2025" in page.text
    # de-customs holds the copy: the same recordation, from nl-customs, without the notes.
    de = federation.consoles["de-customs"].signed_in("analyst")
    copy = de.get(f"/recordations/{rid}")
    assert copy.status_code == 200
    assert "Granted by <strong>nl-customs</strong>" in copy.text
    assert ACME_GTIN in copy.text
    assert "holder answered slowly" not in copy.text
    assert 'id="internal-notes"' not in copy.text
    assert "Withdraw" not in copy.text  # only the grantor changes it
    assert de.get("/recordations/no-such").status_code == 404


def test_recordations_in_force_or_all_and_the_grantors_moves(federation: Federation) -> None:
    grant(federation)
    grant(federation, "acme-old", mark="OLDMARK")
    nl = federation.consoles["nl-customs"].signed_in("liaison")
    page = nl.get("/recordations/acme-old").text
    csrf = csrf_of(page)
    # A move needs a reason; without it nothing is done.
    empty = nl.post("/recordations/acme-old/move", data={"csrf_token": csrf, "verb": "withdraw"})
    assert empty.status_code == 400
    assert "Say why" in empty.text
    assert (
        nl.post(
            "/recordations/acme-old/move", data={"verb": "withdraw", "reason": "no CSRF"}
        ).status_code
        == 403
    )
    with ipr(federation.nl) as api:
        assert api.get_recordation("acme-old").state == R.RECORDATION_STATE_GRANTED
    done = nl.post(
        "/recordations/acme-old/move",
        data={"csrf_token": csrf, "verb": "withdraw", "reason": "holder's request"},
    )
    assert done.status_code == 303
    shown = nl.get(done.headers["location"]).text
    assert "Recordation withdrawn" in shown
    assert "holder&#39;s request" in shown
    in_force = nl.get("/recordations").text
    assert "/recordations/acme-2026" in in_force
    assert "/recordations/acme-old" not in in_force
    everything = nl.get("/recordations?scope=all").text
    assert "/recordations/acme-old" in everything
    assert "Withdrawn" in everything
    # The withdrawal reaches de-customs' copy.
    de = federation.consoles["de-customs"].signed_in("analyst")
    wait_for(
        lambda: "/recordations/acme-old" not in de.get("/recordations").text,
        what="the withdrawal at de-customs",
    )
    assert "/recordations/acme-old" in de.get("/recordations?direction=received&scope=all").text
    assert "/recordations/acme-old" not in de.get("/recordations?direction=issued&scope=all").text


def test_search_by_gtin_hs_code_and_right_name(federation: Federation) -> None:
    grant(federation)
    de = federation.consoles["de-customs"].signed_in("analyst")
    by_gtin = de.get(f"/recordations/search?gtin={ACME_GTIN}")
    assert by_gtin.status_code == 200
    assert 'href="/recordations/acme-2026"' in by_gtin.text
    assert "1 recordation found" in by_gtin.text
    assert ">gtin<" in by_gtin.text
    both = de.get("/recordations/search?right_name=acme&hs_code=6404110090").text
    assert 'href="/recordations/acme-2026"' in both
    assert "right_name" in both
    none = de.get("/recordations/search?gtin=5901234123457").text
    assert "No recordation in force covers this product" in none
    bad = de.get("/recordations/search?gtin=4006381333932")
    assert bad.status_code == 400
    assert "check digit" in bad.text
    asked = de.get("/recordations/search?gtin=&hs_code=&right_name=")
    assert asked.status_code == 400
    assert "Give a GTIN, an HS code or a right name" in asked.text


def test_markup_in_a_recordation_renders_as_text(federation: Federation) -> None:
    markup = '<script>alert("pwned")</script><b>bold</b> <img src=x onerror=alert(1)>'
    recordation = acme()
    recordation.goods[0].description = markup
    recordation.authenticity_features[0].description = markup
    with ipr(federation.nl) as api:
        api.create_recordation(recordation, "acme-xss")
    nl = federation.consoles["nl-customs"].signed_in("liaison")
    html = nl.get("/recordations/acme-xss").text
    assert "<script>alert" not in html
    assert "<b>bold</b>" not in html
    assert "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;&lt;b&gt;bold") == 2
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/static/htmx.min.js" defer>',
        '<script src="/static/console.js" defer>',
    ]


def test_detentions_with_deadlines_moves_and_extension(federation: Federation) -> None:
    recordation = grant(federation)
    name = detain(federation, recordation)
    did = name.split("/")[1]
    de = federation.consoles["de-customs"].signed_in("liaison")
    listing = de.get("/detentions").text
    assert f'id="detention-{did}"' in listing
    assert "1200 pairs, sports shoes bearing the sign ACME" in listing
    assert "Detained" in listing
    assert "Notification: end of" in listing
    page = de.get(f"/detentions/{did}").text
    assert "Schuh Import GmbH" in page  # customs see the parties
    assert "tip from the port" in page  # and their own notes
    assert 'value="holder_notified"' in page
    assert 'value="released"' in page
    assert 'value="destroyed"' not in page  # not a move from "detained"
    csrf = csrf_of(page)
    empty = de.post(
        f"/detentions/{did}/move", data={"csrf_token": csrf, "state": "holder_notified"}
    )
    assert empty.status_code == 400
    assert "Say why" in empty.text
    wrong = de.post(
        f"/detentions/{did}/move",
        data={"csrf_token": csrf, "state": "destroyed", "reason": "too early"},
    )
    assert wrong.status_code == 409
    assert "DETENTION_MOVE_INVALID" in wrong.text
    moved = de.post(
        f"/detentions/{did}/move",
        data={"csrf_token": csrf, "state": "holder_notified", "reason": "holder e-mailed"},
    )
    assert moved.status_code == 303
    page = de.get(moved.headers["location"]).text
    assert "The detention moved" in page
    history = page.split('id="history"', 1)[1].split("</ol>", 1)[0]
    assert "Holder notified" in history
    assert "holder e-mailed" in history
    deadlines = page.split('class="cards deadlines"', 1)[1].split("</table>", 1)[0]
    assert "Holder answer" in deadlines
    assert "Declarant answer" in deadlines
    assert re.search(r"<td data-label=\"Working days\">10\b", deadlines)
    assert 'value="infringement_confirmed"' in page
    assert 'id="extend"' in page
    extended = de.post(
        f"/detentions/{did}/extend",
        data={"csrf_token": csrf, "working_days": "5", "reason": "laboratory results pending"},
    )
    assert extended.status_code == 303
    page = de.get(extended.headers["location"]).text
    assert "The deadline is extended" in page
    assert "incl. extension of 5" in page
    assert 'id="extend"' not in page  # once only
    with ipr(federation.de) as api:
        holder_answer = next(
            d for d in api.get_detention(name).deadlines if d.kind == D.DEADLINE_KIND_HOLDER_ANSWER
        )
    assert holder_answer.working_days == 15


def test_an_overdue_deadline_is_marked(federation: Federation) -> None:
    recordation = grant(federation)
    detain(federation, recordation, detention_id="fresh-1")
    # Detained three weeks ago and never notified: its one working day ended long since.
    stale = shoes(recordation)
    stale.detain_time.CopyFrom(ts(datetime.now(UTC) - timedelta(days=21)))
    with ipr(federation.de) as api:
        api.create_detention(stale, "late-1")
    de = federation.consoles["de-customs"].signed_in("liaison")
    listing = de.get("/detentions").text
    late = listing.split('id="detention-late-1"', 1)[1].split("</tr>", 1)[0]
    assert 'class="badge overdue"' in late
    fresh = listing.split('id="detention-fresh-1"', 1)[1].split("</tr>", 1)[0]
    assert "overdue" not in fresh.lower()
    page = de.get("/detentions/late-1").text
    deadlines = page.split('class="cards deadlines"', 1)[1].split("</table>", 1)[0]
    assert "Overdue" in deadlines
    assert "Notification" in deadlines


def test_the_rights_holder_sees_only_its_own_and_answers(federation: Federation) -> None:
    recordation = grant(federation)
    name = detain(federation, recordation)
    did = name.split("/")[1]
    holders(federation)
    # Another holder's recordation and a detention under it, at de-customs.
    grant(
        federation,
        "other-2026",
        eori=OTHER_KEY.removeprefix("eori:"),
        gtin="5901234123457",
        mark="OTHERBRAND",
    )
    detain(federation, "recordations/other-2026", detention_id="other-0001", gtin="5901234123457")
    de = federation.consoles["de-customs"]
    holder = de.signed_in("rights_holder")
    # Signed in, it lands on its detentions; the navigation offers only its two pages.
    home = holder.get("/")
    assert home.headers["location"] == "/detentions"
    page = holder.get("/detentions").text
    nav = page.split('<nav aria-label="Main">', 1)[1].split("</ul>", 1)[0]
    assert re.findall(r'href="([^"]+)"', nav) == ["/detentions", "/recordations"]
    assert f'id="detention-{did}"' in page
    assert "other-0001" not in page
    assert "/recordations/acme-2026" in holder.get("/recordations").text
    assert "other-2026" not in holder.get("/recordations").text
    # Its view: no parties, transport, notes or officers' names.
    mine = holder.get(f"/detentions/{did}").text
    assert "1200" in mine
    assert "Schuh Import GmbH" not in mine
    assert "Not disclosed to you" in mine
    assert "tip from the port" not in mine
    assert "CSQU3054383" not in mine
    assert "Nothing for you to answer now" in mine  # not notified yet
    # Another holder's detention and recordation: the node refuses, the console says so.
    for path in ("/detentions/other-0001", "/recordations/other-2026"):
        refused = holder.get(path)
        assert refused.status_code == 403, path
        assert "HOLDER_MISMATCH" in refused.text
        assert "OTHERBRAND" not in refused.text
        assert "Back to your detentions" in refused.text
    # Everything else: refused with a clear message, never a crash.
    for path in (
        "/inbox",
        "/issued",
        "/issue",
        "/feed",
        "/cases",
        "/detention-reports",
        "/profiles",
        "/hits",
        "/screen",
    ):
        refused = holder.get(path)
        assert refused.status_code == 403, path
        assert "Not permitted" in refused.text, path
        assert "rights holder" in refused.text, path
    csrf = csrf_of(mine)
    assert holder.post("/issue", data={"csrf_token": csrf, "action": "send"}).status_code == 403
    # Customs notify; the holder answers within its deadline.
    notify(federation, name)
    mine = holder.get(f"/detentions/{did}").text
    buttons = re.findall(r'name="state" value="([a-z_]+)"', mine)
    assert buttons == ["infringement_confirmed", "destruction_agreed"]
    assert "Ask for more time" in mine
    asked = holder.post(
        f"/detentions/{did}/samples",
        data={"csrf_token": csrf, "reason": "2 pairs for laboratory analysis"},
    )
    assert asked.status_code == 303
    longer = holder.post(
        f"/detentions/{did}/extend",
        data={"csrf_token": csrf, "working_days": "10", "reason": "laboratory results on 20 Jan"},
    )
    assert longer.status_code == 303
    confirmed = holder.post(
        f"/detentions/{did}/move",
        data={"csrf_token": csrf, "state": "infringement_confirmed", "reason": "no hologram"},
    )
    assert confirmed.status_code == 303
    # It cannot answer for the other holder, nor make customs' moves.
    refused = holder.post(
        "/detentions/other-0001/move",
        data={"csrf_token": csrf, "state": "destruction_agreed", "reason": "not mine"},
    )
    assert refused.status_code == 403
    assert "HOLDER_MISMATCH" in refused.text
    customs_move = holder.post(
        f"/detentions/{did}/move",
        data={"csrf_token": csrf, "state": "destroyed", "reason": "not the holder's"},
    )
    assert customs_move.status_code == 409
    with ipr(federation.de) as api:
        got = api.get_detention(name)
        other = api.get_detention("other-0001")
    assert got.state == D.DETENTION_STATE_INFRINGEMENT_CONFIRMED
    assert got.history[-1].role == "rights_holder"
    assert got.sample_requests[0].reason == "2 pairs for laboratory analysis"
    assert [d.extension_working_days for d in got.deadlines if d.extended] == [10]
    assert other.state == D.DETENTION_STATE_DETAINED
    # Customs see the holder's answer in the history.
    officer = de.signed_in("liaison").get(f"/detentions/{did}").text
    history = officer.split('id="history"', 1)[1].split("</ol>", 1)[0]
    assert "rights holder" in history
    assert "no hologram" in history


def test_detention_forms_need_the_csrf_token(federation: Federation) -> None:
    name = detain(federation, grant(federation))
    did = name.split("/")[1]
    de = federation.consoles["de-customs"].signed_in("liaison")
    for action, data in (
        ("move", {"state": "holder_notified", "reason": "x"}),
        ("extend", {"working_days": "3", "reason": "x"}),
        ("samples", {"reason": "x"}),
        ("disclose", {"reason": "x"}),
        ("report", {"agency_id": "nl-customs", "treaty_id": "x"}),
    ):
        answer = de.post(f"/detentions/{did}/{action}", data=data)
        assert answer.status_code == 403, action
        assert "Nothing was done" in answer.text
    with ipr(federation.de) as api:
        got = api.get_detention(name)
    assert got.state == D.DETENTION_STATE_DETAINED
    assert got.revision == 1


def test_a_confirmed_detention_reaches_the_grantor_as_a_report(federation: Federation) -> None:
    name = detain(federation, grant(federation))
    holders(federation)
    notify(federation, name)
    with ipr(federation.de, token=federation.de.tokens["rights_holder"]) as api:
        api.move_detention(name, D.DETENTION_STATE_DESTRUCTION_AGREED, "counterfeit")
    nl = federation.consoles["nl-customs"].signed_in("analyst")
    listing = wait_for(
        lambda: (lambda t: t if "de-customs" in t and "/detention-reports/" in t else "")(
            nl.get("/detention-reports").text
        ),
        what="the report at nl-customs",
    )
    assert 'href="/recordations/acme-2026"' in listing
    report_id = re.search(r'href="/detention-reports/([^"]+)"', listing).group(1)  # type: ignore[union-attr]
    page = nl.get(f"/detention-reports/{report_id}").text
    assert "Detention report from de-customs" in page
    assert "CSQU3054383" in page
    assert "Schuh Import" not in page  # the treaty keeps the parties back
    assert "1200" in page
    empty = federation.consoles["de-customs"].signed_in("liaison").get("/detention-reports")
    assert empty.status_code == 200


def test_detentions_arrive_and_change_on_the_live_streams(federation: Federation) -> None:
    recordation = grant(federation)
    de = federation.consoles["de-customs"].signed_in("liaison")
    page = de.get("/detentions").text
    assert "No detention yet" in page
    url = re.search(r'data-live-url="([^"]+)"', page).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    with de.stream("GET", url) as stream:
        name = detain(federation, recordation)
        (row,) = sse_events(stream, 1)
    assert row["event"] == "upsert-new"
    assert f'id="detention-{name.split("/")[1]}"' in row["data"]
    detail = de.get(f"/detentions/{name.split('/')[1]}").text
    url = re.search(r'data-live-url="([^"]+)"', detail).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    with de.stream("GET", url) as stream:
        notify(federation, name)
        # An earlier event of this detention (its creation, a link the
        # identifier index found) may still be on its way and render the
        # state before the move: read on to the update that shows the move.
        for _ in range(5):
            (update,) = sse_events(stream, 1)
            if 'id="detention-moves"' in update["data"]:
                break
    assert update["event"] == "upsert"
    assert 'id="detention-status"' in update["data"]
    assert 'id="detention-moves"' in update["data"]  # the state moved: new buttons
    assert 'value="infringement_confirmed"' in update["data"]
    assert "Holder answer" in update["data"]


def _grant_form(csrf: str, **over: str) -> dict[str, str]:
    form = {
        "csrf_token": csrf,
        "request_id": "7f1c8a52-2f0a-4d1e-9c7e-2b1b4c1d0e11",
        "recordation_id": "acme-form",
        "holder_name": "Acme Sports B.V.",
        "holder_eori": "NL123456789",
        "holder_country": "NL",
        "contact_name": "Brand protection",
        "contact_email": "ip@acme.example",
        "right_type": "trade_mark",
        "right_name": "ACME",
        "right_registration_number": "018123456",
        "right_office": "EUIPO",
        "goods_description": "running shoes, model Sprint",
        "hs_codes": "640411",
        "gtins": ACME_GTIN,
        "feature": "hologram inside the tongue\nstitching of 12 stitches per inch",
        "valid_from": datetime.now(UTC).date().isoformat(),
        "valid_until": (datetime.now(UTC).date() + timedelta(days=300)).isoformat(),
        "agency_id": "de-customs",
        "treaty_id": "customs-mutual-assistance",
        "internal_notes": "examined by the IPR desk",
    }
    form.update(over)
    return form


def test_grant_a_recordation_and_record_a_detention_from_the_forms(
    federation: Federation,
) -> None:
    nl = federation.consoles["nl-customs"].signed_in("liaison")
    page = nl.get("/recordations/new")
    assert page.status_code == 200
    csrf = csrf_of(page.text)
    assert nl.post("/recordations/new", data=_grant_form("")).status_code == 403
    bad = nl.post("/recordations/new", data=_grant_form(csrf, gtins="4006381333932"))
    assert bad.status_code == 400
    assert "GTIN_INVALID" in bad.text
    gtins = bad.text.split('id="f-gtins"', 1)[1].split("</div>", 1)[0]
    assert 'aria-invalid="true"' in gtins
    assert "check digit" in gtins
    assert 'value="Acme Sports B.V."' in bad.text  # what was typed stays
    granted = nl.post("/recordations/new", data=_grant_form(csrf))
    assert granted.status_code == 303
    assert granted.headers["location"] == "/recordations/acme-form?done=granted"
    again = nl.post("/recordations/new", data=_grant_form(csrf))  # the same request id
    assert again.headers["location"] == granted.headers["location"]
    shown = nl.get(granted.headers["location"]).text
    assert "stitching of 12 stitches per inch" in shown
    assert "examined by the IPR desk" in shown
    with ipr(federation.de, "analyst") as api:
        wait_for(lambda: api.all_recordations(), what="the copy at de-customs")
    de = federation.consoles["de-customs"].signed_in("liaison")
    page = de.get("/recordations/acme-form").text
    assert 'href="/detentions/new?recordation=acme-form"' in page
    form = de.get("/detentions/new?recordation=acme-form").text
    assert 'value="acme-form"' in form
    values = {
        "csrf_token": csrf_of(form),
        "request_id": "0b8e7f0a-5a8c-4c59-a7f5-0c2b9e1d7a10",
        "detention_id": "hh-form",
        "description": "sports shoes bearing the sign ACME",
        "brand": "ACME",
        "hs_code": "6404110090",
        "gtins": ACME_GTIN,
        "quantity": "600",
        "unit": "pair",
        "category": "shoes",
        "value": "48000",
        "procedure": "standard",
        "recordations": "acme-form",
        "container_number": "CSQU3054384",
        "origin_country": "CN",
        "destination_country": "NL",
        "consignee_name": "Schuh Import GmbH",
        "consignee_country": "DE",
    }
    wrong = de.post("/detentions/new", data=values)
    assert wrong.status_code == 400
    assert "CONTAINER_NUMBER_INVALID" in wrong.text
    created = de.post("/detentions/new", data={**values, "container_number": "CSQU3054383"})
    assert created.status_code == 303
    assert created.headers["location"] == "/detentions/hh-form?done=created"
    page = de.get(created.headers["location"]).text
    assert "Detention recorded" in page
    assert "600 pair" in page
    assert "Notification" in page
    with ipr(federation.de) as api:
        got = api.get_detention("hh-form")
    assert list(got.recordations) == ["recordations/acme-form"]
    assert got.goods[0].estimated_value.units == 48000
    assert got.parties.consignee.name == "Schuh Import GmbH"
