"""The console's risk targeting pages over HTTP against a real federation: profiles with their
criteria and statistics, screening an uploaded file, hits with their reasons, related records and
outcome, withdrawal. nl-customs writes the profile; de-customs screens.
"""

from __future__ import annotations

import re

from intelshare.v1 import risk_profile_pb2
from tests.console.conftest import Federation, csrf_of, issue
from tests.console.ipr_helpers import DECLARATIONS_CSV, risk, share_profile
from tests.node.conftest import wait_for

P = risk_profile_pb2


def _screen(client: object, csrf: str, name: str, content: str) -> object:
    return client.post(  # type: ignore[attr-defined]
        "/screen",
        data={"csrf_token": csrf},
        files={"file": (name, content.encode(), "text/csv")},
    )


def test_risk_pages_without_a_session_go_to_sign_in(federation: Federation) -> None:
    client = federation.consoles["de-customs"].http()
    for path in ("/profiles", "/profiles/x", "/hits", "/hits/x", "/screen"):
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/sign-in?next="), path


def test_profiles_list_and_criteria_shown_readably(federation: Federation) -> None:
    name = share_profile(federation)
    pid = name.split("/")[1]
    de = federation.consoles["de-customs"].signed_in("analyst")
    listing = de.get("/profiles").text
    assert "Counterfeit medicines from IN via INNSA" in listing
    assert "Physical inspection" in listing
    assert "nl-customs" in listing
    assert "Active" in listing
    assert "No risk profile yet" not in listing
    page = de.get(f"/profiles/{pid}")
    assert page.status_code == 200
    criteria = page.text.split('id="criteria"', 1)[1].split("</div>", 1)[0]
    assert "All of these hold:" in criteria
    assert "HS code starts with 3004" in criteria
    assert "country of origin is IN" in criteria
    assert "port of loading is INNSA" in criteria
    assert "Three seizures of falsified antibiotics" in page.text
    assert 'id="statistics"' not in page.text  # a partner's profile: its author's statistics
    assert 'id="withdraw"' not in page.text  # and only its author withdraws it
    mine = federation.consoles["de-customs"].signed_in("liaison").get("/profiles?direction=issued")
    assert "No profile here" in mine.text
    assert "Counterfeit medicines" not in mine.text


