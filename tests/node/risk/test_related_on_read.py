"""The ``related`` list of a single-record read, through real nodes (SQLite and PostgreSQL).

be-police receives two alerts from nl-customs naming one container and
holds a case entry naming it too; GetAlert of the second alert lists the
first, and the case entry only to an officer who may read that case (an
analyst sees a case's entries once made one of its officers). List calls
never carry the list.
"""

from __future__ import annotations

import pytest

from intelshare.v1 import alert_pb2
from node.cli.client import NodeClient
from tests.node.conftest import TASKFORCE, Cluster, demo_alert, wait_for
from tests.node.kinds.test_cases import cc, entry, fed, new_case  # noqa: F401  (fed: case treaties)

pytestmark = pytest.mark.slow


def related_names(client: NodeClient, name: str) -> set[str]:
    return {r.name for r in client.get_alert(name).related}


def test_an_alert_read_lists_the_records_that_share_its_container(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    to_be = [alert_pb2.AlertRecipient(agency_id="be-police", treaty_id=TASKFORCE)]
    with nl.client("liaison") as c:
        c.create_alert(demo_alert(recipients=to_be, description="first"))
        c.create_alert(demo_alert(recipients=to_be, description="second, same container"))
    with be.client("analyst") as c:
        received = wait_for(lambda: len(c.list_all()) == 2 and c.list_all(), what="both alerts")
    first, second = sorted(received, key=lambda a: a.description)
    assert first.description == "first"
    with cc(be) as cases:
        case = cases.create_case(new_case(members=("nl-customs",)))
        held = cases.add_entry(case.name, entry("be: container MSCU1234566 seen in Antwerp"))

    with be.client("liaison") as c:
        # the index follows the event log: wait until it holds the entry too
        shown = wait_for(
            lambda: {first.name, held.name} <= related_names(c, second.name) and c,
            what="the first alert and the case entry in the second alert's related list",
        )
        alert = shown.get_alert(second.name)
    rows = [(r.name, r.kind, r.key, r.role) for r in alert.related]
    assert (first.name, "alert", "iso6346:MSCU1234566", "container") in rows
    assert (held.name, "case_entry", "iso6346:MSCU1234566", "container") in rows
    assert second.name not in {r.name for r in alert.related}  # never the record itself
    times = [r.create_time.ToNanoseconds() for r in alert.related]
    assert times == sorted(times, reverse=True)  # newest first
    by_name = {r.name: r for r in alert.related}
    assert by_name[first.name].direction == 2  # RECEIVED
    assert by_name[first.name].origin_agency == "nl-customs"

    with be.client("analyst") as c:
        # Not an officer of the case: the entry is not shown, the alert is.
        names = related_names(c, second.name)
        assert first.name in names
        assert held.name not in names
        assert all(not a.related for a in c.list_all())  # never on a list call
    with cc(be) as cases:
        cases.add_officer(case.name, "analyst")
    with be.client("analyst") as c:
        assert held.name in related_names(c, second.name)
