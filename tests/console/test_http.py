"""The console over plain HTTP against a real federation: pages, sessions, security."""

from __future__ import annotations

from tests.console.conftest import Federation


def test_sign_in_and_inbox_empty_state(federation: Federation) -> None:
    nl = federation.consoles["nl-customs"]
    client = nl.signed_in("liaison")
    page = client.get("/inbox")
    assert page.status_code == 200
    assert "No alert has arrived yet" in page.text