def test_screen_a_file_then_the_hit_its_reasons_and_the_outcome(federation: Federation) -> None:
    # An alert naming the container of the first declaration: the hit links to it.
    _alert, received = issue(federation)
    name = share_profile(federation)
    pid = name.split("/")[1]
    de = federation.consoles["de-customs"].signed_in("analyst")
    form = de.get("/screen").text
    assert 'enctype="multipart/form-data"' in form
    csrf = csrf_of(form)
    # Without the CSRF token nothing is screened.
    refused = de.post("/screen", files={"file": ("d.csv", DECLARATIONS_CSV.encode(), "text/csv")})
    assert refused.status_code == 403
    wrong_kind = _screen(de, csrf, "declarations.xlsx", DECLARATIONS_CSV)
    assert wrong_kind.status_code == 400  # type: ignore[attr-defined]
    assert "not a declarations file" in wrong_kind.text  # type: ignore[attr-defined]
    with risk(federation.de) as api:
        assert api.all_hits() == []
    answer = _screen(de, csrf, "declarations.csv", DECLARATIONS_CSV)
    assert answer.status_code == 200  # type: ignore[attr-defined]
    html = answer.text  # type: ignore[attr-defined]
    counts = dict(re.findall(r'<dd id="count-([a-z]+)">(?:<strong>)?(\d+)', html))
    assert counts == {"read": "2", "screened": "2", "targeted": "1", "hits": "2", "bad": "1"}
    assert "26DE000000000017" in html
    assert "26DE000000000018" not in html  # not targeted: not listed, not kept
    assert "line 4" in html
    assert "containers" in html  # the bad line's column
    assert "Counterfeit medicines from IN via INNSA" in html
    hit_ids = re.findall(r'href="/hits/([^"]+)"', html)
    assert len(hit_ids) == 2
    listing = de.get("/hits").text
    assert 'id="refresh"' in listing
    assert listing.count("26DE000000000017") == 2  # the profile's hit and the watched container
    # The profile's hit: why, and the records sharing its identifiers.
    with risk(federation.de) as api:
        profile_hit = next(h for h in api.all_hits() if h.profile)
    hid = profile_hit.name.split("/")[1]
    page = de.get(f"/hits/{hid}").text
    assert "hs_prefix" in page
    assert "INNSA" in page
    related = page.split('id="related"', 1)[1].split("</section>", 1)[0]
    assert f'href="/alerts/{received["de-customs"].split("/")[1]}"' in related
    csrf = csrf_of(page)
    saved = de.post(
        f"/hits/{hid}/outcome",
        data={
            "csrf_token": csrf,
            "inspection": "inspected",
            "finding": "confirmed",
            "note": "falsified amoxicillin, 40 cartons",
        },
    )
    assert saved.status_code == 303
    page = de.get(saved.headers["location"]).text
    assert "Outcome recorded" in page
    outcome = page.split('id="outcome"', 1)[1].split("<h3>", 1)[0]
    assert "Inspected" in outcome
    assert "Confirmed" in outcome
    assert "falsified amoxicillin" in outcome
    # The author's statistics count it, once de-customs' report arrived.
    nl = federation.consoles["nl-customs"].signed_in("liaison")

    def counted() -> str:
        text = nl.get(f"/profiles/{pid}").text
        return text if "1 with the risk confirmed" in text else ""

    stats = wait_for(counted, what="the confirmed finding in nl-customs' statistics")
    assert "1 declaration matched" in stats
    assert "de-customs" in stats.split('id="statistics"', 1)[1]
    # nl-customs sees de's hit as reported to it, without the note (it stays at de-customs).
    reported = nl.get("/hits?direction=received").text
    assert "26DE000000000017" in reported
    hid_at_nl = re.search(r'href="/hits/([^"]+)"', reported).group(1)  # type: ignore[union-attr]
    at_nl = nl.get(f"/hits/{hid_at_nl}").text
    assert "falsified amoxicillin" not in at_nl
    assert "Record the outcome" not in at_nl


def test_the_author_withdraws_a_profile(federation: Federation) -> None:
    name = share_profile(federation)
    pid = name.split("/")[1]
    nl = federation.consoles["nl-customs"].signed_in("liaison")
    page = nl.get(f"/profiles/{pid}").text
    assert 'id="statistics"' in page
    assert "No declaration has matched yet" in page
    csrf = csrf_of(page)
    assert nl.post(f"/profiles/{pid}/withdraw", data={"reason": "x"}).status_code == 403
    empty = nl.post(f"/profiles/{pid}/withdraw", data={"csrf_token": csrf, "reason": " "})
    assert empty.status_code == 400
    assert "Say why" in empty.text
    done = nl.post(
        f"/profiles/{pid}/withdraw", data={"csrf_token": csrf, "reason": "operation ended"}
    )
    assert done.status_code == 303
    page = nl.get(done.headers["location"]).text
    assert "Withdrawn. It stops matching" in page
    assert "operation ended" in page
    assert 'id="withdraw"' not in page
    de = federation.consoles["de-customs"].signed_in("analyst")
    wait_for(lambda: "Withdrawn" in de.get("/profiles").text, what="the withdrawal at de-customs")
    with risk(federation.de) as api:
        got = api.get_profile(name)
    assert got.state == P.RISK_PROFILE_STATE_WITHDRAWN


def test_an_analyst_may_not_withdraw_the_node_refuses(federation: Federation) -> None:
    name = share_profile(federation)
    pid = name.split("/")[1]
    analyst = federation.consoles["nl-customs"].signed_in("analyst")
    csrf = csrf_of(analyst.get(f"/profiles/{pid}").text)
    refused = analyst.post(f"/profiles/{pid}/withdraw", data={"csrf_token": csrf, "reason": "x"})
    assert refused.status_code == 403
    assert "ROLE_NOT_PERMITTED" in refused.text
    with risk(federation.nl) as api:
        assert api.get_profile(name).state == P.RISK_PROFILE_STATE_ACTIVE
