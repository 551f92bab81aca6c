"""An alert's related records arriving live, in a real headless Chromium.

de-customs' analyst has an alert from nl-customs open; its *Related
records* section says no other record shares an identifier. nl-customs
then sends a second alert naming the same container (and nothing else):
de-customs' node indexes it and writes a ``link.found`` event naming the
first alert, and the open page shows the second alert in that section by
itself, without a reload. Same requirements and helpers as test_browser.py.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.console.conftest import Federation, issue
from tests.console.test_browser import Browser, browsers, pytestmark  # noqa: F401 - fixtures
from tests.console.test_related_http import KEY, container_only, rid


def test_a_second_alert_sharing_the_container_appears_on_the_open_alert_page(
    federation: Federation,
    browsers: Callable[..., Browser],  # noqa: F811 - the fixture
) -> None:
    _first, received = issue(federation, description="first: the container and its consignee")
    first_de = rid(received["de-customs"])
    de = browsers(federation.consoles["de-customs"])
    de.sign_in("analyst")
    de.go(f"/alerts/{first_de}")
    de.live()
    de.mark()
    assert "No other record de-customs holds shares an identifier" in de.text("#related")
    assert not de.all("#related li")

    _second, received = issue(
        federation, description="second: the same container", subjects=container_only()
    )
    second_de = rid(received["de-customs"])
    link = f"#related a[href='/alerts/{second_de}']"
    de.wait(lambda: de.find(link, timeout=0.1), "the second alert in the related records")
    assert de.same_page()  # no reload: the page's stream replaced the section
    assert de.text(link) == f"alerts/{second_de}"
    row = de.text("#related li")
    assert row.startswith("alert ")
    assert f"shares container {KEY}" in row
    assert "from nl-customs" in row
    assert "No other record" not in de.text("#related")
    de.shot("alert-related-live", "#related")
    # The link leads to the second alert's page, whose own section lists the first.
    de.submit(link)
    de.wait(
        lambda: de.find(f"#related a[href='/alerts/{first_de}']", timeout=0.1),
        "the first alert on the second one's page",
    )
    assert de.errors() == []
