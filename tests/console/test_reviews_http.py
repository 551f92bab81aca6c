"""The pending-reviews page over HTTP against a real gateway and two real nodes.

nl-customs' liaison officer writes wanted-person alerts for de-customs under
the task-force treaty, which reserves them for review; an approver (a
second officer) sees each with the treaty's copy for de-customs and
releases or rejects it. Liaison officers do not get the page, an author
cannot approve their own alert, a rejection needs a reason, and every form
needs the session's CSRF token; refusals are the node's, in its words.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from intelshare import devfed
from intelshare.v1 import alert_pb2
from node.storage.officers import OfficerRegistry
from tests.console.conftest import Console, Federation, console_treaties, csrf_of
from tests.node.api.ipr_fixtures import holder_token
from tests.node.conftest import AGENCIES, TASKFORCE, RunningNode, demo_alert, wait_for

PASSPORT = "NXC4KR7P1"


def review_treaties() -> list[dict[str, Any]]:
    """The consoles' treaties; the task force also permits the wanted_person category (a
    wanted-person alert always carries it), which it reserves for review."""
    data = console_treaties()
    for t in data:
        t["categories"] = [*t["categories"], "wanted_person"]
    return data


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    return devfed.build(tmp_path / "fed", AGENCIES, review_treaties())


def officer(node: RunningNode, role: str) -> str:
    """A new officer of ``node`` with ``role``; its token is kept under that role's name."""
    if role not in node.tokens:
        registry = OfficerRegistry(node.node.store.engine)
        node.tokens[role] = registry.add(f"{role}-{uuid.uuid4().hex[:6]}", role)[1]
    return node.tokens[role]


def hold(node: RunningNode, role: str = "liaison", **over: Any) -> alert_pb2.Alert:
    """A wanted-person alert for de-customs under the task force: held for review."""
    officer(node, role)
    with node.client(role) as c:
        alert = c.create_alert(
            demo_alert(
                kind=alert_pb2.ALERT_KIND_WANTED_PERSON,
                recipients=[alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=TASKFORCE)],
                **over,
            )
        )
    assert alert.state == alert_pb2.ALERT_STATE_PENDING_REVIEW
    return alert


def card_id(alert: alert_pb2.Alert) -> str:
    return f"review-{alert.name.split('/')[1]}-{TASKFORCE}"


def element(html: str, element_id: str) -> str:
    """The HTML of the ``<article>`` with ``element_id``, up to its own closing tag."""
    start = html.index(f'id="{element_id}"')
    depth, at = 1, start
    for tag in re.finditer(r"<(/?)article\b", html[start:]):
        depth += -1 if tag.group(1) else 1
        if depth == 0:
            at = start + tag.start()
            break
    return html[start:at]


def approver_console(f: Federation) -> tuple[Console, httpx.Client]:
    nl = f.consoles["nl-customs"]
    officer(f.nl, "approver")
    return nl, nl.signed_in("approver")


def state_of(node: RunningNode, alert: alert_pb2.Alert) -> int:
    with node.client("admin") as c:
        return int(c.get_alert(alert.name).state)


