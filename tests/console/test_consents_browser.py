"""Consent to onward sharing in a real headless Chromium, against a real gateway and three nodes.

de-customs asks to pass on an alert nl-customs issued to it, to be-police
under the bilateral treaty. nl-customs' liaison officer opens *Consent
requests*, reads what de-customs received (the most the forwarded copy can
hold) and grants, the card changing in place (htmx); be-police's analyst,
watching the inbox in a second browser, sees the forwarded copy arrive by
itself. An analyst's navigation has no such page. Same requirements and
helpers as test_browser.py.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.console.conftest import CUSTOMS, Federation
from tests.console.test_browser import Browser, browsers, pytestmark  # noqa: F401 - fixtures
from tests.console.test_consents_http import (  # noqa: F401 - the fixture
    BILATERAL,
    PASSPORT,
    ask,
    card_id,
    fed,
    third_agency,
)

DESCRIPTION = "Counterfeit insulin for a pharmacy chain in Antwerp"


def test_a_liaison_officer_grants_and_the_copy_arrives_at_be_police_live(
    federation: Federation,
    browsers: Callable[..., Browser],  # noqa: F811 - the fixture
) -> None:
    _issued, _got, asked = ask(federation, description=DESCRIPTION)
    analyst = browsers(federation.consoles["nl-customs"])
    analyst.sign_in("analyst")
    assert "Consent requests" not in analyst.text("nav")

    be = browsers(federation.start(third_agency(federation)))
    be.sign_in("analyst")
    be.live()
    be.mark()

    liaison = browsers(federation.consoles["nl-customs"])
    liaison.sign_in("liaison")
    liaison.submit("nav a[href='/consents']")
    card = f"#{card_id(asked)}"
    liaison.wait(lambda: liaison.find(card), "the consent request")
    terms = liaison.text(f"{card}-terms")
    assert f"under treaty {CUSTOMS}" in terms
    assert f"pass it on to be-police under treaty {BILATERAL}" in terms
    copy = liaison.text(f"{card}-copy")
    assert "What de-customs received" in copy
    assert PASSPORT in copy  # the customs treaty's copy; the bilateral one drops it
    liaison.mark()
    liaison.shot("consents", card)

    # Grant: the card changes in place, and be-police receives the copy without a reload.
    liaison.press(f"{card}-grant")
    liaison.wait(
        lambda: "Granted: the signed consent went to de-customs" in liaison.text(f"{card}-outcome"),
        "the grant on its card",
    )
    assert liaison.same_page()
    liaison.shot("consent-granted", card)
    row = be.wait(lambda: be.find("#listing-rows tr.unread"), "the forwarded copy at be-police")
    assert DESCRIPTION in row.text
    assert be.same_page()

    # Nothing waits any more.
    liaison.submit("#refresh")
    assert "No partner waits for your consent" in liaison.text("#consents-empty")
    assert liaison.errors() == []
    assert be.errors() == []
    assert analyst.errors() == []
