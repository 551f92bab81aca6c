"""The ``related`` list of GetRecordation and GetDetention, through a real node (SQLite, PostgreSQL).

A detention of shoes carrying a recorded GTIN lists the recordation, the
recordation lists the detention; the rights holder's reads (no READ
permission, so no FindRelated either) list nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from intelshare import devfed
from intelshare.v1.risk_profile_pb2 import RelatedRecord
from tests.node.api.ipr_fixtures import ACME_GTIN, acme, client, holder_token, ipr_fed, shoes
from tests.node.conftest import Cluster, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    return ipr_fed(tmp_path)


def test_a_detention_and_its_recordation_list_each_other(cluster: Cluster) -> None:
    de = cluster.start_node("de-customs")
    forged = RelatedRecord(name="alerts/forged", kind="alert", key="iso6346:MSCU1234566")
    recordation, detention = acme(agencies=[]), shoes("recordations/acme-2026")
    recordation.related.append(forged)  # output only: a client's value is never kept
    detention.related.append(forged)
    with client(de) as c:
        assert not c.create_recordation(recordation, "acme-2026").related
        assert not c.create_detention(detention, "hh-0412").related
    gtin = f"gtin:{ACME_GTIN.zfill(14)}"
    with client(de, "analyst") as c:
        detention = wait_for(
            lambda: (d := c.get_detention("hh-0412")).related and d,
            what="the detention's related list",
        )
        assert ("recordations/acme-2026", "recordation", gtin) in {
            (r.name, r.kind, r.key) for r in detention.related
        }
        recordation = c.get_recordation("acme-2026")
        assert ("detentions/hh-0412", "detention", gtin) in {
            (r.name, r.kind, r.key) for r in recordation.related
        }
        assert all(not d.related for d in c.all_detentions())  # never on a list call
        assert "alerts/forged" not in {r.name for r in detention.related}
        assert "alerts/forged" not in {r.name for r in recordation.related}
    with client(de, token=holder_token(de)) as holder:
        assert not holder.get_detention("hh-0412").related
        assert not holder.get_recordation("acme-2026").related
