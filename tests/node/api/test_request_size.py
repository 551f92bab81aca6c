"""An oversized officer request gets PAYLOAD_TOO_LARGE with its ErrorInfo (issue 22, item 3)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from intelshare import errors
from node.storage import tables as t
from tests.node.conftest import Cluster, demo_alert

pytestmark = pytest.mark.slow


def test_a_5_mib_alert_is_refused_with_a_reason_and_nothing_is_written(cluster: Cluster) -> None:
    nl = cluster.start_node("nl-customs")
    with nl.client("liaison") as c:
        with pytest.raises(errors.PayloadTooLarge) as exc:
            c.create_alert(demo_alert(description="x" * (5 * 1024 * 1024)))
        limit = int(exc.value.metadata["limit_bytes"])
        assert int(exc.value.metadata["size_bytes"]) > limit
        assert "CreateAlert" in exc.value.message
        # A request under the limit is still served (and refused on its own merits).
        with pytest.raises(errors.InvalidArgument):
            c.create_alert(demo_alert(description="x" * (limit // 2)))
    with nl.node.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.alerts)).scalar_one() == 0
