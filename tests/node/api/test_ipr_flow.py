"""The IPR story across two agencies, through a real gateway and real nodes (SQLite, PostgreSQL).

A recordation granted at nl-customs reaches de-customs without its
internal notes; de-customs finds it by GTIN, detains goods that match it;
the holder, an officer of de-customs bound to ACME, sees only its view,
is notified with its deadline in its feed and agrees to destruction; the
detention report that this confirmation sends reaches nl-customs and
links to the recordation; both nodes' statistics count it; a withdrawal
at nl-customs reaches the copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intelshare import devfed, errors
from intelshare.v1 import detention_pb2, ipr_service_pb2, recordation_pb2
from node.storage import tables as t
from tests.node.api.ipr_fixtures import (
    ACME_GTIN,
    OTHER_KEY,
    acme,
    client,
    holder_token,
    ipr_fed,
    shoes,
)
from tests.node.conftest import Cluster, wait_for

pytestmark = pytest.mark.slow

D = detention_pb2
R = recordation_pb2
S = ipr_service_pb2


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    return ipr_fed(tmp_path)


def _events(c: Any, want: str, resource: str) -> list[Any]:
    seen: list[Any] = []
    for item in c.watch_detentions():
        if item.HasField("event"):
            seen.append(item.event)
            if item.event.type == want and item.event.resource == resource:
                return seen
    return seen


def test_recordation_detention_holder_report_and_statistics_across_agencies(
    cluster: Cluster,
) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")

    # 1. nl-customs grants the recordation; it is shared with de-customs.
    with client(nl) as c:
        granted = c.create_recordation(acme(), "acme-2026")
    assert granted.name == "recordations/acme-2026"
    assert granted.state == R.RECORDATION_STATE_GRANTED
    assert granted.internal_notes == "holder answered slowly in 2025"
    assert granted.history[0].officer == "liaison"

    with client(de, "analyst") as c:
        copy = wait_for(
            lambda: c.all_recordations(direction=R.RECORDATION_DIRECTION_RECEIVED),
            what="the recordation at de-customs",
        )[0]
        assert copy.name == "recordations/acme-2026"  # the grantor's name on every node
        assert copy.origin_agency == "nl-customs"
        assert copy.internal_notes == ""
        assert all(not m.officer for m in copy.history)
        assert copy.goods[0].gtins == [ACME_GTIN]
        # 2. An officer looks the product up by GTIN (a UPC-A form of it too) and by name.
        found = c.search_recordations(gtin=ACME_GTIN)
        assert [(m.recordation.name, list(m.matched_by)) for m in found.matches] == [
            ("recordations/acme-2026", ["gtin"])
        ]
        assert c.search_recordations(right_name="Acme®", hs_code="6404.11.00").matches
        assert not c.search_recordations(gtin="5901234123457").matches

    # 3. de-customs detains a container of shoes matching it.
    with client(de) as c:
        detained = c.create_detention(shoes("recordations/acme-2026"), "hh-0412")
    assert detained.state == D.DETENTION_STATE_DETAINED
    assert list(detained.suggested_recordations) == ["recordations/acme-2026"]
    assert [d.kind for d in detained.deadlines] == [D.DEADLINE_KIND_NOTIFICATION]
    assert detained.deadlines[0].country == "DE"

    acme_token = holder_token(de)
    other_token = holder_token(de, OTHER_KEY)
    with client(de, token=acme_token) as holder:
        seen = holder.get_detention("hh-0412")
        assert seen.goods[0].quantity == 1200
        assert not seen.HasField("transport")
        assert not seen.HasField("parties")
        assert seen.internal_notes == ""
        assert not seen.suggested_recordations
        # Before the notification the holder has nothing to answer.
        with pytest.raises(errors.DetentionMoveInvalid):
            holder.move_detention("hh-0412", D.DETENTION_STATE_DESTRUCTION_AGREED, "too soon")
    with client(de, token=other_token) as other:
        with pytest.raises(errors.HolderMismatch):
            other.get_detention("hh-0412")
        assert other.all_detentions() == []
        with pytest.raises(errors.HolderMismatch):
            other.get_recordation("acme-2026")
        with pytest.raises(errors.HolderMismatch):
            other.move_detention("hh-0412", D.DETENTION_STATE_DESTRUCTION_AGREED, "not mine")

    # 4. The officer notifies; the holder's 10 working days start, in its feed.
    with client(de) as c:
        notified = c.move_detention("hh-0412", D.DETENTION_STATE_HOLDER_NOTIFIED, "e-mailed")
    kinds = {d.kind: d for d in notified.deadlines}
    assert kinds[D.DEADLINE_KIND_HOLDER_ANSWER].working_days == 10
    assert kinds[D.DEADLINE_KIND_HOLDER_ANSWER].state == D.DEADLINE_STATE_OPEN
    with client(de, token=acme_token) as holder:
        events = _events(holder, "detention.moved", "detentions/hh-0412")
        assert events[-1].type == "detention.moved"
        # it sees the events of its own records only
        assert {e.resource for e in events} <= {"detentions/hh-0412", "recordations/acme-2026"}
        seen = holder.get_detention("hh-0412")
        assert D.DEADLINE_KIND_HOLDER_ANSWER in [d.kind for d in seen.deadlines]
        # 5. It agrees to destruction.
        agreed = holder.move_detention(
            "hh-0412", D.DETENTION_STATE_DESTRUCTION_AGREED, "no hologram: counterfeit"
        )
        assert agreed.state == D.DETENTION_STATE_DESTRUCTION_AGREED
        assert agreed.history[-1].role == "rights_holder"
        assert agreed.history[-1].officer == ""  # officers' names never shown to the holder
        # Anything else is refused.
        with pytest.raises(errors.PermissionDenied):
            holder.statistics()
        with pytest.raises(errors.PermissionDenied):
            holder.all_reports()
        with pytest.raises(errors.PermissionDenied):
            holder.create_detention(shoes("recordations/acme-2026"))
        with pytest.raises(errors.PermissionDenied):
            holder.list_alerts()
        with pytest.raises(errors.DetentionMoveInvalid):
            holder.move_detention("hh-0412", D.DETENTION_STATE_DESTROYED, "not the holder's")

    # 6. The confirmation sent a report to nl-customs, which links it to its recordation.
    with client(nl, "analyst") as c:
        reports = wait_for(
            lambda: c.all_reports(recordation="recordations/acme-2026"),
            what="the detention report at nl-customs",
        )
        report = reports[0]
        assert report.reporting_agency == "de-customs"
        assert list(report.linked_recordations) == ["recordations/acme-2026"]
        assert report.transport.container_number == "CSQU3054383"
        assert not report.HasField("parties")  # the treaty's allow-list keeps them back
        assert [r.name for r in report.rights] == ["ACME"]
        stats = c.statistics(
            group_by=[S.STATISTICS_DIMENSION_PARTNER, S.STATISTICS_DIMENSION_RIGHT],
            source=S.STATISTICS_SOURCE_REPORTED,
        )
        assert [(list(r.keys), r.detentions, r.articles) for r in stats.rows] == [
            (["de-customs", "trade_mark"], 1, 1200)
        ]
        assert stats.total.estimated_value[0].units == 96_000
    with client(de, "analyst") as c:
        own = c.statistics(
            group_by=[S.STATISTICS_DIMENSION_COUNTRY], source=S.STATISTICS_SOURCE_OWN
        )
        assert [(list(r.keys), r.detentions) for r in own.rows] == [(["CN"], 1)]

    # 7. A withdrawal at nl-customs reaches the copy; the search no longer finds it.
    with client(nl) as c:
        c.move_recordation("withdraw", "acme-2026", "holder's request")
    with client(de, "analyst") as c:
        wait_for(
            lambda: c.get_recordation("acme-2026").state == R.RECORDATION_STATE_WITHDRAWN,
            what="the withdrawal at de-customs",
        )
        assert not c.search_recordations(gtin=ACME_GTIN).matches
        assert c.search_recordations(gtin=ACME_GTIN, include_inactive=True).matches
    with de.node.store.engine.connect() as conn:  # the copy's own event, for feeds and webhooks
        withdrawn = conn.execute(
            select(t.events.c.agency_id).where(t.events.c.type == "recordation.withdrawn")
        ).scalars()
        assert list(withdrawn) == ["nl-customs"]
        # a new detention cannot name a recordation no longer in force
    with client(de) as c, pytest.raises(errors.RecordationExpired):
        c.create_detention(shoes("recordations/acme-2026"))
    with client(de, token=acme_token) as holder:
        assert holder.get_recordation("acme-2026").holder.eori == "NL123456789"
        assert [r.name for r in holder.all_recordations()] == ["recordations/acme-2026"]
