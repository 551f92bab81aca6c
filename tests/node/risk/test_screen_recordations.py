"""Screening declarations against recordations by GTIN, HS code and brand (SQLite, PostgreSQL).

de-customs holds ACME's recordation (running shoes: GTIN 4006381333931,
HS 640411, trade mark "ACME"). A declaration is targeted when its goods fall
under the recordation's HS subheading (a CN or TARIC code of 8 or 10 digits
under it), carry its GTIN, or bear its mark as the brand (spelt any way the
right names compare); each reason names the recordation and what matched.
A withdrawn recordation screens nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from intelshare import devfed
from intelshare.v1 import risk_service_pb2
from node.cli.risk_client import RiskClient
from tests.node.api.ipr_fixtures import ACME_GTIN, acme, client, ipr_fed
from tests.node.conftest import Cluster

pytestmark = pytest.mark.slow

S = risk_service_pb2
ACME = "recordations/acme-2026"


@pytest.fixture
def fed(tmp_path: Path) -> devfed.LocalFederation:
    return ipr_fed(tmp_path)


def screen(c: RiskClient, **fields: object) -> S.DeclarationScreening:
    (result,) = c.screen([S.Declaration(reference="MRN-1", **fields)])  # type: ignore[arg-type]
    assert not result.errors
    return result


def reasons(result: S.DeclarationScreening) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(s.role, s.key, tuple(s.records)) for s in result.subjects}


def test_a_declaration_under_a_recordation_by_hs_gtin_or_brand(cluster: Cluster) -> None:
    de = cluster.start_node("de-customs")
    with client(de) as c:
        c.create_recordation(acme(agencies=[]), "acme-2026")
    with RiskClient(
        de.target, ca_pem=de.ca_pem, server_name=de.agency, token=de.tokens["analyst"]
    ) as c:
        by_hs = screen(c, hs_code="6404.11.00.90")
        assert by_hs.targeted
        assert reasons(by_hs) == {("hs_code", "hs:640411", (ACME,))}
        assert len(by_hs.hits) == 1  # stored, as any watched identifier's hit

        by_brand = screen(c, hs_code="420292", brand="  Acme® ")
        assert reasons(by_brand) == {("brand", "right:acme", (ACME,))}

        by_all = screen(c, hs_code="640411", gtins=[ACME_GTIN], brand="ACME")
        assert reasons(by_all) == {
            ("gtin", f"gtin:{ACME_GTIN.zfill(14)}", (ACME,)),
            ("hs_code", "hs:640411", (ACME,)),
            ("brand", "right:acme", (ACME,)),
        }

        # another heading, another brand: nothing, and nothing stored
        other = screen(c, hs_code="640419", brand="ACMEX")
        assert not other.targeted
        assert not other.subjects
        assert not other.hits

        bad = c.screen([S.Declaration(reference="MRN-2", hs_code="640411", brand="A" * 201)])
        (refused,) = bad
        assert not refused.targeted
        assert "brand" in refused.errors

    with client(de) as c:
        c.move_recordation("withdraw", ACME, "holder gave up")
    with RiskClient(
        de.target, ca_pem=de.ca_pem, server_name=de.agency, token=de.tokens["analyst"]
    ) as c:
        assert not screen(c, hs_code="640411", brand="ACME").targeted
