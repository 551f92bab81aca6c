"""Review before release in a real headless Chromium, against a real gateway and two nodes.

nl-customs' approver opens *Pending reviews*, reads what de-customs would
receive of each held wanted-person alert under the task force, rejects one
with a reason and approves the other, each card changing in place (htmx);
de-customs' analyst, watching the inbox in a second browser, sees the
approved alert arrive by itself. A liaison officer's navigation has no
such page. Same requirements and helpers as test_browser.py.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.console.conftest import TASKFORCE, Federation
from tests.console.test_browser import Browser, browsers, pytestmark  # noqa: F401 - fixtures
from tests.console.test_reviews_http import PASSPORT, card_id, fed, hold, officer  # noqa: F401


def test_an_approver_rejects_one_alert_and_releases_another_which_arrives_live(
    federation: Federation,
    browsers: Callable[..., Browser],  # noqa: F811 - the fixture
) -> None:
    kept = hold(federation.nl, description="Director of the consignee, wanted for trafficking")
    dropped = hold(federation.nl, description="Second director; already in custody")
    officer(federation.nl, "approver")
    liaison = browsers(federation.consoles["nl-customs"])
    liaison.sign_in("liaison")
    assert "Pending reviews" not in liaison.text("nav")

    de = browsers(federation.consoles["de-customs"])
    de.sign_in("analyst")
    de.live()
    de.mark()

    approver = browsers(federation.consoles["nl-customs"])
    approver.sign_in("approver")
    approver.submit("nav a[href='/reviews']")
    kept_card, dropped_card = f"#{card_id(kept)}", f"#{card_id(dropped)}"
    approver.wait(lambda: approver.find(kept_card), "the held alerts")
    copy = approver.text(f"{kept_card}-to-de-customs")
    assert "Permitted." in copy
    assert "subjects.persons.passport_number" in copy
    assert PASSPORT not in copy  # the task force's copy: no passport number
    assert TASKFORCE in approver.text(kept_card)
    approver.mark()
    approver.shot("reviews", kept_card)

    # Reject one, with a reason: only its card changes.
    reason = approver.find(f"#{card_id(dropped)}-reason")
    reason.send_keys("The subject is already in custody in Rotterdam.")
    approver.press(f"#{card_id(dropped)}-reject")
    approver.wait(
        lambda: "Rejected under" in approver.text(f"#{card_id(dropped)}-outcome"),
        "the rejection on its card",
    )
    assert "already in custody in Rotterdam" in approver.text(dropped_card)
    assert approver.find(f"#{card_id(kept)}-approve").is_displayed()

    # Approve the other: released to de-customs, where it arrives without a reload.
    approver.press(f"#{card_id(kept)}-approve")
    approver.wait(
        lambda: "Approved: released to de-customs" in approver.text(f"#{card_id(kept)}-outcome"),
        "the release on its card",
    )
    assert approver.same_page()
    approver.shot("review-released", kept_card)
    row = de.wait(lambda: de.find("#listing-rows tr.unread"), "the released alert in de's inbox")
    assert "wanted for trafficking" in row.text
    assert len(de.all("#listing-rows tr")) == 1  # the rejected one never left nl-customs
    assert de.same_page()

    # Nothing waits any more.
    approver.submit("#refresh")
    assert "Nothing waits for review" in approver.text("#reviews-empty")
    assert approver.errors() == []
    assert de.errors() == []
    assert liaison.errors() == []
