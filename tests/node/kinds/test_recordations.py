"""The recordation kind on the record engine: every lifecycle move reaches the copy.

The treaty here even lists ``internal_notes`` in its allow-list: the notes
still never leave the granting node, because the kind's JSON form (what the
engine stores and seals) is the shareable recordation.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from intelshare import devfed
from intelshare.v1 import recordation_pb2
from node.storage import tables as t
from tests.node.api.ipr_fixtures import ACME_GTIN, RECORDATION_FIELDS, acme, client, ts
from tests.node.conftest import AGENCIES, CUSTOMS, Cluster, treaties, wait_for

pytestmark = pytest.mark.slow
R = recordation_pb2


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    data = treaties()
    customs = next(d for d in data if d["id"] == CUSTOMS)
    customs["kinds"] = [*customs["kinds"], "recordation"]
    customs["fields"]["recordation"] = [*RECORDATION_FIELDS, "internal_notes"]
    return devfed.build(tmp_path / "fed", AGENCIES, data)


def test_moves_reach_the_copy_and_notes_never_leave(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    with client(nl) as c:
        c.create_recordation(acme(), "acme-2026")
    with client(de, "analyst") as d:
        wait_for(lambda: d.all_recordations(), what="the copy")

        def state() -> int:
            return d.get_recordation("acme-2026").state

        with de.node.store.engine.connect() as conn:
            stored = json.loads(conn.execute(select(t.records.c.record)).scalar_one())
        assert "internal_notes" not in stored
        assert all("officer" not in m for m in stored["history"])

        with client(nl) as c:
            c.move_recordation("suspend", "acme-2026", "costs unpaid")
        wait_for(lambda: state() == R.RECORDATION_STATE_SUSPENDED, what="the suspension")
        assert not d.search_recordations(gtin=ACME_GTIN).matches

        with client(nl) as c:
            c.move_recordation("resume", "acme-2026", "costs paid")
        wait_for(lambda: state() == R.RECORDATION_STATE_GRANTED, what="the resumption")
        assert d.search_recordations(gtin=ACME_GTIN).matches

        until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=500)
        with client(nl) as c:
            c.extend_recordation("acme-2026", ts(until), "holder's request")
        wait_for(lambda: state() == R.RECORDATION_STATE_EXTENDED, what="the extension")
        copy = d.get_recordation("acme-2026")
        assert copy.expire_time.ToDatetime(tzinfo=UTC) == until
        assert len(copy.extensions) == 1
        assert [m.reason for m in copy.history][-3:] == [
            "costs unpaid",
            "costs paid",
            "holder's request",
        ]
        # the copy's changes are IPR events at de-customs
        with de.node.store.engine.connect() as conn:
            types = list(
                conn.execute(
                    select(t.events.c.type).where(t.events.c.type.like("recordation.%"))
                ).scalars()
            )
        assert types == [
            "recordation.received",
            "recordation.suspended",
            "recordation.resumed",
            "recordation.extended",
        ]