def test_an_approver_sees_each_partners_copy_and_releases_the_alert(
    federation: Federation,
) -> None:
    alert = hold(federation.nl)
    alert_id = alert.name.split("/")[1]
    _nl, client = approver_console(federation)
    page = client.get("/reviews")
    assert page.status_code == 200
    assert '<a href="/reviews"' in page.text  # in the navigation
    card = element(page.text, card_id(alert))
    assert alert.description[:40] in card
    assert TASKFORCE in card
    assert "wanted_person" in card
    assert "Written by <strong>liaison</strong>" in card  # the author's name, not an id
    # The task force's copy for de-customs: no passport number, and it says so.
    copy = element(page.text, f"{card_id(alert)}-to-de-customs")
    assert "Permitted." in copy
    assert "Jan Jansen" in copy
    assert PASSPORT not in copy
    assert "subjects.persons.passport_number" in copy
    assert "Approve: release to de-customs" in card
    # The alert's own page, linked from the card, says it waits.
    assert f'href="/alerts/{alert_id}"' in card
    assert "Pending review" in client.get(f"/alerts/{alert_id}").text

    # Released: the page says so, nothing waits, and de-customs receives it.
    answer = client.post(
        f"/reviews/{alert_id}/approve",
        data={"csrf_token": csrf_of(page.text), "treaty_id": TASKFORCE},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/reviews?done=released&alert={alert_id}"
    after = client.get(answer.headers["location"])
    assert f"{alert.name} released to its recipients." in after.text
    assert 'id="reviews-empty"' in after.text
    crafted = client.get("/reviews?done=released&alert=x%20was%20approved%20by%20the%20minister")
    assert "minister" not in crafted.text
    assert state_of(federation.nl, alert) == alert_pb2.ALERT_STATE_ACTIVE
    with federation.de.client("analyst") as c:
        got = wait_for(
            lambda: [
                a
                for a in c.list_all(direction=alert_pb2.ALERT_DIRECTION_RECEIVED)
                if a.description == alert.description
            ],
            what="the released alert at de-customs",
        )
    assert not got[0].subjects.persons[0].passport_number
    # Approving it again: the node's refusal, in its words, as the page.
    again = client.post(
        f"/reviews/{alert_id}/approve",
        data={"csrf_token": csrf_of(page.text), "treaty_id": TASKFORCE},
    )
    assert again.status_code == 409
    assert "is not waiting for review" in again.text
    assert "FAILED_PRECONDITION" in again.text


def test_reject_with_a_reason_through_htmx(federation: Federation) -> None:
    alert = hold(federation.nl, description='<script>alert("x")</script> wanted director')
    alert_id = alert.name.split("/")[1]
    _nl, client = approver_console(federation)
    page = client.get("/reviews")
    assert '<script>alert("x")</script>' not in page.text  # text, not markup
    assert "&lt;script&gt;" in page.text
    csrf = csrf_of(page.text)
    htmx = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    # No reason: the node refuses, the card says so on the field, nothing changes.
    empty = client.post(
        f"/reviews/{alert_id}/reject", data={"treaty_id": TASKFORCE, "reason": " "}, headers=htmx
    )
    assert empty.status_code == 400
    card = element(empty.text, card_id(alert))
    assert "a rejection needs a reason" in card
    assert 'aria-invalid="true"' in card
    assert state_of(federation.nl, alert) == alert_pb2.ALERT_STATE_PENDING_REVIEW
    rejected = client.post(
        f"/reviews/{alert_id}/reject",
        data={"treaty_id": TASKFORCE, "reason": "the subject is already in custody"},
        headers=htmx,
    )
    assert rejected.status_code == 200
    outcome = element(rejected.text, card_id(alert))
    assert f"Rejected under {TASKFORCE}: nothing was sent" in outcome
    assert "Reason (kept at nl-customs): the subject is already in custody" in outcome
    # Held for everyone and rejected: it never left nl-customs.
    assert state_of(federation.nl, alert) == alert_pb2.ALERT_STATE_REVOKED
    assert 'id="reviews-empty"' in client.get("/reviews").text


def test_the_author_cannot_approve_and_liaison_officers_do_not_get_the_page(
    federation: Federation,
) -> None:
    nl = federation.consoles["nl-customs"]
    # An admin may approve, but not an alert the admin wrote.
    own = hold(federation.nl, role="admin", description="Written by the admin")
    admin = nl.signed_in("admin")
    page = admin.get("/reviews")
    assert page.status_code == 200
    answer = admin.post(
        f"/reviews/{own.name.split('/')[1]}/approve",
        data={"csrf_token": csrf_of(page.text), "treaty_id": TASKFORCE},
    )
    assert answer.status_code == 403
    card = element(answer.text, card_id(own))
    refusal = re.search(r'id="[^"]+-refusal">([^<]+)', card)
    assert refusal is not None
    assert "a review needs a second officer" in refusal.group(1)
    assert "[APPROVER_IS_AUTHOR]" in refusal.group(1)
    assert state_of(federation.nl, own) == alert_pb2.ALERT_STATE_PENDING_REVIEW

    # A liaison officer: no link, and the node refuses the page.
    liaison = nl.signed_in("liaison")
    inbox = liaison.get("/inbox")
    assert 'href="/reviews"' not in inbox.text
    refused = liaison.get("/reviews")
    assert refused.status_code == 403
    assert "role liaison may not approve" in refused.text
    assert "PERMISSION_DENIED" in refused.text
    posted = liaison.post(
        f"/reviews/{own.name.split('/')[1]}/approve",
        data={"csrf_token": csrf_of(inbox.text), "treaty_id": TASKFORCE},
    )
    assert posted.status_code == 403
    assert state_of(federation.nl, own) == alert_pb2.ALERT_STATE_PENDING_REVIEW
    # A rights holder's account: neither the link nor the page.
    federation.nl.tokens["rights_holder"] = holder_token(federation.nl)
    holder = nl.signed_in("rights_holder")
    refused = holder.get("/reviews")
    assert refused.status_code == 403
    assert "This page is for customs officers." in refused.text
    assert 'href="/reviews"' not in refused.text
    # The issued list filters on the state: the admin's alert waits for review.
    waiting = liaison.get("/issued?state=pending_review")
    assert waiting.status_code == 200
    assert "Written by the admin" in waiting.text


def test_a_decision_without_the_csrf_token_does_nothing(federation: Federation) -> None:
    alert = hold(federation.nl)
    alert_id = alert.name.split("/")[1]
    _nl, client = approver_console(federation)
    client.get("/reviews")
    for data, headers in (
        ({"treaty_id": TASKFORCE}, {}),
        ({"treaty_id": TASKFORCE, "csrf_token": "forged"}, {}),
        ({"treaty_id": TASKFORCE, "reason": "x"}, {"X-CSRF-Token": "forged", "HX-Request": "true"}),
    ):
        for action in ("approve", "reject"):
            answer = client.post(f"/reviews/{alert_id}/{action}", data=data, headers=headers)
            assert answer.status_code == 403, (action, data)
            assert "Nothing was done" in answer.text
    assert state_of(federation.nl, alert) == alert_pb2.ALERT_STATE_PENDING_REVIEW


def test_pending_reviews_page_through_the_nodes_pages(federation: Federation) -> None:
    first = hold(federation.nl, description="The first wanted person")
    second = hold(federation.nl, description="The second wanted person")
    officer(federation.nl, "approver")
    small = federation.start(federation.nl, page_size=1)
    client = small.signed_in("approver")
    page = client.get("/reviews")
    assert f'id="{card_id(first)}"' in page.text  # oldest first
    assert f'id="{card_id(second)}"' not in page.text
    more = re.search(r'href="(/reviews\?page=[^"]+)" rel="next"', page.text)
    assert more is not None
    following = client.get(more.group(1).replace("&amp;", "&"))
    assert f'id="{card_id(second)}"' in following.text
    assert f'id="{card_id(first)}"' not in following.text
    assert 'rel="next"' not in following.text
    assert '<a href="/reviews">First page</a>' in following.text
