"""ListAlerts with update_time_after: the alerts created or changed since a time (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from intelshare import errors
from intelshare.v1 import alert_pb2
from tests.node.conftest import CUSTOMS, Cluster, expire_in


def _alert(n: int) -> alert_pb2.Alert:
    return alert_pb2.Alert(
        kind=alert_pb2.ALERT_KIND_NARCOTICS,
        description=f"alert {n}",
        handling=1,
        tlp=3,
        expire_time=expire_in(timedelta(days=3)),
        recipients=[alert_pb2.AlertRecipient(agency_id="de-customs", treaty_id=CUSTOMS)],
    )


def _wait_past(ns: int) -> None:
    """Until this machine's clock (the node's too) reads later than ``ns``."""
    while time.time_ns() <= ns:
        time.sleep(0.001)


def test_update_time_after_lists_new_and_changed_alerts(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    with nl.client("liaison") as c:
        old = [c.create_alert(_alert(n)) for n in range(4)]
        # the cut lies strictly between the old alerts and the changes
        _wait_past(max(a.update_time.ToNanoseconds() for a in old))
        cut = Timestamp()
        cut.GetCurrentTime()
        _wait_past(cut.ToNanoseconds())
        c.update_alert(alert_pb2.Alert(name=old[0].name, description="changed"), ["description"])
        c.revoke_alert(old[1].name, "false lead")
        new = c.create_alert(_alert(9))

        changed = c.list_all(update_time_after=cut)
        assert {a.name for a in changed} == {old[0].name, old[1].name, new.name}
        assert all(a.update_time.ToNanoseconds() > cut.ToNanoseconds() for a in changed)
        # Still newest created first, and it pages with the filter in the token.
        assert [a.name for a in changed] == [new.name, old[1].name, old[0].name]
        first = c.list_alerts(page_size=1, update_time_after=cut)
        assert [a.name for a in first.alerts] == [new.name]
        second = c.list_alerts(page_size=2, page_token=first.next_page_token, update_time_after=cut)
        assert [a.name for a in second.alerts] == [old[1].name, old[0].name]
        # The filter combines with the others, and a token does not outlive a changed filter.
        revoked = c.list_all(update_time_after=cut, state=alert_pb2.ALERT_STATE_REVOKED)
        assert [a.name for a in revoked] == [old[1].name]
        with pytest.raises(errors.InvalidArgument):
            c.list_alerts(page_size=1, page_token=first.next_page_token)
        # Without the filter: everything, as before.
        assert len(c.list_all()) == 5
