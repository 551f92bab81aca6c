"""GetAlertReceipt: the gateway's proof of acceptance, per recipient, verifiable offline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from intelshare import errors
from intelshare.cli_receipt import verify_receipt
from intelshare.directory import Anchor, verify_directory
from intelshare.v1 import alert_pb2, alert_service_pb2
from tests.node.conftest import Cluster, demo_alert, wait_for

pytestmark = pytest.mark.slow


def test_each_recipient_copy_has_its_receipt_and_it_verifies_offline(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    be = cluster.start_node("be-police")
    de = cluster.start_node("de-customs")
    fed = cluster.fed
    directory = verify_directory(
        fed.directory_file.read_bytes(), Anchor.load(fed.anchor_file), now=datetime.now(UTC)
    )
    with nl.client("liaison") as c:
        issued = c.create_alert(demo_alert())  # two treaties: two envelopes
        wait_for(
            lambda: all(
                d.state >= alert_pb2.DELIVERY_STATE_SENT
                for d in c.get_alert(issued.name).deliveries
            ),
            what="both envelopes accepted by the gateway",
        )
        by_agency = {d.agency_id: d.message_id for d in c.get_alert(issued.name).deliveries}
        for agency in ("be-police", "de-customs"):
            got = c.get_receipt(issued.name, agency)
            assert got.message_id == by_agency[agency]
            report = verify_receipt(got.receipt, directory, envelope=got.envelope)
            assert report.message_id == by_agency[agency]
        # Not a recipient.
        with pytest.raises(errors.NotFound):
            c.get_receipt(issued.name, "fr-douane")
        with pytest.raises(errors.InvalidArgument):  # the alert's name, not its receipt's
            c._call(
                c.stub.GetAlertReceipt, alert_service_pb2.GetAlertReceiptRequest(name=issued.name)
            )
    # A recipient holds no receipt of the issuer's.
    with de.client("analyst") as c:
        got_alert = wait_for(
            lambda: c.list_alerts(direction=alert_pb2.ALERT_DIRECTION_RECEIVED).alerts,
            what="the alert at de-customs",
        )[0]
        with pytest.raises(errors.FailedPrecondition):
            c.get_receipt(got_alert.name, "de-customs")
    assert be.agency == "be-police"


def test_a_queued_envelope_has_no_receipt_yet(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    nl.node.sender.stop()  # nothing reaches the gateway
    with nl.client("liaison") as c:
        issued = c.create_alert(demo_alert())
        with pytest.raises(errors.FailedPrecondition) as exc:
            c.get_receipt(issued.name, "de-customs")
    assert exc.value.metadata["state"] == "queued"
