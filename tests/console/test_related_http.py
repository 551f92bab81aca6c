"""Related records on the console's pages, over HTTP against a real federation.

The console shows a record's ``related`` list as its node returns it on
the read (GetAlert, GetDetention, GetRecordation), so what an officer sees
there is what the node lets that officer's token read. nl-customs issues
two alerts to de-customs that share only a container number and writes a
case entry naming it; de-customs detains a container under ACME's
recordation. The alert page's stream asks the node for ``link.found``
events, so a record that arrives later and shares an identifier with the
alert on the page appears in its section without a reload.

The node's identifier index follows its event log, so a read made just
after a record is written may not list it yet: the tests wait for it.
"""

from __future__ import annotations

import re

import httpx

from intelshare.v1 import alert_pb2, case_pb2
from tests.console.conftest import Federation, case_client, issue, open_case, sse_events
from tests.console.ipr_helpers import detain, grant, holders
from tests.node.conftest import wait_for

CONTAINER = "MSCU1234566"
KEY = f"iso6346:{CONTAINER}"


def container_only(number: str = CONTAINER) -> alert_pb2.Subjects:
    """Subjects naming one container and nothing else (no person, company, document)."""
    subjects = alert_pb2.Subjects()
    subjects.containers.add(number=number)
    return subjects


def related_section(html: str) -> str:
    """The page's "Related records" section (the one shared partial), as HTML."""
    assert html.count('id="related"') == 1
    return html.split('id="related"', 1)[1].split("</section>", 1)[0]


def section_of(client: httpx.Client, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return related_section(answer.text)


def listed(client: httpx.Client, path: str, href: str, what: str) -> str:
    """The related section of ``path`` once it links ``href`` (the index follows the log)."""

    def shown() -> str:
        section = section_of(client, path)
        return section if f'href="{href}"' in section else ""

    return str(wait_for(shown, what=what))


def rid(name: str) -> str:
    return name.split("/")[-1]


def test_alert_page_lists_related_records_each_officer_may_read(federation: Federation) -> None:
    first, received = issue(federation, description="first: the container and its consignee")
    first_de = rid(received["de-customs"])
    de_analyst = federation.consoles["de-customs"].signed_in("analyst")
    empty = section_of(de_analyst, f"/alerts/{first_de}")
    assert "No other record de-customs holds shares an identifier with this alert" in empty
    assert "<li>" not in empty

    second, received = issue(
        federation, description="second: the same container", subjects=container_only()
    )
    second_de = rid(received["de-customs"])
    section = listed(
        de_analyst,
        f"/alerts/{first_de}",
        f"/alerts/{second_de}",
        "the second alert on the first one's page at de-customs",
    )
    # As the hit page shows it: kind, name, whose, the shared identifier's role and key.
    entry = next(li for li in section.split("<li>")[1:] if f"/alerts/{second_de}" in li)
    assert entry.startswith("alert ")
    assert "(from nl-customs)" in entry
    assert f"shares container <code>{KEY}</code>" in entry
    assert f'href="/alerts/{first_de}"' not in section  # never the record itself
    assert "No other record" not in section
    # And the other way round: the second alert's page lists the first.
    back = section_of(de_analyst, f"/alerts/{second_de}")
    assert f'href="/alerts/{first_de}"' in back

    # At nl-customs a case entry names the container too. Its liaison officer, who opened
    # the case, sees it among the first alert's related records; an analyst not on the
    # case's team does not (the node leaves it out of that officer's list).
    case = open_case(federation, "Operation Pangea")
    with case_client(federation.nl) as api:
        note = case_pb2.CaseEntry(text="Container seen at Rotterdam")
        note.subjects.containers.add(number=CONTAINER)
        api.add_entry(case, note)
    nl_liaison = federation.consoles["nl-customs"].signed_in("liaison")
    nl_analyst = federation.consoles["nl-customs"].signed_in("analyst")
    page = f"/alerts/{rid(first)}"
    mine = listed(nl_liaison, page, f"/cases/{rid(case)}", "the case entry at nl-customs")
    assert "case entry" in mine
    assert f'href="/alerts/{rid(second)}"' in mine
    assert "(ours)" in mine
    theirs = listed(nl_analyst, page, f"/alerts/{rid(second)}", "the second alert for nl's analyst")
    assert f'href="/cases/{rid(case)}"' not in theirs
    assert "case entry" not in theirs


def test_detention_and_recordation_pages_list_their_related_records(
    federation: Federation,
) -> None:
    recordation = grant(federation)
    detention = detain(federation, recordation, container=CONTAINER)
    _first, received = issue(federation, description="the detained container")
    alert_de = rid(received["de-customs"])
    de = federation.consoles["de-customs"].signed_in("liaison")

    section = listed(
        de,
        f"/detentions/{rid(detention)}",
        f"/alerts/{alert_de}",
        "the alert on the detention's page",
    )
    assert f"shares container <code>{KEY}</code>" in section
    listed(
        de,
        f"/detentions/{rid(detention)}",
        f"/recordations/{rid(recordation)}",
        "the recordation (its GTIN) on the detention's page",
    )
    on_alert = listed(
        de, f"/alerts/{alert_de}", f"/detentions/{rid(detention)}", "the detention on the alert"
    )
    assert "detention " in on_alert
    on_recordation = listed(
        de,
        f"/recordations/{rid(recordation)}",
        f"/detentions/{rid(detention)}",
        "the detention on the recordation's page",
    )
    assert "No other record" not in on_recordation
    assert "shares gtin <code>gtin:" in on_recordation

    # A rights holder's reads carry no related records: its pages have no such section.
    holders(federation)
    acme = federation.consoles["de-customs"].signed_in("rights_holder")
    for path in (f"/detentions/{rid(detention)}", f"/recordations/{rid(recordation)}"):
        answer = acme.get(path)
        assert answer.status_code == 200, path
        assert 'id="related"' not in answer.text, path
        assert f"/alerts/{alert_de}" not in answer.text, path


def test_the_alert_stream_sends_a_new_link_with_the_related_records(
    federation: Federation,
) -> None:
    _first, received = issue(federation, description="first: the container")
    first_de = rid(received["de-customs"])
    de = federation.consoles["de-customs"].signed_in("analyst")
    page = de.get(f"/alerts/{first_de}").text
    assert "No other record" in related_section(page)
    url = re.search(r'data-live-url="([^"]+)"', page).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    with de.stream("GET", url) as stream:
        _second, received = issue(
            federation, description="second: the same container", subjects=container_only()
        )
        second_de = rid(received["de-customs"])
        # The stream may first replay the first alert's own recent events (they re-render
        # the same parts); the node's link.found for it brings the second alert along.
        for _ in range(10):
            (message,) = sse_events(stream, 1)
            assert message["event"] == "upsert"
            if f'href="/alerts/{second_de}"' in related_section(message["data"]):
                break
        else:
            raise AssertionError("the related records never listed the second alert")
    section = related_section(message["data"])
    assert f"shares container <code>{KEY}</code>" in section
    assert 'id="received-status"' in message["data"]  # the page's other live parts too
