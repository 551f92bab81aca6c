"""The growth bench still seeds, starts two nodes and times every call (structure only)."""

from __future__ import annotations

import pytest

from bench import growth

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_quick_run_reports_every_call_at_both_sizes() -> None:
    result = growth.run(quick=True)
    assert result["benchmark"] == "growth"
    assert result["quick"] is True
    assert result["target_ratio"] == 1.5
    small, large = result["sizes"]
    assert small < large
    assert [s["alerts"] for s in result["seeding"].values()] == [small, large]
    assert set(result["results"]) == set(growth.OPERATIONS)
    for figures in result["results"].values():
        assert figures["calls"] == result["rounds"] * result["calls_per_round"]
        assert figures["small_p50_ms"] > 0
        assert figures["large_p50_ms"] > 0
        assert figures["ratio"] > 0
    assert result["worst_ratio"] == max(r["ratio"] for r in result["results"].values())
    section = growth.report(result)
    assert section.startswith("## Growth")
    assert section.count("\n| ") == len(growth.OPERATIONS) + 1


def test_seeded_database_is_what_a_node_would_hold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Seeded rows satisfy the node's schema and the audit log verifies from scratch."""
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from bench import _harness as h
    from bench._seed import seed
    from intelshare import devfed
    from intelshare.audit.log import AuditLog
    from intelshare.db import make_engine
    from intelshare.directory import Anchor, verify_directory
    from intelshare.treaty import Treaty
    from node.schema import alert as rec
    from node.storage import tables as t

    agencies = ["nl-customs", "be-police"]
    doc = h.treaty("seed-test", agencies)
    fed = devfed.build(tmp_path / "fed", h.agency_specs(agencies), [doc])
    url = f"sqlite:///{tmp_path / 'node.db'}"
    config = h.write_yaml(tmp_path / "node.yaml", "node", h.node_values(fed, "nl-customs", url, 1))
    h.prepare_node_db(config)
    directory = verify_directory(
        fed.directory_file.read_bytes(), Anchor.load(fed.anchor_file), now=datetime.now(UTC)
    )
    keys = fed.agencies["nl-customs"].keys
    stats = seed(
        url,
        agency="nl-customs",
        keys=keys,
        partner="be-police",
        partner_keys=fed.agencies["be-police"].keys,
        directory=directory,
        treaty=Treaty.from_mapping(doc),
        record=rec.alert_to_record(h.demo_alert([("be-police", "seed-test")])),
        count=11,
        batch=4,
    )
    assert stats["alerts"] == 11
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            count = lambda table: conn.execute(select(func.count()).select_from(table)).scalar_one()  # noqa: E731
            assert count(t.alerts) == 11
            assert count(t.views) == 5
            assert count(t.received) == 11  # 6 alerts + 5 receipts
            assert count(t.events) == 6 + 2 * 5
            head = conn.execute(
                select(t.counters.c.value).where(t.counters.c.name == "events")
            ).scalar_one()
            assert head == 16
        audit = AuditLog(engine, "nl-customs", keys.signing, keys.signing_key_id)
        assert audit.size() == 6 + 2 * 5
        audit.sign_head()  # a head over the seeded log, then the whole log recomputed
        report = audit.verify(keys.signing.public_key())  # raises on any mismatch
        assert report.entries_checked == report.tree_size == 16
        assert report.heads_checked == 1
    finally:
        engine.dispose()
