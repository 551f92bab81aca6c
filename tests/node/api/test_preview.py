"""PreviewAlert: what each recipient would receive, exactly what CreateAlert then sends."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from intelshare import errors
from intelshare.v1 import alert_pb2
from node.storage import tables as t
from tests.node.conftest import CUSTOMS, TASKFORCE, Cluster, demo_alert, wait_for

pytestmark = pytest.mark.slow


def test_preview_matches_what_each_recipient_receives(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    de = cluster.start_node("de-customs")
    with nl.client("liaison") as c:
        previews = c.preview_alert(demo_alert())
        # Nothing is stored or sent by a preview.
        with nl.node.store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(t.alerts)).scalar_one() == 0
            assert conn.execute(select(func.count()).select_from(t.outbound)).scalar_one() == 0
        by_agency = {p.agency_id: p for p in previews}
        assert [p.agency_id for p in previews] == ["be-police", "de-customs"]
        assert all(p.permitted for p in previews)
        assert (by_agency["be-police"].treaty_id, by_agency["de-customs"].treaty_id) == (
            TASKFORCE,
            CUSTOMS,
        )
        # The task force treaty removes the passport number; the customs one keeps it.
        assert by_agency["be-police"].alert.subjects.persons[0].passport_number == ""
        assert "subjects.persons.passport_number" in by_agency["be-police"].removed_fields
        assert by_agency["de-customs"].alert.subjects.persons[0].passport_number == "NX1234567"
        assert list(by_agency["de-customs"].removed_fields) == ["subjects.persons.role"]

        issued = c.create_alert(demo_alert())
        for agency, node in (("be-police", be), ("de-customs", de)):
            delivery = c.get_delivery(issued.name, agency)
            assert list(delivery.removed_fields) == list(by_agency[agency].removed_fields)
            assert delivery.alert.subjects == by_agency[agency].alert.subjects
            assert delivery.alert.description == by_agency[agency].alert.description
            with node.client("analyst") as rc:
                got = wait_for(
                    lambda rc=rc: (
                        rc.list_alerts(direction=alert_pb2.ALERT_DIRECTION_RECEIVED).alerts
                    ),
                    what=f"the alert at {agency}",
                )
                assert got[0].subjects == by_agency[agency].alert.subjects


def test_preview_names_the_refusal_per_recipient(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    # Firearms are not permitted under the counterfeit-medicines task force.
    draft = demo_alert(kind=alert_pb2.ALERT_KIND_FIREARMS)
    with nl.client("liaison") as c:
        previews = {p.agency_id: p for p in c.preview_alert(draft)}
        assert not previews["be-police"].permitted
        assert previews["be-police"].refusal_reason == "CATEGORY_NOT_PERMITTED"
        assert "firearms" in previews["be-police"].refusal_message
        assert not previews["be-police"].HasField("alert")
        # CreateAlert refuses with the same reason.
        with pytest.raises(errors.CategoryNotPermitted):
            c.create_alert(draft)


def test_preview_is_for_issuers_and_validates_the_draft(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    with nl.client("analyst") as c, pytest.raises(errors.PermissionDenied):
        c.preview_alert(demo_alert())
    with nl.client("liaison") as c, pytest.raises(errors.InvalidArgument):
        c.preview_alert(alert_pb2.Alert(description="no recipients, no kind"))


def test_page_tokens_are_bound_to_the_node_and_the_officer(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    de = cluster.start_node("de-customs")
    to_de = [alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=CUSTOMS)]
    with nl.client("liaison") as c:
        for _ in range(3):
            c.create_alert(demo_alert(recipients=to_de))
        first = c.list_alerts(page_size=2)
        assert len(first.alerts) == 2
        assert len(c.list_alerts(page_size=2, page_token=first.next_page_token).alerts) == 1
    # Another officer of the same node cannot use it ...
    with nl.client("analyst") as c, pytest.raises(errors.PageTokenInvalid):
        c.list_alerts(page_size=2, page_token=first.next_page_token)
    # ... nor any officer of another node.
    with de.client("liaison") as c, pytest.raises(errors.PageTokenInvalid):
        c.list_alerts(page_size=2, page_token=first.next_page_token)
