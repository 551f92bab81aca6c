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
    """The node's own writers wrote it: its counts add up, nothing is left to send, the log verifies."""
    from sqlalchemy import func, select

    from bench import _harness as h
    from bench._seed import seed
    from intelshare import devfed
    from intelshare.audit.log import AuditLog
    from intelshare.db import make_engine
    from node.storage import tables as t

    agencies = ["nl-customs", "be-police"]
    fed = devfed.build(
        tmp_path / "fed", h.agency_specs(agencies), [h.treaty("seed-test", agencies)]
    )
    url = f"sqlite:///{tmp_path / 'node.db'}"
    config = h.write_yaml(tmp_path / "node.yaml", "node", h.node_values(fed, "nl-customs", url, 1))
    h.prepare_node_db(config)
    alert = h.demo_alert([("be-police", "seed-test")])
    stats = seed(config, fed, partner="be-police", alert=alert, count=11)
    assert (stats["alerts"], stats["issued"], stats["received"]) == (11, 6, 5)
    assert stats["envelopes_settled"] >= 6 + 1  # the issued alerts and at least one receipt
    engine = make_engine(url)
    keys = fed.agencies["nl-customs"].keys
    try:
        with engine.connect() as conn:
            count = lambda table, *where: conn.execute(  # noqa: E731
                select(func.count()).select_from(table).where(*where)
            ).scalar_one()
            assert count(t.alerts) == 11
            assert count(t.alerts, t.alerts.c.direction == "received") == 5
            assert count(t.views) == 6
            assert count(t.received) == 5
            assert count(t.outbound, t.outbound.c.state != "accepted") == 0
            assert count(t.events) == 11
            assert count(t.events, t.events.c.notified_ms.is_(None)) == 0  # the relay's work done
            # the identifier index is up to date: each alert has subjects of its own
            held = select(func.count(func.distinct(t.identifiers.c.record_id)))
            assert conn.execute(held).scalar_one() == 11
        audit = AuditLog(engine, "nl-customs", keys.signing, keys.signing_key_id)
        audit.sign_head()  # a head over the seeded log, then the whole log recomputed
        report = audit.verify(keys.signing.public_key())  # raises on any mismatch
        assert report.entries_checked == report.tree_size >= 11
    finally:
        engine.dispose()
