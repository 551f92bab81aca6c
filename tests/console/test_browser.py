"""The console in a real headless Chromium, against a real federation (gateway, two nodes).

Two officers in two browser sessions, as on a real day: nl-customs' liaison
officer issues an alert (inline check of a container number, a preview per
recipient with one treaty refusing, then one permitting with fields removed)
while de-customs' analyst watches the inbox, where the alert arrives without
a reload; the analyst acknowledges it and reports a hit, and the issuer's
delivery map changes in place. A joint case gets an entry that the partner
sees arrive live. Pages are also checked at a phone's size, with markup in a
description, and for the browser's own errors (the Content Security Policy
blocks anything inline, so a page that needed it would log an error).

Each flow saves screenshots in its test's directory (``tmp_path``). With
``INTELSHARE_DOCS_SCREENSHOTS=1`` they are also written to
``docs/images/console-*.png``, the pictures in docs/console.md.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run``
installs them); without them these tests are skipped and say which is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from intelshare import errors
from tests.console.conftest import (
    CUSTOMS,
    TASKFORCE,
    Console,
    Federation,
    case_client,
    issue,
    open_case,
    wait_for,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

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

if CHROMIUM.exists() and CHROMEDRIVER.exists():
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoAlertPresentException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import Select, WebDriverWait


class Browser:
    """One officer's browser: its own profile, so its own cookies."""

    def __init__(self, driver: WebDriver, console: Console, shots: Path) -> None:
        self.d = driver
        self.console = console
        self.shots = shots

    def go(self, path: str) -> None:
        self.d.get(self.console.url + path)

    def find(self, css: str, timeout: float = 15) -> Any:
        """The element, once it is on the page (after a form post, the new page's)."""
        return WebDriverWait(self.d, timeout, poll_frequency=0.05).until(
            lambda d: d.find_element(By.CSS_SELECTOR, css), message=f"no element {css}"
        )

    def all(self, css: str) -> list[Any]:
        return list(self.d.find_elements(By.CSS_SELECTOR, css))

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        def check(_d: Any) -> Any:
            try:
                return condition()
            except Exception:
                return False

        return WebDriverWait(self.d, timeout, poll_frequency=0.1).until(check, message=what)

    def sign_in(self, role: str) -> None:
        self.go("/inbox")
        assert "/sign-in" in self.d.current_url
        field = self.find("#token")
        field.send_keys(self.console.node.tokens[role])
        field.send_keys(Keys.ENTER)  # the keyboard is enough
        self.wait(lambda: self.d.current_url.endswith("/inbox"), "the inbox after sign-in")

    def type(self, name: str, text: str, *, clear: bool = True) -> None:
        field = self.find(f'[name="{name}"]')
        if clear:
            field.clear()
        field.send_keys(text)

    def choose(self, name: str, value: str) -> None:
        Select(self.find(f'select[name="{name}"]')).select_by_value(value)

    def text(self, css: str) -> str:
        """The text of the element at ``css``, read again if htmx swapped it meanwhile."""
        for attempt in range(3):
            try:
                return str(self.find(css).text)
            except StaleElementReferenceException:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def press(self, css: str) -> None:
        # htmx may swap the part of the page the button is in between finding it and
        # clicking it (an inline check's answer): find it again then, a few times.
        for attempt in range(3):
            try:
                button = self.find(css)
                self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
                button.click()
                return
            except (StaleElementReferenceException, WebDriverException) as exc:
                swapped = isinstance(exc, StaleElementReferenceException) or (
                    "does not belong to the document" in str(exc)
                )
                if not swapped or attempt == 2:
                    raise

    def submit(self, css: str) -> None:
        """Press a button that loads a new page, and wait until the new page is there."""
        old = self.d.find_element(By.TAG_NAME, "html")
        self.press(css)

        def gone(_driver: Any) -> bool:
            # Chromium may report the old page's node as "not belonging to
            # the document" (a WebDriverException) rather than stale.
            try:
                return bool(staleness_of(old)(_driver))
            except WebDriverException as exc:
                if "does not belong to the document" in str(exc):
                    return True
                raise

        WebDriverWait(self.d, 15).until(gone, message=f"a new page after {css}")

    def live(self) -> None:
        """Wait until the page's live stream is open."""
        self.wait(lambda: self.text("#live-status") == "live", "the live stream to open")

    def mark(self) -> None:
        """Remember this page: a later ``same_page`` fails if it was reloaded meanwhile."""
        self.d.execute_script("window.__notReloaded = true")

    def same_page(self) -> bool:
        return bool(self.d.execute_script("return window.__notReloaded === true"))

    def shot(self, name: str, element: str | None = None) -> Path:
        if element:
            self.d.execute_script(
                "document.querySelector(arguments[0]).scrollIntoView({block: 'start'})", element
            )
        path = self.shots / f"console-{name}.png"
        self.d.save_screenshot(str(path))
        assert path.stat().st_size > 10_000
        if os.environ.get("INTELSHARE_DOCS_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMAGES / path.name)
        return path

    def errors(self) -> list[str]:
        """The browser's own errors (CSP violations, failed scripts), not network noise."""
        return [
            e["message"]
            for e in self.d.get_log("browser")
            if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
        ]


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Callable[..., Browser]]:
    drivers: list[WebDriver] = []

    def open_browser(console: Console, width: int = 1280, height: int = 800) -> Browser:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in (
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={width},{height}",
            f"--user-data-dir={tmp_path / f'profile-{len(drivers)}'}",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_window_size(width, height)
        drivers.append(driver)
        return Browser(driver, console, tmp_path)

    yield open_browser
    for d in drivers:
        d.quit()


def test_issue_with_preview_arrives_live_is_acknowledged_and_the_map_changes(
    federation: Federation, browsers: Callable[..., Browser]
) -> None:
    nl = browsers(federation.consoles["nl-customs"])
    de = browsers(federation.consoles["de-customs"])
    nl.sign_in("liaison")
    de.sign_in("analyst")
    assert "No alert has arrived yet" in de.text("#listing-empty")
    de.live()
    de.mark()

    # The form: a container number with a wrong check digit is caught while typing.
    nl.go("/issue")
    nl.choose("kind", "counterfeit_goods")
    nl.choose("urgency", "high")
    nl.choose("reliability", "b")
    nl.choose("credibility", "2")
    nl.type(
        "description", "Counterfeit oncology medicines in a reefer container; consignee in Antwerp"
    )
    nl.type("recipients-0-agency_id", "de-customs")
    nl.type("recipients-0-treaty_id", CUSTOMS)
    nl.submit("button[value='add:recipients']")
    nl.type("recipients-1-agency_id", "be-police")
    nl.type("recipients-1-treaty_id", CUSTOMS)  # be-police is not a party of this one
    nl.submit("#add-persons")
    nl.type("persons-0-name", "Jan Visser")
    nl.type("persons-0-nationality", "NL")
    nl.type("persons-0-passport_number", "NXC4KR7P1")
    nl.submit("#add-containers")
    assert nl.find('[name="persons-0-name"]').get_attribute("value") == "Jan Visser"
    nl.type("containers-0-number", "MSCU1234567")
    nl.find('[name="containers-0-number"]').send_keys(Keys.TAB)
    nl.wait(
        lambda: "check digit of MSCU123456 is 6" in nl.text("#m-containers-0-number"),
        "the inline ISO 6346 message",
    )
    nl.shot("issue-check", "#f-containers-0-number")
    nl.type("containers-0-number", "MSCU1234566")
    nl.find('[name="containers-0-number"]').send_keys(Keys.TAB)
    nl.wait(lambda: nl.text("#m-containers-0-number") == "", "the message to clear")
    nl.type("containers-0-hs_codes", "300490")

    # Preview: be-police's treaty refuses, with the reason.
    nl.submit("#preview-button")
    nl.wait(lambda: nl.find("#preview-be-police"), "the preview")
    refusal = nl.text("#preview-be-police .refusal")
    assert "NOT_A_PARTY" in refusal
    assert not nl.all("#send-button")
    nl.shot("preview-refused", "#preview")

    # Under the task-force treaty be-police may receive it, without the passport number.
    nl.type("recipients-1-treaty_id", TASKFORCE)
    nl.submit("#preview-button")
    nl.wait(lambda: nl.find("#preview-be-police.permitted"), "a permitted preview")
    de_copy = nl.text("#preview-de-customs")
    be_copy = nl.text("#preview-be-police")
    assert "NXC4KR7P1" in de_copy
    assert "NXC4KR7P1" not in be_copy
    assert "subjects.persons.passport_number" in be_copy
    nl.shot("preview", "#preview")
    # Changing the form after a preview disables Send until the next preview.
    nl.type("description", " (updated)", clear=False)
    assert not nl.find("#send-button").is_enabled()
    nl.submit("#preview-button")
    nl.wait(lambda: nl.find("#send-button").is_enabled(), "Send after the new preview")
    nl.submit("#send-button")
    nl.wait(lambda: nl.all("#delivery-map"), "the issued alert's page")
    nl.live()
    nl.mark()

    # It arrives in de-customs' inbox by itself (no reload).
    row = de.wait(lambda: de.find("#listing-rows tr.unread"), "the alert in de's inbox")
    assert "nl-customs" in row.text
    assert de.same_page()
    assert not de.find("#listing-table").get_attribute("hidden")
    de.shot("inbox-live")

    nl.wait(
        lambda: nl.find("#delivery-de-customs").get_attribute("data-state") == "delivered",
        "de-customs: delivered on the map",
    )
    assert nl.find("#delivery-be-police").get_attribute("data-state") in ("queued", "sent")

    # de's analyst opens it and acknowledges with the keyboard.
    de.submit("#listing-rows tr.unread a")
    de.wait(lambda: de.find("#acknowledge"), "the acknowledge button")
    assert "NXC4KR7P1" in de.text("main")  # the customs treaty let it through
    de.live()
    de.find("#acknowledge").send_keys(Keys.ENTER)
    de.wait(lambda: "Acknowledged on" in de.text("#received-status"), "the acknowledgement")
    de.shot("alert-received")

    nl.wait(
        lambda: nl.find("#delivery-de-customs").get_attribute("data-state") == "acknowledged",
        "de-customs: acknowledged on the map",
    )
    assert nl.same_page()
    nl.shot("delivery-map", "#delivery-map")

    # A hit, reported from the alert page, changes the map again.
    de.type("place", "Port of Hamburg, CTA")
    de.type("found", "Two pallets of the medicines")
    de.press("#hit-panel button[type=submit]")
    de.wait(lambda: "Hit reported" in de.text("#hit-panel"), "the hit confirmation")
    nl.wait(
        lambda: nl.find("#delivery-de-customs").get_attribute("data-state") == "hit",
        "de-customs: hit on the map",
    )
    assert "Port of Hamburg, CTA" in nl.text("#hit-list")
    assert nl.same_page()
    assert nl.errors() == []
    assert de.errors() == []


def test_a_case_entry_arrives_live_at_the_partner(
    federation: Federation, browsers: Callable[..., Browser]
) -> None:
    name = open_case(federation, "Operation Pangea: counterfeit oncology medicines")
    case_id = name.split("/")[1]
    with case_client(federation.de) as api:

        def at_de() -> bool:
            try:
                return bool(api.get_case(name))
            except errors.NotFound:
                return False

        wait_for(at_de, what="the case at de-customs")
    nl = browsers(federation.consoles["nl-customs"])
    de = browsers(federation.consoles["de-customs"])
    nl.sign_in("liaison")
    de.sign_in("liaison")
    de.go("/cases")
    assert "Operation Pangea" in de.text("main")
    de.submit(f"a[href='/cases/{case_id}']")
    de.wait(lambda: "No entry yet" in de.text("#entries"), "the empty case")
    de.live()
    de.mark()
    nl.go(f"/cases/{case_id}")
    nl.live()
    nl.type("text", "Consignment MSCU1234566 held for inspection at Rotterdam.")
    nl.press("#add-entry")
    nl.wait(lambda: "Entry added" in nl.text("#entry-form"), "the confirmation")
    nl.wait(lambda: "held for inspection" in nl.text("#entries"), "nl's own entry")
    de.wait(
        lambda: "held for inspection at Rotterdam" in de.text("#entries"),
        "the entry arriving at de-customs",
    )
    assert de.same_page()
    # And back: de's entry arrives at nl.
    de.type("text", "Two earlier shipments via Hamburg traced to the same consignee.")
    de.press("#add-entry")
    nl.wait(lambda: "via Hamburg" in nl.text("#entries"), "de's entry at nl-customs")
    de.shot("case-live")
    assert nl.errors() == []
    assert de.errors() == []


def test_feed_phone_size_and_markup_as_text(
    federation: Federation, browsers: Callable[..., Browser]
) -> None:
    markup = '<script>alert("pwned")</script><b>bold</b> <img src=x onerror=alert(1)>'
    issue(federation, description="Container of counterfeit medicines expected at Rotterdam")
    issue(federation, description=markup)
    de = browsers(federation.consoles["de-customs"])
    de.sign_in("analyst")
    assert de.d.execute_script("return document.cookie") == ""  # HttpOnly: no script reads it
    assert len(de.all("#listing-rows tr")) == 2
    # Shown as the characters typed (read again if a live update replaced the row meanwhile).
    de.wait(lambda: markup in de.all("#listing-rows tr")[0].text, "the markup as text")
    de.submit("#listing-rows tr a")
    de.wait(lambda: de.find(".description"), "the alert page")
    assert de.text(".description") == markup
    assert not de.all(".description b")
    assert not de.all(".description img")
    with pytest.raises(NoAlertPresentException):
        de.d.switch_to.alert  # noqa: B018 - no script ran
    de.go("/feed")
    de.wait(lambda: len(de.all("#feed li")) >= 2, "the feed's history")
    de.live()
    de.mark()
    issue(federation, description="A third alert, while the feed is open")
    de.wait(lambda: len(de.all("#feed li.alert-received")) == 3, "a new event on top")
    assert de.same_page()
    de.shot("feed")
    assert de.errors() == []

    phone = browsers(federation.consoles["de-customs"], 390, 844)
    phone.sign_in("analyst")
    width = phone.d.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the screen: no sideways scrolling
    phone.shot("inbox-phone")
    phone.submit("#listing-rows tr a")
    phone.wait(lambda: phone.find("#acknowledge"), "the alert page on a phone")
    assert phone.d.execute_script("return document.documentElement.scrollWidth") <= 390
    phone.shot("alert-phone")
    assert phone.errors() == []


def test_sign_in_page_and_a_refused_token(
    federation: Federation, browsers: Callable[..., Browser]
) -> None:
    b = browsers(federation.consoles["nl-customs"])
    b.go("/issue")
    assert "/sign-in" in b.d.current_url
    label = b.find("label[for=token]")
    assert label.text == "Officer token"
    b.find("#token").send_keys("wrong-token", Keys.ENTER)
    b.wait(lambda: "did not accept this token" in b.text("#sign-in-error"), "the refusal")
    assert b.find("#token").get_attribute("aria-invalid") == "true"
    b.shot("sign-in")
    b.find("#token").send_keys(federation.nl.tokens["liaison"], Keys.ENTER)
    b.wait(lambda: b.d.current_url.endswith("/issue"), "the page asked for first")
    # Every field on the form has a label.
    unlabelled = b.d.execute_script(
        """return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
             .filter(f => !(f.labels && f.labels.length)).map(f => f.name)"""
    )
    assert unlabelled == []
    b.submit("button.link[type=submit]")  # sign out
    b.wait(lambda: "/sign-in" in b.d.current_url, "the sign-in page after sign-out")
    b.go("/inbox")
    assert "/sign-in" in b.d.current_url
    assert b.errors() == []
