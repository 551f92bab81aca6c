"""The consent-requests page over HTTP against a real gateway and three real nodes.

nl-customs issues an alert to de-customs under the customs treaty, whose
onward sharing needs the originator's consent; de-customs asks to pass it
on to be-police under a bilateral treaty (the node tests' ``de-be-bilateral``).
At nl-customs a liaison officer sees the request with de-customs' own copy
(the most a forwarded copy can hold: the node has no preview of the copy
itself), and grants it (the copy reaches be-police, carrying the consent) or
refuses it with a reason (de-customs' forward says so). Analysts do not get
the page, an answer to a revoked alert is refused on its card, a refusal
needs a reason, and every form needs the session's CSRF token; refusals are
the node's, in its words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from intelshare import devfed
from intelshare.v1 import alert_pb2, alert_service_pb2
from node.cli.workflow_client import WorkflowClient
from tests.console.conftest import CUSTOMS, Federation, console_treaties, csrf_of, issue
from tests.console.test_reviews_http import element, officer
from tests.node.api.ipr_fixtures import holder_token
from tests.node.conftest import AGENCIES, RunningNode, wait_for
from tests.node.kinds.test_workflows import BILATERAL, BILATERAL_YAML

PASSPORT = "NX1234567"  # the demo alert's: the customs treaty passes it, the bilateral does not
PENDING = alert_service_pb2.CONSENT_STATE_PENDING


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    """The consoles' treaties and the bilateral treaty de-customs passes alerts on under."""
    data = console_treaties()
    bilateral = {**BILATERAL_YAML, "valid": dict(data[0]["valid"])}
    return devfed.build(tmp_path / "fed", AGENCIES, [*data, bilateral])


def workflow(node: RunningNode, role: str) -> WorkflowClient:
    return WorkflowClient(
        node.target, ca_pem=node.ca_pem, server_name=node.agency, token=officer(node, role)
    )


def third_agency(f: Federation) -> RunningNode:
    """be-police's node (the consoles' federation starts only nl-customs and de-customs)."""
    return f.cluster.nodes.get("be-police") or f.cluster.start_node("be-police")


def ask(
    f: Federation, *, reason: str = "the consignee has an office in Antwerp", **over: Any
) -> tuple[str, str, alert_service_pb2.ConsentRequest]:
    """nl-customs issues an alert to de-customs, whose liaison officer asks to pass it on to
    be-police; returns the alert's name at nl-customs and at de-customs, and the request as
    nl-customs' node lists it."""
    third_agency(f)
    issued, received = issue(f, **over)
    got = received["de-customs"]
    with workflow(f.de, "liaison") as forwarder:
        fwd = forwarder.forward_alert(got, ["be-police"], BILATERAL, reason=reason)
    assert fwd.state == alert_service_pb2.FORWARD_STATE_AWAITING_CONSENT
    with workflow(f.nl, "admin") as originator:
        asked = wait_for(
            lambda: [r for r in originator.consent_requests(PENDING) if r.alert == issued],
            what="the consent request at nl-customs",
        )
    return issued, got, asked[0]


def card_id(asked: alert_service_pb2.ConsentRequest) -> str:
    return f"consent-{asked.name.split('/')[1]}"


def waiting(f: Federation) -> list[str]:
    with workflow(f.nl, "admin") as c:
        return [r.name for r in c.consent_requests(PENDING)]


def received_at(node: RunningNode, description: str) -> list[alert_pb2.Alert]:
    with node.client("analyst") as c:
        return [
            a
            for a in c.list_all(direction=alert_pb2.ALERT_DIRECTION_RECEIVED)
            if a.description == description
        ]


def refusal_on(card: str) -> str:
    found = re.search(r'id="[^"]+-refusal">([^<]+)', card)
    assert found is not None, "no refusal on the card"
    return found.group(1)


