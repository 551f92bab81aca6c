"""The IPR and risk pages in a real headless Chromium, against a real federation.

nl-customs' IPR officer grants ACME's recordation from the form; at
de-customs a customs officer finds it, records a detention of shoes under
it and notifies the holder; ACME's rights holder, in its own browser
session, who sees only its own detentions,, who sees only its own detentions, agrees
to destruction, and the officer's open page changes by itself (the state,
the history, the next steps). Then an analyst screens an uploaded file,
opens the hit and records the outcome, and the profile's author sees it
counted. Screenshots as in test_browser.py (``INTELSHARE_DOCS_SCREENSHOTS=1``
also writes them to docs/images/).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.console.conftest import Federation, issue
from tests.console.ipr_helpers import DECLARATIONS_CSV, holders, ipr, share_profile
from tests.console.test_browser import CHROMEDRIVER, CHROMIUM, Browser, browsers  # noqa: F401
from tests.node.conftest import CUSTOMS, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium package (/usr/bin/chromium)"
    ),
    pytest.mark.skipif(
        not CHROMEDRIVER.exists(),
        reason="needs Debian's chromium-driver package (/usr/bin/chromedriver)",
    ),
]


def _sign_in(b: Browser, role: str, landing: str) -> None:
    b.go("/")
    field = b.find("#token")
    field.send_keys(b.console.node.tokens[role])
    b.submit("button.primary")
    b.wait(lambda: b.d.current_url.endswith(landing), f"{landing} after sign-in")


def test_the_holder_answers_and_the_officers_page_follows(
    federation: Federation,
    browsers: Callable[..., Browser],  # noqa: F811
) -> None:
    holders(federation)
    de = federation.consoles["de-customs"]
    grantor = browsers(federation.consoles["nl-customs"])
    officer = browsers(de)
    holder = browsers(de)
    _sign_in(grantor, "liaison", "/inbox")
    _sign_in(officer, "liaison", "/inbox")
    _sign_in(holder, "rights_holder", "/detentions")

    # nl-customs grants ACME's recordation, valid for de-customs.
    grantor.go("/recordations")
    grantor.submit("#grant-link")
    for field, text in (
        ("holder_name", "Acme Sports B.V."),
        ("holder_eori", "NL123456789"),
        ("holder_country", "NL"),
        ("contact_email", "ip@acme.example"),
        ("right_name", "ACME"),
        ("right_registration_number", "018123456"),
        ("right_office", "EUIPO"),
        ("goods_description", "running shoes, model Sprint"),
        ("hs_codes", "640411"),
        ("gtins", "4006381333931"),
        ("feature", "hologram inside the tongue, green to blue when tilted"),
        ("agency_id", "de-customs"),
        ("treaty_id", CUSTOMS),
        ("recordation_id", "acme-2026"),
    ):
        grantor.type(field, text)
    grantor.submit("#grant-button")
    grantor.wait(lambda: "Recordation granted" in grantor.text("main"), "the grant")
    recordation = "recordations/acme-2026"
    with ipr(federation.de, "analyst") as api:
        wait_for(lambda: api.all_recordations(), what="the recordation at de-customs")

    # The recordation as de-customs holds it; the officer detains goods under it.
    officer.go("/recordations")
    officer.submit("a[href='/recordations/acme-2026']")
    assert "hologram inside the tongue" in officer.text("main")
    officer.shot("recordation")
    officer.submit("#detain-under")
    for field, text in (
        ("description", "sports shoes bearing the sign ACME"),
        ("brand", "ACME"),
        ("hs_code", "6404110090"),
        ("gtins", "4006381333931"),
        ("quantity", "1200"),
        ("container_number", "CSQU3054383"),
        ("origin_country", "CN"),
        ("destination_country", "NL"),
        ("consignee_name", "Schuh Import GmbH"),
        ("consignee_country", "DE"),
        ("detention_id", "hh-0412"),
    ):
        officer.type(field, text)
    officer.choose("unit", "pair")
    officer.submit("#detain-button")
    officer.wait(lambda: "Detention recorded" in officer.text("main"), "the detention")
    did = "hh-0412"
    assert recordation in officer.text("main")

    # The officer notifies holder and declarant from the detention's page.
    officer.go("/detentions")
    officer.wait(lambda: "Detained" in officer.text(f"#detention-{did}"), "the row")
    officer.go(f"/detentions/{did}")
    officer.type("reason", "holder and declarant notified by e-mail")
    officer.submit("#move-holder_notified")
    officer.wait(
        lambda: "Holder answer" in officer.text("#detention-status"), "the holder's deadline"
    )
    officer.live()
    officer.mark()
    officer.shot("detention", "#detention-status")

    # The holder sees only its detentions and its two pages, with the date its answer is due.
    links = [a.get_attribute("href") for a in holder.all("header nav a")]
    assert [link.rsplit("/", 1)[1] for link in links] == ["detentions", "recordations"]
    holder.go("/detentions")
    holder.wait(
        lambda: "Holder answer: end of" in holder.text(f"#detention-{did}"),
        "the holder's deadline in its list",
    )
    holder.shot("holder-detentions")
    holder.submit(f"#detention-{did} a")
    assert "Not disclosed to you" in holder.text("main")
    assert "CSQU3054383" not in holder.text("main")
    holder.type("reason", "Counterfeit: no hologram, wrong stitching. We agree to destruction.")
    holder.shot("holder-answer", "#detention-moves")
    holder.submit("#move-destruction_agreed")
    holder.wait(lambda: "The detention moved" in holder.text("#detention-moves"), "done")
    # The status is swapped in live too: read it once the swap has settled.
    holder.wait(
        lambda: "Destruction agreed" in holder.text("#detention-status"),
        "the status to read Destruction agreed",
    )

    # The officer's page changed by itself: state, history, next steps.
    officer.wait(
        lambda: (
            officer.find("#detention-status").get_attribute("data-state") == "destruction_agreed"
        ),
        "the holder's answer on the officer's page",
    )
    assert "rights holder" in officer.text("#history")
    officer.wait(lambda: officer.all("#move-destroyed"), "the next step: destroy")
    assert officer.same_page()
    officer.shot("detention-live", "#detention-status")

    # Anything else is refused, with a message, not a crash.
    holder.go("/inbox")
    assert "Not permitted" in holder.text("h1")
    assert "rights holder" in holder.text("main")
    assert officer.errors() == []
    assert holder.errors() == []


def test_screen_a_file_open_the_hit_and_record_the_outcome(
    federation: Federation,
    browsers: Callable[..., Browser],  # noqa: F811
    tmp_path: Path,
) -> None:
    issue(federation)  # an alert naming the container: the hit links to it
    name = share_profile(federation)
    upload = tmp_path / "declarations-2026-05-04.csv"
    upload.write_text(DECLARATIONS_CSV)
    de = browsers(federation.consoles["de-customs"])
    _sign_in(de, "analyst", "/inbox")
    de.go("/screen")
    de.find("#f-file").send_keys(str(upload))
    de.submit("#screen-button")
    de.wait(lambda: de.text("#count-targeted") == "1", "the summary")
    assert de.text("#count-bad") == "1"
    assert "line 4" in de.text("#problems")
    de.shot("screen", "#summary")
    de.submit("#targeted a[href^='/hits/']")
    de.wait(lambda: de.find("#outcome"), "the hit's page")
    de.choose("inspection", "inspected")
    de.choose("finding", "confirmed")
    de.type("note", "falsified amoxicillin, 40 cartons")
    de.submit("#outcome-button")
    de.wait(lambda: "Outcome recorded" in de.text("main"), "the outcome")
    de.shot("hit")

    nl = browsers(federation.consoles["nl-customs"])
    _sign_in(nl, "liaison", "/inbox")

    def counted() -> bool:
        nl.go(f"/profiles/{name.split('/')[1]}")
        return "with the risk confirmed" in nl.text("#statistics")

    wait_for(counted, what="the outcome in the author's statistics")
    assert "HS code starts with 3004" in nl.text("#criteria")
    nl.shot("profile")
    assert de.errors() == []
    assert nl.errors() == []