def test_a_liaison_officer_sees_the_request_grants_it_and_the_copy_reaches_be_police(
    federation: Federation,
) -> None:
    issued, _got, asked = ask(federation, description="Counterfeit insulin for Antwerp")
    ident = asked.name.split("/")[1]
    client = federation.consoles["nl-customs"].signed_in("liaison")
    page = client.get("/consents")
    assert page.status_code == 200
    assert '<a href="/consents"' in page.text  # in the navigation
    card = element(page.text, card_id(asked))
    assert "de-customs asks to pass on Counterfeit goods: Counterfeit insulin for Antwerp" in card
    terms = element(page.text, card_id(asked)).split(f'id="{card_id(asked)}-terms"')[1]
    assert f"under treaty <strong>{CUSTOMS}</strong>" in terms  # shared under it
    assert "pass it on to <strong>be-police</strong>" in terms
    assert f"under treaty <strong>{BILATERAL}</strong>" in terms
    assert "Their reason: <q>the consignee has an office in Antwerp</q>" in card
    assert f"Everything both {CUSTOMS} and {BILATERAL} allow" in card
    # What de-customs received, the most a forwarded copy holds: the customs treaty let the
    # passport number through; the page says the node does not preview the copy itself.
    assert "no preview of the forwarded copy" in card
    copy = element(page.text, f"{card_id(asked)}-copy")
    assert f"What de-customs received <small>under {CUSTOMS} v1" in copy
    assert "Jan Jansen" in copy
    assert PASSPORT in copy
    assert "subjects.persons.role" in copy  # removed by the customs treaty
    assert f'href="/alerts/{issued.split("/")[1]}"' in card
    assert "Grant: de-customs may pass it on to be-police" in card

    answer = client.post(f"/consents/{ident}/grant", data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/consents?done=granted&request={ident}"
    after = client.get(answer.headers["location"])
    assert f"{asked.name} granted: the signed consent went to the partner" in after.text
    assert 'id="consents-empty"' in after.text
    crafted = client.get("/consents?done=granted&request=x%20by%20the%20minister")
    assert "minister" not in crafted.text
    assert asked.name not in waiting(federation)

    # be-police receives de-customs' copy, carrying nl-customs' signed consent, without
    # the passport number (the bilateral treaty does not allow it).
    with workflow(federation.nl, "admin") as c:
        (granted,) = [
            r
            for r in c.consent_requests(alert_service_pb2.CONSENT_STATE_GRANTED)
            if r.name == asked.name
        ]
    be = third_agency(federation)
    (copied,) = wait_for(
        lambda: received_at(be, "Counterfeit insulin for Antwerp"), what="the copy at be-police"
    )
    with be.client("analyst") as c:
        shown = c.get_alert(copied.name)
    assert shown.provenance.originator == "nl-customs"
    assert shown.provenance.forwarder == "de-customs"
    assert shown.provenance.consent_id == granted.consent_id
    assert shown.subjects.persons[0].name == "Jan Jansen"
    assert not shown.subjects.persons[0].passport_number

    # Granting it again: the node's refusal, in its words, as the page.
    again = client.post(f"/consents/{ident}/grant", data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 409
    assert "was already granted" in again.text
    assert "CONSENT_REQUEST_DECIDED" in again.text


def test_refuse_with_a_reason_through_htmx_and_de_customs_sees_the_refusal(
    federation: Federation,
) -> None:
    _issued, got, asked = ask(
        federation,
        description="Counterfeit insulin, second consignment",
        reason="<b>urgent</b>: the Antwerp prosecutor asks",
    )
    ident = asked.name.split("/")[1]
    client = federation.consoles["nl-customs"].signed_in("liaison")
    page = client.get("/consents")
    assert "<b>urgent</b>" not in page.text  # text, not markup
    assert "&lt;b&gt;urgent&lt;/b&gt;" in page.text
    htmx = {"X-CSRF-Token": csrf_of(page.text), "HX-Request": "true"}
    # No reason: the node refuses, the card says so on the field, nothing changes.
    empty = client.post(f"/consents/{ident}/refuse", data={"reason": " "}, headers=htmx)
    assert empty.status_code == 400
    card = element(empty.text, card_id(asked))
    assert "a refusal needs a reason" in card
    assert 'aria-invalid="true"' in card
    assert asked.name in waiting(federation)

    reason = "The investigation in Rotterdam would be compromised."
    refused = client.post(f"/consents/{ident}/refuse", data={"reason": reason}, headers=htmx)
    assert refused.status_code == 200
    outcome = element(refused.text, card_id(asked))
    assert "Refused: nothing goes to be-police." in outcome
    assert f"Reason (sent to de-customs): {reason}" in outcome
    assert 'id="consents-empty"' in client.get("/consents").text

    # The requester sees the refusal, with the reason; be-police gets nothing.
    with workflow(federation.de, "liaison") as forwarder:
        (fwd,) = wait_for(
            lambda: [
                f
                for f in forwarder.forwards(got)
                if f.state == alert_service_pb2.FORWARD_STATE_REFUSED
            ],
            what="the refusal at de-customs",
        )
    assert fwd.refusal_reason == reason
    assert received_at(third_agency(federation), "Counterfeit insulin, second consignment") == []


def test_who_may_answer_is_the_nodes_call_and_its_refusals_are_shown(
    federation: Federation,
) -> None:
    issued, _got, asked = ask(federation)
    ident = asked.name.split("/")[1]
    nl = federation.consoles["nl-customs"]
    # An analyst: no link, and the node refuses the page and both answers, in its words.
    analyst = nl.signed_in("analyst")
    inbox = analyst.get("/inbox")
    assert 'href="/consents"' not in inbox.text
    refused = analyst.get("/consents")
    assert refused.status_code == 403
    assert "role analyst may not consent" in refused.text
    assert "ROLE_NOT_PERMITTED" in refused.text
    for action, data in (("grant", {}), ("refuse", {"reason": "not ours to pass on"})):
        posted = analyst.post(
            f"/consents/{ident}/{action}", data={"csrf_token": csrf_of(inbox.text), **data}
        )
        assert posted.status_code == 403, action
        assert "role analyst may not consent" in posted.text
        assert "ROLE_NOT_PERMITTED" in posted.text
    assert asked.name in waiting(federation)
    # An approver answers consent requests too: both pages in the navigation.
    officer(federation.nl, "approver")
    nav = nl.signed_in("approver").get("/inbox").text.split("</nav>", 1)[0]
    assert 'href="/reviews"' in nav
    assert 'href="/consents"' in nav

    # nl-customs revokes the alert meanwhile: the node refuses the grant, on the card.
    with federation.nl.client("liaison") as c:
        c.revoke_alert(issued, reason="subject arrested")
    liaison = nl.signed_in("liaison")
    page = liaison.get("/consents")
    assert "Revoked" in element(page.text, card_id(asked))
    answer = liaison.post(f"/consents/{ident}/grant", data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 409
    refusal = refusal_on(element(answer.text, card_id(asked)))
    assert "is no longer active" in refusal
    assert "[ALERT_NOT_ACTIVE]" in refusal
    assert asked.name in waiting(federation)

    # A rights holder's account: neither the link nor the page.
    federation.nl.tokens["rights_holder"] = holder_token(federation.nl)
    holder = nl.signed_in("rights_holder")
    page = holder.get("/consents")
    assert page.status_code == 403
    assert "This page is for customs officers." in page.text
    assert 'href="/consents"' not in page.text


def test_an_answer_without_the_csrf_token_does_nothing(federation: Federation) -> None:
    _issued, _got, asked = ask(federation)
    ident = asked.name.split("/")[1]
    client: httpx.Client = federation.consoles["nl-customs"].signed_in("liaison")
    client.get("/consents")
    for data, headers in (
        ({}, {}),
        ({"csrf_token": "forged"}, {}),
        ({"reason": "x"}, {"X-CSRF-Token": "forged", "HX-Request": "true"}),
    ):
        for action in ("grant", "refuse"):
            answer = client.post(f"/consents/{ident}/{action}", data=data, headers=headers)
            assert answer.status_code == 403, (action, data)
            assert "Nothing was done" in answer.text
    assert asked.name in waiting(federation)


def test_consent_requests_page_through_the_nodes_pages(federation: Federation) -> None:
    _i, _g, first = ask(federation, description="The first consignment")
    _i, _g, second = ask(federation, description="The second consignment")
    small = federation.start(federation.nl, page_size=1)
    client = small.signed_in("liaison")
    page = client.get("/consents")
    assert f'id="{card_id(second)}"' in page.text  # newest first
    assert f'id="{card_id(first)}"' not in page.text
    more = re.search(r'href="(/consents\?page=[^"]+)" rel="next"', page.text)
    assert more is not None
    following = client.get(more.group(1).replace("&amp;", "&"))
    assert f'id="{card_id(first)}"' in following.text
    assert f'id="{card_id(second)}"' not in following.text
    assert 'rel="next"' not in following.text
    assert '<a href="/consents">First page</a>' in following.text
